package webhooks

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/audit"
)

type fullStamper struct{ stamped int }

func (s *fullStamper) Stamp(audit.Stamp) { s.stamped++ }
func (s *fullStamper) Accepting() bool   { return false }

type allowAll[T runtime.Object] struct{}

func (allowAll[T]) ValidateCreate(context.Context, T) (admission.Warnings, error)    { return nil, nil }
func (allowAll[T]) ValidateUpdate(context.Context, T, T) (admission.Warnings, error) { return nil, nil }
func (allowAll[T]) ValidateDelete(context.Context, T) (admission.Warnings, error)    { return nil, nil }

// TestChangesAreRefusedWhileTheAuditLogCannotKeepThem: with the audit
// spool full, changes are refused (503) and nothing is stamped; what must
// never wait for the usage server passes and is stamped: deletes, a key
// revoked, a member disabled, cluster administrators, the hub's own
// ServiceAccounts, and dry runs (not stamped: they change nothing).
func TestChangesAreRefusedWhileTheAuditLogCannotKeepThem(t *testing.T) {
	stamper := &fullStamper{}
	groups := &audited[*hubv1.Group]{inner: allowAll[*hubv1.Group]{}, stamper: stamper, clock: clock.RealClock{}, hubNamespace: "hub-system"}
	group := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: "ml"}}
	request := func(user string, dryRun bool, userGroups ...string) context.Context {
		return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Name: "ml", DryRun: ptr.To(dryRun), UserInfo: authenticationv1.UserInfo{Username: user, Groups: userGroups}}})
	}
	alice := request("alice@example.com", false)
	for name, err := range map[string]error{
		"create": func() error { _, err := groups.ValidateCreate(alice, group); return err }(),
		"update": func() error { _, err := groups.ValidateUpdate(alice, group, group); return err }(),
	} {
		if !apierrors.IsServiceUnavailable(err) {
			t.Errorf("%s: %v, want 503", name, err)
		}
	}
	if stamper.stamped != 0 {
		t.Fatalf("%d stamps for refused changes", stamper.stamped)
	}
	if _, err := groups.ValidateCreate(request("alice@example.com", true), group); err != nil {
		t.Errorf("a dry run: %v", err)
	}
	for name, err := range map[string]error{
		"a delete":                func() error { _, err := groups.ValidateDelete(alice, group); return err }(),
		"a cluster administrator": func() error { _, err := groups.ValidateCreate(request("root", false, masters), group); return err }(),
		"the hub's ServiceAccount": func() error {
			_, err := groups.ValidateUpdate(request("system:serviceaccount:hub-system:hub-manager", false), group, group)
			return err
		}(),
	} {
		if err != nil {
			t.Errorf("%s was refused: %v", name, err)
		}
	}

	keys := &audited[*hubv1.APIKey]{inner: allowAll[*hubv1.APIKey]{}, stamper: stamper, clock: clock.RealClock{}}
	key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Name: "k"}, Spec: hubv1.APIKeySpec{Owner: "a@example.com"}}
	revoked := key.DeepCopy()
	revoked.Spec.Revoked = true
	if _, err := keys.ValidateUpdate(alice, key, revoked); err != nil {
		t.Errorf("revoking a key was refused: %v", err)
	}
	relabelled := revoked.DeepCopy()
	relabelled.Spec.Label = "and more"
	if _, err := keys.ValidateUpdate(alice, key, relabelled); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("revoking and changing more: %v, want 503", err)
	}
	if stamper.stamped != 4 {
		t.Errorf("%d stamps, want 4 (the changes let through)", stamper.stamped)
	}
}
