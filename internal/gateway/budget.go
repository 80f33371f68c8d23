package gateway

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/caplimit"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// Budgets enforces Hard spending caps in the gateway itself, so that the call
// that reaches a cap is the last one let through: the calls already in flight
// when it completes are the only overshoot.
//
// A cap's use is what the usage server last reported for it plus what this
// gateway metered since. The server answers every ingest batch with the
// cycle totals of the Hard caps covering the batch's projects (after storing
// it); until the first answer, the cap's status figures stand in. Usage this
// gateway metered is "pending" from the moment it is recorded until the
// server acknowledges the batch that carries it, by event ID, so that an event
// is never counted twice nor missed between the two.
//
// With several gateway replicas, each sees the others' usage only once the
// server has stored it: the overshoot can then also include what the other
// replicas served in their last flush interval (250 ms). The server's own
// CapReached mark stops every replica in any case.
type Budgets struct {
	// HubNamespace holds the organization's caps.
	HubNamespace string

	// capsMu guards hardCaps: the Hard caps by namespace, kept from the
	// informer's events so that a call to a project without caps costs a
	// map lookup, not a cache listing.
	capsMu   sync.RWMutex
	hardCaps map[string]map[types.UID]*hubv1.SpendingCap
	// stoppedGroups are the groups whose Hard group cap the usage server
	// marked CapReached, by cap UID.
	stoppedGroups map[types.UID]string
	// groupMoneyCaps are the Hard group caps with a money limit, by UID,
	// with their group and name: a call they cover must be priced.
	groupMoneyCaps map[types.UID][2]string

	mu sync.Mutex
	// pending holds what each unacknowledged event added, by event ID, and
	// the sums by project and overall of those in the billing cycle that
	// starts at cycleStart.
	pending    map[string]pendingEvent
	byProject  map[string]amounts
	allPending amounts
	cycleStart time.Time
	// reported is the server's last report of each cap.
	reported map[types.UID]usage.CapTotals
	// limits caches the caps' parsed limits by UID and generation.
	limits map[types.UID]parsedLimits
	prices struct {
		version string
		list    *pricing.PriceList
	}
}

// amounts is usage in tokens and money (in billionths of the currency, the
// precision of every Amount).
type amounts struct{ tokens, nanos int64 }

// plus adds b to a; b may be negative (a pending event acknowledged), and
// sums of positives saturate rather than wrap.
func (a amounts) plus(b amounts) amounts {
	return amounts{usage.SaturatingAdd(a.tokens, b.tokens), usage.SaturatingAdd(a.nanos, b.nanos)}
}

type pendingEvent struct {
	project string
	at      time.Time
	amounts
}

type parsedLimits struct {
	generation int64
	caplimit.Limits
}

var billion = decimal.NewFromInt(1_000_000_000)

var maxNanos = decimal.NewFromInt(math.MaxInt64)

// toNanos is an amount in billionths, saturating at math.MaxInt64 (some
// 9.2 billion units of the currency).
func toNanos(d decimal.Decimal) int64 {
	n := d.Mul(billion)
	if n.GreaterThanOrEqual(maxNanos) {
		return math.MaxInt64
	}
	return n.IntPart()
}

func (b *Budgets) init() {
	if b.pending == nil {
		b.pending = map[string]pendingEvent{}
		b.byProject = map[string]amounts{}
		b.reported = map[types.UID]usage.CapTotals{}
		b.limits = map[types.UID]parsedLimits{}
	}
}

// Watch keeps the Hard caps from the SpendingCap informer of informers.
func (b *Budgets) Watch(ctx context.Context, informers cache.Informers) error {
	inf, err := informers.GetInformer(ctx, &hubv1.SpendingCap{})
	if err != nil {
		return err
	}
	set := func(obj any) {
		if c, ok := obj.(*hubv1.SpendingCap); ok {
			b.setCap(c)
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if c, ok := obj.(*hubv1.SpendingCap); ok {
				b.capsMu.Lock()
				delete(b.hardCaps[c.Namespace], c.UID)
				delete(b.stoppedGroups, c.UID)
				delete(b.groupMoneyCaps, c.UID)
				b.capsMu.Unlock()
			}
		},
	})
	return err
}

// setCap records a cap as it is now: kept if Hard, dropped otherwise.
func (b *Budgets) setCap(c *hubv1.SpendingCap) {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	if b.hardCaps == nil {
		b.hardCaps = map[string]map[types.UID]*hubv1.SpendingCap{}
		b.stoppedGroups = map[types.UID]string{}
		b.groupMoneyCaps = map[types.UID][2]string{}
	}
	if c.Spec.Group != "" {
		// A group cap is not the organization's: it stops only its
		// members' keys, once the usage server marks it.
		delete(b.stoppedGroups, c.UID)
		delete(b.groupMoneyCaps, c.UID)
		hard := c.Spec.Enforcement == hubv1.CapHard && c.DeletionTimestamp.IsZero() && c.Namespace == b.HubNamespace
		if hard && meta.IsStatusConditionTrue(c.Status.Conditions, hubv1.CapReachedCondition) {
			b.stoppedGroups[c.UID] = c.Spec.Group
		}
		if hard && c.Spec.Limit != nil {
			b.groupMoneyCaps[c.UID] = [2]string{c.Spec.Group, c.Namespace + "/" + c.Name}
		}
		return
	}
	if c.Spec.Enforcement != hubv1.CapHard || !c.DeletionTimestamp.IsZero() {
		delete(b.hardCaps[c.Namespace], c.UID)
		return
	}
	if b.hardCaps[c.Namespace] == nil {
		b.hardCaps[c.Namespace] = map[types.UID]*hubv1.SpendingCap{}
	}
	b.hardCaps[c.Namespace][c.UID] = c
}

// GroupStopped tells whether owner belongs to a group whose Hard group cap
// is exhausted. Members are read from members only when some group is
// stopped.
func (b *Budgets) GroupStopped(ctx context.Context, members client.Reader, owner string) bool {
	b.capsMu.RLock()
	stopped := make(map[string]string, len(b.stoppedGroups))
	for _, g := range b.stoppedGroups {
		stopped[g] = g
	}
	b.capsMu.RUnlock()
	_, found := ownerGroupIn(ctx, members, owner, stopped)
	return found
}

// ownerGroupIn returns the value of groups for the first group of owner's
// that is in it, reading Members only when groups is not empty.
func ownerGroupIn(ctx context.Context, members client.Reader, owner string, groups map[string]string) (string, bool) {
	if len(groups) == 0 || owner == "" {
		return "", false
	}
	list := &hubv1.MemberList{}
	if err := members.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return "", false
	}
	for i := range list.Items {
		m := &list.Items[i]
		if !hubv1.SameEmail(m.Spec.Email, owner) || m.Spec.Disabled {
			continue
		}
		for _, g := range m.Spec.Groups {
			if v, ok := groups[g]; ok {
				return v, true
			}
		}
	}
	return "", false
}

// Unpriced tells whether a call of a model of a service by key cannot be
// priced while a Hard money cap covers it (the project's, the
// organization's, or one of the key owner's groups'), and names that cap.
// Such a call must be refused: it would cost nothing under the cap. The
// Organization (for its price list) is read from org only when such a cap
// exists.
func (b *Budgets) Unpriced(ctx context.Context, members client.Reader, key *hubv1.APIKey, s pricing.Service, model string,
	org func() *hubv1.Organization) (string, bool) {
	capName := ""
	caps, _ := b.covering(key.Namespace)
	for _, c := range caps {
		if c.Spec.Limit != nil {
			capName = c.Namespace + "/" + c.Name
			break
		}
	}
	var groups map[string]string
	b.capsMu.RLock()
	if len(b.groupMoneyCaps) > 0 {
		groups = make(map[string]string, len(b.groupMoneyCaps))
		for _, g := range b.groupMoneyCaps {
			groups[g[0]] = g[1]
		}
	}
	b.capsMu.RUnlock()
	if capName == "" && len(groups) == 0 {
		return "", false
	}
	b.mu.Lock()
	list := b.priceList(org())
	b.mu.Unlock()
	if list != nil && list.Priced(s, model) {
		return "", false
	}
	if capName != "" {
		return capName, true
	}
	return ownerGroupIn(ctx, members, key.Spec.Owner, groups)
}

// covering lists the Hard caps covering project: its own, then the
// organization's (from index orgFrom on).
func (b *Budgets) covering(project string) (caps []*hubv1.SpendingCap, orgFrom int) {
	b.capsMu.RLock()
	defer b.capsMu.RUnlock()
	own, org := b.hardCaps[project], b.hardCaps[b.HubNamespace]
	if len(own)+len(org) == 0 {
		return nil, 0
	}
	caps = make([]*hubv1.SpendingCap, 0, len(own)+len(org))
	for _, c := range own {
		caps = append(caps, c)
	}
	orgFrom = len(caps)
	for _, c := range org {
		caps = append(caps, c)
	}
	return caps, orgFrom
}

// Metered counts an event this gateway recorded. Its cost is worked out (by
// the price list of the Organization org returns) only while a Hard money
// cap covers its project: pricing every call would cost every call.
func (b *Budgets) Metered(e *usage.Event, org func() *hubv1.Organization) {
	a := amounts{tokens: e.InputTokens + e.OutputTokens}
	caps, _ := b.covering(e.Project)
	money := false
	for _, c := range caps {
		money = money || c.Spec.Limit != nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if !money {
		// No money cap to count towards.
	} else if list := b.priceList(org()); list != nil {
		a.nanos = toNanos(list.Cost(e.PricingUsage()).Amount)
	}
	if a == (amounts{}) {
		return
	}
	p := pendingEvent{project: e.Project, at: e.Time, amounts: a}
	b.pending[e.ID] = p
	b.add(p, 1)
}

// add adds (sign 1) or removes (-1) a pending event from the sums, if it is
// in the cycle they are for.
func (b *Budgets) add(p pendingEvent, sign int64) {
	if p.at.Before(b.cycleStart) {
		return
	}
	d := amounts{p.tokens * sign, p.nanos * sign}
	if sum := b.byProject[p.project].plus(d); sum == (amounts{}) {
		delete(b.byProject, p.project)
	} else {
		b.byProject[p.project] = sum
	}
	b.allPending = b.allPending.plus(d)
}

// recount makes the sums those of the cycle starting at cycleStart. Events
// of earlier cycles no longer count, and are forgotten: a cap of the new
// cycle owes them nothing, whether or not the server ever acknowledges them.
func (b *Budgets) recount(cycleStart time.Time) {
	b.cycleStart = cycleStart
	b.byProject, b.allPending = map[string]amounts{}, amounts{}
	for id, p := range b.pending {
		if p.at.Before(cycleStart) {
			delete(b.pending, id)
			continue
		}
		b.add(p, 1)
	}
}

// priceList is org's price list, built once per Organization version.
func (b *Budgets) priceList(org *hubv1.Organization) *pricing.PriceList {
	if org == nil {
		return nil
	}
	if b.prices.version != org.ResourceVersion {
		list, err := pricing.New(org.Spec.Pricing)
		if err != nil {
			list = nil // the server reports it; tokens are still counted
		}
		b.prices.version, b.prices.list = org.ResourceVersion, list
	}
	return b.prices.list
}

// Acknowledged takes the server's answer to a batch: its events are no
// longer pending, and the caps' totals (which include them) are the new
// reports. Events this process did not meter (spooled by an earlier one)
// are ignored.
func (b *Budgets) Acknowledged(events []usage.Event, totals []usage.CapTotals) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	for i := range events {
		p, ok := b.pending[events[i].ID]
		if !ok {
			continue
		}
		delete(b.pending, events[i].ID)
		b.add(p, -1)
	}
	for _, t := range totals {
		b.reported[types.UID(t.UID)] = t
	}
}

// Exhausted tells whether a Hard cap covering project (its own, or the
// organization's) is used up, counting what this gateway metered since the
// server's last report.
func (b *Budgets) Exhausted(project string, org *hubv1.Organization, now time.Time) bool {
	caps, orgFrom := b.covering(project)
	if len(caps) == 0 {
		return false
	}
	var cycleStart time.Time
	if org != nil {
		cycleStart = billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now).Start
	} else {
		cycleStart = billing.OrganizationCycle(0, "", now).Start
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if !cycleStart.Equal(b.cycleStart) {
		b.recount(cycleStart)
	}
	for i, c := range caps {
		pending := b.byProject[project]
		if i >= orgFrom {
			pending = b.allPending
		}
		if b.over(c, b.base(c, cycleStart).plus(pending)) {
			return true
		}
	}
	return false
}

// base is a cap's use in this cycle as the server last told it: the larger
// of its last ingest answer and the cap's status (which other replicas'
// usage reaches first). Both only grow within a cycle.
func (b *Budgets) base(c *hubv1.SpendingCap, cycleStart time.Time) amounts {
	var out amounts
	if t, ok := b.reported[c.UID]; ok && t.CycleStart.Equal(cycleStart) {
		spent, _ := decimal.NewFromString(t.Spent)
		out = amounts{tokens: t.Tokens, nanos: toNanos(spent)}
	}
	if s := c.Status; s.CycleStart != nil && s.CycleStart.Time.Equal(cycleStart) {
		spent, _ := decimal.NewFromString(string(s.Spent))
		out = amounts{tokens: max(out.tokens, s.Tokens), nanos: max(out.nanos, toNanos(spent))}
	}
	return out
}

// over tells whether used reaches the cap's money or token limit, as
// package caplimit decides for the server's evaluation too.
func (b *Budgets) over(c *hubv1.SpendingCap, used amounts) bool {
	l, ok := b.limits[c.UID]
	if !ok || l.generation != c.Generation {
		l = parsedLimits{generation: c.Generation, Limits: caplimit.Of(&c.Spec)}
		b.limits[c.UID] = l
	}
	return l.Reached(caplimit.Use{Spent: decimal.New(used.nanos, -9), Tokens: used.tokens})
}
