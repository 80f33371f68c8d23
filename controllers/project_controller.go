package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// ProjectReconciler gives each Project a namespace of its own, reports the
// Project's phase, and deletes the namespace with the Project.
//
// It sets these conditions on a Project:
//   - Ready: True when the namespace is ready and the project is usable
//     (Active) or deliberately archived; False while pending, on conflict,
//     and while deleting.
//   - NamespaceReady: True when the namespace exists and is owned by this
//     Project; False with NamespaceConflict or NamespaceTerminating.
//   - Stalled: True on NamespaceConflict, which only a person can resolve.
type ProjectReconciler struct {
	client.Client

	// APIReader reads from the API server, bypassing the cache, which holds
	// only namespaces labelled as project namespaces.
	APIReader client.Reader

	Recorder events.EventRecorder

	// ServerAccess, when it names a ServiceAccount, is granted get on
	// Secrets in each project namespace.
	ServerAccess SecretAccess
	// ManagerAccess, when it names a ServiceAccount, is granted the key
	// Secrets' permissions in each project namespace: the manager's own.
	ManagerAccess SecretAccess
	// APIServerAccess, when it names a ServiceAccount, is granted get on
	// Secrets in each project namespace (the management API's key
	// requests of delivery Secret).
	APIServerAccess SecretAccess
	// Secrets is started for each project namespace once it is ready.
	Secrets *SecretCaches
}

// projectScope is what one reconcile of a Project reads and decides.
type projectScope struct {
	project *hubv1.Project
	// statusBefore is the status as read, to patch only what changed.
	statusBefore hubv1.ProjectStatus
	// namespace is the project's namespace when it exists and is owned.
	namespace *corev1.Namespace
	// capReached is the CapReached condition of the project or, failing
	// that, of the organization, when one is True.
	capReached *metav1.Condition
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects/status,verbs=get;patch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Project's namespace and status in line with its spec.
func (r *ProjectReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	project := &hubv1.Project{}
	if err := r.Get(ctx, req.NamespacedName, project); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &projectScope{project: project, statusBefore: *project.Status.DeepCopy()}
	defer func() {
		retErr = errors.Join(retErr, r.patchStatus(ctx, s))
	}()

	if !project.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, s)
	}
	if err := r.ensureFinalizer(ctx, project); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileNamespace(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileSecretAccess(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.readCapReached(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	computeProjectStatus(s)
	return ctrl.Result{}, nil
}

// ensureFinalizer adds the finalizer that keeps the Project until its
// namespace is gone.
func (r *ProjectReconciler) ensureFinalizer(ctx context.Context, project *hubv1.Project) error {
	if controllerutil.ContainsFinalizer(project, hubv1.ProjectFinalizer) {
		return nil
	}
	before := project.DeepCopy()
	controllerutil.AddFinalizer(project, hubv1.ProjectFinalizer)
	if err := r.Patch(ctx, project, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

// reconcileNamespace creates the Project's namespace, or checks that the one
// that exists belongs to this Project. It never adopts a namespace that was
// not created for this very Project (matched by owner UID).
func (r *ProjectReconciler) reconcileNamespace(ctx context.Context, s *projectScope) error {
	project := s.project
	ns, err := r.getNamespace(ctx, project.Name)
	if err != nil {
		return err
	}
	if ns == nil {
		return r.createNamespace(ctx, s)
	}
	nsReady := meta.FindStatusCondition(project.Status.Conditions, hubv1.NamespaceReadyCondition)
	switch {
	case !metav1.IsControlledBy(ns, project) && ns.DeletionTimestamp != nil:
		s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionFalse, hubv1.NamespaceTerminatingReason,
			fmt.Sprintf("namespace %q of an earlier project with this name is still being deleted", ns.Name))
	case !metav1.IsControlledBy(ns, project):
		s.setNamespaceConflict(fmt.Sprintf("namespace %q belongs to another object; the hub never adopts "+
			"an existing namespace: delete this project and choose another name", ns.Name))
	case ns.DeletionTimestamp != nil:
		// Being deleted outside the hub: once it is gone, it is created
		// again (empty).
		msg := fmt.Sprintf("namespace %q is being deleted outside the hub, and everything in it with it (API keys, "+
			"spending caps, notification channels); the hub creates it again once it is gone", ns.Name)
		if nsReady == nil || nsReady.Reason != hubv1.NamespaceDeletedReason {
			r.Recorder.Eventf(project, ns, corev1.EventTypeWarning, hubv1.NamespaceDeletedReason, "WatchNamespace", msg)
		}
		s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionFalse, hubv1.NamespaceDeletedReason, msg)
	default:
		s.namespace = ns
		// A recreated namespace stays reported until the Project's spec
		// next changes.
		if nsReady == nil || nsReady.Reason != hubv1.NamespaceRecreatedReason || nsReady.ObservedGeneration != project.Generation {
			s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason,
				fmt.Sprintf("namespace %q is ready", ns.Name))
		}
	}
	return nil
}

// createNamespace creates the Project's namespace: the first time, or
// again after someone deleted it outside the hub, which it reports.
func (r *ProjectReconciler) createNamespace(ctx context.Context, s *projectScope) error {
	project := s.project
	// The project had a namespace (or saw it being deleted), though the
	// Project is not being deleted: someone deleted it outside the hub.
	nsReady := meta.FindStatusCondition(project.Status.Conditions, hubv1.NamespaceReadyCondition)
	recreating := project.Status.Namespace == project.Name || (nsReady != nil && nsReady.Reason == hubv1.NamespaceDeletedReason)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   project.Name,
		Labels: map[string]string{hubv1.ProjectLabel: project.Name},
	}}
	if err := controllerutil.SetControllerReference(project, ns, r.Scheme()); err != nil {
		return err
	}
	err := r.Create(ctx, ns, client.FieldOwner(fieldOwner))
	if apierrors.IsAlreadyExists(err) {
		// Someone else's namespace appeared since admission checked.
		s.setNamespaceConflict(fmt.Sprintf("namespace %q was created outside the hub; the hub never adopts "+
			"an existing namespace: delete this project (or the namespace) and create it again", project.Name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating namespace %q: %w", project.Name, err)
	}
	s.namespace = ns
	if !recreating {
		r.Recorder.Eventf(project, ns, corev1.EventTypeNormal, hubv1.NamespaceCreatedReason, "CreateNamespace",
			"Created namespace %s", ns.Name)
		s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason,
			fmt.Sprintf("namespace %q is ready", ns.Name))
		return nil
	}
	msg := fmt.Sprintf("namespace %q was deleted outside the hub, and created again at %s; the API keys (and their "+
		"Secrets), spending caps and notification channels that were in it were deleted with it and are not "+
		"restored: re-apply them", ns.Name, ns.CreationTimestamp.UTC().Format(time.RFC3339))
	r.Recorder.Eventf(project, ns, corev1.EventTypeWarning, hubv1.NamespaceRecreatedReason, "CreateNamespace", msg)
	s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionTrue, hubv1.NamespaceRecreatedReason, msg)
	return nil
}

// reconcileDelete deletes the Project's namespace and releases the Project
// once the namespace is gone (the namespace controller deletes its content).
func (r *ProjectReconciler) reconcileDelete(ctx context.Context, s *projectScope) error {
	project := s.project
	if r.Secrets != nil {
		r.Secrets.Forget(project.Name)
	}
	s.project.Status.Phase = hubv1.ProjectTerminating
	s.setCondition(hubv1.ReadyCondition, metav1.ConditionFalse, hubv1.DeletingReason,
		fmt.Sprintf("deleting namespace %q and everything in it", project.Name))
	if !controllerutil.ContainsFinalizer(project, hubv1.ProjectFinalizer) {
		return nil
	}

	ns, err := r.getNamespace(ctx, project.Name)
	if err != nil {
		return err
	}
	if ns != nil && metav1.IsControlledBy(ns, project) {
		if ns.DeletionTimestamp.IsZero() {
			err := r.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting namespace %q: %w", ns.Name, err)
			}
			r.Recorder.Eventf(project, ns, corev1.EventTypeNormal, hubv1.DeletingReason, "DeleteNamespace",
				"Deleting namespace %s", ns.Name)
		}
		// The namespace watch brings us back when it is gone.
		return nil
	}

	before := project.DeepCopy()
	controllerutil.RemoveFinalizer(project, hubv1.ProjectFinalizer)
	if err := r.Patch(ctx, project, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// readCapReached finds whether a Hard spending cap stops the project: its
// own CapReached condition, or the organization's.
func (r *ProjectReconciler) readCapReached(ctx context.Context, s *projectScope) error {
	if c := meta.FindStatusCondition(s.project.Status.Conditions, hubv1.CapReachedCondition); c != nil && c.Status == metav1.ConditionTrue {
		s.capReached = c
		return nil
	}
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		return client.IgnoreNotFound(err)
	}
	if c := meta.FindStatusCondition(org.Status.Conditions, hubv1.CapReachedCondition); c != nil && c.Status == metav1.ConditionTrue {
		s.capReached = c
	}
	return nil
}

// getNamespace returns the named namespace, or nil when it does not exist.
// The cache holds only project namespaces, so a miss is confirmed against the
// API server: a foreign namespace, or one created moments ago, is not lost.
func (r *ProjectReconciler) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	err := r.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, client.ObjectKey{Name: name}, ns)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading namespace %q: %w", name, err)
	}
	return ns, nil
}

// patchStatus writes the status computed in this reconcile, if it changed:
// every field but usage (the usage server's) and the CapReached condition
// (the cap evaluation's), by server-side apply as the Project controller,
// with the resource version read as a precondition.
func (r *ProjectReconciler) patchStatus(ctx context.Context, s *projectScope) error {
	s.project.Status.ObservedGeneration = s.project.Generation
	if equality.Semantic.DeepEqual(s.statusBefore, s.project.Status) {
		return nil
	}
	fields, err := statusapply.Fields(s.project.Status, "usage")
	if err != nil {
		return err
	}
	statusapply.DropConditions(fields, hubv1.CapReachedCondition)
	if err := statusapply.ApplyIfUnchanged(ctx, r.Client, s.project, fields, statusapply.OwnerProjectController); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// SetupWithManager registers the controller. Namespaces are watched through
// their project label, so that the deletion of a namespace (ours, or one left
// by an earlier project of the same name) wakes the right Project. The
// Organization is watched for an organization-wide cap that stops, or stops
// stopping, every project.
func (r *ProjectReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubv1.Project{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(projectForNamespace)).
		Watches(&hubv1.Organization{}, handler.EnqueueRequestsFromMapFunc(r.allProjects),
			builder.WithPredicates(capReachedChanged())).
		Named("project").
		Complete(quietConflicts{r})
}

func (r *ProjectReconciler) allProjects(ctx context.Context, _ client.Object) []reconcile.Request {
	projects := &hubv1.ProjectList{}
	if err := r.List(ctx, projects); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(projects.Items))
	for i := range projects.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: projects.Items[i].Name}})
	}
	return reqs
}

// capReachedChanged passes changes of an object's CapReached condition.
func capReachedChanged() predicate.Predicate {
	reached := func(obj client.Object) bool {
		org, ok := obj.(*hubv1.Organization)
		return ok && meta.IsStatusConditionTrue(org.Status.Conditions, hubv1.CapReachedCondition)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return reached(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return reached(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return reached(e.ObjectOld) != reached(e.ObjectNew) },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

func projectForNamespace(_ context.Context, obj client.Object) []reconcile.Request {
	name, ok := obj.GetLabels()[hubv1.ProjectLabel]
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
}
