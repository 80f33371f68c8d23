package reconcilers

import (
	"context"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
)

// PriceReconciler keeps the server's price list in line with the
// Organization. It runs on every replica: each prices what it ingests.
type PriceReconciler struct {
	client.Client
	// Sink takes the price list.
	Sink PriceSink
}

// PriceSink takes the organization's price list and currency whenever they
// change. A nil list means there is no Organization, so nothing is priced.
type PriceSink interface {
	SetPrices(list *pricing.PriceList, currency string)
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations,verbs=get;list;watch

// Reconcile reads the Organization's price list into the sink. The request
// is ignored: there is one Organization.
func (r *PriceReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Sink.SetPrices(nil, "")
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	list, err := pricing.New(org.Spec.Pricing)
	if err != nil {
		// The Organization reports it; the last good list stays.
		ctrl.LoggerFrom(ctx).Error(err, "Reading the price list")
		return reconcile.Result{}, nil
	}
	r.Sink.SetPrices(list, org.Spec.Billing.Currency)
	return reconcile.Result{}, nil
}

// SetupWithManager registers the reconciler.
func (r *PriceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubv1.Organization{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("server-prices").
		// Every replica needs the prices, not only the leader.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}
