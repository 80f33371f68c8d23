package reconcilers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/statusapply"
	"github.com/minimax/platform-hub/internal/usage"
)

// SpendingCapReconciler evaluates SpendingCaps next to the usage store: it
// turns a cap's usage in the current billing cycle into spend, writes the
// cap's status, and at 100% of a Hard cap marks the project (or the
// organization) CapReached, which the gateway enforces. It also keeps the
// running totals of Hard caps that the server answers gateways with
// (spendingcap_totals.go).
//
// Evaluation is driven by ingest: a stored batch that touches a project
// queues that project's caps and the organization's. It also runs when a cap
// or the Organization changes (a raised limit, a new cycle), and at least
// every minute.
//
// It sets these conditions on a SpendingCap:
//   - Ready: True when the cap was evaluated against the store.
//   - CapReached: True while a Hard cap is exhausted and its traffic is
//     refused; absent otherwise.
//
// and CapReached on the Project (a project cap) or the Organization (a cap
// in the hub's namespace) while any of their Hard caps is exhausted.
type SpendingCapReconciler struct {
	client.Client
	Store usage.Store
	// Prices tells the organization's price list.
	Prices PriceSource
	Clock  clock.PassiveClock
	// HubNamespace holds the organization's caps.
	HubNamespace string
	Log          logr.Logger
	// StatusInterval bounds how often a cap's figures are written when only
	// they change (default 10s); a change of state is written at once.
	StatusInterval time.Duration
	// Resync is the longest a cap goes without evaluation (default 1m); at
	// the latest then, a new cycle lifts a stop.
	Resync time.Duration
	// Outbox records threshold alerts; nil fires none.
	Outbox *notify.Outbox
	// DashboardURL is the dashboard's base URL, for the links in alerts.
	DashboardURL string

	ingested chan event.GenericEvent
	mu       sync.Mutex
	written  map[types.UID]time.Time
	totals   totals
}

// PriceSource tells the organization's current price list (never nil).
// The same list is returned until the prices change: running totals are
// summed again when it is another.
type PriceSource interface {
	PriceList() *pricing.PriceList
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=spendingcaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=spendingcaps/status;organizations/status,verbs=get;patch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects;members,verbs=get;list;watch

// Ingested queues the caps that cover the given projects. It never blocks
// ingest: the queue collapses repeated requests for the same cap.
func (r *SpendingCapReconciler) Ingested(projects []string) {
	caps := &hubv1.SpendingCapList{}
	if err := r.List(context.Background(), caps); err != nil {
		r.Log.Error(err, "Listing spending caps after ingest")
		return
	}
	touched := map[string]bool{}
	for _, p := range projects {
		touched[p] = true
	}
	for i := range caps.Items {
		c := &caps.Items[i]
		if c.Namespace == r.HubNamespace || touched[c.Namespace] {
			select {
			case r.ingested <- event.GenericEvent{Object: c}:
			default: // the queue is full: the resync comes soon
			}
		}
	}
}

// Reconcile evaluates one cap.
func (r *SpendingCapReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	capObj := &hubv1.SpendingCap{}
	if err := r.Get(ctx, req.NamespacedName, capObj); apierrors.IsNotFound(err) {
		// A deleted cap stops nothing any more: the mark of what it
		// covered is recomputed from the caps that remain.
		return ctrl.Result{}, r.markCovered(ctx, req.Namespace, nil, org)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	cycle := cycleOf(org, now)
	scope, project := r.scopeOf(capObj)
	e, err := r.evaluate(ctx, capObj, project, cycle, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := e.status(capObj, scope, project, cycle, now)
	// Alerts come after the stop: a store or channel failure while
	// recording them must not keep the cap from being marked. Their error
	// requeues the cap once status and mark are written.
	var alertErr error
	if r.Outbox != nil {
		fired, err := r.fireThresholds(ctx, capObj, &status, cycle, now, org)
		switch {
		case err == nil:
			status.AlertsFired = fired
		case capObj.Status.CycleStart != nil && capObj.Status.CycleStart.Equal(&metav1.Time{Time: cycle.start}):
			status.AlertsFired = capObj.Status.AlertsFired
		}
		if err != nil {
			alertErr = fmt.Errorf("recording the alerts of cap %s/%s: %w", capObj.Namespace, capObj.Name, err)
		}
	}
	pending, err := r.writeStatus(ctx, capObj, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.markCovered(ctx, capObj.Namespace, capObj, org); err != nil {
		return ctrl.Result{}, err
	}
	if alertErr != nil {
		return ctrl.Result{}, alertErr
	}
	resync := r.Resync
	if resync == 0 {
		resync = time.Minute
	}
	next := min(resync, max(cycle.end.Sub(now), time.Second))
	if pending > 0 {
		next = min(next, pending)
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// scopeOf is what a cap covers, and its project for a project cap.
func (r *SpendingCapReconciler) scopeOf(capObj *hubv1.SpendingCap) (hubv1.CapScope, string) {
	switch {
	case capObj.Namespace != r.HubNamespace:
		return hubv1.CapScopeProject, capObj.Namespace
	case capObj.Spec.Group != "":
		return hubv1.CapScopeGroup, ""
	}
	return hubv1.CapScopeOrganization, ""
}

// writeStatus writes the cap's status when its state changed, or when only
// its figures did and the last write is StatusInterval old. Figures held
// back are pending: it returns how long until they may be written, so the
// caller evaluates the cap again then, and the status is never more than an
// interval behind (as the project's usage, written at the same interval).
// The interval bounds writes to the API server, so it is measured in real
// time, not by the evaluation's clock.
func (r *SpendingCapReconciler) writeStatus(ctx context.Context, capObj *hubv1.SpendingCap, status hubv1.SpendingCapStatus,
) (pending time.Duration, err error) {
	now := time.Now()
	old := capObj.Status
	if equality.Semantic.DeepEqual(withoutFigures(old), withoutFigures(status)) {
		if equality.Semantic.DeepEqual(withoutTime(old), withoutTime(status)) {
			return 0, nil
		}
		r.mu.Lock()
		last := r.written[capObj.UID]
		r.mu.Unlock()
		if wait := r.statusInterval() - now.Sub(last); wait > 0 {
			return wait, nil
		}
	}
	// Applied whole, so that zero figures (percent: 0) are stored and
	// printed, which a merge patch of an unchanged zero would leave out.
	fields, err := statusapply.Fields(status)
	if err != nil {
		return 0, err
	}
	if err := statusapply.Apply(ctx, r.Client, capObj, fields, statusapply.OwnerCaps); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	r.mu.Lock()
	r.written[capObj.UID] = now
	r.mu.Unlock()
	return 0, nil
}

func (r *SpendingCapReconciler) statusInterval() time.Duration {
	if r.StatusInterval == 0 {
		return 10 * time.Second
	}
	return r.StatusInterval
}

// withoutFigures keeps what a change of must be written at once.
func withoutFigures(s hubv1.SpendingCapStatus) hubv1.SpendingCapStatus {
	s.Spent, s.Tokens, s.Percent, s.BurnRate, s.ProjectedExhaustion, s.EvaluatedAt = "", 0, 0, nil, nil, nil
	s.Conditions = append([]metav1.Condition(nil), s.Conditions...) // a copy: the caller's stay as they are
	for i := range s.Conditions {
		s.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return s
}

// withoutTime drops the evaluation time, so unchanged figures are not
// written again.
func withoutTime(s hubv1.SpendingCapStatus) hubv1.SpendingCapStatus {
	s.EvaluatedAt = nil
	return s
}

// markCovered sets or clears CapReached on what the caps of a namespace
// cover: the project, or the organization. It is True while any Hard cap of
// theirs is exhausted, so one cap that resumes does not lift another's stop.
// evaluated, when set, is a cap of the namespace with its status just
// computed.
func (r *SpendingCapReconciler) markCovered(ctx context.Context, namespace string, evaluated *hubv1.SpendingCap, org *hubv1.Organization) error {
	caps := &hubv1.SpendingCapList{}
	if err := r.List(ctx, caps, client.InNamespace(namespace)); err != nil {
		return err
	}
	var reached []string
	for i := range caps.Items {
		c := &caps.Items[i]
		if evaluated != nil && c.UID == evaluated.UID {
			c = evaluated
		}
		if c.Spec.Group != "" {
			continue // a group cap stops its members' keys, marked on the cap only
		}
		if c.DeletionTimestamp.IsZero() && meta.IsStatusConditionTrue(c.Status.Conditions, hubv1.CapReachedCondition) {
			reached = append(reached, c.Name)
		}
	}
	if namespace == r.HubNamespace {
		if org.Name == "" {
			return nil
		}
		return r.setCapReached(ctx, org, &org.Status.Conditions, reached, "the organization")
	}
	project := &hubv1.Project{}
	if err := r.Get(ctx, client.ObjectKey{Name: namespace}, project); err != nil {
		return client.IgnoreNotFound(err)
	}
	return r.setCapReached(ctx, project, &project.Status.Conditions, reached, fmt.Sprintf("project %q", project.Name))
}

// setCapReached sets or clears the CapReached condition of obj, whose
// conditions are at conds: the one status field the cap evaluation owns on
// Projects and the Organization, written by server-side apply, so that the
// controllers' conditions are never touched.
func (r *SpendingCapReconciler) setCapReached(ctx context.Context, obj client.Object, conds *[]metav1.Condition, reached []string, what string) error {
	if len(reached) == 0 {
		if !meta.RemoveStatusCondition(conds, hubv1.CapReachedCondition) {
			return nil
		}
	} else if !meta.SetStatusCondition(conds, metav1.Condition{
		Type: hubv1.CapReachedCondition, Status: metav1.ConditionTrue, Reason: hubv1.CapReachedReason,
		ObservedGeneration: obj.GetGeneration(),
		Message: fmt.Sprintf("%s reached its Hard spending cap %v for this billing cycle: API calls are refused "+
			"until the cap is raised or the next cycle starts", what, reached),
	}) {
		return nil
	}
	owned := []any{}
	if c := meta.FindStatusCondition(*conds, hubv1.CapReachedCondition); c != nil {
		fields, err := statusapply.Fields(c)
		if err != nil {
			return err
		}
		owned = append(owned, fields)
	}
	err := statusapply.Apply(ctx, r.Client, obj, map[string]any{"conditions": owned}, statusapply.OwnerCaps)
	return client.IgnoreNotFound(err)
}

// SetupWithManager registers the controller. Every replica of the server
// evaluates the caps its ingest touches; the results are the same whoever
// writes them.
func (r *SpendingCapReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.ingested = make(chan event.GenericEvent, 1024)
	r.written = map[types.UID]time.Time{}
	allCaps := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		caps := &hubv1.SpendingCapList{}
		if err := r.List(ctx, caps); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(caps.Items))
		for i := range caps.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&caps.Items[i])})
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("spendingcap").
		For(&hubv1.SpendingCap{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&hubv1.Organization{}, allCaps, builder.WithPredicates(orgCycleOrPricesChanged())).
		WatchesRawSource(source.Channel(r.ingested, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// orgCycleOrPricesChanged passes Organization updates that change the
// billing cycle or the price list.
func orgCycleOrPricesChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*hubv1.Organization), e.ObjectNew.(*hubv1.Organization)
			return !equality.Semantic.DeepEqual(o.Status.CurrentCycle, n.Status.CurrentCycle) ||
				!equality.Semantic.DeepEqual(o.Spec.Billing, n.Spec.Billing) ||
				!equality.Semantic.DeepEqual(o.Spec.Pricing, n.Spec.Pricing)
		},
	}
}

// cycle is a billing cycle.
type cycle struct{ start, end time.Time }

// cycleOf is the organization's billing cycle at now (the calendar month in
// UTC while there is none).
func cycleOf(org *hubv1.Organization, now time.Time) cycle {
	c := billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now)
	return cycle{start: c.Start, end: c.End}
}

// groupOwners are the emails of the enabled members of a group: the owners
// whose keys a group cap covers.
func (r *SpendingCapReconciler) groupOwners(ctx context.Context, group string) ([]string, error) {
	members := &hubv1.MemberList{}
	if err := r.List(ctx, members); err != nil {
		return nil, err
	}
	owners := []string{}
	for i := range members.Items {
		m := &members.Items[i]
		if !m.Spec.Disabled && slices.Contains(m.Spec.Groups, group) {
			owners = append(owners, m.Spec.Email)
		}
	}
	return owners, nil
}

// evaluation is a cap's usage in the cycle.
type evaluation struct {
	spent, recentSpend   decimal.Decimal
	tokens, recentTokens int64
	recent               time.Duration
	// unpriced counts the calls the price list cannot price.
	unpriced int64
}

// evaluate sums the cycle's usage of the project ("" for all) from the
// store, and that of the last 24 hours for the burn rate.
func (r *SpendingCapReconciler) evaluate(ctx context.Context, capObj *hubv1.SpendingCap, project string, c cycle, now time.Time) (evaluation, error) {
	var e evaluation
	prices := r.Prices.PriceList()
	recentFrom := now.Add(-24 * time.Hour).Truncate(time.Hour)
	if recentFrom.Before(c.start) {
		recentFrom = c.start
	}
	e.recent = now.Sub(recentFrom)
	filter := usage.Filter{Project: project}
	if capObj.Spec.Group != "" {
		owners, err := r.groupOwners(ctx, capObj.Spec.Group)
		if err != nil {
			return e, err
		}
		filter.Owners = owners
	}
	// The cycle's own window, exactly: an event counts in one cycle only,
	// in zones whose midnight is not on a UTC hour too.
	buckets, err := r.Store.Aggregate(ctx, usage.Query{From: c.start, To: c.end,
		GroupBy: []usage.Dimension{usage.ByService, usage.ByModel}, Granularity: usage.Hour, Filter: filter})
	if err != nil {
		return e, fmt.Errorf("reading the usage of cap %s/%s: %w", capObj.Namespace, capObj.Name, err)
	}
	for _, b := range buckets {
		cost := prices.Cost(b.PricingUsage())
		e.spent = e.spent.Add(cost.Amount)
		e.tokens = usage.SaturatingAdd(e.tokens, b.Tokens())
		if cost.Unpriced {
			e.unpriced = usage.SaturatingAdd(e.unpriced, b.Calls)
		}
		if !b.Start.Before(recentFrom) {
			e.recentSpend = e.recentSpend.Add(cost.Amount)
			e.recentTokens = usage.SaturatingAdd(e.recentTokens, b.Tokens())
		}
	}
	return e, nil
}
