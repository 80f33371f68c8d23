package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// OrganizationReconciler keeps the Organization's status current: the billing
// cycle that contains the present moment and counts of what it holds.
//
// It sets these conditions on the Organization:
//   - Ready: True when the status is current; False with InvalidTimeZone when
//     the billing time zone is unknown to the manager.
//   - PricingIncomplete: True with NoDefaultPrice when a service has no
//     default price, so unlisted models of it cannot be priced.
//   - Stalled: True with InvalidTimeZone, which only a spec change resolves.
//   - BeyondLifetimePolicy: True with LifetimeBeyondPolicy while API keys
//     outlive spec.security.apiKeys.maxLifetimeDays (issued before it was
//     set or lowered), naming a few.
type OrganizationReconciler struct {
	client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations/status,verbs=get;patch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys,verbs=get;list;watch

// Reconcile recomputes the Organization's status and comes back when the
// current billing cycle ends.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	org := &hubv1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	statusBefore := *org.Status.DeepCopy()
	defer func() {
		retErr = errors.Join(retErr, r.patchStatus(ctx, org, statusBefore))
	}()

	if err := r.reconcileCounts(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	reconcilePricing(org)
	if err := r.reconcileKeyPolicy(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileCycle(org, statusBefore), nil
}

// reconcilePricing reports, with PricingIncomplete, the services whose
// unlisted models cannot be priced because the service has no default price:
// their usage is reported as unpriced, never as free.
func reconcilePricing(org *hubv1.Organization) {
	conds := &org.Status.Conditions
	prices, err := pricing.New(org.Spec.Pricing)
	if err != nil {
		setCondition(conds, org.Generation, hubv1.PricingIncompleteCondition, metav1.ConditionTrue, hubv1.InvalidPriceReason, err.Error())
		return
	}
	missing := prices.Incomplete()
	if len(missing) == 0 {
		meta.RemoveStatusCondition(conds, hubv1.PricingIncompleteCondition)
		return
	}
	names := make([]string, len(missing))
	for i, m := range missing {
		names[i] = string(m)
	}
	setCondition(conds, org.Generation, hubv1.PricingIncompleteCondition, metav1.ConditionTrue, hubv1.NoDefaultPriceReason,
		fmt.Sprintf("no default price for %s: usage of models without a price of their own is reported as unpriced; "+
			"set a default under spec.pricing", strings.Join(names, ", ")))
}

// reconcileKeyPolicy reports, with BeyondLifetimePolicy, the API keys that
// outlive the lifetime policy (each says so on its own status).
func (r *OrganizationReconciler) reconcileKeyPolicy(ctx context.Context, org *hubv1.Organization) error {
	keys := &hubv1.APIKeyList{}
	if err := r.List(ctx, keys, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing API keys: %w", err)
	}
	var beyond []string
	for i := range keys.Items {
		if meta.IsStatusConditionTrue(keys.Items[i].Status.Conditions, hubv1.BeyondLifetimePolicyCondition) {
			beyond = append(beyond, keys.Items[i].Namespace+"/"+keys.Items[i].Name)
		}
	}
	conds := &org.Status.Conditions
	if len(beyond) == 0 {
		meta.RemoveStatusCondition(conds, hubv1.BeyondLifetimePolicyCondition)
		return nil
	}
	slices.Sort(beyond)
	named := strings.Join(beyond[:min(len(beyond), 5)], ", ")
	if len(beyond) > 5 {
		named += fmt.Sprintf(" and %d more", len(beyond)-5)
	}
	setCondition(conds, org.Generation, hubv1.BeyondLifetimePolicyCondition, metav1.ConditionTrue, hubv1.LifetimeBeyondPolicyReason,
		fmt.Sprintf("%d API keys outlive the maximum lifetime (spec.security.apiKeys.maxLifetimeDays), issued before it: %s; "+
			"rotate them (spec.rotation.trigger) to issue keys within it", len(beyond), named))
	return nil
}

// reconcileCycle records the current billing cycle and asks to be called again
// at its end, so the status rolls over on time.
func (r *OrganizationReconciler) reconcileCycle(org *hubv1.Organization, before hubv1.OrganizationStatus) ctrl.Result {
	status := &org.Status
	loc, err := time.LoadLocation(org.Spec.Billing.TimeZone)
	if err != nil {
		msg := fmt.Sprintf("spec.billing.timeZone %q is not a known IANA time zone", org.Spec.Billing.TimeZone)
		setCondition(&status.Conditions, org.Generation, hubv1.ReadyCondition, metav1.ConditionFalse, hubv1.InvalidTimeZoneReason, msg)
		setCondition(&status.Conditions, org.Generation, hubv1.StalledCondition, metav1.ConditionTrue, hubv1.InvalidTimeZoneReason, msg)
		if ready := meta.FindStatusCondition(before.Conditions, hubv1.ReadyCondition); ready == nil || ready.Reason != hubv1.InvalidTimeZoneReason {
			r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, hubv1.InvalidTimeZoneReason, "ComputeBillingCycle", msg)
		}
		return ctrl.Result{}
	}
	meta.RemoveStatusCondition(&status.Conditions, hubv1.StalledCondition)

	now := r.Clock.Now()
	cycle := billing.CycleAt(now, int(org.Spec.Billing.CycleStartDay), loc)
	status.CurrentCycle = &hubv1.BillingCycle{Start: metav1.NewTime(cycle.Start), End: metav1.NewTime(cycle.End)}
	setCondition(&status.Conditions, org.Generation, hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason,
		fmt.Sprintf("billing cycle %s to %s", cycle.Start.Format(time.DateOnly), cycle.End.Format(time.DateOnly)))

	// Jitter a little past the boundary so that many watchers of the cycle do
	// not wake at the same instant; never early, or the old cycle is recomputed.
	return ctrl.Result{RequeueAfter: wait.Jitter(cycle.End.Sub(now), 0.001) + time.Second}
}

// reconcileCounts counts the organization's projects.
func (r *OrganizationReconciler) reconcileCounts(ctx context.Context, org *hubv1.Organization) error {
	projects := &hubv1.ProjectList{}
	if err := r.List(ctx, projects); err != nil {
		return fmt.Errorf("listing projects: %w", err)
	}
	counts := hubv1.OrganizationCounts{Projects: int32(len(projects.Items))}
	for i := range projects.Items {
		if projects.Items[i].Spec.Archived {
			counts.ArchivedProjects++
		}
	}
	org.Status.Counts = counts
	return nil
}

func (r *OrganizationReconciler) patchStatus(ctx context.Context, org *hubv1.Organization, before hubv1.OrganizationStatus) error {
	org.Status.ObservedGeneration = org.Generation
	if equality.Semantic.DeepEqual(before, org.Status) {
		return nil
	}
	// Every field but the CapReached condition (the cap evaluation's).
	fields, err := statusapply.Fields(org.Status)
	if err != nil {
		return err
	}
	statusapply.DropConditions(fields, hubv1.CapReachedCondition)
	if err := statusapply.ApplyIfUnchanged(ctx, r.Client, org, fields, statusapply.OwnerOrganizationController); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// toOrganization maps any object to the Organization.
var toOrganization = handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: hubv1.OrganizationName}}}
})

// lifetimePolicyStandingChanged passes the APIKey events that change what
// the Organization reports: BeyondLifetimePolicy set or cleared, or a key
// with it deleted.
func lifetimePolicyStandingChanged() predicate.Predicate {
	beyond := func(o client.Object) bool {
		k, ok := o.(*hubv1.APIKey)
		return ok && meta.IsStatusConditionTrue(k.Status.Conditions, hubv1.BeyondLifetimePolicyCondition)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return beyond(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return beyond(e.ObjectOld) != beyond(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return beyond(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// SetupWithManager registers the controller. Any Project change wakes the
// Organization, whose counts depend on Projects, and so does a key whose
// standing against the lifetime policy changes.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubv1.Organization{}).
		Watches(&hubv1.Project{}, toOrganization).
		// Only keys whose standing against the lifetime policy changes:
		// issuing thousands of keys wakes the Organization for none.
		Watches(&hubv1.APIKey{}, toOrganization, builder.WithPredicates(lifetimePolicyStandingChanged())).
		Named("organization").
		Complete(quietConflicts{r})
}
