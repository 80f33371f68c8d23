package webhooks

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/identity"
)

// multiFactorRequired enforces the organization's MFA policy
// (spec.security.mfa) on changes to hub resources: a member whose role the
// policy covers must have signed in with a second factor, as the identity
// provider reports it (internal/identity). Cluster administrators and
// workloads are not members, so the policy does not bind them; that keeps
// a way in (and GitOps working) when the cluster does not pass the claim on.
// Reads never reach admission; refusing such a sign-in is for the dashboard
// and the identity provider.
type multiFactorRequired[T client.Object] struct {
	inner admission.Validator[T]
	team
}

func (m *multiFactorRequired[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	if err := m.check(ctx, obj); err != nil {
		return nil, err
	}
	w, err := m.inner.ValidateCreate(ctx, obj)
	return append(w, m.lockoutWarning(ctx, obj)...), err
}

func (m *multiFactorRequired[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	if err := m.check(ctx, obj); err != nil {
		return nil, err
	}
	w, err := m.inner.ValidateUpdate(ctx, old, obj)
	return append(w, m.lockoutWarning(ctx, obj)...), err
}

func (m *multiFactorRequired[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	if err := m.check(ctx, obj); err != nil {
		return nil, err
	}
	return m.inner.ValidateDelete(ctx, obj)
}

func (m *multiFactorRequired[T]) check(ctx context.Context, obj T) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if identity.MultiFactor(req.UserInfo.Extra) {
		return nil
	}
	org := &hubv1.Organization{}
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // no Organization, no policy
		}
		return apierrors.NewInternalError(err)
	}
	policy := org.Spec.Security.MFA
	if policy == nil || policy.Enforcement == hubv1.MFANone {
		return nil
	}
	r, err := m.requester(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if r.member == nil || !covers(policy, r.role) {
		return nil
	}
	who := "every member"
	if policy.Enforcement == hubv1.MFARoles {
		who = string(r.role) + "s"
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource},
		obj.GetName(), fmt.Errorf("the organization requires multi-factor authentication for %s "+
			"(Organization %s, spec.security.mfa), and %s signed in without a second factor: sign in again with one "+
			"(the hub reads the identity provider's amr claim from the user extra %s)",
			who, org.Name, r.name, identity.AMRExtra))
}

// covers says whether the policy binds a member with the role.
func covers(policy *hubv1.MFAPolicy, role hubv1.Role) bool {
	switch {
	case policy == nil:
		return false
	case policy.Enforcement == hubv1.MFAAllMembers:
		return true
	case policy.Enforcement == hubv1.MFARoles:
		return slices.Contains(policy.Roles, role)
	}
	return false
}

// lockoutWarning warns a member who, signed in without a second factor,
// sets an MFA policy that covers their own role: their next change will be
// refused until they sign in with one.
func (m *multiFactorRequired[T]) lockoutWarning(ctx context.Context, obj T) admission.Warnings {
	org, ok := any(obj).(*hubv1.Organization)
	if !ok || org.Spec.Security.MFA == nil || org.Spec.Security.MFA.Enforcement == hubv1.MFANone {
		return nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil || identity.MultiFactor(req.UserInfo.Extra) {
		return nil
	}
	r, err := m.requester(ctx)
	if err != nil || r.member == nil || !covers(org.Spec.Security.MFA, r.role) {
		return nil
	}
	return admission.Warnings{fmt.Sprintf("%s signed in without a second factor; with this MFA policy the hub refuses "+
		"their next change until they sign in with one", r.name)}
}
