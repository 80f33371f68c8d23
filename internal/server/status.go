package server

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/shopspring/decimal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/statusapply"
	"github.com/minimax/platform-hub/internal/usage"
)

// StatusWriter puts the current billing cycle's usage on Project and APIKey
// status, and lastUsedAt on keys. It runs on the elected server replica and
// works from the store (so it sees what every replica ingested), every
// Interval, with at most MaxWritesPerSecond writes on average: steady traffic
// costs the API server a few writes per second in all, however many calls
// there are. Projects it could not get to wait for the next round.
type StatusWriter struct {
	Client client.Client
	Store  usage.Store
	Prices func() *Prices
	Clock  clock.PassiveClock
	Log    logr.Logger
	// Interval is how often usage is written; default 10s.
	Interval time.Duration
	// MaxWritesPerSecond bounds the average write rate; default 5.
	MaxWritesPerSecond int

	lastRun time.Time
	// allowance is the number of writes the writer may make now: it grows
	// by MaxWritesPerSecond every second, up to one round's worth.
	allowance float64
	// pending holds the projects whose usage changed since it was written.
	pending map[string]*projectWork
	// seen is, per project and key, when the newest usage taken into
	// pending was stored, so that the overlap of two rounds is not counted
	// twice.
	seen map[[2]string]time.Time
}

// overlap is how far back each round looks before the previous one: usage
// stored by another replica whose clock is a little behind is not missed.
const overlap = 30 * time.Second

// NeedLeaderElection makes the writer run on one replica only.
func (w *StatusWriter) NeedLeaderElection() bool { return true }

// Start writes usage every Interval until ctx ends.
func (w *StatusWriter) Start(ctx context.Context) error {
	w.setDefaults()
	ticker := time.NewTicker(w.Interval)
	defer ticker.Stop()
	for {
		if err := w.flush(ctx); err != nil && ctx.Err() == nil {
			w.Log.Error(err, "Writing usage to status")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (w *StatusWriter) setDefaults() {
	if w.Interval == 0 {
		w.Interval = 10 * time.Second
	}
	if w.MaxWritesPerSecond == 0 {
		w.MaxWritesPerSecond = 5
	}
}

func (w *StatusWriter) flush(ctx context.Context) error {
	w.setDefaults()
	now := w.Clock.Now()
	since := w.lastRun.Add(-overlap)
	if w.lastRun.IsZero() {
		since = now.Add(-time.Hour)
	}
	active, err := w.Store.LastUsed(ctx, since)
	if err != nil {
		return err
	}
	w.collect(active, since)
	w.refill(now)

	projects := make([]string, 0, len(w.pending))
	for p := range w.pending {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	for _, project := range projects {
		if w.allowance < 1 {
			break
		}
		work := w.pending[project]
		if err := w.writeProject(ctx, project, work, now); err != nil {
			return err
		}
		if work.projectWritten && len(work.keys) == 0 {
			delete(w.pending, project)
		}
	}
	return nil
}

// collect adds the keys stored since the last round to the pending work.
func (w *StatusWriter) collect(active []usage.KeyActivity, since time.Time) {
	if w.pending == nil {
		w.pending, w.seen = map[string]*projectWork{}, map[[2]string]time.Time{}
	}
	for id, stored := range w.seen {
		if stored.Before(since) {
			delete(w.seen, id)
		}
	}
	for _, a := range active {
		id := [2]string{a.Project, a.KeyID}
		if !a.Stored.After(w.seen[id]) {
			continue
		}
		w.seen[id] = a.Stored
		work := w.pending[a.Project]
		if work == nil {
			work = &projectWork{keys: map[string]time.Time{}}
			w.pending[a.Project] = work
		}
		work.projectWritten = false
		if a.Last.After(work.keys[a.KeyID]) {
			work.keys[a.KeyID] = a.Last
		}
	}
}

// refill grows the allowance by the time since the last round, up to one
// round's worth of writes.
func (w *StatusWriter) refill(now time.Time) {
	perRound := w.Interval.Seconds() * float64(w.MaxWritesPerSecond)
	if w.lastRun.IsZero() {
		w.allowance = perRound
	} else {
		w.allowance = min(w.allowance+now.Sub(w.lastRun).Seconds()*float64(w.MaxWritesPerSecond), max(perRound, 2))
	}
	w.lastRun = now
}

// projectWork is what remains to write for a project.
type projectWork struct {
	projectWritten bool
	// keys are the keys used since their status was last written, with the
	// time of their last use.
	keys map[string]time.Time
}

// writeProject writes a project's usage, unless already written this round
// of changes, and that of its used keys, while the allowance lasts; what is
// written leaves work.
func (w *StatusWriter) writeProject(ctx context.Context, project string, work *projectWork, now time.Time) error {
	projectSum, keySums, err := w.summarize(ctx, project, now)
	if err != nil {
		return err
	}
	if !work.projectWritten {
		w.allowance--
		if err := w.applyStatus(ctx, &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: project}},
			map[string]any{"usage": fields(projectSum.api())}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("writing usage of project %s: %w", project, err)
		}
		work.projectWritten = true
	}

	keys := &hubv1.APIKeyList{}
	if err := w.Client.List(ctx, keys, client.InNamespace(project)); err != nil {
		return err
	}
	for i := range keys.Items {
		k := &keys.Items[i]
		ids := []string{k.Status.KeyID}
		if p := k.Status.PreviousKey; p != nil {
			// During an overlap a key's usage counts the key it replaced.
			ids = append(ids, p.KeyID)
		}
		last, used := lastUse(work.keys, ids)
		if !used {
			continue
		}
		if w.allowance < 1 {
			return nil
		}
		w.allowance--
		if err := w.applyStatus(ctx, k, keyStatus(k, ids, keySums, last, projectSum.start, now)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("writing usage of key %s/%s: %w", k.Namespace, k.Name, err)
		}
		for _, id := range ids {
			delete(work.keys, id)
		}
	}
	// Keys used but no longer present (deleted) need no write.
	clear(work.keys)
	return nil
}

// keyStatus is what the usage server owns of a key's status: the sum of
// its key IDs' usage, and lastUsedAt, which only moves forward.
func keyStatus(k *hubv1.APIKey, ids []string, keySums map[string]*summary, last, start, now time.Time) map[string]any {
	sum := newSummary(start, now)
	for _, id := range ids {
		if s := keySums[id]; s != nil && id != "" {
			sum.merge(s)
		}
	}
	lastUsed := last.Truncate(time.Second)
	if k.Status.LastUsedAt != nil && k.Status.LastUsedAt.After(lastUsed) {
		lastUsed = k.Status.LastUsedAt.Time
	}
	return map[string]any{"usage": fields(sum.api()), "lastUsedAt": metav1.NewTime(lastUsed)}
}

// lastUse is the latest use of any of ids, and whether there was one.
func lastUse(used map[string]time.Time, ids []string) (time.Time, bool) {
	var last time.Time
	found := false
	for _, id := range ids {
		if t, ok := used[id]; ok {
			last, found = maxTime(last, t), true
		}
	}
	return last, found
}

// summarize sums a project's usage in the current billing cycle, in all and
// per key ID, priced by the organization's price list.
func (w *StatusWriter) summarize(ctx context.Context, project string, now time.Time) (*summary, map[string]*summary, error) {
	cycle := w.cycle(ctx, now)
	cycleStart := cycle.Start
	buckets, err := w.Store.Aggregate(ctx, usage.Query{From: cycle.Start, To: cycle.End,
		GroupBy: []usage.Dimension{usage.ByKeyID, usage.ByService, usage.ByModel}, Filter: usage.Filter{Project: project}})
	if err != nil {
		return nil, nil, err
	}
	prices := w.prices()
	projectSum := newSummary(cycleStart, now)
	keySums := map[string]*summary{}
	for _, b := range buckets {
		cost := prices.Cost(b.PricingUsage())
		projectSum.add(b, cost)
		k := b.Group[usage.ByKeyID]
		if keySums[k] == nil {
			keySums[k] = newSummary(cycleStart, now)
		}
		keySums[k].add(b, cost)
	}
	return projectSum, keySums, nil
}

// applyStatus writes the fields the usage server owns of an object's status
// (usage, and lastUsedAt on keys) as a JSON merge patch, under its own field
// manager. The hub's controllers apply the rest of the status by server-side
// apply and never include these fields, so the two sets stay disjoint. A
// merge patch needs no read, and removes what the new summary leaves out
// (fields set to null; see fields) whoever wrote them before.
func (w *StatusWriter) applyStatus(ctx context.Context, obj client.Object, status map[string]any) error {
	return statusapply.Merge(ctx, w.Client, obj, status, statusapply.OwnerUsage)
}

// fields renders a summary for a JSON merge patch that replaces the one in
// status: the fields it leaves out (zero) become null, which deletes them,
// instead of the merge keeping the values of the last write (the unpriced
// calls of a cycle that has ended, say).
func fields(s hubv1.UsageSummary) map[string]any {
	out, err := statusapply.Fields(s)
	if err != nil {
		panic(fmt.Sprintf("a usage summary does not round-trip through JSON: %v", err))
	}
	t := reflect.TypeFor[hubv1.UsageSummary]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if _, ok := out[name]; !ok {
			out[name] = nil
		}
	}
	return out
}

// cycle is the organization's current billing cycle, or the calendar month
// (UTC) when there is no organization.
// Caps count cycles the same way, so a project's spend and its cap agree at
// the boundary.
func (w *StatusWriter) cycle(ctx context.Context, now time.Time) billing.Cycle {
	org := &hubv1.Organization{}
	if err := w.Client.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		return billing.OrganizationCycle(0, "", now)
	}
	return billing.OrganizationCycle(org.Spec.Billing.CycleStartDay, org.Spec.Billing.TimeZone, now)
}

func (w *StatusWriter) prices() *pricing.PriceList {
	if w.Prices != nil {
		if p := w.Prices(); p != nil && p.List != nil {
			return p.List
		}
	}
	return emptyPrices
}

// summary accumulates usage and decimal spend.
type summary struct {
	start, now time.Time
	totals     usage.Totals
	spend      decimal.Decimal
	unpriced   int64
	services   map[string]*serviceSum
}

type serviceSum struct {
	totals usage.Totals
	spend  decimal.Decimal
}

func newSummary(start, now time.Time) *summary {
	return &summary{start: start, now: now, services: map[string]*serviceSum{}}
}

func (s *summary) add(b usage.Bucket, cost pricing.Cost) {
	s.totals.Add(b.Totals)
	svc := b.Group[usage.ByService]
	ss := s.services[svc]
	if ss == nil {
		ss = &serviceSum{}
		s.services[svc] = ss
	}
	ss.totals.Add(b.Totals)
	if cost.Unpriced {
		s.unpriced = usage.SaturatingAdd(s.unpriced, b.Calls)
		return
	}
	s.spend = s.spend.Add(cost.Amount)
	ss.spend = ss.spend.Add(cost.Amount)
}

func (s *summary) merge(o *summary) {
	s.totals.Add(o.totals)
	s.spend = s.spend.Add(o.spend)
	s.unpriced = usage.SaturatingAdd(s.unpriced, o.unpriced)
	for name, os := range o.services {
		ss := s.services[name]
		if ss == nil {
			ss = &serviceSum{}
			s.services[name] = ss
		}
		ss.totals.Add(os.totals)
		ss.spend = ss.spend.Add(os.spend)
	}
}

// api renders the summary as status. Spend is rounded to 9 decimal places,
// the precision the API keeps for amounts.
func (s *summary) api() hubv1.UsageSummary {
	start, now := metav1.NewTime(s.start), metav1.NewTime(s.now.Truncate(time.Second))
	out := hubv1.UsageSummary{
		CycleStart: &start, UpdatedAt: &now, Calls: s.totals.Calls, InputTokens: s.totals.InputTokens,
		OutputTokens: s.totals.OutputTokens, VideoSeconds: s.totals.VideoSeconds, StorageByteHours: s.totals.StorageByteHours,
		Spend: amount(s.spend), UnpricedCalls: s.unpriced,
	}
	names := make([]string, 0, len(s.services))
	for name := range s.services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ss := s.services[name]
		out.ByService = append(out.ByService, hubv1.ServiceUsage{
			Service: name, Calls: ss.totals.Calls, Tokens: ss.totals.Tokens(), VideoSeconds: ss.totals.VideoSeconds,
			StorageByteHours: ss.totals.StorageByteHours, Spend: amount(ss.spend),
		})
	}
	return out
}

func amount(d decimal.Decimal) hubv1.Amount {
	return hubv1.Amount(d.Round(9).String())
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
