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
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
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
	// Projects and the Organization, and the whole status of SpendingCaps.
	OwnerCaps = "hub-spending-caps"
	// OwnerAccessController writes a Member's phase, username, projects,
	// keysOwned, observedGeneration and Ready condition.
	OwnerAccessController = "hub-access-controller"
	// OwnerMemberActivity writes a Member's lastActiveAt and mfaEnrolled,
	// from the changes the member made (see package audit).
	OwnerMemberActivity = "hub-member-activity"
	// OwnerInvitations (the usage server's invitations: the sender and
	// the acceptance handler) writes a Member's invitationDigest,
	// invitationFor, invitationSentAt, invitationExpiresAt, acceptedAt,
	// acceptedDigest and InvitationSent condition.
	OwnerInvitations = "hub-invitations"
)

// Apply makes status (the JSON form of the fields the writer owns, such as
// {"usage": {...}}) obj's status for those fields, by server-side apply as
// owner. It forces ownership of them: a field that an older version of the
// hub wrote with an update passes to its owner. On success obj holds the
// object as stored.
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
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership); err != nil {
		return err
	}
	// The answer is the object as stored: obj becomes it, so that a writer
	// that writes again locks on the new version.
	v := reflect.ValueOf(obj).Elem()
	v.Set(reflect.Zero(v.Type())) // no field of the old obj outlives the answer
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return fmt.Errorf("reading the applied %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
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
	filterConditions(fields, func(t string) bool { return !slices.Contains(conditionTypes, t) })
}

// KeepConditions keeps in the fields' conditions only those of the given
// types, the writer's own; with none, conditions are left out.
func KeepConditions(fields map[string]any, conditionTypes ...string) {
	filterConditions(fields, func(t string) bool { return slices.Contains(conditionTypes, t) })
}

func filterConditions(fields map[string]any, keep func(conditionType string) bool) {
	conds, _ := fields["conditions"].([]any)
	kept := make([]any, 0, len(conds))
	for _, c := range conds {
		m, _ := c.(map[string]any)
		t, _ := m["type"].(string)
		if keep(t) {
			kept = append(kept, c)
		}
	}
	fields["conditions"] = kept
}

// Fields is the JSON form of a typed status, without the fields named in
// drop (JSON names): what its writer applies.
func Fields(status any, drop ...string) (map[string]any, error) {
	out, err := toJSON(status)
	for _, f := range drop {
		delete(out, f)
	}
	return out, err
}

// Select is the JSON form of only the named fields of a typed status (JSON
// names; a field that is empty and omitted is absent): what a writer that
// owns few of a status's fields applies. conditions, when named, holds
// every condition; KeepConditions narrows it to the writer's.
func Select(status any, keep ...string) (map[string]any, error) {
	all, err := toJSON(status)
	out := map[string]any{}
	for _, f := range keep {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return out, err
}

func toJSON(status any) (map[string]any, error) {
	raw, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("reading a status as JSON: %w", err)
	}
	return out, nil
}
