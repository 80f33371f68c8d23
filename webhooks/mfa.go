package webhooks

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
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
// provider reports it (internal/identity). Cluster administrators
// (system:masters) and users who are not members (workloads, GitOps
// controllers) are not bound; that keeps a way in should the cluster stop
// passing the claim on. A member who sets a policy that covers their own role
// must show a second factor in that same request, so that a policy is never
// set that the hub cannot see being met. Reads never reach admission;
// refusing such a sign-in is for the dashboard and the identity provider.
type multiFactorRequired[T client.Object] struct {
	inner admission.Validator[T]
	team
}

func (m *multiFactorRequired[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	if err := m.check(ctx, obj); err != nil {
		return nil, err
	}
	return m.inner.ValidateCreate(ctx, obj)
}

func (m *multiFactorRequired[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	if err := m.check(ctx, obj); err != nil {
		return nil, err
	}
	return m.inner.ValidateUpdate(ctx, old, obj)
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
	if slices.Contains(req.UserInfo.Groups, masters) || identity.MultiFactor(req.UserInfo.Extra) {
		return nil
	}
	inForce, err := m.policy(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	// The policy a change to the Organization would set.
	var proposed *hubv1.MFAPolicy
	if org, ok := any(obj).(*hubv1.Organization); ok && req.Operation != admissionv1.Delete {
		proposed = org.Spec.Security.MFA
	}
	if !inForce.Enforced() && !proposed.Enforced() {
		return nil
	}
	r, err := m.requester(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if r.member == nil {
		return nil
	}
	var what string
	switch {
	case inForce.Covers(r.role):
		what = fmt.Sprintf("the organization requires multi-factor authentication for the %s role "+
			"(Organization %s, spec.security.mfa)", r.role, hubv1.OrganizationName)
	case proposed.Covers(r.role):
		what = fmt.Sprintf("setting an MFA policy that covers your own role (%s) needs a sign-in with a second factor, "+
			"so that the hub knows it can see one", r.role)
	default:
		return nil
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource},
		obj.GetName(), fmt.Errorf("%s, and %s", what, signInProblem(r.name, req.UserInfo.Extra)))
}

// policy is the MFA policy in force; nil without an Organization.
func (m *multiFactorRequired[T]) policy(ctx context.Context) (*hubv1.MFAPolicy, error) {
	org := &hubv1.Organization{}
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return org.Spec.Security.MFA, nil
}

// signInProblem says what was wrong with the user's sign-in and what to do:
// the API server passing on no methods at all is for a cluster
// administrator to fix; methods without a second factor, for the person.
func signInProblem(user string, extra map[string]authenticationv1.ExtraValue) string {
	methods, passed := extra[identity.AMRExtra]
	if !passed || len(methods) == 0 {
		return fmt.Sprintf("the API server passed on no sign-in methods for %s: ask a cluster administrator to map "+
			"the identity provider's amr claim to the user extra %s (docs/api/member.md), or to lift the policy",
			user, identity.AMRExtra)
	}
	return fmt.Sprintf("%s signed in with %s only: sign in again with a second factor "+
		"(a kubectl OIDC plugin may need its cached token removed first)", user, strings.Join(methods, ", "))
}
