package usage

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// columnOrder is the order of the rollups' group columns.
var columnOrder = hourlyRollups.groupColumns()

var dimensionColumns = map[Dimension]string{
	ByProject: projectField, ByKeyID: "key_id", ByService: "service", ByModel: "model", ByEndpoint: "endpoint",
}

// Aggregate implements Store.
//
// Every event counts in exactly one bucket, and in exactly one of two
// adjacent ranges, whatever the time zone. Whole UTC hours inside the range
// come from the hourly rollups. An hour that the range's ends or a bucket
// boundary cut (a billing cycle that starts at midnight in Asia/Kolkata,
// +05:30; a report from 10:07) is summed from its raw events instead, each
// part into its own bucket. Where the raw events of such an hour have been
// pruned, its rollup counts whole, in the range and bucket that hold the
// hour's start: still once, though placed by the hour rather than by the
// event.
//
// Groups are summed in the order of the rollups' columns, whatever the
// order q lists them in, so that the database reads rows in the order it
// groups them (a third faster than sorting them first).
func (s *sqlStore) Aggregate(ctx context.Context, q Query) ([]Bucket, error) {
	q, groupCols, err := inColumnOrder(q)
	if err != nil {
		return nil, err
	}
	if !q.From.Before(q.To) {
		return nil, nil
	}
	acc := &bucketSet{q: q, index: map[string]int{}}
	if err := s.sum(ctx, q, groupCols, acc); err != nil {
		return nil, err
	}
	return acc.sorted(), nil
}

// Sum adds up q as Aggregate does, and hands the sums to fn in parts as it
// reads them, in no order.
func (s *sqlStore) Sum(ctx context.Context, q Query, fn func(start time.Time, group []string, t Totals)) error {
	sorted, groupCols, err := inColumnOrder(q)
	if err != nil {
		return err
	}
	// The parts come grouped in column order; fn gets q's.
	at := make([]int, len(q.GroupBy))
	for i, d := range q.GroupBy {
		at[i] = slices.Index(sorted.GroupBy, d)
	}
	group := make([]string, len(at))
	return s.sum(ctx, sorted, groupCols, sinkFunc(func(start time.Time, values []string, t Totals) {
		for i, j := range at {
			group[i] = values[j]
		}
		fn(start, group, t)
	}))
}

// inColumnOrder checks q's dimensions and returns q with them in the order
// of the rollups' columns, which are its group columns, and its defaults
// set.
func inColumnOrder(q Query) (Query, []string, error) {
	for _, d := range q.GroupBy {
		if _, ok := dimensionColumns[d]; !ok {
			return q, nil, fmt.Errorf("unknown dimension %q", d)
		}
	}
	q.GroupBy = slices.Clone(q.GroupBy)
	slices.SortFunc(q.GroupBy, func(a, b Dimension) int {
		return cmp.Compare(slices.Index(columnOrder, dimensionColumns[a]), slices.Index(columnOrder, dimensionColumns[b]))
	})
	groupCols := make([]string, 0, len(q.GroupBy))
	for _, d := range q.GroupBy {
		groupCols = append(groupCols, dimensionColumns[d])
	}
	if q.Location == nil {
		q.Location = time.UTC
	}
	return q, groupCols, nil
}

// sum adds up q, whose GroupBy is in column order (inColumnOrder), into
// acc.
func (s *sqlStore) sum(ctx context.Context, q Query, groupCols []string, acc sink) error {
	if !q.From.Before(q.To) {
		return nil
	}
	if q.Granularity == Minute {
		return s.sumMinutes(ctx, q, groupCols, acc)
	}
	plan := planHours(q)
	if len(plan.split) > 0 {
		horizon, err := s.eventsPrunedBefore(ctx)
		if err != nil {
			return err
		}
		plan.resolve(horizon)
	}
	level := levelOf(q)
	bounds, err := s.dayBounds(ctx, s.db, level.daily)
	if err != nil {
		return err
	}
	days := plan.wholeDays(q, bounds)
	if err := s.sumDailyRollups(ctx, q, groupCols, level.daily, days, acc); err != nil {
		return err
	}
	if err := s.sumRollups(ctx, q, groupCols, level.hourly, plan, days, acc); err != nil {
		return err
	}
	return s.sumSplitHours(ctx, q, groupCols, plan, acc)
}

// sink receives a query's sums, in parts: group holds the values of the
// query's GroupBy, and is reused between calls.
type sink interface {
	add(start time.Time, group []string, t Totals)
}

// sinkFunc is a function as a sink.
type sinkFunc func(start time.Time, group []string, t Totals)

func (f sinkFunc) add(start time.Time, group []string, t Totals) { f(start, group, t) }

// hourPlan says where the usage of each UTC hour that meets a query's range
// comes from.
type hourPlan struct {
	// first and end bound the hours looked at, [first, end), in Unix
	// seconds.
	first, end int64
	// split are the hours cut by the range's ends or by bucket boundaries,
	// in time order.
	split []splitHour
}

// splitHour is an hour that a query's range or buckets cut.
type splitHour struct {
	start time.Time
	// bounds are the ends of its parts inside the range, in order: part i is
	// [bounds[i], bounds[i+1]).
	bounds []time.Time
	// fromRollup is set when its raw events may be pruned: the hour then
	// counts whole, from its rollup, if it starts inside the range.
	fromRollup bool
}

// planHours finds the hours of q's range that need raw events.
func planHours(q Query) *hourPlan {
	first := q.From.Truncate(time.Hour)
	end := q.To.Truncate(time.Hour)
	if end.Before(q.To) {
		end = end.Add(time.Hour)
	}
	cuts := map[int64][]time.Time{}
	cut := func(t time.Time) {
		if h := t.Truncate(time.Hour); !h.Equal(t) {
			cuts[h.Unix()] = append(cuts[h.Unix()], t)
		}
	}
	cut(q.From)
	cut(q.To)
	for _, b := range boundaries(q) {
		cut(b)
	}
	plan := &hourPlan{first: first.Unix(), end: end.Unix()}
	for hour, inner := range cuts {
		start := time.Unix(hour, 0).UTC()
		stop := start.Add(time.Hour)
		bounds := []time.Time{laterOf(start, q.From)}
		slices.SortFunc(inner, time.Time.Compare)
		for _, c := range inner {
			if c.After(bounds[len(bounds)-1]) && c.Before(stop) && c.Before(q.To) {
				bounds = append(bounds, c)
			}
		}
		bounds = append(bounds, earlierOf(stop, q.To))
		plan.split = append(plan.split, splitHour{start: start, bounds: bounds})
	}
	slices.SortFunc(plan.split, func(a, b splitHour) int { return a.start.Compare(b.start) })
	return plan
}

// resolve marks the split hours whose raw events may be pruned.
func (p *hourPlan) resolve(eventsPrunedBefore time.Time) {
	for i := range p.split {
		p.split[i].fromRollup = p.split[i].start.Before(eventsPrunedBefore)
	}
}

// notFromRollups lists, as SQL, the hours the rollups must not give: split
// hours summed from events, and pruned split hours that start before the
// range (they belong to the range before).
func (p *hourPlan) notFromRollups(from time.Time) string {
	var hours []string
	for _, h := range p.split {
		if !h.fromRollup || h.start.Before(from) {
			hours = append(hours, strconv.FormatInt(h.start.Unix(), 10))
		}
	}
	if len(hours) == 0 {
		return ""
	}
	return " AND hour NOT IN (" + strings.Join(hours, ", ") + ")"
}

// boundaries are the bucket boundaries strictly inside q's range: local
// midnights for days, first days of months for months. Hour buckets are UTC
// hours, whose boundaries never cut an hour.
func boundaries(q Query) []time.Time {
	var next func(time.Time) time.Time
	switch q.Granularity {
	case Day:
		next = func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, q.Location) }
	case Month:
		next = func(t time.Time) time.Time { return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, q.Location) }
	default:
		return nil
	}
	var out []time.Time
	for b := next(bucketStart(q.From, q)); b.Before(q.To); b = next(b) {
		out = append(out, b)
	}
	return out
}

// bucketStart is the start of the bucket of q that holds t.
func bucketStart(t time.Time, q Query) time.Time {
	local := t.In(q.Location)
	switch q.Granularity {
	case Minute:
		return t.UTC().Truncate(time.Minute)
	case Hour:
		return t.UTC().Truncate(time.Hour)
	case Day:
		return time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, q.Location)
	case Month:
		return time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, q.Location)
	}
	return q.From
}

// rollupLevel is the hourly and daily rollups a query reads.
type rollupLevel struct{ hourly, daily rollupTable }

// levelOf is the level of rollups that answers q: per project, unless q
// asks about keys (grouped or filtered by key, or by the keys' owners).
func levelOf(q Query) rollupLevel {
	if q.KeyID != "" || q.Owners != nil || slices.Contains(q.GroupBy, ByKeyID) {
		return rollupLevel{hourlyRollups, dailyRollups}
	}
	return rollupLevel{projectHourlyRollups, projectDailyRollups}
}

// dayRun is a run of whole days of one UTC offset (seconds east), [from,
// to) in Unix seconds, that the daily rollups give.
type dayRun struct{ offset, from, to int64 }

// secondsPerDay is the length of a day of a fixed UTC offset: Unix time
// has no leap seconds.
const secondsPerDay = 24 * 60 * 60

// wholeDays finds the days that can come from the daily rollups, walking
// the hours looked at from the first: a day of one of the offsets rolled
// up that starts at the hour, is rolled up (ends at or before its
// offset's bound), lies inside the hours looked at, has no split hour and
// lies in one bucket is taken whole; otherwise the hour comes from the
// hourly rollups. Hour buckets take no days. A day bucket in the
// organization's zone is one day of its offset, except the days a DST
// change makes 23 or 25 hours long; a 30-day report reads 24 times fewer
// rows so.
func (p *hourPlan) wholeDays(q Query, bounds []dayBound) []dayRun {
	if q.Granularity == Hour || len(bounds) == 0 {
		return nil
	}
	split := make(map[int64]bool, len(p.split))
	for _, h := range p.split {
		split[h.start.Unix()] = true
	}
	whole := func(day int64) bool {
		for h := day; h < day+secondsPerDay; h += 3600 {
			if split[h] {
				return false
			}
		}
		return bucketStart(time.Unix(day, 0), q).Equal(bucketStart(time.Unix(day+secondsPerDay-1, 0), q))
	}
	var runs []dayRun
	for t := p.first; t+secondsPerDay <= p.end; {
		i := slices.IndexFunc(bounds, func(b dayBound) bool {
			return (t+b.offset)%secondsPerDay == 0 && t+secondsPerDay <= b.before
		})
		if i < 0 || !whole(t) {
			t += 3600
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].to == t && runs[n-1].offset == bounds[i].offset {
			runs[n-1].to += secondsPerDay
		} else {
			runs = append(runs, dayRun{bounds[i].offset, t, t + secondsPerDay})
		}
		t += secondsPerDay
	}
	return runs
}

// daysSQL is the SQL condition of being in one of runs: on col (a day or
// an hour), and, where offsets is set, on utc_offset.
func daysSQL(col string, offsets bool, runs []dayRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("(%s >= %d AND %s < %d)", col, r.from, col, r.to)
		if offsets {
			parts[i] = fmt.Sprintf("(utc_offset = %d AND %s >= %d AND %s < %d)", r.offset, col, r.from, col, r.to)
		}
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// sumDailyRollups adds the daily rollups of the whole days.
func (s *sqlStore) sumDailyRollups(ctx context.Context, q Query, groupCols []string, daily rollupTable, days []dayRun, acc sink) error {
	if len(days) == 0 {
		return nil
	}
	if daily == projectDailyRollups && cacheable(q, days, secondsPerDay, maxCachedDaysPerQuery) {
		return s.sumCachedDays(ctx, q, groupCols, days, acc)
	}
	where, args := s.filterSQL(daysSQL(daily.start, daily.offsets, days), nil, q.Filter)
	keys := strings.Join(append([]string{daily.start}, groupCols...), ", ")
	summed := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s GROUP BY %s`, keys, sumsOf(totalsColumns), daily.name, where, keys)
	raw := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s`, keys, totalsColumns, daily.name, where)
	return s.sumRows(ctx, s.db, summed, raw, args, len(groupCols), func(day int64, group []string, t Totals) {
		acc.add(bucketStart(time.Unix(day, 0), q), group, t)
	})
}

// sumRollups adds the hourly rollups of the hours that come whole from
// them, except the whole days the daily rollups gave.
func (s *sqlStore) sumRollups(ctx context.Context, q Query, groupCols []string, hourly rollupTable, plan *hourPlan, days []dayRun,
	acc sink) error {
	// The hours between the days, as ranges the database finds in its
	// index (a condition of not being in the days would have it read
	// every hour of the range).
	var gaps []dayRun
	from := plan.first
	for _, d := range append(days, dayRun{from: plan.end, to: plan.end}) {
		if from < d.from {
			gaps = append(gaps, dayRun{from: from, to: d.from})
		}
		from = d.to
	}
	if hourly == projectHourlyRollups {
		var err error
		if gaps, err = s.sumClosedHours(ctx, q, groupCols, plan, gaps, acc); err != nil {
			return err
		}
	}
	if len(gaps) == 0 {
		return nil // all of it came from the daily rollups, or the cache
	}
	where, args := s.filterSQL(daysSQL(hourly.start, false, gaps)+plan.notFromRollups(q.From), nil, q.Filter)
	keys := strings.Join(append([]string{hourly.start}, groupCols...), ", ")
	summed := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s GROUP BY %s`, keys, sumsOf(totalsColumns), hourly.name, where, keys)
	raw := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s`, keys, totalsColumns, hourly.name, where)
	return s.sumRows(ctx, s.db, summed, raw, args, len(groupCols), func(hour int64, group []string, t Totals) {
		acc.add(bucketStart(time.Unix(hour, 0), q), group, t)
	})
}

// sumClosedHours adds the closed per-project hours of gaps (through the
// period cache), except the hours the rollups must not give, and returns
// the parts of gaps left: the hours not closed yet.
func (s *sqlStore) sumClosedHours(ctx context.Context, q Query, groupCols []string, plan *hourPlan, gaps []dayRun,
	acc sink) ([]dayRun, error) {
	closed, err := s.metaValue(ctx, s.db, metaHoursClosedBefore)
	if err != nil {
		return nil, err
	}
	skip := map[int64]bool{}
	for _, h := range plan.split {
		if !h.fromRollup || h.start.Before(q.From) {
			skip[h.start.Unix()] = true
		}
	}
	var open, cached []dayRun
	for _, g := range gaps {
		for h := g.from; h < min(g.to, closed); h += 3600 {
			if skip[h] {
				continue
			}
			if n := len(cached); n > 0 && cached[n-1].to == h {
				cached[n-1].to += 3600
			} else {
				cached = append(cached, dayRun{from: h, to: h + 3600})
			}
		}
		if g.to > closed {
			open = append(open, dayRun{from: max(g.from, closed), to: g.to})
		}
	}
	if !cacheable(q, cached, 3600, maxCachedHoursPerQuery) {
		return gaps, nil
	}
	for _, run := range cached {
		if err := s.sumCached(ctx, q, groupCols, projectHours, run, acc); err != nil {
			return nil, err
		}
	}
	return open, nil
}

// maxSegmentsPerQuery bounds the parts of split hours one query sums, and
// so the size of its CASE expression.
const maxSegmentsPerQuery = 200

// sumSplitHours adds the parts of the split hours, summed from raw events,
// and the pruned split hours that start in the range (from their rollups,
// which sumRollups already gave).
func (s *sqlStore) sumSplitHours(ctx context.Context, q Query, groupCols []string, plan *hourPlan, acc sink) error {
	type segment struct{ from, to time.Time }
	var segments []segment
	for _, h := range plan.split {
		if h.fromRollup {
			continue
		}
		for i := 0; i+1 < len(h.bounds); i++ {
			segments = append(segments, segment{h.bounds[i], h.bounds[i+1]})
		}
	}
	for len(segments) > 0 {
		chunk := segments[:min(len(segments), maxSegmentsPerQuery)]
		segments = segments[len(chunk):]
		var which, in strings.Builder
		which.WriteString("CASE")
		for i, seg := range chunk {
			from, to := seg.from.UnixMicro(), seg.to.UnixMicro()
			fmt.Fprintf(&which, " WHEN ts < %d THEN %d", to, i)
			if i > 0 {
				in.WriteString(" OR ")
			}
			fmt.Fprintf(&in, "(ts >= %d AND ts < %d)", from, to)
		}
		which.WriteString(" END")
		where, args := s.filterSQL("("+in.String()+")", nil, q.Filter)
		groups, ordinals := "", "1"
		for i, col := range groupCols {
			groups += ", " + col
			ordinals += ", " + strconv.Itoa(i+2)
		}
		summed := fmt.Sprintf(`SELECT %s%s, COUNT(*), %s FROM usage_events WHERE %s GROUP BY %s`,
			which.String(), groups, sumsOf(eventTotalsColumns), where, ordinals)
		raw := fmt.Sprintf(`SELECT %s%s, 1, %s FROM usage_events WHERE %s`, which.String(), groups, eventTotalsColumns, where)
		err := s.sumRows(ctx, s.db, summed, raw, args, len(groupCols), func(i int64, group []string, t Totals) {
			acc.add(bucketStart(chunk[i].from, q), group, t)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eventTotalsColumns are the columns of an event that Totals sums besides
// calls, in the order of Totals.
const eventTotalsColumns = "input_tokens, cached_input_tokens, output_tokens, video_seconds, storage_byte_hours"

// sumsOf is the SUM of each of the comma-separated columns.
func sumsOf(columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = "SUM(" + c + ")"
	}
	return strings.Join(cols, ", ")
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sumMinutes adds up a query of minute buckets: from raw events, by the
// minute of each, except for the hours whose raw events may be pruned,
// which count whole from their rollups in the minute they start (and in
// the range that holds that minute).
func (s *sqlStore) sumMinutes(ctx context.Context, q Query, groupCols []string, acc sink) error {
	horizon, err := s.eventsPrunedBefore(ctx)
	if err != nil {
		return err
	}
	// Hours from rollups: those that start in the range, before the first
	// whole hour of raw events.
	firstRaw := horizon.Truncate(time.Hour)
	if firstRaw.Before(horizon) {
		firstRaw = firstRaw.Add(time.Hour)
	}
	if rollupTo := earlierOf(firstRaw, q.To); q.From.Before(rollupTo) {
		first := q.From.Truncate(time.Hour)
		if first.Before(q.From) {
			first = first.Add(time.Hour)
		}
		plan := &hourPlan{first: first.Unix(), end: rollupTo.Truncate(time.Hour).Unix()}
		if rollupTo.After(rollupTo.Truncate(time.Hour)) {
			plan.end += 3600 // the hour that holds the range's end starts in it
		}
		if err := s.sumRollups(ctx, q, groupCols, levelOf(q).hourly, plan, nil, acc); err != nil {
			return err
		}
	}
	from := laterOf(q.From, firstRaw)
	if !from.Before(q.To) {
		return nil
	}
	minute := "ts / 60000000"
	args := []any{from.UnixMicro(), q.To.UnixMicro()}
	where, args := s.filterSQL(fmt.Sprintf("ts >= %s AND ts < %s", s.d.Placeholder(1), s.d.Placeholder(2)), args, q.Filter)
	groups, ordinals := "", "1"
	for i, col := range groupCols {
		groups += ", " + col
		ordinals += ", " + strconv.Itoa(i+2)
	}
	summed := fmt.Sprintf(`SELECT %s%s, COUNT(*), %s FROM usage_events WHERE %s GROUP BY %s`,
		minute, groups, sumsOf(eventTotalsColumns), where, ordinals)
	raw := fmt.Sprintf(`SELECT %s%s, 1, %s FROM usage_events WHERE %s`, minute, groups, eventTotalsColumns, where)
	return s.sumRows(ctx, s.db, summed, raw, args, len(groupCols), func(m int64, group []string, t Totals) {
		acc.add(time.Unix(m*60, 0).UTC(), group, t)
	})
}

// sumRows runs summed (on db), a query of rows (key, group values..., then the
// figures of Totals in order), and gives each
// row to add once all are read. When the database cannot sum (SQLite stops
// on an integer overflow; PostgreSQL's sum of bigints can exceed a bigint),
// it runs raw, the same rows unsummed, and sums them here, saturating.
func (s *sqlStore) sumRows(ctx context.Context, db querier, summed, raw string, args []any, groups int,
	add func(key int64, group []string, t Totals)) error {
	type row struct {
		key   int64
		group []string
		t     Totals
	}
	var rows []row
	collect := func(key int64, group []string, t Totals) {
		rows = append(rows, row{key, slices.Clone(group), t})
	}
	err := s.scanUsage(ctx, db, summed, args, groups, collect)
	if err != nil && ctx.Err() == nil {
		// Sums too large for the database: sum here. A database that is
		// down fails this query too, and that error is returned.
		rows = rows[:0]
		sums := map[string]int{}
		err = s.scanUsage(ctx, db, raw, args, groups, func(key int64, group []string, t Totals) {
			k := strconv.FormatInt(key, 10) + "\x00" + strings.Join(group, "\x00")
			i, ok := sums[k]
			if !ok {
				rows = append(rows, row{key: key, group: slices.Clone(group)})
				i = len(rows) - 1
				sums[k] = i
			}
			rows[i].t.Add(t)
		})
	}
	if err != nil {
		return fmt.Errorf("aggregating usage: %w", err)
	}
	for _, r := range rows {
		add(r.key, r.group, r.t)
	}
	return nil
}

// scanUsage runs a query of usage rows and calls fn for each; group is
// reused between calls.
func (s *sqlStore) scanUsage(ctx context.Context, db querier, query string, args []any, groups int, fn func(int64, []string, Totals)) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	var key int64
	var t Totals
	group := make([]string, groups)
	dest := make([]any, 0, 1+groups+6)
	dest = append(dest, &key)
	for i := range group {
		dest = append(dest, &group[i])
	}
	dest = append(dest, &t.Calls, &t.InputTokens, &t.CachedInputTokens, &t.OutputTokens, &t.VideoSeconds, &t.StorageByteHours)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		fn(key, group, t)
	}
	return rows.Err()
}

// eventsPrunedBefore is the instant before which raw events may have been
// pruned (the zero time if never).
func (s *sqlStore) eventsPrunedBefore(ctx context.Context) (time.Time, error) {
	var micros int64
	err := s.db.QueryRowContext(ctx, "SELECT value FROM usage_meta WHERE name = "+s.d.Placeholder(1), metaEventsPrunedBefore).Scan(&micros)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("reading how far usage events are pruned: %w", err)
	}
	return time.UnixMicro(micros), nil
}

// bucketSet gathers the buckets of one query.
type bucketSet struct {
	q     Query
	index map[string]int
	// keys are the buckets' keys in index (start, then group), in the
	// order of buckets.
	keys    []string
	buckets []Bucket
	buf     []byte
}

// add adds t to the bucket of start and group. Its key is built in a
// reused buffer and looked up without a copy (Go does not allocate for
// m[string(b)]): a month of a thousand projects adds some 100,000 rows.
func (b *bucketSet) add(start time.Time, group []string, t Totals) {
	b.buf = binary.BigEndian.AppendUint64(b.buf[:0], uint64(start.UnixNano())^(1<<63))
	for _, v := range group {
		b.buf = append(append(b.buf, v...), 0)
	}
	i, ok := b.index[string(b.buf)]
	if !ok {
		g := make(map[Dimension]string, len(b.q.GroupBy))
		for j, d := range b.q.GroupBy {
			g[d] = group[j]
		}
		b.buckets = append(b.buckets, Bucket{Start: start, Group: g})
		i = len(b.buckets) - 1
		key := string(b.buf)
		b.index[key] = i
		b.keys = append(b.keys, key)
	}
	b.buckets[i].Add(t)
}

// sorted returns the buckets by start, then by group: the order of their
// keys, whose start is big-endian with the sign bit flipped.
func (b *bucketSet) sorted() []Bucket {
	order := make([]int, len(b.buckets))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(b.keys[x], b.keys[y]) })
	out := make([]Bucket, len(order))
	for i, j := range order {
		out[i] = b.buckets[j]
	}
	return out
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
