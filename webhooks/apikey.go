package webhooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
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
	if key.Spec.Scope == hubv1.ScopeAdmin && project != nil {
		ferr, err := v.mayMintAdminKeys(ctx, project)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return nil, invalid(key, errs)
}

// mayMintAdminKeys refuses an Admin-scope key to a requester below Admin in
// the project: a Developer must not mint a key that can do more than they
// can. (The scope cannot change after creation.)
func (v *APIKeyValidator) mayMintAdminKeys(ctx context.Context, project *hubv1.Project) (*field.Error, error) {
	r, err := v.requester(ctx)
	if err != nil {
		return nil, err
	}
	if r.role, err = v.inProject(ctx, r, project); err != nil {
		return nil, err
	}
	return r.needs(hubv1.RoleAdmin, field.NewPath("spec", "scope"),
		fmt.Sprintf("an Admin-scope key in project %q", project.Name)), nil
}

// ValidateUpdate checks a changed lifetime against the policy.
func (v *APIKeyValidator) ValidateUpdate(ctx context.Context, oldKey, key *hubv1.APIKey) (admission.Warnings, error) {
	if lifetimeOf(oldKey) == lifetimeOf(key) || key.Spec.Revoked {
		return nil, nil
	}
	return nil, invalid(key, v.checkLifetime(ctx, key))
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
