package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// AccessReconciler keeps the hub's RBAC in line with Members, Groups, the
// projects' access lists and the Organization's username prefix: the four
// roles' ClusterRoles and every binding that grants them (see package
// access). It works on the whole team at once, under one request: bindings
// aggregate many members, and a team is small enough to recompute.
type AccessReconciler struct {
	client.Client
	// APIReader reads objects the label-filtered cache cannot see (an
	// object of a role's name whose label was removed by hand).
	APIReader client.Reader
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=members;groups,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=members/status;groups/status,verbs=get;patch
// The manager may create RBAC objects, but change, delete, bind and escalate
// only the four roles, the provisioner's (access.Provisioner) and their
// bindings: it can grant nothing else, such as cluster-admin. (create cannot
// be limited by name in RBAC.)
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings;rolebindings,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=update;patch;delete;escalate;bind,resourceNames=platform-hub:owner;platform-hub:admin;platform-hub:developer;platform-hub:viewer;platform-hub:provisioner
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings;rolebindings,verbs=update;patch;delete,resourceNames=platform-hub:owner;platform-hub:admin;platform-hub:developer;platform-hub:viewer;platform-hub:provisioner

// apiKeyOwnerIndex indexes APIKeys by spec.owner.
const apiKeyOwnerIndex = "spec.owner"

// teamRequest is the one request the reconciler works under.
var teamRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "team"}}

// Reconcile makes RBAC match the team.
func (r *AccessReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	team, err := r.team(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.applyClusterRoles(ctx); err != nil {
		return ctrl.Result{}, err
	}
	desired := team.Desired()
	if err := r.applyClusterBindings(ctx, desired.Cluster); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.applyRoleBindings(ctx, desired.Namespaced); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.writeStatuses(ctx, team, desired)
}

func (r *AccessReconciler) team(ctx context.Context) (*access.Team, error) {
	members, groups, projects := &hubv1.MemberList{}, &hubv1.GroupList{}, &hubv1.ProjectList{}
	for _, l := range []client.ObjectList{members, groups, projects} {
		if err := r.List(ctx, l); err != nil {
			return nil, err
		}
	}
	team := &access.Team{Members: members.Items, Groups: groups.Items, Projects: projects.Items}
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	team.UsernamePrefix = org.Spec.Security.UsernamePrefix
	return team, nil
}

func (r *AccessReconciler) applyClusterRoles(ctx context.Context) error {
	for _, want := range access.ClusterRoles() {
		have := &rbacv1.ClusterRole{}
		err := r.Get(ctx, client.ObjectKeyFromObject(&want), have)
		switch {
		case apierrors.IsNotFound(err):
			err := r.Create(ctx, &want, client.FieldOwner(fieldOwner))
			if apierrors.IsAlreadyExists(err) {
				err = r.takeOver(ctx, &rbacv1.ClusterRole{}, &want, func(have client.Object) {
					have.(*rbacv1.ClusterRole).Rules = want.Rules
				})
			}
			if err != nil {
				return fmt.Errorf("creating ClusterRole %s: %w", want.Name, err)
			}
		case err != nil:
			return err
		case !equality.Semantic.DeepEqual(have.Rules, want.Rules) || !equality.Semantic.DeepEqual(have.Labels, want.Labels):
			have.Rules, have.Labels = want.Rules, want.Labels
			if err := r.Update(ctx, have, client.FieldOwner(fieldOwner)); err != nil {
				return fmt.Errorf("updating ClusterRole %s: %w", want.Name, err)
			}
		}
	}
	return nil
}

func (r *AccessReconciler) applyClusterBindings(ctx context.Context, desired []rbacv1.ClusterRoleBinding) error {
	existing := &rbacv1.ClusterRoleBindingList{}
	if err := r.List(ctx, existing, client.HasLabels{hubv1.AccessLabel}); err != nil {
		return err
	}
	want := map[string]*rbacv1.ClusterRoleBinding{}
	for i := range desired {
		want[desired[i].Name] = &desired[i]
	}
	for i := range existing.Items {
		have := &existing.Items[i]
		if w, ok := want[have.Name]; ok && w.RoleRef == have.RoleRef {
			if !equality.Semantic.DeepEqual(have.Subjects, w.Subjects) {
				have.Subjects = w.Subjects
				if err := r.Update(ctx, have, client.FieldOwner(fieldOwner)); err != nil {
					return fmt.Errorf("updating ClusterRoleBinding %s: %w", have.Name, err)
				}
			}
			delete(want, have.Name)
			continue
		}
		// No longer wanted (or its role changed, which a binding cannot).
		if err := r.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting ClusterRoleBinding %s: %w", have.Name, err)
		}
	}
	for _, w := range want {
		err := r.Create(ctx, w, client.FieldOwner(fieldOwner))
		if apierrors.IsAlreadyExists(err) {
			err = r.takeOver(ctx, &rbacv1.ClusterRoleBinding{}, w, func(have client.Object) {
				have.(*rbacv1.ClusterRoleBinding).Subjects = w.Subjects
			})
		}
		if err != nil {
			return fmt.Errorf("creating ClusterRoleBinding %s: %w", w.Name, err)
		}
	}
	return nil
}

// takeOver makes an object of a generated name that the cache does not see
// (its label was removed) the hub's again: label and content restored. An
// object whose role reference differs is replaced, since it cannot change.
func (r *AccessReconciler) takeOver(ctx context.Context, have, want client.Object, restore func(client.Object)) error {
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have); err != nil {
		return err
	}
	if ref := roleRefOf(have); ref != nil && *ref != *roleRefOf(want) {
		if err := r.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			return err
		}
		want.SetResourceVersion("")
		return r.Create(ctx, want, client.FieldOwner(fieldOwner))
	}
	labels := have.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range want.GetLabels() {
		labels[k] = v
	}
	have.SetLabels(labels)
	restore(have)
	return r.Update(ctx, have, client.FieldOwner(fieldOwner))
}

func roleRefOf(obj client.Object) *rbacv1.RoleRef {
	switch o := obj.(type) {
	case *rbacv1.ClusterRoleBinding:
		return &o.RoleRef
	case *rbacv1.RoleBinding:
		return &o.RoleRef
	}
	return nil
}

func (r *AccessReconciler) applyRoleBindings(ctx context.Context, desired []rbacv1.RoleBinding) error {
	existing := &rbacv1.RoleBindingList{}
	if err := r.List(ctx, existing, client.HasLabels{hubv1.AccessLabel}); err != nil {
		return err
	}
	want := map[types.NamespacedName]*rbacv1.RoleBinding{}
	for i := range desired {
		want[client.ObjectKeyFromObject(&desired[i])] = &desired[i]
	}
	for i := range existing.Items {
		have := &existing.Items[i]
		key := client.ObjectKeyFromObject(have)
		if w, ok := want[key]; ok && w.RoleRef == have.RoleRef {
			if !equality.Semantic.DeepEqual(have.Subjects, w.Subjects) {
				have.Subjects = w.Subjects
				if err := r.Update(ctx, have, client.FieldOwner(fieldOwner)); err != nil {
					return fmt.Errorf("updating RoleBinding %s: %w", key, err)
				}
			}
			delete(want, key)
			continue
		}
		if err := r.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting RoleBinding %s: %w", key, err)
		}
	}
	// A namespace that is going (or gone) takes no binding; the others are
	// still written, and its project leaves the team once deleted.
	var errs []error
	for key, w := range want {
		err := r.Create(ctx, w, client.FieldOwner(fieldOwner))
		if apierrors.IsAlreadyExists(err) {
			err = r.takeOver(ctx, &rbacv1.RoleBinding{}, w, func(have client.Object) {
				have.(*rbacv1.RoleBinding).Subjects = w.Subjects
			})
		}
		if err != nil && !apierrors.IsNotFound(err) && !isNamespaceTerminating(err) {
			errs = append(errs, fmt.Errorf("creating RoleBinding %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// isNamespaceTerminating tells whether a create was refused because its
// namespace is being deleted.
func isNamespaceTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// writeStatuses reports each member's username, phase and projects, and
// each group's member count.
func (r *AccessReconciler) writeStatuses(ctx context.Context, team *access.Team, desired access.Bindings) error {
	inGroup := map[string]int32{}
	for i := range team.Members {
		m := &team.Members[i]
		for _, g := range m.Spec.Groups {
			inGroup[g]++
		}
		keys := &hubv1.APIKeyList{}
		if err := r.List(ctx, keys, client.MatchingFields{apiKeyOwnerIndex: hubv1.EmailKey(m.Spec.Email)}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		before := m.DeepCopy()
		s := &m.Status
		s.Username, s.Projects, s.KeysOwned, s.ObservedGeneration = team.Username(m), desired.ProjectRoles[m.Name], int32(len(keys.Items)), m.Generation
		switch {
		case m.Spec.Disabled:
			s.Phase = hubv1.MemberDisabled
		case s.AcceptedAt != nil:
			s.Phase = hubv1.MemberActive
		default:
			s.Phase = hubv1.MemberInvited
		}
		msg := fmt.Sprintf("RBAC grants %s the %s role as %s", m.Spec.Email, m.Spec.Role, s.Username)
		if m.Spec.Disabled {
			msg = "disabled: RBAC grants the member nothing"
		}
		setCondition(&s.Conditions, m.Generation, hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason, msg)
		if err := r.applyMemberStatus(ctx, before, m); err != nil {
			return err
		}
	}
	for i := range team.Groups {
		g := &team.Groups[i]
		before := g.DeepCopy()
		g.Status.Members, g.Status.ObservedGeneration = inGroup[g.Name], g.Generation
		setCondition(&g.Status.Conditions, g.Generation, hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason,
			fmt.Sprintf("%d members get the group's project access", g.Status.Members))
		if err := r.patchStatus(ctx, before, g); err != nil {
			return err
		}
	}
	return nil
}

// memberStatusFields are the Member status fields the access controller
// owns (JSON names); the Ready condition is its too. The others are the
// invitation sender's, the acceptance handler's and the activity
// controller's (docs/api/member.md lists them).
var memberStatusFields = []string{"phase", "username", "projects", "keysOwned", "observedGeneration", "conditions"}

// applyMemberStatus writes the member's status fields the controller owns,
// if they changed, by server-side apply locked on the version read: phase
// follows acceptedAt, which another writer sets.
func (r *AccessReconciler) applyMemberStatus(ctx context.Context, before, m *hubv1.Member) error {
	if equality.Semantic.DeepEqual(before.Status, m.Status) {
		return nil
	}
	owned, err := statusapply.Select(m.Status, memberStatusFields...)
	if err != nil {
		return err
	}
	statusapply.KeepConditions(owned, hubv1.ReadyCondition)
	return client.IgnoreNotFound(statusapply.ApplyIfUnchanged(ctx, r.Client, m, owned, statusapply.OwnerAccessController))
}

// patchStatus writes a Group's status, which only this controller writes.
func (r *AccessReconciler) patchStatus(ctx context.Context, before, after client.Object) error {
	if equality.Semantic.DeepEqual(before, after) {
		return nil
	}
	err := r.Status().Patch(ctx, after, client.MergeFrom(before), client.FieldOwner(statusapply.OwnerAccessController))
	return client.IgnoreNotFound(err)
}

// SetupWithManager registers the reconciler: any change to the team, the
// projects, the Organization or the generated RBAC objects recomputes it.
func (r *AccessReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Keys by owner (compared without case), so that a member's key count
	// is a lookup, not a scan of every key on every reconcile.
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &hubv1.APIKey{}, apiKeyOwnerIndex, func(obj client.Object) []string {
		return []string{hubv1.EmailKey(obj.(*hubv1.APIKey).Spec.Owner)}
	}); err != nil {
		return err
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{teamRequest}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("access").
		Watches(&hubv1.Member{}, all).
		Watches(&hubv1.Group{}, all).
		Watches(&hubv1.Project{}, all).
		Watches(&hubv1.Organization{}, all).
		// Keys, for each member's count of keys owned.
		Watches(&hubv1.APIKey{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&rbacv1.ClusterRole{}, all).
		Watches(&rbacv1.ClusterRoleBinding{}, all).
		Watches(&rbacv1.RoleBinding{}, all).
		Complete(quietConflicts{r})
}
