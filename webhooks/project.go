package webhooks

import (
	"context"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-hub-minimax-io-v1alpha1-project,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=hub.minimax.io,resources=projects,verbs=create;update;delete,versions=v1alpha1,name=vproject.hub.minimax.io,admissionReviewVersions=v1,timeoutSeconds=10

// ProjectValidator refuses what CEL cannot see on a Project: a reserved
// name, a name whose namespace already exists (the hub never adopts a
// namespace it did not create), and deletion without the confirmation
// annotation.
type ProjectValidator struct {
	// Reader reads namespaces directly from the API server. It must not be the
	// manager's cache, which holds only the namespaces the hub owns.
	Reader client.Reader
	// Reserved lists the names no project may take, as path.Match patterns;
	// nil means DefaultReservedProjectNames.
	Reserved []string
	team
}

// DefaultReservedProjectNames are namespaces that Kubernetes, distributions
// and well-known add-ons create when they are installed, perhaps after the
// hub: a project that claimed one first would receive the add-on's
// workloads and Secrets. Operators extend or replace the list with the
// manager's --reserved-project-names.
var DefaultReservedProjectNames = []string{
	"default", "kube-*", "*-system", "openshift", "openshift-*",
	"cert-manager", "ingress-nginx", "istio-*", "linkerd", "linkerd-*", "argocd", "argo-*", "flux-*",
	"gatekeeper-*", "calico-*", "tigera-*", "cattle-*", "knative-*", "tekton-*", "crossplane-*",
	"external-secrets", "vault", "velero", "monitoring", "local-path-storage",
}

// reservedBy is the pattern of v.Reserved that name matches, or "".
func (v *ProjectValidator) reservedBy(name string) string {
	patterns := v.Reserved
	if patterns == nil {
		patterns = DefaultReservedProjectNames
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return p
		}
	}
	return ""
}

var _ admission.Validator[*hubv1.Project] = &ProjectValidator{}

// ValidateCreate refuses a name that cannot be a namespace's, a reserved
// name, and a Project whose namespace already exists. (These checks are
// here rather than in CEL, which could not name the field metadata.name.)
func (v *ProjectValidator) ValidateCreate(ctx context.Context, project *hubv1.Project) (admission.Warnings, error) {
	name := field.NewPath("metadata", "name")
	if errs := validation.IsDNS1123Label(project.Name); len(errs) > 0 {
		return nil, apierrors.NewInvalid(projectKind, project.Name, field.ErrorList{field.Invalid(name, project.Name,
			"a project's name becomes its namespace's name: use at most 63 lowercase letters, digits and '-', "+
				"starting and ending with a letter or digit")})
	}
	if project.Name == "default" || strings.HasPrefix(project.Name, "kube-") {
		return nil, apierrors.NewInvalid(projectKind, project.Name, field.ErrorList{field.Invalid(name, project.Name,
			"'default' and names starting with 'kube-' belong to Kubernetes system namespaces; choose another project name")})
	}
	if pattern := v.reservedBy(project.Name); pattern != "" {
		return nil, apierrors.NewInvalid(projectKind, project.Name, field.ErrorList{field.Invalid(field.NewPath("metadata", "name"),
			project.Name, fmt.Sprintf("names matching %q are reserved for the namespaces of Kubernetes and cluster add-ons "+
				"(the manager's --reserved-project-names); choose another project name", pattern))})
	}
	ns := &corev1.Namespace{}
	err := v.Reader.Get(ctx, client.ObjectKey{Name: project.Name}, ns)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, apierrors.NewInternalError(fmt.Errorf("checking whether namespace %q exists: %w", project.Name, err))
	}

	var msg string
	if ns.DeletionTimestamp != nil {
		msg = fmt.Sprintf("namespace %q is still being deleted; create the project again once it is gone", project.Name)
	} else {
		msg = fmt.Sprintf("namespace %q already exists and was not created for this project; "+
			"Platform Hub never adopts an existing namespace, so choose another project name", project.Name)
	}
	return nil, apierrors.NewInvalid(projectKind, project.Name, field.ErrorList{
		field.Invalid(field.NewPath("metadata", "name"), project.Name, msg),
	})
}

// ValidateUpdate allows every update; CEL rules in the CRD cover the spec.
func (v *ProjectValidator) ValidateUpdate(context.Context, *hubv1.Project, *hubv1.Project) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete refuses to delete a Project, and with it its namespace and
// everything in it, unless an Owner asks and the Project carries the
// confirmation annotation with its own name as the value.
func (v *ProjectValidator) ValidateDelete(ctx context.Context, project *hubv1.Project) (admission.Warnings, error) {
	r, err := v.requester(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if ferr := r.needs(hubv1.RoleOwner, field.NewPath("metadata", "name"), "deleting a project"); ferr != nil {
		return nil, apierrors.NewForbidden(projectResource, project.Name, fmt.Errorf("%s", ferr.Detail))
	}
	if project.Annotations[hubv1.ConfirmDeleteAnnotation] == project.Name {
		return nil, nil
	}
	return nil, apierrors.NewForbidden(projectResource, project.Name, fmt.Errorf(
		"deleting project %[1]q also deletes namespace %[1]q and everything in it; to confirm, "+
			"annotate the project first: kubectl annotate project %[1]s %[2]s=%[1]s",
		project.Name, hubv1.ConfirmDeleteAnnotation))
}
