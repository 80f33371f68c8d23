package usagereport_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/shopspring/decimal"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// berlin changes from summer to winter time on 2026-10-25 (03:00 CEST
// becomes 02:00 CET), so that day has 25 hours.
var berlin = mustZone("Europe/Berlin")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// fixture stores a fixed, seeded data set around the daylight-saving change:
// projects, keys, services, models and endpoints mixed, with one unpriced
// model. Video lasts multiples of 6 s, so its cost per call is exact.
func fixture(t *testing.T, g Gomega) (usage.Store, *pricing.PriceList, []usage.Event) {
	store, err := usage.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = store.Close() })
	prices, err := pricing.New(&hubv1.PriceList{
		Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{
			{Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20",
				CachedInputPer1MTokens: ptrAmount("0.03")}},
			{Name: "MiniMax-Text-01", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.20", OutputPer1MTokens: "1.10"}}}},
		Video: &hubv1.VideoPricing{DefaultPerMinute: ptrAmount("0.60")},
	})
	g.Expect(err).NotTo(HaveOccurred())
	rng := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2026, 10, 23, 0, 0, 0, 0, berlin)
	events := make([]usage.Event, 0, 3000)
	for i := range 3000 {
		e := usage.Event{ID: fmt.Sprintf("e%05d", i), Time: start.Add(time.Duration(rng.Int64N(int64(96 * time.Hour)))),
			Project: []string{"chatbot", "research", "search"}[rng.IntN(3)], KeyID: fmt.Sprintf("Key%07d", rng.IntN(5)), StatusCode: 200}
		switch rng.IntN(4) {
		case 0:
			e.Service, e.Endpoint, e.Model, e.VideoSeconds = pricing.Video, "/v1/video_generation", "MiniMax-Hailuo-02", 6*rng.Int64N(20)
		case 1:
			e.Service, e.Endpoint, e.Model = pricing.Chat, "/v1/chat/completions", "unpriced-model"
			e.InputTokens, e.OutputTokens = rng.Int64N(5000), rng.Int64N(5000)
		default:
			e.Service, e.Endpoint = pricing.Chat, []string{"/v1/chat/completions", "/v1/responses"}[rng.IntN(2)]
			e.Model = []string{"MiniMax-M2", "MiniMax-Text-01"}[rng.IntN(2)]
			e.InputTokens, e.OutputTokens = rng.Int64N(5000), rng.Int64N(5000)
			e.CachedInputTokens = rng.Int64N(e.InputTokens + 1)
		}
		events = append(events, e)
	}
	// The days before October 26 (UTC) are rolled up after two thirds of
	// the events are stored: the rest of theirs come late.
	_, err = store.Insert(context.Background(), events[:2000])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(store.RollUpDays(context.Background(), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC), berlin)).To(Succeed())
	_, err = store.Insert(context.Background(), events[2000:])
	g.Expect(err).NotTo(HaveOccurred())
	// Alice owns two keys, Bob two; the fifth has no recorded owner.
	owned := make([]usage.KeyOwner, 0, len(keyOwner))
	for id, owner := range keyOwner {
		owned = append(owned, usage.KeyOwner{KeyID: id, Project: "chatbot", Owner: owner})
	}
	g.Expect(store.RecordKeyOwners(context.Background(), owned)).To(Succeed())
	return store, prices, events
}

// keyOwner is who owns the fixture's keys, as the usage server records it.
var keyOwner = map[string]string{"Key0000000": "alice@example.com", "Key0000001": "alice@example.com",
	"Key0000002": "bob@example.com", "Key0000003": "bob@example.com"}

func ptrAmount(s string) *hubv1.Amount { a := hubv1.Amount(s); return &a }

// expected sums the events one by one, the slow and obvious way: the
// bucket of each is found from its own time, its cost priced alone.
func expected(events []usage.Event, prices *pricing.PriceList, r usagereport.Request, loc *time.Location) map[string]usagereport.Figures {
	out := map[string]usagereport.Figures{}
	amounts := map[string]decimal.Decimal{}
	for _, e := range events {
		if e.Time.Before(r.From) || !e.Time.Before(r.To) || !matches(e, r.Filter) {
			continue
		}
		t := e.Time.In(loc)
		var start time.Time
		switch r.Granularity {
		case usage.Minute:
			start = e.Time.UTC().Truncate(time.Minute)
		case usage.Hour:
			start = e.Time.UTC().Truncate(time.Hour)
		case usage.Day:
			start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		case usage.Month:
			start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		}
		if start.Before(r.From) && r.Granularity != "" {
			start = r.From // the first bucket starts where the range does
		}
		key := start.UTC().Format(time.RFC3339)
		for _, d := range r.GroupBy {
			key += "/" + value(e, d)
		}
		f := out[key]
		f.Calls++
		f.InputTokens += e.InputTokens
		f.CachedInputTokens += e.CachedInputTokens
		f.OutputTokens += e.OutputTokens
		f.VideoSeconds += e.VideoSeconds
		c := prices.Cost(pricing.Usage{Service: e.Service, Model: e.Model, InputTokens: e.InputTokens,
			CachedInputTokens: e.CachedInputTokens, OutputTokens: e.OutputTokens, VideoSeconds: e.VideoSeconds})
		if c.Unpriced {
			f.UnpricedCalls++
		}
		amounts[key] = amounts[key].Add(c.Amount)
		f.Cost = amounts[key].String()
		out[key] = f
	}
	return out
}

func value(e usage.Event, d usage.Dimension) string {
	switch d {
	case usage.ByProject:
		return e.Project
	case usage.ByKeyID:
		return e.KeyID
	case usage.ByService:
		return string(e.Service)
	case usage.ByModel:
		return e.Model
	case usagereport.ByMember:
		return keyOwner[e.KeyID]
	}
	return e.Endpoint
}

func matches(e usage.Event, f usagereport.Filter) bool {
	in := func(values []string, v string) bool {
		if len(values) == 0 {
			return true
		}
		for _, x := range values {
			if x == v {
				return true
			}
		}
		return false
	}
	return in(f.Projects, e.Project) && in(f.KeyIDs, e.KeyID) && in(f.Services, string(e.Service)) &&
		in(f.Models, e.Model) && in(f.Endpoints, e.Endpoint) && ownedBy(f.Members, e.KeyID)
}

// ownedBy tells whether key is owned by one of members (none: every key),
// emails compared without case.
func ownedBy(members []string, key string) bool {
	if len(members) == 0 {
		return true
	}
	for _, m := range members {
		if keyOwner[key] != "" && hubv1.EmailKey(m) == keyOwner[key] {
			return true
		}
	}
	return false
}

func got(report *usagereport.Report, r usagereport.Request) map[string]usagereport.Figures {
	out := map[string]usagereport.Figures{}
	for _, b := range report.Buckets {
		key := b.Start.UTC().Format(time.RFC3339)
		if r.Granularity == "" {
			key = time.Time{}.Format(time.RFC3339)
		}
		for _, d := range r.GroupBy {
			key += "/" + b.Group[d]
		}
		out[key] = b.Figures
	}
	return out
}

// TestReportEqualsStoredEvents: for every grouping and granularity, across
// the daylight-saving change, each bucket's figures equal the sum of the
// stored events in it, to the token, and its cost the sum of their prices,
// to the last decimal; filters of one value and of several agree with the
// events too.
func TestReportEqualsStoredEvents(t *testing.T) {
	g := NewWithT(t)
	store, prices, events := fixture(t, g)
	from := time.Date(2026, 10, 23, 6, 0, 0, 0, berlin)
	to := time.Date(2026, 10, 26, 18, 0, 0, 0, berlin)
	dims := []usage.Dimension{usage.ByProject, usage.ByKeyID, usage.ByService, usage.ByModel, usage.ByEndpoint, usagereport.ByMember}
	filters := []usagereport.Filter{{}, {Projects: []string{"research"}},
		{Projects: []string{"chatbot", "search"}, Models: []string{"MiniMax-M2", "unpriced-model"}},
		{Members: []string{"Bob@Example.com"}}}
	// Berlin changes to winter time in the range, and is tried with every
	// grouping; UTC days come whole from the daily rollups; Kolkata's
	// midnights (+05:30) cut UTC hours.
	// Minute buckets over the change: at most 2000 a report.
	minutesFrom := time.Date(2026, 10, 24, 20, 0, 30, 0, berlin)
	for _, zone := range []string{"Europe/Berlin", "UTC", "Asia/Kolkata"} {
		loc := mustZone(zone)
		for _, granularity := range []usage.Granularity{"", usage.Minute, usage.Hour, usage.Day, usage.Month} {
			groupBys := [][]usage.Dimension{nil, dims[:1], dims[1:2], dims[2:3], dims[3:4], dims[4:5], dims[5:],
				{usagereport.ByMember, usage.ByModel}, dims}
			if zone != "Europe/Berlin" {
				groupBys = [][]usage.Dimension{nil, {usagereport.ByMember, usage.ByModel}, dims}
			}
			for _, groupBy := range groupBys {
				for _, f := range filters {
					r := usagereport.Request{From: from, To: to, Granularity: granularity, TimeZone: zone, GroupBy: groupBy, Filter: f}
					if granularity == usage.Minute {
						r.From, r.To = minutesFrom, minutesFrom.Add(30*time.Hour)
					}
					report, err := usagereport.Build(context.Background(), store, prices, "USD", r)
					g.Expect(err).NotTo(HaveOccurred())
					want := expected(events, prices, r, loc)
					g.Expect(got(report, r)).To(Equal(want), "%s, granularity %q, group by %v, filter %+v", zone, granularity, groupBy, f)
				}
			}
		}
	}
}

// TestDayBucketsFollowTheZone: the day of the change has 25 hours, and
// each day bucket ends at the next midnight in the zone.
func TestDayBucketsFollowTheZone(t *testing.T) {
	g := NewWithT(t)
	store, prices, _ := fixture(t, g)
	r := usagereport.Request{From: time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 27, 0, 0, 0, 0, berlin),
		Granularity: usage.Day, TimeZone: "Europe/Berlin", Compare: true}
	report, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.Buckets).To(HaveLen(3))
	g.Expect(report.Buckets[1].End.Sub(report.Buckets[1].Start)).To(Equal(25 * time.Hour))
	g.Expect(report.Previous).NotTo(BeNil(), "compare adds the period before")
	g.Expect(report.Previous.Calls).To(BeNumerically(">", 0), "the fixture starts on the 23rd")
	g.Expect(report.SameDatesLastMonth.Calls).To(BeZero(), "nothing in September")
	g.Expect(report.Currency).To(Equal("USD"))
}

// TestBucketsEndWithinTheRange: a range that starts and ends inside
// minute and hour buckets has its first bucket start where it starts and
// end where the UTC minute or hour does, and its last end where it ends.
func TestBucketsEndWithinTheRange(t *testing.T) {
	g := NewWithT(t)
	store, prices, _ := fixture(t, g)
	from := time.Date(2026, 10, 24, 10, 30, 30, 0, time.UTC)
	for _, c := range []struct {
		granularity usage.Granularity
		step        time.Duration
	}{{usage.Minute, time.Minute}, {usage.Hour, time.Hour}} {
		to := from.Add(40*c.step + c.step/4)
		report, err := usagereport.Build(context.Background(), store, prices, "USD",
			usagereport.Request{From: from, To: to, Granularity: c.granularity, TimeZone: "Asia/Kolkata"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(report.Buckets).NotTo(BeEmpty())
		if c.granularity == usage.Hour { // every hour of the fixture has calls
			g.Expect(report.Buckets[0].Start).To(BeTemporally("==", from), "the first bucket starts with the range")
		}
		for i, b := range report.Buckets {
			want := b.Start.Truncate(c.step).Add(c.step)
			if b.Start.Truncate(c.step).Equal(from.Truncate(c.step)) {
				g.Expect(b.Start).To(BeTemporally("==", from), "%s: the first bucket starts with the range", c.granularity)
			} else {
				g.Expect(b.Start).To(BeTemporally("==", b.Start.Truncate(c.step)), "%s: bucket %d starts on the %s", c.granularity, i, c.granularity)
			}
			if want.After(to) {
				want = to
			}
			g.Expect(b.End).To(BeTemporally("==", want), "%s: bucket %d", c.granularity, i)
		}
	}
}

// byModelOverFourDays is the fixture's report of four days by model,
// every group kept, and its request, for a test to ask it otherwise.
func byModelOverFourDays(t *testing.T, g Gomega) (usage.Store, *pricing.PriceList, usagereport.Request, *usagereport.Report) {
	store, prices, _ := fixture(t, g)
	r := usagereport.Request{From: time.Date(2026, 10, 23, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 27, 0, 0, 0, 0, berlin),
		Granularity: usage.Day, TimeZone: "Europe/Berlin", GroupBy: []usage.Dimension{usage.ByModel}}
	all, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred())
	return store, prices, r, all
}

// TestTopGroupsSumTheOthers: with topGroups, the costliest groups keep
// their buckets and the others are summed per bucket; nothing is lost.
func TestTopGroupsSumTheOthers(t *testing.T) {
	g := NewWithT(t)
	store, prices, r, all := byModelOverFourDays(t, g)
	r.TopGroups = 1
	top, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(top.OtherGroups).To(Equal(3), "four models: one kept")
	g.Expect(top.Total).To(Equal(all.Total))
	costs := map[string]decimal.Decimal{}
	for _, b := range all.Buckets {
		costs[b.Group[usage.ByModel]] = costs[b.Group[usage.ByModel]].Add(decimal.RequireFromString(b.Cost))
	}
	g.Expect(costs["MiniMax-Hailuo-02"].GreaterThan(costs["MiniMax-M2"])).To(BeTrue(), "the fixture's costliest is video")
	g.Expect(top.Buckets).To(HaveLen(8), "four days, each the kept model and the others")
	for i, b := range top.Buckets {
		if i%2 == 0 {
			g.Expect(b.Group).To(Equal(map[usage.Dimension]string{usage.ByModel: "MiniMax-Hailuo-02"}))
			g.Expect(b.Others).To(BeFalse())
			continue
		}
		g.Expect(b.Others).To(BeTrue())
		g.Expect(b.Group).To(BeNil())
		g.Expect(b.Start).To(Equal(top.Buckets[i-1].Start))
		var calls int64
		cost := decimal.Zero
		for _, a := range all.Buckets {
			if a.Start.Equal(b.Start) && a.Group[usage.ByModel] != "MiniMax-Hailuo-02" {
				calls += a.Calls
				cost = cost.Add(decimal.RequireFromString(a.Cost))
			}
		}
		g.Expect(b.Calls).To(Equal(calls))
		g.Expect(b.Cost).To(Equal(cost.String()))
	}
}

// TestGroupTotalsSumTheWholeRange: with groupTotals, the report adds each
// of the costliest groups' figures over the whole range, ranked as
// topGroups ranks them, and how many groups there are; its buckets are
// those topGroups alone asks for.
func TestGroupTotalsSumTheWholeRange(t *testing.T) {
	g := NewWithT(t)
	store, prices, r, all := byModelOverFourDays(t, g)
	g.Expect(all.GroupTotals).To(BeNil(), "only when asked")
	type sums struct {
		totals usage.Totals
		cost   decimal.Decimal
	}
	want := map[string]*sums{}
	for _, b := range all.Buckets {
		m := b.Group[usage.ByModel]
		if want[m] == nil {
			want[m] = &sums{}
		}
		want[m].totals.Add(b.Totals)
		want[m].cost = want[m].cost.Add(decimal.RequireFromString(b.Cost))
	}
	g.Expect(want).To(HaveLen(4))

	r.TopGroups = 1
	top, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred())
	for _, n := range []int{2, 4, 10} {
		r.GroupTotals = n
		report, err := usagereport.Build(context.Background(), store, prices, "USD", r)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(report.Buckets).To(Equal(top.Buckets), "groupTotals leaves the buckets as topGroups cut them")
		g.Expect(report.OtherGroups).To(Equal(3))
		g.Expect(report.GroupCount).To(Equal(4))
		g.Expect(report.GroupTotals).To(HaveLen(min(n, 4)))
		for i, b := range report.GroupTotals {
			m := b.Group[usage.ByModel]
			g.Expect(want).To(HaveKey(m))
			g.Expect(b.Start).To(BeTemporally("==", r.From))
			g.Expect(b.End).To(BeTemporally("==", r.To))
			g.Expect(b.Totals).To(Equal(want[m].totals), m)
			g.Expect(b.Cost).To(Equal(want[m].cost.String()), m)
			if i > 0 {
				before := decimal.RequireFromString(report.GroupTotals[i-1].Cost)
				g.Expect(before.GreaterThanOrEqual(decimal.RequireFromString(b.Cost))).To(BeTrue(), "the costliest first")
			}
		}
		g.Expect(report.GroupTotals[0].Group).To(Equal(top.Buckets[0].Group), "the group topGroups keeps is the first")
	}
}

// TestBadRequestsNameTheField: every refusal names the field to change.
func TestBadRequestsNameTheField(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for field, r := range map[string]usagereport.Request{
		"endTime":            {From: now, To: now},
		"timeZone":           {From: now, To: now.Add(time.Hour), TimeZone: "Mars/Olympus"},
		"granularity":        {From: now, To: now.AddDate(1, 0, 0), Granularity: usage.Hour},
		"groupBy[1]":         {From: now, To: now.Add(time.Hour), GroupBy: []usage.Dimension{usage.ByModel, "owner"}},
		"filter.projects[1]": {From: now, To: now.Add(time.Hour), Filter: usagereport.Filter{Projects: []string{"chatbot", ""}}},
		"topGroups":          {From: now, To: now.Add(time.Hour), TopGroups: -1},
		"groupTotals":        {From: now, To: now.Add(time.Hour), GroupTotals: -1},
	} {
		_, err := r.Validate()
		var invalid *usagereport.InvalidError
		g.Expect(errors.As(err, &invalid)).To(BeTrue(), field)
		g.Expect(invalid.Field).To(Equal(field))
	}
}

// TestSameDatesLastMonth: a month earlier is the same date and time, or the
// month's last day when it has no such date, never a rollover.
func TestSameDatesLastMonth(t *testing.T) {
	g := NewWithT(t)
	store, prices, _ := fixture(t, g)
	// October 31 to November 1: the same dates last month are September 30
	// to October 1, not October 1 to October 1.
	r := usagereport.Request{From: time.Date(2026, 10, 31, 0, 0, 0, 0, berlin), To: time.Date(2026, 11, 1, 0, 0, 0, 0, berlin),
		TimeZone: "Europe/Berlin", Compare: true}
	report, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.SameDatesLastMonth).NotTo(BeNil())
	g.Expect(usagereport.MonthEarlier(time.Date(2026, 3, 31, 10, 0, 0, 0, berlin), berlin)).To(
		BeTemporally("==", time.Date(2026, 2, 28, 10, 0, 0, 0, berlin)))
	g.Expect(usagereport.MonthEarlier(time.Date(2026, 10, 31, 0, 0, 0, 0, berlin), berlin)).To(
		BeTemporally("==", time.Date(2026, 9, 30, 0, 0, 0, 0, berlin)))
	g.Expect(usagereport.MonthEarlier(time.Date(2026, 1, 15, 8, 30, 0, 0, berlin), berlin)).To(
		BeTemporally("==", time.Date(2025, 12, 15, 8, 30, 0, 0, berlin)))
}

// TestReportSizeIsBounded: a report that would sum too many groups is
// refused with the field to change, not answered at any size.
func TestReportSizeIsBounded(t *testing.T) {
	g := NewWithT(t)
	store, prices, _ := fixture(t, g)
	r := usagereport.Request{From: time.Date(2026, 10, 23, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 27, 0, 0, 0, 0, berlin),
		Granularity: usage.Hour, TimeZone: "Europe/Berlin",
		GroupBy: []usage.Dimension{usage.ByProject, usage.ByKeyID, usage.ByService, usage.ByModel, usage.ByEndpoint}}
	defer usagereport.SetMaxRows(100)()
	_, err := usagereport.Build(context.Background(), store, prices, "USD", r)
	var invalid *usagereport.InvalidError
	g.Expect(errors.As(err, &invalid)).To(BeTrue(), "%v", err)
	g.Expect(invalid.Field).To(Equal("groupBy"))

	// By member, every store bucket (by key, service and model) is summed
	// before its key is folded into its owner: the bound is on them, each
	// counted once. A report of exactly as many is answered, one more is
	// refused.
	r.Granularity, r.GroupBy = usage.Day, []usage.Dimension{usagereport.ByMember}
	loc := mustZone(r.TimeZone)
	storeBuckets, err := store.Aggregate(context.Background(), usage.Query{From: r.From, To: r.To, Granularity: usage.Day, Location: loc,
		GroupBy: []usage.Dimension{usage.ByService, usage.ByModel, usage.ByKeyID}})
	g.Expect(err).NotTo(HaveOccurred())
	usagereport.SetMaxRows(len(storeBuckets))
	_, err = usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(err).NotTo(HaveOccurred(), "%d store buckets, at the bound", len(storeBuckets))
	usagereport.SetMaxRows(len(storeBuckets) - 1)
	_, err = usagereport.Build(context.Background(), store, prices, "USD", r)
	g.Expect(errors.As(err, &invalid)).To(BeTrue(), "%v", err)
}

// TestDividedPricesPriceBucketsWhole: a price that divides (video, per
// minute) rounds its quotient, so a bucket is priced whole, whatever parts
// the store sums it from (here two hours, one second of video each, in one
// day), while token prices add up part by part.
func TestDividedPricesPriceBucketsWhole(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, filepath.Join(t.TempDir(), "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = store.Close() })
	prices, err := pricing.New(&hubv1.PriceList{Video: &hubv1.VideoPricing{DefaultPerMinute: ptrAmount("0.45")},
		Chat: &hubv1.TokenPricing{Default: &hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"}}})
	g.Expect(err).NotTo(HaveOccurred())
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	events := make([]usage.Event, 0, 4)
	for i, at := range []time.Duration{time.Hour, 5 * time.Hour} {
		events = append(events,
			usage.Event{ID: fmt.Sprintf("v%d", i), Time: day.Add(at), Project: "p", KeyID: "Key0000001", StatusCode: 200,
				Service: pricing.Video, Endpoint: "/v1/video_generation", Model: "MiniMax-Hailuo-02", VideoSeconds: 1},
			usage.Event{ID: fmt.Sprintf("c%d", i), Time: day.Add(at), Project: "p", KeyID: "Key0000001", StatusCode: 200,
				Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: 333, OutputTokens: 77})
	}
	_, err = store.Insert(ctx, events)
	g.Expect(err).NotTo(HaveOccurred())
	cost := func(u pricing.Usage) decimal.Decimal { return prices.Cost(u).Amount }
	video := cost(pricing.Usage{Service: pricing.Video, Model: "MiniMax-Hailuo-02", VideoSeconds: 2})
	g.Expect(video.Equal(cost(pricing.Usage{Service: pricing.Video, Model: "MiniMax-Hailuo-02", VideoSeconds: 1}).Mul(decimal.NewFromInt(2)))).
		To(BeFalse(), "the example must round: two seconds priced whole cost other than twice one second")
	chat := cost(pricing.Usage{Service: pricing.Chat, Model: "MiniMax-M2", InputTokens: 666, OutputTokens: 154})
	for _, groupBy := range [][]usage.Dimension{nil, {usage.ByProject}, {usage.ByService}} {
		report, err := usagereport.Build(ctx, store, prices, "USD", usagereport.Request{From: day, To: day.AddDate(0, 0, 1),
			Granularity: usage.Day, GroupBy: groupBy})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(report.Total.Cost).To(Equal(video.Add(chat).String()), "grouped by %v", groupBy)
	}
}

// TestRecordsPageThroughEveryCall: pages of records, read on with each
// page's token, hold every stored call of the range once, in time order,
// each priced as it is alone.
func TestRecordsPageThroughEveryCall(t *testing.T) {
	g := NewWithT(t)
	store, prices, events := fixture(t, g)
	from, to := time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), time.Date(2026, 10, 25, 0, 0, 0, 0, berlin)
	want := map[string]string{}
	for _, e := range events {
		if !e.Time.Before(from) && e.Time.Before(to) && e.Project == "research" {
			want[e.ID] = prices.Cost(pricing.Usage{Service: e.Service, Model: e.Model, InputTokens: e.InputTokens,
				CachedInputTokens: e.CachedInputTokens, OutputTokens: e.OutputTokens, VideoSeconds: e.VideoSeconds}).Amount.String()
		}
	}
	got := map[string]string{}
	var last time.Time
	token, pages := "", 0
	for {
		page, err := usagereport.Records(context.Background(), store, prices, "USD", usagereport.RecordsRequest{From: from, To: to,
			Filter: usage.Filter{Project: "research"}, Limit: 37, Continue: token})
		g.Expect(err).NotTo(HaveOccurred())
		pages++
		for _, r := range page.Records {
			g.Expect(got).NotTo(HaveKey(r.ID), "every call once")
			g.Expect(r.Time.Before(last)).To(BeFalse(), "in time order")
			last = r.Time
			got[r.ID] = r.Cost
		}
		if page.Continue == "" {
			break
		}
		g.Expect(page.Records).To(HaveLen(37))
		token = page.Continue
	}
	g.Expect(got).To(Equal(want))
	g.Expect(pages).To(BeNumerically(">", 2))

	_, err := usagereport.Records(context.Background(), store, prices, "USD", usagereport.RecordsRequest{From: from, To: to, Continue: "garbage!"})
	var invalid *usagereport.InvalidError
	g.Expect(errors.As(err, &invalid)).To(BeTrue())
	g.Expect(invalid.Field).To(Equal("continue"))
}
