package reconcilers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/usage"
)

// KeyOwnerReconciler records in the store who owns each key ID the hub
// issues, for usage by owner (group spending caps). Every key ID is recorded
// while it is a key's current or previous one, so usage of keys rotated or
// deleted later still counts for their owner. It runs on the elected replica.
type KeyOwnerReconciler struct {
	client.Client
	Store usage.Store
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys,verbs=get;list;watch

// Reconcile records the owner of a key's current and previous key IDs.
func (r *KeyOwnerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := &hubv1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var owners []usage.KeyOwner
	if id := key.Status.KeyID; id != "" {
		owners = append(owners, usage.KeyOwner{KeyID: id, Project: key.Namespace, Owner: key.Spec.Owner})
	}
	if p := key.Status.PreviousKey; p != nil && p.KeyID != "" {
		owners = append(owners, usage.KeyOwner{KeyID: p.KeyID, Project: key.Namespace, Owner: key.Spec.Owner})
	}
	return ctrl.Result{}, r.Store.RecordKeyOwners(ctx, owners)
}

// SetupWithManager registers the reconciler.
func (r *KeyOwnerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	changed := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*hubv1.APIKey), e.ObjectNew.(*hubv1.APIKey)
		return o.Status.KeyID != n.Status.KeyID || o.Spec.Owner != n.Spec.Owner
	}}
	return ctrl.NewControllerManagedBy(mgr).For(&hubv1.APIKey{}, builder.WithPredicates(changed)).Named("key-owners").Complete(r)
}
