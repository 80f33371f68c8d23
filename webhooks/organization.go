package webhooks

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=organizations,verbs=create;update;delete,versions=v1alpha1,name=vorganization.hub.minimax.io,admissionReviewVersions=v1,timeoutSeconds=10

// OrganizationValidator checks what CEL cannot: that the billing time zone is
// a zone the hub knows (the IANA database is compiled into the binary).
// Only an Owner may change the plan, the username prefix or the MFA policy.
type OrganizationValidator struct {
	team
}

var _ admission.Validator[*hubv1.Organization] = &OrganizationValidator{}

// ValidateCreate validates a new Organization.
func (v *OrganizationValidator) ValidateCreate(_ context.Context, org *hubv1.Organization) (admission.Warnings, error) {
	return nil, validateOrganization(org)
}

// ValidateUpdate validates a changed Organization; a new plan needs an
// Owner.
func (v *OrganizationValidator) ValidateUpdate(ctx context.Context, old, org *hubv1.Organization) (admission.Warnings, error) {
	// The plan, the username prefix (which re-keys every binding, so
	// changing it could lock the Owners out), the MFA policy (an Admin
	// could otherwise lift what binds the Owners) and single sign-on (whose
	// provider vouches for every member's email, an Owner's included, and
	// can report a second factor) are the Owners'.
	ownerOnly := []struct {
		changed bool
		path    *field.Path
		what    string
	}{
		{old.Spec.Plan != org.Spec.Plan, field.NewPath("spec", "plan"), "changing the plan"},
		{old.Spec.Security.UsernamePrefix != org.Spec.Security.UsernamePrefix, field.NewPath("spec", "security", "usernamePrefix"),
			"changing the username prefix"},
		{!equality.Semantic.DeepEqual(old.Spec.Security.MFA, org.Spec.Security.MFA), field.NewPath("spec", "security", "mfa"),
			"changing the MFA policy"},
		{!equality.Semantic.DeepEqual(old.Spec.Security.SSO, org.Spec.Security.SSO), field.NewPath("spec", "security", "sso"),
			"changing single sign-on"},
	}
	for _, o := range ownerOnly {
		if !o.changed {
			continue
		}
		r, err := v.requester(ctx)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if ferr := r.needs(hubv1.RoleOwner, o.path, o.what); ferr != nil {
			return nil, apierrors.NewInvalid(organizationKind, org.Name, field.ErrorList{ferr})
		}
	}
	return nil, validateOrganization(org)
}

// ValidateDelete allows deletion.
func (v *OrganizationValidator) ValidateDelete(context.Context, *hubv1.Organization) (admission.Warnings, error) {
	return nil, nil
}

func validateOrganization(org *hubv1.Organization) error {
	var errs field.ErrorList
	if tz := org.Spec.Billing.TimeZone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "billing", "timeZone"), tz,
				"must be an IANA time zone name such as UTC, Europe/Berlin or Asia/Shanghai"))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(organizationKind, org.Name, errs)
}
