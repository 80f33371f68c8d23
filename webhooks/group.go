package webhooks

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-group,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=groups,verbs=create;update;delete,versions=v1alpha1,name=vgroup.hub.minimax.io,admissionReviewVersions=v1,timeoutSeconds=10

// GroupValidator allows every change to a Group (CEL covers its spec); it
// is there so that group changes, which grant project access, are audited.
type GroupValidator struct{}

var _ admission.Validator[*hubv1.Group] = &GroupValidator{}

// ValidateCreate allows.
func (GroupValidator) ValidateCreate(context.Context, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate allows.
func (GroupValidator) ValidateUpdate(context.Context, *hubv1.Group, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows.
func (GroupValidator) ValidateDelete(context.Context, *hubv1.Group) (admission.Warnings, error) {
	return nil, nil
}
