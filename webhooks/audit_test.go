package webhooks

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/audit"
)

type fullStamper struct{ stamped int }

func (s *fullStamper) Stamp(audit.Stamp) { s.stamped++ }
func (s *fullStamper) Accepting() bool   { return false }

type allowAll struct{}

func (allowAll) ValidateCreate(context.Context, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateUpdate(context.Context, *hubv1.Group, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateDelete(context.Context, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}

// TestChangesAreRefusedWhileTheAuditLogCannotKeepThem: with the audit
// spool full, every change is refused (503) and nothing is stamped; a dry
// run, which changes nothing, passes.
func TestChangesAreRefusedWhileTheAuditLogCannotKeepThem(t *testing.T) {
	stamper := &fullStamper{}
	a := &audited[*hubv1.Group]{inner: allowAll{}, stamper: stamper, clock: clock.RealClock{}}
	group := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: "ml"}}
	request := func(dryRun bool) context.Context {
		return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Name: "ml", DryRun: ptr.To(dryRun)}})
	}
	for name, err := range map[string]error{
		"create": func() error { _, err := a.ValidateCreate(request(false), group); return err }(),
		"update": func() error { _, err := a.ValidateUpdate(request(false), group, group); return err }(),
		"delete": func() error { _, err := a.ValidateDelete(request(false), group); return err }(),
	} {
		if !apierrors.IsServiceUnavailable(err) {
			t.Errorf("%s: %v, want 503", name, err)
		}
	}
	if _, err := a.ValidateCreate(request(true), group); err != nil {
		t.Errorf("a dry run: %v", err)
	}
	if stamper.stamped != 0 {
		t.Errorf("%d stamps", stamper.stamped)
	}
}
