package webhooks

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/identity"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-apikey,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=apikeys,verbs=create;update;delete,versions=v1alpha1,name=vapikey.hub.minimax.io,admissionReviewVersions=v1,timeoutSeconds=10

// APIKeyValidator refuses API keys outside project namespaces, new keys in
// archived projects, and lifetimes the organization's policy forbids. Scope
// changes and un-revoking are refused by CEL rules in the CRD.
type APIKeyValidator struct {
	// Cache reads Projects and the Organization from the manager's cache.
	Cache client.Reader
	// APIReader reads from the API server when the cache has not seen an
	// object yet (a project created a moment ago).
	APIReader client.Reader
	team
}

var _ admission.Validator[*hubv1.APIKey] = &APIKeyValidator{}

// ValidateCreate checks the key's project and lifetime.
func (v *APIKeyValidator) ValidateCreate(ctx context.Context, key *hubv1.APIKey) (admission.Warnings, error) {
	project, err := v.project(ctx, key.Namespace)
	if err != nil {
		return nil, err
	}
	if project != nil && project.Status.Namespace != key.Namespace {
		// The cache may lag the API server by a moment: a client that saw the
		// project turn Active must not be refused on the cache's older copy.
		project, err = v.projectFrom(ctx, v.APIReader.Get, key.Namespace)
		if err != nil {
			return nil, err
		}
	}
	var errs field.ErrorList
	ns := field.NewPath("metadata", "namespace")
	switch {
	case project == nil:
		errs = append(errs, field.Invalid(ns, key.Namespace, "API keys live in the namespace of a Project, and "+
			"this is not one; create the key in a project's namespace (kubectl get projects)"))
	case project.Status.Namespace != key.Namespace:
		errs = append(errs, field.Invalid(ns, key.Namespace, fmt.Sprintf(
			"the namespace of project %q is not ready yet; try again in a moment", project.Name)))
	case project.Spec.Archived:
		errs = append(errs, field.Forbidden(ns, fmt.Sprintf(
			"project %q is archived, so it takes no new keys; unarchive it first (spec.archived: false)", project.Name)))
	}
	errs = append(errs, v.checkLifetime(ctx, key)...)
	issued, err := checkIssuedKey(ctx, nil, key)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs = append(errs, issued...)
	if project != nil {
		ferrs, err := v.adminOnly(ctx, project, nil, key)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		errs = append(errs, ferrs...)
	}
	return nil, invalid(key, errs)
}

// adminOnly refuses, to a requester below Admin in the project, what would
// let them do more than they may: an Admin-scope key (created, or changed
// later), delivery of the key to an external store, Secret labels or
// annotations, which tools such as reflectors act on to copy Secrets
// elsewhere, and a key owned by someone else (created so, or its owner
// changed), which would move its spend out of the owner's group caps. A
// Developer's keys are their own, in Secrets that no hub role can read.
func (v *APIKeyValidator) adminOnly(ctx context.Context, project *hubv1.Project, old, key *hubv1.APIKey) (field.ErrorList, error) {
	applicable := adminRules(project, old, key)
	if len(applicable) == 0 && old != nil {
		return nil, nil // a create always needs the requester, for the owner
	}
	r, err := v.requester(ctx)
	if err != nil {
		return nil, err
	}
	if old == nil && r.member != nil && !hubv1.SameEmail(r.member.Spec.Email, key.Spec.Owner) {
		applicable = append(applicable, adminRule{field.NewPath("spec", "owner"), fmt.Sprintf(
			"a key owned by someone else (%s, not %s)", key.Spec.Owner, r.member.Spec.Email)})
	}
	var errs field.ErrorList
	if ferr := r.ownAdminKey(old, key); ferr != nil {
		errs = append(errs, ferr)
	}
	if len(applicable) == 0 {
		return errs, nil
	}
	if r.role, err = v.inProject(ctx, r, project); err != nil {
		return nil, err
	}
	for _, a := range applicable {
		if ferr := r.needs(hubv1.RoleAdmin, a.path, a.what); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs, nil
}

// ownAdminKey refuses a member an Admin-scope key that someone else owns,
// whatever their role: the management API takes an Admin-scope key as its
// owner's credentials, so holding one owned by the Owner would be acting as
// the Owner. A member may create one, or turn a key Admin-scope, only as its
// owner, and nobody may give an Admin-scope key another owner, since whoever
// holds it would act as the new owner: revoke it, and let the new owner
// make their own. Cluster administrators and non-members (workloads, GitOps
// controllers) are governed by RBAC alone.
func (r requester) ownAdminKey(old, key *hubv1.APIKey) *field.Error {
	if key.Spec.Scope != hubv1.ScopeAdmin || r.member == nil {
		return nil
	}
	owner := field.NewPath("spec", "owner")
	if old != nil && old.Spec.Scope == hubv1.ScopeAdmin {
		if hubv1.SameEmail(old.Spec.Owner, key.Spec.Owner) {
			return nil // made before, by someone allowed to
		}
		return field.Forbidden(owner, "the owner of an Admin-scope key cannot change, since whoever holds the key would act as "+
			"the new owner in the management API; revoke it, and let the new owner make their own")
	}
	if hubv1.SameEmail(r.member.Spec.Email, key.Spec.Owner) {
		return nil
	}
	return field.Forbidden(owner, fmt.Sprintf(
		"an Admin-scope key signs in to the management API as its owner, so a member may only make their own: "+
			"set spec.owner to %s, or ask %s to make the key", r.member.Spec.Email, key.Spec.Owner))
}

// adminRule is a change only an Admin may make: where, and what, for the
// message.
type adminRule struct {
	path *field.Path
	what string
}

// adminRules are the Admin-only changes that creating key (old nil) or
// changing old into key makes, but for the owner on create, which depends
// on who asks.
func adminRules(project *hubv1.Project, old, key *hubv1.APIKey) []adminRule {
	spec := field.NewPath("spec")
	candidates := []struct {
		applies bool
		adminRule
	}{
		{key.Spec.Scope == hubv1.ScopeAdmin && old == nil,
			adminRule{spec.Child("scope"), fmt.Sprintf("an Admin-scope key in project %q", project.Name)}},
		{key.Spec.Scope == hubv1.ScopeAdmin && old != nil && !sameButRevoked(old, key),
			adminRule{spec, fmt.Sprintf("changing an Admin-scope key in project %q", project.Name)}},
		{externalSecretOf(key) != nil && (old == nil || !equality.Semantic.DeepEqual(externalSecretOf(old), externalSecretOf(key))),
			adminRule{spec.Child("delivery"), "delivering a key to an external store"}},
		{templateMeta(key) && (old == nil || !equality.Semantic.DeepEqual(templateMetaOf(old), templateMetaOf(key))),
			adminRule{spec.Child("secretTemplate"), "labels or annotations on a key's Secret"}},
		{old != nil && !hubv1.SameEmail(old.Spec.Owner, key.Spec.Owner), adminRule{spec.Child("owner"), "changing a key's owner"}},
	}
	var out []adminRule
	for _, c := range candidates {
		if c.applies {
			out = append(out, c.adminRule)
		}
	}
	return out
}

// sameButRevoked tells whether a change only revokes the key, which anyone
// who may edit keys may do to any key.
func sameButRevoked(old, key *hubv1.APIKey) bool {
	a, b := old.Spec.DeepCopy(), key.Spec.DeepCopy()
	a.Revoked, b.Revoked = false, false
	return equality.Semantic.DeepEqual(a, b)
}

func externalSecretOf(k *hubv1.APIKey) *hubv1.ExternalSecretDelivery {
	if k.Spec.Delivery == nil {
		return nil
	}
	return k.Spec.Delivery.ExternalSecret
}

// checkIssuedKey guards the hub.minimax.io/issued-key annotation, which
// makes the controller take a key minted elsewhere instead of minting one:
// only the management API may set or change it (a key request or rotation
// request, impersonating the person with identity.ViaExtra set), it must
// be well formed, and a key of delivery mode None, which the controller
// cannot mint, must carry one from its creation. Anyone else could
// otherwise choose a key's digest: register a weak key, or another key's
// digest to take its calls.
func checkIssuedKey(ctx context.Context, old, key *hubv1.APIKey) (field.ErrorList, error) {
	path := field.NewPath("metadata", "annotations").Key(hubv1.IssuedKeyAnnotation)
	value, set := key.Annotations[hubv1.IssuedKeyAnnotation]
	changed := set && (old == nil || old.Annotations[hubv1.IssuedKeyAnnotation] != value)
	if old == nil && !set && key.DeliveryMode() == hubv1.DeliveryNone {
		return field.ErrorList{field.Forbidden(field.NewPath("spec", "delivery", "mode"), "a key of mode None "+
			"is created by a key request of the management API, which shows it once (docs/management-api.md); "+
			"create a KeyRequest with delivery None, or leave mode out for a key in a Secret")}, nil
	}
	if !changed {
		return nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(req.UserInfo.Extra[identity.ViaExtra], identity.ViaManagementAPI) {
		return field.ErrorList{field.Forbidden(path, "set only by the management API's key requests and rotation "+
			"requests, which mint the key it names; remove the annotation")}, nil
	}
	if _, _, err := hubv1.ParseIssuedKey(key.Annotations); err != nil {
		return field.ErrorList{field.Invalid(path, value, err.Error())}, nil
	}
	return nil, nil
}

func templateMeta(k *hubv1.APIKey) bool {
	t := k.Spec.SecretTemplate
	return t != nil && (len(t.Labels) > 0 || len(t.Annotations) > 0)
}

func templateMetaOf(k *hubv1.APIKey) [2]map[string]string {
	if t := k.Spec.SecretTemplate; t != nil {
		return [2]map[string]string{t.Labels, t.Annotations}
	}
	return [2]map[string]string{}
}

// ValidateUpdate checks a changed lifetime against the policy, and what
// only Admins may change.
func (v *APIKeyValidator) ValidateUpdate(ctx context.Context, oldKey, key *hubv1.APIKey) (admission.Warnings, error) {
	errs, err := checkIssuedKey(ctx, oldKey, key)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if lifetimeOf(oldKey) != lifetimeOf(key) && !key.Spec.Revoked {
		errs = append(errs, v.checkLifetime(ctx, key)...)
	}
	if !equality.Semantic.DeepEqual(oldKey.Spec, key.Spec) {
		project, err := v.project(ctx, key.Namespace)
		if err != nil {
			return nil, err
		}
		if project != nil {
			ferrs, err := v.adminOnly(ctx, project, oldKey, key)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			errs = append(errs, ferrs...)
		}
	}
	return nil, invalid(key, errs)
}

// ValidateDelete allows deletion.
func (v *APIKeyValidator) ValidateDelete(context.Context, *hubv1.APIKey) (admission.Warnings, error) {
	return nil, nil
}

func (v *APIKeyValidator) checkLifetime(ctx context.Context, key *hubv1.APIKey) field.ErrorList {
	if key.Spec.ExpiresAfter == nil {
		return nil // the policy's default applies
	}
	org := &hubv1.Organization{}
	if err := v.get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return field.ErrorList{field.InternalError(field.NewPath("spec", "expiresAfter"), err)}
	}
	if err := org.Spec.Security.APIKeys.CheckLifetime(*key.Spec.ExpiresAfter); err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "expiresAfter"), *key.Spec.ExpiresAfter, err.Error())}
	}
	return nil
}

// project returns the Project whose namespace is ns, or nil. A project's
// namespace has the project's name.
func (v *APIKeyValidator) project(ctx context.Context, ns string) (*hubv1.Project, error) {
	return v.projectFrom(ctx, v.get, ns)
}

// projectFrom is project with a chosen reader.
func (v *APIKeyValidator) projectFrom(ctx context.Context, get getFunc, ns string) (*hubv1.Project, error) {
	project := &hubv1.Project{}
	err := get(ctx, client.ObjectKey{Name: ns}, project)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, apierrors.NewInternalError(fmt.Errorf("reading project %q: %w", ns, err))
	}
	return project, nil
}

// getFunc is the shape of client.Reader.Get.
type getFunc func(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error

// get reads from the cache, then from the API server on a miss.
func (v *APIKeyValidator) get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	err := v.Cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = v.APIReader.Get(ctx, key, obj)
	}
	return err
}

func lifetimeOf(key *hubv1.APIKey) hubv1.KeyLifetime {
	if key.Spec.ExpiresAfter == nil {
		return ""
	}
	return *key.Spec.ExpiresAfter
}

func invalid(key *hubv1.APIKey, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(apiKeyKind, key.Name, errs)
}
