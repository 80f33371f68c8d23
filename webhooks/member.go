package webhooks

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-member,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=members,verbs=create;update;delete,versions=v1alpha1,name=vmember.hub.minimax.io,admissionReviewVersions=v1,timeoutSeconds=10

// MemberValidator guards the Owners: only an Owner may make a member an
// Owner, or change or remove one, and the organization always keeps an
// enabled Owner. RBAC cannot say this: it sees the verb, not the role
// granted.
type MemberValidator struct {
	team
}

var _ admission.Validator[*hubv1.Member] = &MemberValidator{}

var memberResource = hubv1.GroupVersion.WithResource("members").GroupResource()

// ValidateCreate refuses an email another Member has, and an Owner made by
// someone who is not one.
func (v *MemberValidator) ValidateCreate(ctx context.Context, m *hubv1.Member) (admission.Warnings, error) {
	if ferr, err := v.uniqueEmail(ctx, m); err != nil || ferr != nil {
		return nil, errOr(err, invalidMember(m, ferr))
	}
	r, err := v.requester(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if m.Spec.Role != hubv1.RoleOwner {
		return nil, nil
	}
	return nil, invalidMember(m, r.needs(hubv1.RoleOwner, field.NewPath("spec", "role"), "making a member an Owner"))
}

// ValidateUpdate refuses changes to Owners by others, and demoting or
// disabling the last Owner.
func (v *MemberValidator) ValidateUpdate(ctx context.Context, old, m *hubv1.Member) (admission.Warnings, error) {
	if old.Spec.Role != hubv1.RoleOwner && m.Spec.Role != hubv1.RoleOwner {
		return nil, nil
	}
	r, err := v.requester(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	what := "changing an Owner"
	if old.Spec.Role != hubv1.RoleOwner {
		what = "making a member an Owner"
	}
	if ferr := r.needs(hubv1.RoleOwner, field.NewPath("spec", "role"), what); ferr != nil {
		return nil, invalidMember(m, ferr)
	}
	if stillOwner := m.Spec.Role == hubv1.RoleOwner && !m.Spec.Disabled; old.Spec.Role == hubv1.RoleOwner && !old.Spec.Disabled && !stillOwner {
		if ferr, err := v.keepsAnOwner(ctx, m.Name, field.NewPath("spec", "role")); err != nil || ferr != nil {
			return nil, errOr(err, invalidMember(m, ferr))
		}
	}
	return nil, nil
}

// ValidateDelete refuses removing an Owner by others, and the last Owner.
func (v *MemberValidator) ValidateDelete(ctx context.Context, m *hubv1.Member) (admission.Warnings, error) {
	if m.Spec.Role != hubv1.RoleOwner {
		return nil, nil
	}
	r, err := v.requester(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if ferr := r.needs(hubv1.RoleOwner, field.NewPath("metadata", "name"), "removing an Owner"); ferr != nil {
		return nil, apierrors.NewForbidden(memberResource, m.Name, fmt.Errorf("%s", ferr.Detail))
	}
	if m.Spec.Disabled {
		return nil, nil
	}
	ferr, err := v.keepsAnOwner(ctx, m.Name, field.NewPath("metadata", "name"))
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if ferr != nil {
		return nil, apierrors.NewForbidden(memberResource, m.Name, fmt.Errorf("%s", ferr.Detail))
	}
	return nil, nil
}

// uniqueEmail refuses an email that another Member has: two Members of one
// person would make their role depend on which is read first.
func (v *MemberValidator) uniqueEmail(ctx context.Context, m *hubv1.Member) (*field.Error, error) {
	members := &hubv1.MemberList{}
	if err := v.APIReader.List(ctx, members); err != nil {
		return nil, err
	}
	for i := range members.Items {
		if o := &members.Items[i]; o.Name != m.Name && strings.EqualFold(o.Spec.Email, m.Spec.Email) {
			return field.Invalid(field.NewPath("spec", "email"), m.Spec.Email, fmt.Sprintf(
				"Member %s already has this email; one person is one Member, so change that one's role or groups", o.Name)), nil
		}
	}
	return nil, nil
}

// keepsAnOwner refuses when no enabled Owner other than the named member
// would remain.
func (v *MemberValidator) keepsAnOwner(ctx context.Context, name string, path *field.Path) (*field.Error, error) {
	members := &hubv1.MemberList{}
	if err := v.APIReader.List(ctx, members); err != nil {
		return nil, err
	}
	for i := range members.Items {
		o := &members.Items[i]
		if o.Name != name && o.Spec.Role == hubv1.RoleOwner && !o.Spec.Disabled && o.DeletionTimestamp.IsZero() {
			return nil, nil
		}
	}
	return field.Forbidden(path, fmt.Sprintf("%s is the last Owner, and the organization must keep one; "+
		"make another member an Owner first", name)), nil
}

func invalidMember(m *hubv1.Member, ferr *field.Error) error {
	if ferr == nil {
		return nil
	}
	return apierrors.NewInvalid(memberKind, m.Name, field.ErrorList{ferr})
}

// errOr returns err if set, else the refusal.
func errOr(err, refusal error) error {
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	return refusal
}
