package controllers

import (
	"context"
	"errors"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
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
type OrganizationReconciler struct {
	client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=organizations/status,verbs=get;patch

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

// SetupWithManager registers the controller. Any Project change wakes the
// Organization, whose counts depend on Projects.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubv1.Organization{}).
		Watches(&hubv1.Project{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: hubv1.OrganizationName}}}
		})).
		Named("organization").
		Complete(r)
}
