package reconcilers

import (
	"context"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// totalsMaxAge bounds how long a cap's running total goes without being
// summed again from the store. Within one server it is exact; with several
// replicas sharing PostgreSQL it is how long the others' usage can be
// missing from it.
const totalsMaxAge = 30 * time.Second

// totals keeps a running cycle total per Hard cap for the ingest answers:
// summed from the store once, then kept up to date by adding each stored
// batch, so that answering a batch costs no query over the whole cycle.
//
// Storing a batch and adding it happen under mu held shared; summing a cap
// from the store happens under mu held alone. A batch is therefore either
// in the store before the sum (and counted by it) or added after it, never
// both and never neither.
type totals struct {
	mu      sync.RWMutex
	entryMu sync.Mutex
	entries map[types.UID]*totalsEntry
}

type totalsEntry struct {
	cycleStart time.Time
	// project is the project capped; empty for an organization cap.
	project string
	spent   decimal.Decimal
	tokens  int64
	// prices is the list spent was priced with; another list means
	// summing again.
	prices *pricing.PriceList
	summed time.Time
}

// BeginIngest is called before a batch is stored; the function it returns
// must be called after, with the events that were new (nil if storing
// failed), so that the running totals count them.
func (r *SpendingCapReconciler) BeginIngest() func(stored []usage.Event) {
	r.totals.mu.RLock()
	return func(stored []usage.Event) {
		defer r.totals.mu.RUnlock()
		if len(stored) == 0 {
			return
		}
		prices := r.Prices.PriceList()
		r.totals.entryMu.Lock()
		defer r.totals.entryMu.Unlock()
		for _, e := range r.totals.entries {
			if e.prices != prices {
				continue // summed again before its next use
			}
			for i := range stored {
				ev := &stored[i]
				if (e.project != "" && ev.Project != e.project) || ev.Time.Before(e.cycleStart) {
					continue
				}
				e.spent = e.spent.Add(prices.Cost(ev.PricingUsage()).Amount)
				e.tokens = usage.SaturatingAdd(e.tokens, ev.InputTokens+ev.OutputTokens) // each at most 10^9
			}
		}
	}
}

// HardCapTotals returns the usage in the current cycle of every Hard cap
// that covers one of projects: their own caps and the organization's. The
// server answers each ingest batch with it, so that gateways stop traffic
// at the cap without waiting for the next evaluation.
func (r *SpendingCapReconciler) HardCapTotals(ctx context.Context, projects []string) ([]usage.CapTotals, error) {
	caps := &hubv1.SpendingCapList{}
	if err := r.List(ctx, caps); err != nil {
		return nil, err
	}
	touched := map[string]bool{}
	for _, p := range projects {
		touched[p] = true
	}
	org := &hubv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	now := r.Clock.Now()
	c := cycleOf(org, now)
	var out []usage.CapTotals
	for i := range caps.Items {
		capObj := &caps.Items[i]
		covers := capObj.Namespace == r.HubNamespace || touched[capObj.Namespace]
		// Group caps are enforced by their mark alone: the gateway does not
		// count usage by owner.
		if capObj.Spec.Enforcement != hubv1.CapHard || !covers || capObj.Spec.Group != "" {
			continue
		}
		spent, tokens, err := r.runningTotal(ctx, capObj, c, now)
		if err != nil {
			return nil, err
		}
		out = append(out, usage.CapTotals{UID: string(capObj.UID), CycleStart: c.start, Spent: string(amount(spent)), Tokens: tokens})
	}
	return out, nil
}

// runningTotal is a cap's cycle total, summed from the store when it has no
// running total for this cycle and price list, or an old one.
func (r *SpendingCapReconciler) runningTotal(ctx context.Context, capObj *hubv1.SpendingCap, c cycle, now time.Time) (decimal.Decimal, int64, error) {
	prices := r.Prices.PriceList()
	t := &r.totals
	t.entryMu.Lock()
	e := t.entries[capObj.UID]
	fresh := e != nil && e.cycleStart.Equal(c.start) && e.prices == prices && time.Since(e.summed) < totalsMaxAge
	if fresh {
		spent, tokens := e.spent, e.tokens
		t.entryMu.Unlock()
		return spent, tokens, nil
	}
	t.entryMu.Unlock()

	t.mu.Lock() // no batch is being stored while the cycle is summed
	defer t.mu.Unlock()
	project := capObj.Namespace
	if project == r.HubNamespace {
		project = ""
	}
	ev, err := r.evaluate(ctx, capObj, project, c, now)
	if err != nil {
		return decimal.Zero, 0, err
	}
	t.entryMu.Lock()
	defer t.entryMu.Unlock()
	if t.entries == nil {
		t.entries = map[types.UID]*totalsEntry{}
	}
	t.entries[capObj.UID] = &totalsEntry{cycleStart: c.start, project: project, spent: ev.spent, tokens: ev.tokens,
		prices: prices, summed: time.Now()}
	return ev.spent, ev.tokens, nil
}
