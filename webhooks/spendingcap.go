package webhooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-spendingcap,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=spendingcaps,verbs=create;update;delete,versions=v1alpha1,name=vspendingcap.hub.minimax.io,admissionReviewVersions=v1

// SpendingCapValidator checks where a cap is created: a project's namespace
// (it caps the project) or the hub's own namespace (it caps the
// organization). Anywhere else it would cap nothing.
type SpendingCapValidator struct {
	// Projects finds the project of a namespace.
	Projects     *APIKeyValidator
	HubNamespace string
}

var _ admission.Validator[*hubv1.SpendingCap] = &SpendingCapValidator{}

// ValidateCreate checks the cap's namespace.
func (v *SpendingCapValidator) ValidateCreate(ctx context.Context, c *hubv1.SpendingCap) (admission.Warnings, error) {
	if c.Namespace == v.HubNamespace {
		return nil, nil
	}
	if c.Spec.Group != "" {
		return nil, apierrors.NewInvalid(spendingCapKind, c.Name, field.ErrorList{field.Invalid(
			field.NewPath("spec", "group"), c.Spec.Group, fmt.Sprintf("a group cap covers its members' keys in every "+
				"project, so it lives in the hub's namespace %q; create it there", v.HubNamespace))})
	}
	project, err := v.Projects.project(ctx, c.Namespace)
	if err != nil {
		return nil, err
	}
	if project == nil {
		return nil, apierrors.NewInvalid(spendingCapKind, c.Name, field.ErrorList{field.Invalid(
			field.NewPath("metadata", "namespace"), c.Namespace, fmt.Sprintf("a SpendingCap caps the project whose "+
				"namespace it is in, or the whole organization in the hub's namespace %q; this namespace is neither "+
				"(kubectl get projects)", v.HubNamespace))})
	}
	return nil, nil
}

// ValidateUpdate allows updates: the namespace cannot change.
func (v *SpendingCapValidator) ValidateUpdate(context.Context, *hubv1.SpendingCap, *hubv1.SpendingCap) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletion.
func (v *SpendingCapValidator) ValidateDelete(context.Context, *hubv1.SpendingCap) (admission.Warnings, error) {
	return nil, nil
}
