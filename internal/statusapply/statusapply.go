// Package statusapply writes the status of the hub's objects by server-side
// apply, so that every status field has exactly one writer: each writer (a
// controller, the usage server, the cap evaluation) applies only the fields
// it owns, under a field manager of its own, and the API server keeps the
// others' fields as they are. A writer that leaves out a field it applied
// before removes it; it can never remove another writer's.
//
// The owners of each kind's status fields are listed in the kind's API
// document (docs/api/), and as the Owner constants below.
package statusapply

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// The field managers that write status, one per writer.
const (
	// OwnerAPIKeyController writes every APIKey status field but usage and
	// lastUsedAt.
	OwnerAPIKeyController = "hub-apikey-controller"
	// OwnerProjectController writes every Project status field but usage
	// and the CapReached condition.
	OwnerProjectController = "hub-project-controller"
	// OwnerOrganizationController writes every Organization status field
	// but the CapReached condition.
	OwnerOrganizationController = "hub-organization-controller"
	// OwnerUsage (the usage server) writes usage on Projects and APIKeys,
	// and lastUsedAt on APIKeys, as JSON merge patches: fields no
	// controller applies, so a patch that needs no read is enough.
	OwnerUsage = "hub-usage-status"
	// OwnerCaps (the cap evaluation) writes the CapReached condition of
	// Projects and the Organization.
	OwnerCaps = "hub-spending-caps"
)

// Apply makes status (the JSON form of the fields the writer owns, such as
// {"usage": {...}}) obj's status for those fields, by server-side apply as
// owner. It forces ownership of them: a field that an older version of the
// hub wrote with an update passes to its owner.
func Apply(ctx context.Context, c client.Client, obj client.Object, status map[string]any, owner string) error {
	return apply(ctx, c, obj, status, owner, "")
}

// ApplyIfUnchanged is Apply with obj's resource version as a precondition:
// when the object changed since obj was read, the API server refuses the
// write with a conflict, and the writer reads again. Controllers that
// compute their status from what they read (and must not write a stale
// one over a newer, such as a key issued twice) use it.
func ApplyIfUnchanged(ctx context.Context, c client.Client, obj client.Object, status map[string]any, owner string) error {
	return apply(ctx, c, obj, status, owner, obj.GetResourceVersion())
}

func apply(ctx context.Context, c client.Client, obj client.Object, status map[string]any, owner, resourceVersion string) error {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetGroupVersionKind(gvk)
	u.SetName(obj.GetName())
	u.SetNamespace(obj.GetNamespace())
	u.SetResourceVersion(resourceVersion)
	return c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership)
}

// Merge writes status fields of obj as a JSON merge patch, as owner: for a
// writer whose fields no one else writes and that wants no read (a null
// field is removed). The usage server writes usage this way.
func Merge(ctx context.Context, c client.Client, obj client.Object, status map[string]any, owner string) error {
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	return c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body), client.FieldOwner(owner))
}

// DropConditions removes from the fields' conditions those of the given
// types, which another writer owns.
func DropConditions(fields map[string]any, conditionTypes ...string) {
	conds, _ := fields["conditions"].([]any)
	kept := make([]any, 0, len(conds))
	for _, c := range conds {
		m, _ := c.(map[string]any)
		t, _ := m["type"].(string)
		drop := false
		for _, other := range conditionTypes {
			drop = drop || t == other
		}
		if !drop {
			kept = append(kept, c)
		}
	}
	fields["conditions"] = kept
}

// Fields is the JSON form of a typed status, without the fields named in
// drop (JSON names): what its writer applies.
func Fields(status any, drop ...string) (map[string]any, error) {
	raw, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("reading a status as JSON: %w", err)
	}
	for _, f := range drop {
		delete(out, f)
	}
	return out, nil
}
