package usage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/testpg"
	"github.com/minimax/platform-hub/internal/usage"
)

// zones are IANA zones whose offsets are not whole hours, or change for
// daylight saving, or both.
var zones = []string{
	"UTC",
	"Asia/Kolkata",        // +05:30
	"Asia/Kathmandu",      // +05:45
	"America/St_Johns",    // -03:30, and -02:30 in summer
	"Australia/Lord_Howe", // +10:30, and +11:00 in summer (a half-hour shift)
	"Australia/Eucla",     // +08:45
	"Pacific/Chatham",     // +12:45, and +13:45 in summer
	"America/New_York",    // -05:00 / -04:00
	"Asia/Tehran",         // +03:30
	"Pacific/Kiritimati",  // +14:00
}

func storageEvent(id string, at time.Time, byteHours int64) usage.Event {
	return usage.Event{ID: id, Time: at, Project: "p1", KeyID: "k1", Service: pricing.Storage, Endpoint: "/v1/files",
		StorageByteHours: byteHours, StatusCode: 200}
}

var integritySuite = []storeCase{
	{"an event above a ceiling is refused, naming the field", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		for _, tc := range []struct {
			field string
			event usage.Event
		}{
			{"inputTokens", event("a", t0, "p1", "k1", "m", usage.MaxTokensPerCall+1, 0)},
			{"outputTokens", event("a", t0, "p1", "k1", "m", 0, math.MaxInt64)},
			{"storageByteHours", storageEvent("a", t0, usage.MaxStorageByteHoursPerEvent+1)},
			{"model", event("a", t0, "p1", "k1", "bad\x00model", 1, 1)},
			{"model", event("a", t0, "p1", "k1", "\xff\xfe", 1, 1)},
			{"time", event("a", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "p1", "k1", "m", 1, 1)},
		} {
			_, err := s.Insert(context.Background(), []usage.Event{tc.event})
			var fe *usage.FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%s: got %v", tc.field, err)
			g.Expect(fe.Field).To(Equal(tc.field))
			g.Expect(errors.Is(err, usage.ErrInvalidEvent)).To(BeTrue())
		}
		g.Expect(total(g, s)).To(Equal(usage.Totals{}))
	}},
	{"sums that would overflow saturate, and every query still answers", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		// 10,000 events at the ceiling are 10^19 byte-hours, beyond the
		// largest bigint (about 9.2 * 10^18): in one rollup row (two
		// batches into the same hour), across rows (two hours), and inside
		// an hour that a range cuts (summed from raw events).
		hour := t0.Truncate(time.Hour)
		for b := range 4 {
			batch := make([]usage.Event, 0, 5000)
			for i := range 5000 {
				at := hour.Add(time.Duration(i) * time.Second / 2)
				if b >= 2 {
					at = at.Add(time.Hour)
				}
				batch = append(batch, storageEvent(fmt.Sprintf("e%d-%d", b, i), at, usage.MaxStorageByteHoursPerEvent))
			}
			_, err := s.Insert(ctx, batch)
			g.Expect(err).NotTo(HaveOccurred())
		}
		for _, q := range []usage.Query{
			{From: hour, To: hour.Add(time.Hour)},
			{From: hour, To: hour.Add(2 * time.Hour)},
			{From: hour, To: hour.Add(2 * time.Hour), Granularity: usage.Hour, GroupBy: []usage.Dimension{usage.ByService}},
			{From: hour.Add(time.Second), To: hour.Add(time.Hour + 30*time.Minute)},
		} {
			buckets, err := s.Aggregate(ctx, q)
			g.Expect(err).NotTo(HaveOccurred(), "%+v", q)
			var sum usage.Totals
			for _, b := range buckets {
				g.Expect(b.StorageByteHours).To(BeNumerically(">", 0))
				sum.Add(b.Totals)
			}
			g.Expect(sum.StorageByteHours).To(BeEquivalentTo(int64(math.MaxInt64)), "%+v", q)
		}
		// The store keeps taking events into the saturated hour.
		_, err := s.Insert(ctx, []usage.Event{storageEvent("after", hour.Add(time.Minute), 1), event("chat", hour, "p1", "k1", "m", 3, 4)})
		g.Expect(err).NotTo(HaveOccurred())
		got := total(g, s)
		g.Expect(got.Calls).To(BeEquivalentTo(20_002))
		g.Expect(got.InputTokens).To(BeEquivalentTo(3))
	}},
	{"each event counts in exactly one billing cycle and one day, in every zone", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(11, 27))
		start := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
		span := 100 * 24 * time.Hour // across the March and April DST changes
		events := make([]usage.Event, 0, 3000)
		for i := range 3000 {
			at := start.Add(time.Duration(rng.Int64N(int64(span))))
			if i%3 == 0 {
				// Near a quarter hour, where cycles of odd zones start.
				at = at.Truncate(15 * time.Minute).Add(time.Duration(rng.IntN(5)-2) * time.Second)
			}
			events = append(events, event(fmt.Sprintf("e%d", i), at, "p1", fmt.Sprintf("k%d", i%3), "m", int64(1+i%5), 1))
		}
		locations := make([]*time.Location, 0, len(zones))
		for _, name := range zones {
			loc, err := time.LoadLocation(name)
			g.Expect(err).NotTo(HaveOccurred())
			locations = append(locations, loc)
		}
		for i := 0; i < len(events); i += 1000 {
			_, err := s.Insert(ctx, events[i:i+1000])
			g.Expect(err).NotTo(HaveOccurred())
			if i == 1000 {
				// The last batch comes late for the days before the
				// middle of the span, already rolled up, per key in UTC
				// and per project in every whole-hour offset of zones.
				g.Expect(s.RollUpDays(ctx, start.Add(span/2), locations...)).To(Succeed())
			}
		}
		count := func(from, to time.Time) (n int64) {
			for _, e := range events {
				if !e.Time.Before(from) && e.Time.Before(to) {
					n++
				}
			}
			return n
		}
		sum := func(q usage.Query) (n int64) {
			buckets, err := s.Aggregate(ctx, q)
			g.Expect(err).NotTo(HaveOccurred())
			for _, b := range buckets {
				n += b.Calls
			}
			return n
		}
		for _, name := range zones {
			loc, err := time.LoadLocation(name)
			g.Expect(err).NotTo(HaveOccurred())
			for _, day := range []int{1, 28} {
				var covered int64
				first := billing.CycleAt(start, day, loc)
				for c := first; c.Start.Before(start.Add(span)); c = billing.CycleAt(c.End, day, loc) {
					got := sum(usage.Query{From: c.Start, To: c.End, GroupBy: []usage.Dimension{usage.ByKeyID}})
					g.Expect(got).To(Equal(count(c.Start, c.End)), "%s, cycle from %s", name, c.Start)
					g.Expect(sum(usage.Query{From: c.Start, To: c.End, Granularity: usage.Day, Location: loc})).To(Equal(got),
						"%s, cycle from %s, per project by day", name, c.Start)
					covered += got
				}
				g.Expect(covered).To(BeEquivalentTo(len(events)), "%s: every event in one cycle", name)
			}
			// Daily buckets of one month agree with the events, day by day.
			from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
			to := from.AddDate(0, 1, 0)
			buckets, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Day, Location: loc})
			g.Expect(err).NotTo(HaveOccurred())
			var days int64
			for _, b := range buckets {
				local := b.Start.In(loc)
				g.Expect(local.Hour()*60+local.Minute()).To(BeZero(), "%s: a day starts at midnight", name)
				next := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, loc)
				g.Expect(b.Calls).To(Equal(count(b.Start, next)), "%s, day %s", name, b.Start)
				days += b.Calls
			}
			g.Expect(days).To(Equal(count(from, to)))
		}
	}},
	{"whole UTC days come from the daily rollups, which follow every write of the hourly ones", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		day := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
		insert := func(events ...usage.Event) {
			_, err := s.Insert(ctx, events)
			g.Expect(err).NotTo(HaveOccurred())
		}
		insert(event("a", day.Add(10*time.Hour), "p1", "k1", "m", 1, 0), event("b", day.Add(30*time.Hour), "p1", "k1", "m", 10, 0))
		g.Expect(s.RollUpDays(ctx, day.Add(2*24*time.Hour+time.Hour))).To(Succeed())
		// Late events for days rolled up: the same hour again (an update of
		// its rollup), and a day long past (a new one).
		insert(event("c", day.Add(10*time.Hour+time.Minute), "p1", "k1", "m", 100, 0))
		insert(event("d", day.Add(-20*24*time.Hour), "p2", "k2", "m", 1000, 0))
		g.Expect(s.RollUpDays(ctx, day.Add(2*24*time.Hour))).To(Succeed(), "again: nothing to add")
		days := func(from, to time.Time) map[string]int64 {
			buckets, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Day})
			g.Expect(err).NotTo(HaveOccurred())
			out := map[string]int64{}
			for _, b := range buckets {
				out[b.Start.Format(time.DateOnly)] = b.InputTokens
			}
			return out
		}
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{
			"2026-08-12": 1000, "2026-09-01": 101, "2026-09-02": 10}))
		g.Expect(days(day.Add(10*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{"2026-09-01": 101, "2026-09-02": 10}),
			"a day the range cuts comes from its hours")
		// Pruning rollups keeps the day that holds the first hour kept.
		g.Expect(s.Prune(ctx, time.Time{}, day.Add(12*time.Hour))).To(Succeed())
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{"2026-09-01": 101, "2026-09-02": 10}))
	}},
	{"days of the billing zone come from the per-project daily rollups, which follow every write", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		shanghai, err := time.LoadLocation("Asia/Shanghai") // +08:00: its days start at 16:00 UTC
		g.Expect(err).NotTo(HaveOccurred())
		day := time.Date(2026, 9, 1, 0, 0, 0, 0, shanghai)
		insert := func(events ...usage.Event) {
			_, err := s.Insert(ctx, events)
			g.Expect(err).NotTo(HaveOccurred())
		}
		insert(event("a", day.Add(10*time.Hour), "p1", "k1", "m", 1, 0), event("b", day.Add(30*time.Hour), "p1", "k2", "m", 10, 0),
			event("x", day.Add(10*time.Hour), "p2", "k3", "m", 10000, 0))
		g.Expect(s.RollUpDays(ctx, day.Add(2*24*time.Hour+time.Hour), shanghai)).To(Succeed())
		days := func(from, to time.Time) map[string]int64 {
			buckets, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Day, Location: shanghai})
			g.Expect(err).NotTo(HaveOccurred())
			out := map[string]int64{}
			for _, b := range buckets {
				out[b.Start.In(shanghai).Format(time.DateOnly)] = b.InputTokens
			}
			return out
		}
		// Read once, the days are cached: what follows must reach the
		// cache too.
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{"2026-09-01": 10001, "2026-09-02": 10}))
		// Late events for days rolled up: the same hour and key again (an
		// update of both hourly rollups), the same hour by another key (a
		// new per-key row, an update of the project's), and a day long
		// past.
		insert(event("c", day.Add(10*time.Hour+time.Minute), "p1", "k1", "m", 100, 0))
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{"2026-09-01": 10101, "2026-09-02": 10}))
		insert(event("c2", day.Add(10*time.Hour+2*time.Minute), "p1", "k9", "m", 10000000, 0))
		insert(event("d", day.Add(-20*24*time.Hour), "p1", "k2", "m", 1000, 0))
		g.Expect(s.RollUpDays(ctx, day.Add(2*24*time.Hour), shanghai)).To(Succeed(), "again: nothing to add")
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{
			"2026-08-12": 1000, "2026-09-01": 10010101, "2026-09-02": 10}))
		// Pruning the hours before the afternoon of 1 September (Shanghai)
		// leaves that day whole only in its daily rollup: its figures
		// there prove the day is read from it. The day of 12 August is
		// pruned, from the cache too.
		g.Expect(s.Prune(ctx, time.Time{}, day.Add(12*time.Hour))).To(Succeed())
		g.Expect(days(day.Add(-30*24*time.Hour), day.Add(2*24*time.Hour))).To(Equal(map[string]int64{
			"2026-09-01": 10010101, "2026-09-02": 10}))
		// A zone no longer asked for loses its days: the day is then read
		// from the hours left.
		g.Expect(s.RollUpDays(ctx, day.Add(2*24*time.Hour))).To(Succeed())
		g.Expect(days(day, day.Add(2*24*time.Hour))).To(Equal(map[string]int64{"2026-09-02": 10}))
	}},
	{"minute buckets come from raw events; an hour whose events are pruned counts whole in the minute it starts", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		h := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
		_, err := s.Insert(ctx, []usage.Event{
			event("a", h.Add(5*time.Minute+20*time.Second), "p1", "k1", "m", 1, 0),
			event("b", h.Add(5*time.Minute+40*time.Second), "p1", "k2", "m", 2, 0),
			event("c", h.Add(59*time.Minute+59*time.Second), "p1", "k1", "m", 4, 0),
			event("d", h.Add(90*time.Minute), "p1", "k1", "m", 8, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		minutes := func(from, to time.Time) map[string]int64 {
			buckets, err := s.Aggregate(ctx, usage.Query{From: from, To: to, Granularity: usage.Minute, Location: time.FixedZone("+0545", 345*60),
				GroupBy: []usage.Dimension{usage.ByModel}})
			g.Expect(err).NotTo(HaveOccurred())
			out := map[string]int64{}
			for _, b := range buckets {
				out[b.Start.UTC().Format("15:04:05")] += b.InputTokens
			}
			return out
		}
		g.Expect(minutes(h, h.Add(2*time.Hour))).To(Equal(map[string]int64{"10:05:00": 3, "10:59:00": 4, "11:30:00": 8}))
		g.Expect(minutes(h.Add(5*time.Minute+30*time.Second), h.Add(time.Hour))).To(Equal(map[string]int64{"10:05:00": 2, "10:59:00": 4}),
			"the range's ends cut minutes exactly")
		g.Expect(s.Prune(ctx, h.Add(70*time.Minute), time.Time{})).To(Succeed())
		g.Expect(minutes(h, h.Add(2*time.Hour))).To(Equal(map[string]int64{"10:00:00": 7, "11:00:00": 8}))
		g.Expect(minutes(h.Add(30*time.Minute), h.Add(2*time.Hour))).To(Equal(map[string]int64{"11:00:00": 8}),
			"an hour counts in the range that holds its start")
	}},
	{"once raw events are pruned, a cut hour counts whole in the range holding its start", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		kolkata, _ := time.LoadLocation("Asia/Kolkata")
		// A cycle boundary at 18:30 UTC; events on either side of it.
		boundary := time.Date(2026, 9, 30, 18, 30, 0, 0, time.UTC)
		_, err := s.Insert(ctx, []usage.Event{
			event("before", boundary.Add(-10*time.Minute), "p1", "k1", "m", 1, 0),
			event("after", boundary.Add(10*time.Minute), "p1", "k1", "m", 2, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		september := billing.CycleAt(boundary.Add(-time.Hour), 1, kolkata)
		october := billing.CycleAt(boundary, 1, kolkata)
		in := func(c billing.Cycle) int64 {
			b, err := s.Aggregate(ctx, usage.Query{From: c.Start, To: c.End})
			g.Expect(err).NotTo(HaveOccurred())
			var n int64
			for _, x := range b {
				n += x.InputTokens
			}
			return n
		}
		g.Expect([]int64{in(september), in(october)}).To(Equal([]int64{1, 2}), "exact while the events are kept")
		g.Expect(s.Prune(ctx, boundary.Add(time.Hour), time.Time{})).To(Succeed())
		g.Expect([]int64{in(september), in(october)}).To(Equal([]int64{3, 0}),
			"the hour 18:00-19:00 UTC counts once, in September, where it starts")
	}},
	{"flags are stored with the event", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		e := event("f", t0, "p1", "k1", "m", 0, 0)
		e.Flags = []usage.Flag{usage.FlagUsageMalformed, usage.FlagStreamIncomplete}
		_, err := s.Insert(ctx, []usage.Event{e})
		g.Expect(err).NotTo(HaveOccurred())
		var got []usage.Event
		g.Expect(s.Events(ctx, usage.EventFilter{From: t0, To: t0.Add(time.Second)}, func(e usage.Event) error {
			got = append(got, e)
			return nil
		})).To(Succeed())
		g.Expect(got).To(Equal([]usage.Event{e}))
		e.ID, e.Flags = "g", []usage.Flag{"made_up"}
		_, err = s.Insert(ctx, []usage.Event{e})
		g.Expect(err).To(MatchError(ContainSubstring("flags")))
	}},
	{"cached input tokens are stored, summed and bounded by the input", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		a, b := event("c1", t0, "p1", "k1", "m", 100, 5), event("c2", t0.Add(time.Hour), "p1", "k1", "m", 50, 5)
		a.CachedInputTokens, b.CachedInputTokens = 60, 50
		_, err := s.Insert(ctx, []usage.Event{a, b})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(total(g, s)).To(Equal(usage.Totals{Calls: 2, InputTokens: 150, CachedInputTokens: 110, OutputTokens: 10}))
		// A range that cuts an hour sums raw events.
		buckets, err := s.Aggregate(ctx, usage.Query{From: t0, To: t0.Add(time.Minute)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(buckets).To(HaveLen(1))
		g.Expect(buckets[0].CachedInputTokens).To(Equal(int64(60)))
		var got []usage.Event
		g.Expect(s.Events(ctx, usage.EventFilter{From: t0, To: t0.Add(2 * time.Hour)}, func(e usage.Event) error {
			got = append(got, e)
			return nil
		})).To(Succeed())
		g.Expect(got).To(Equal([]usage.Event{a, b}))
		over := event("c3", t0, "p1", "k1", "m", 10, 0)
		over.CachedInputTokens = 11
		_, err = s.Insert(ctx, []usage.Event{over})
		g.Expect(err).To(MatchError(ContainSubstring("cachedInputTokens: must be between 0 and inputTokens (10), not 11")))
	}},
	{"quarantined events are kept, and count in no usage", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		e := event("q1", t0, "p1", "k1", "m", 5, 5)
		g.Expect(s.Quarantine(ctx, []usage.Event{e}, "the store refused it: boom")).To(Succeed())
		g.Expect(s.Quarantine(ctx, []usage.Event{e}, "again")).To(Succeed())
		q, err := s.Quarantined(ctx, 10)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(q).To(HaveLen(1))
		g.Expect(q[0].Event).To(Equal(e))
		g.Expect(q[0].Reason).To(Equal("the store refused it: boom"))
		g.Expect(total(g, s)).To(Equal(usage.Totals{}))
	}},
}

func init() { storeSuite = append(storeSuite, integritySuite...) }

// TestOlderSchemaIsUpgraded opens stores whose tables predate the flags
// and cached input columns: the columns are added, old rows read as
// unflagged and uncached, and old rollups count with new ones.
func TestOlderSchemaIsUpgraded(t *testing.T) {
	oldSchema := []string{`CREATE TABLE usage_events (id TEXT PRIMARY KEY, ts BIGINT NOT NULL, project TEXT NOT NULL,
		key_id TEXT NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL,
		input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, video_seconds BIGINT NOT NULL,
		storage_byte_hours BIGINT NOT NULL, status_code INTEGER NOT NULL)`,
		fmt.Sprintf(`INSERT INTO usage_events VALUES ('old', %d, 'p1', 'k1', 'chat', '/v1/chat/completions', 'm', 1, 2, 0, 0, 200)`,
			t0.UnixMicro()),
		`CREATE TABLE usage_hourly (hour BIGINT NOT NULL, project TEXT NOT NULL, key_id TEXT NOT NULL, service TEXT NOT NULL,
		model TEXT NOT NULL, endpoint TEXT NOT NULL, calls BIGINT NOT NULL, input_tokens BIGINT NOT NULL,
		output_tokens BIGINT NOT NULL, video_seconds BIGINT NOT NULL, storage_byte_hours BIGINT NOT NULL,
		PRIMARY KEY (hour, project, key_id, service, model, endpoint))`,
		fmt.Sprintf(`INSERT INTO usage_hourly VALUES (%d, 'p1', 'k1', 'chat', 'm', '/v1/chat/completions', 1, 1, 2, 0, 0)`,
			t0.Truncate(time.Hour).Unix()),
	}
	ctx := context.Background()
	for name, open := range map[string]func(t *testing.T) (*sql.DB, func() (usage.Store, error)){
		"sqlite": func(t *testing.T) (*sql.DB, func() (usage.Store, error)) {
			path := filepath.Join(t.TempDir(), "usage.db")
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() (usage.Store, error) { return usage.OpenSQLite(ctx, path) }
		},
		"postgres": func(t *testing.T) (*sql.DB, func() (usage.Store, error)) {
			dsn, err := pg.NewDatabase(ctx, fmt.Sprintf("old%d", time.Now().UnixNano()))
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() (usage.Store, error) { return usage.OpenPostgres(ctx, dsn) }
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			db, reopen := open(t)
			defer func() { _ = db.Close() }()
			for _, stmt := range oldSchema {
				_, err := db.ExecContext(ctx, stmt)
				g.Expect(err).NotTo(HaveOccurred())
			}
			s, err := reopen()
			g.Expect(err).NotTo(HaveOccurred())
			defer func() { _ = s.Close() }()
			flagged := event("new", t0.Add(time.Second), "p1", "k1", "m", 10, 1)
			flagged.Flags, flagged.CachedInputTokens = []usage.Flag{usage.FlagUsageMissing}, 4
			_, err = s.Insert(ctx, []usage.Event{flagged})
			g.Expect(err).NotTo(HaveOccurred())
			var got []usage.Event
			g.Expect(s.Events(ctx, usage.EventFilter{From: t0, To: t0.Add(time.Hour)}, func(e usage.Event) error {
				got = append(got, e)
				return nil
			})).To(Succeed())
			g.Expect(got).To(HaveLen(2))
			g.Expect(got[0].ID).To(Equal("old"))
			g.Expect(got[0].Flags).To(BeEmpty())
			g.Expect(got[0].CachedInputTokens).To(BeZero())
			g.Expect(got[1]).To(Equal(flagged))
			g.Expect(total(g, s)).To(Equal(usage.Totals{Calls: 2, InputTokens: 11, CachedInputTokens: 4, OutputTokens: 3}),
				"the old hour's rollup and the new event's count together")
			// Opening again changes nothing.
			s2, err := reopen()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s2.Close()).To(Succeed())
		})
	}
}

// TestDayCacheSeesOtherReplicas: two stores on one database (two server
// replicas) each cache days and closed hours; a late event one stores
// reaches the other's next read.
func TestDayCacheSeesOtherReplicas(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range testpg.Databases(pg) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			shared := db(t)
			writer, err := usage.New(ctx, shared)
			g.Expect(err).NotTo(HaveOccurred())
			store, err := usage.New(ctx, shared)
			g.Expect(err).NotTo(HaveOccurred())
			reader := sumChecked{store, t}
			day := time.Date(2026, 9, 1, 0, 0, 0, 0, shanghai)
			_, err = writer.Insert(ctx, []usage.Event{event("a", day.Add(time.Hour), "p1", "k1", "m", 1, 0)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(writer.RollUpDays(ctx, day.Add(3*24*time.Hour), shanghai)).To(Succeed())
			read := func() int64 {
				buckets, err := reader.Aggregate(ctx, usage.Query{From: day, To: day.Add(2 * 24 * time.Hour), Granularity: usage.Day,
					Location: shanghai})
				g.Expect(err).NotTo(HaveOccurred())
				var n int64
				for _, b := range buckets {
					n += b.InputTokens
				}
				return n
			}
			// Hour buckets read closed hours, which are cached too.
			hours := func() int64 {
				buckets, err := reader.Aggregate(ctx, usage.Query{From: day, To: day.Add(4 * time.Hour), Granularity: usage.Hour})
				g.Expect(err).NotTo(HaveOccurred())
				var n int64
				for _, b := range buckets {
					n += b.InputTokens
				}
				return n
			}
			g.Expect(read()).To(BeEquivalentTo(1))
			g.Expect(read()).To(BeEquivalentTo(1), "from the cache")
			g.Expect(hours()).To(BeEquivalentTo(1))
			g.Expect(hours()).To(BeEquivalentTo(1), "from the cache")
			// The same periods by project (rows folded into a shape of
			// the cache) and filtered by model (every row).
			byProject := func(model string) map[string]int64 {
				buckets, err := reader.Aggregate(ctx, usage.Query{From: day, To: day.Add(2 * 24 * time.Hour), Granularity: usage.Day,
					Location: shanghai, GroupBy: []usage.Dimension{usage.ByProject}, Filter: usage.Filter{Model: model}})
				g.Expect(err).NotTo(HaveOccurred())
				out := map[string]int64{}
				for _, b := range buckets {
					out[b.Group[usage.ByProject]] += b.InputTokens
				}
				return out
			}
			g.Expect(byProject("")).To(Equal(map[string]int64{"p1": 1}))
			g.Expect(byProject("m")).To(Equal(map[string]int64{"p1": 1}))
			_, err = writer.Insert(ctx, []usage.Event{event("b", day.Add(2*time.Hour), "p2", "k2", "m", 10, 0)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(read()).To(BeEquivalentTo(11))
			g.Expect(hours()).To(BeEquivalentTo(11))
			g.Expect(byProject("")).To(Equal(map[string]int64{"p1": 1, "p2": 10}))
			g.Expect(byProject("m")).To(Equal(map[string]int64{"p1": 1, "p2": 10}))
			_, err = writer.Insert(ctx, []usage.Event{event("c", day.Add(time.Hour+time.Minute), "p1", "k1", "m", 100, 0)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hours()).To(BeEquivalentTo(111), "an hour already written to, and cached, written again")

			// The zone dropped (its days with it), a late event meanwhile
			// for its second day (cached empty, at its first version), the
			// zone back: the day is rolled up again, at a version the
			// reader never cached.
			g.Expect(writer.RollUpDays(ctx, day.Add(3*24*time.Hour))).To(Succeed())
			_, err = writer.Insert(ctx, []usage.Event{event("d", day.Add(26*time.Hour), "p1", "k1", "m", 1000, 0)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(writer.RollUpDays(ctx, day.Add(3*24*time.Hour), shanghai)).To(Succeed())
			g.Expect(read()).To(BeEquivalentTo(1111))

			// A day not rolled up yet reads its closed hours, summed
			// together as one span; a late event in one of them reaches the
			// reader.
			today := day.Add(5 * 24 * time.Hour)
			for i, tokens := range []int64{1, 2, 4} {
				_, err = writer.Insert(ctx, []usage.Event{event(fmt.Sprintf("t%d", i), today.Add(time.Duration(i+1)*time.Hour), "p1", "k1", "m", tokens, 0)})
				g.Expect(err).NotTo(HaveOccurred())
			}
			g.Expect(writer.RollUpDays(ctx, today.Add(5*time.Hour), shanghai)).To(Succeed())
			sofar := func() map[string]int64 {
				buckets, err := reader.Aggregate(ctx, usage.Query{From: today, To: today.Add(24 * time.Hour), Granularity: usage.Day,
					Location: shanghai, GroupBy: []usage.Dimension{usage.ByProject}})
				g.Expect(err).NotTo(HaveOccurred())
				out := map[string]int64{}
				for _, b := range buckets {
					out[b.Group[usage.ByProject]] += b.InputTokens
				}
				return out
			}
			g.Expect(sofar()).To(Equal(map[string]int64{"p1": 7}))
			hits := usage.SpanHits(store)
			g.Expect(sofar()).To(Equal(map[string]int64{"p1": 7}), "from the cache")
			g.Expect(usage.SpanHits(store)).To(BeNumerically(">", hits), "the hours read as one span, from the cache")
			_, err = writer.Insert(ctx, []usage.Event{event("t9", today.Add(2*time.Hour+time.Minute), "p2", "k2", "m", 10, 0)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sofar()).To(Equal(map[string]int64{"p1": 7, "p2": 10}))
		})
	}
}

// TestPeriodCacheUnderConcurrentQueries: queries of several shapes read
// the same cached days and spans of hours at once while late events
// arrive (the race detector watches the cache); once the writes stop,
// every shape answers what a store with an empty cache answers.
func TestPeriodCacheUnderConcurrentQueries(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range testpg.Databases(pg) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			shared := db(t)
			store, err := usage.New(ctx, shared)
			g.Expect(err).NotTo(HaveOccurred())
			day := time.Date(2026, 9, 1, 0, 0, 0, 0, shanghai)
			events := make([]usage.Event, 0, 200)
			for i := range 200 {
				events = append(events, event(fmt.Sprintf("e%d", i), day.Add(time.Duration(i)*37*time.Minute), fmt.Sprintf("p%d", i%7),
					fmt.Sprintf("k%d", i%11), fmt.Sprintf("m%d", i%3), int64(i), 1))
			}
			_, err = store.Insert(ctx, events)
			g.Expect(err).NotTo(HaveOccurred())
			// Days before the fourth are rolled up, the fourth's hours up
			// to 20:00 closed.
			g.Expect(store.RollUpDays(ctx, day.Add(3*24*time.Hour+20*time.Hour), shanghai)).To(Succeed())
			queries := []usage.Query{
				{GroupBy: []usage.Dimension{usage.ByProject}},
				{GroupBy: []usage.Dimension{usage.ByModel, usage.ByProject}},
				{},
				{Filter: usage.Filter{Model: "m1"}, GroupBy: []usage.Dimension{usage.ByProject}},
			}
			for i := range queries {
				queries[i].From, queries[i].To, queries[i].Granularity, queries[i].Location = day, day.Add(4*24*time.Hour), usage.Day, shanghai
			}
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 20 {
						if _, err := store.Aggregate(ctx, queries[(w+i)%len(queries)]); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			for i := range 10 {
				late := event(fmt.Sprintf("late%d", i), day.Add(time.Duration(i)*7*time.Hour), "p1", "k1", "m1", 1000, 1)
				_, err := store.Insert(ctx, []usage.Event{late})
				g.Expect(err).NotTo(HaveOccurred())
			}
			wg.Wait()
			fresh, err := usage.New(ctx, shared)
			g.Expect(err).NotTo(HaveOccurred())
			for _, q := range queries {
				want, err := fresh.Aggregate(ctx, q)
				g.Expect(err).NotTo(HaveOccurred())
				got, err := store.Aggregate(ctx, q)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal(want), "%+v", q)
			}
		})
	}
}
