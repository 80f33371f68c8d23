package usage

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"
)

// The period cache keeps per-project days and closed hours in memory, as
// read from usage_project_daily and usage_project_hourly. A day that is
// over, or an hour the server's leader has closed (hourly: the hours
// before the current one), changes only when usage arrives late for it,
// or when it is pruned or its day's offset dropped, and each of these
// bumps its version (usage_project_day_versions, usage_project_hour_versions)
// in the same transaction, through the same triggers. A query reads the
// versions of its periods first (a row each) and then only the periods
// whose version it has not cached; a period without a version is read from
// the database each time. Readers on other replicas see a late write once
// it is committed, as they would without the cache. A dashboard's month by
// project (about 3,000 rows a day at 1,000 projects) and today's hours are
// then summed in Go in milliseconds instead of read again.
//
// Beside a period's rows the cache keeps them summed over the columns a
// query leaves out (a shape: the group columns it keeps), once a query of
// that shape has read them: a report by project reads a day's 1,000
// projects instead of its 3,000 rows, and its comparisons, which group by
// service and model only, a handful. They share the period's version and
// go with it.

// versionsSchema creates the tables of the versions of per-project days
// and closed hours.
var versionsSchema = []string{`CREATE TABLE IF NOT EXISTS usage_project_day_versions (
		utc_offset BIGINT NOT NULL,
		day BIGINT NOT NULL,
		version BIGINT NOT NULL,
		PRIMARY KEY (utc_offset, day))` + "%TABLE_OPTIONS%",
	`CREATE TABLE IF NOT EXISTS usage_project_hour_versions (
		hour BIGINT PRIMARY KEY,
		version BIGINT NOT NULL)` + "%TABLE_OPTIONS%"}

// metaHoursClosedBefore names, in usage_meta, the UTC hour (Unix seconds)
// before which per-project hours are closed: a write to one bumps its
// version.
const metaHoursClosedBefore = "project_hours_closed_before"

// cachedPeriods is one kind of cached period: per-project days of an
// offset, or per-project hours.
type cachedPeriods struct {
	table    rollupTable
	versions string // the table of their versions
	hours    bool
	offset   int64 // of days
}

// periodsOfDays are the per-project days of offset.
func periodsOfDays(offset int64) cachedPeriods {
	return cachedPeriods{table: projectDailyRollups, versions: "usage_project_day_versions", offset: offset}
}

// projectHours are the per-project closed hours.
var projectHours = cachedPeriods{table: projectHourlyRollups, versions: "usage_project_hour_versions", hours: true}

// length is a period's, in seconds.
func (c cachedPeriods) length() int64 {
	if c.hours {
		return 3600
	}
	return secondsPerDay
}

// where is the SQL condition on a table of theirs (rows or versions) of
// the periods of runs.
func (c cachedPeriods) where(runs []dayRun) string {
	return daysSQL(c.table.start, !c.hours, runs)
}

// maxCachedRows bounds the rows the period cache holds (about 100 bytes
// each): 500,000 are about 160 days of 1,000 projects with three models.
// The periods used longest ago go first.
const maxCachedRows = 500_000

// periodCache is a store's cache of per-project days and closed hours.
// Safe for concurrent use.
type periodCache struct {
	mu    sync.Mutex
	days  map[periodKey]*cachedPeriod
	rows  int
	clock int64 // counts reads, for evicting the least recently used
	// names interns the group values, which repeat from day to day.
	names map[string]string
	// spanHits counts the spans read from the cache (for tests).
	spanHits int64
}

// periodKey keys a cached period: its start and, for a day, its
// offset. A span of closed hours summed together has its end too, and the
// shape it is summed in.
type periodKey struct {
	hours       bool
	offset, day int64
	to          int64
	sh          shape
}

// cachedPeriod is a cached period's rows at a version (a span's: the
// fingerprint of its hours' versions).
type cachedPeriod struct {
	version, used int64
	rows          []periodRow
	// folded are rows summed into fewer groups, by shape.
	folded map[shape][]periodRow
}

// size is how many rows the period holds, its folded ones included.
func (d *cachedPeriod) size() int {
	n := len(d.rows)
	for _, rows := range d.folded {
		n += len(rows)
	}
	return n
}

// shape is the group columns a query keeps of a period row: bit i stands
// for periodRow.values()[i].
type shape uint8

// allColumns is the shape that keeps every column: the period's own rows.
const allColumns shape = 1<<len([4]string{}) - 1

// shapeOf is the shape of a query's group columns, given by their
// positions in periodRow.values.
func shapeOf(indexes []int) shape {
	var sh shape
	for _, i := range indexes {
		sh |= 1 << i
	}
	return sh
}

// fold sums rows into the groups of sh: each folded row keeps the values
// of sh's columns and has the others empty.
func fold(rows []periodRow, sh shape) []periodRow {
	index := make(map[[4]string]int, len(rows)/2)
	var out []periodRow
	for i := range rows {
		values := rows[i].values()
		for j := range values {
			if sh&(1<<j) == 0 {
				values[j] = ""
			}
		}
		at, ok := index[values]
		if !ok {
			at = len(out)
			index[values] = at
			out = append(out, periodRow{project: values[0], service: values[1], model: values[2], endpoint: values[3]})
		}
		out[at].t.Add(rows[i].t)
	}
	return out
}

// periodRow is a row of usage_project_daily: its group and its figures.
type periodRow struct {
	project, service, model, endpoint string
	t                                 Totals
}

// values are the row's group values, in the order of
// projectHourlyRollups.groupColumns.
func (r *periodRow) values() [4]string { return [4]string{r.project, r.service, r.model, r.endpoint} }

// groupIndexes are the positions in periodRow.values of groupCols.
func groupIndexes(groupCols []string) []int {
	cols := projectHourlyRollups.groupColumns()
	out := make([]int, len(groupCols))
	for i, c := range groupCols {
		out[i] = slices.Index(cols, c)
	}
	return out
}

// matches tells whether the row passes f (per-project filters only).
func (r *periodRow) matches(f Filter) bool {
	return (f.Project == "" || f.Project == r.project) && (f.Service == "" || f.Service == r.service) &&
		(f.Model == "" || f.Model == r.model) && (f.Endpoint == "" || f.Endpoint == r.endpoint)
}

// Limits on what a query reads through the period cache. A query of one
// project reads its rows through the rollups' (project, start) index
// instead (a spending cap's, every minute), and a longer one would push
// out of the cache what dashboards read.
const (
	maxCachedDaysPerQuery  = 93 // a quarter
	maxCachedHoursPerQuery = 48
)

// cacheable tells whether q reads runs (of periods of length seconds)
// through the period cache.
func cacheable(q Query, runs []dayRun, length int64, most int) bool {
	if q.Project != "" {
		return false
	}
	var n int64
	for _, r := range runs {
		n += (r.to - r.from) / length
	}
	return n <= int64(most)
}

// sumCachedDays adds the per-project days of runs to acc, from the cache
// where it holds their current version.
func (s *sqlStore) sumCachedDays(ctx context.Context, q Query, groupCols []string, runs []dayRun, acc sink) error {
	for _, run := range runs {
		if err := s.sumCached(ctx, q, groupCols, periodsOfDays(run.offset), run, acc); err != nil {
			return err
		}
	}
	return nil
}

// sumCached adds the periods of c in run to acc, from the cache where it
// holds their current version.
func (s *sqlStore) sumCached(ctx context.Context, q Query, groupCols []string, c cachedPeriods, run dayRun, acc sink) error {
	group := make([]string, len(groupCols))
	indexes := groupIndexes(groupCols)
	add := func(start int64, rows []periodRow) {
		bucket := bucketStart(time.Unix(start, 0), q)
		for i := range rows {
			r := &rows[i]
			if !r.matches(q.Filter) {
				continue
			}
			values := r.values()
			for j, at := range indexes {
				group[j] = values[at]
			}
			acc.add(bucket, group, r.t)
		}
	}
	// A query filtered within the rows reads them all; any other reads
	// them folded into its shape.
	sh := shapeOf(indexes)
	if q.Project != "" || q.Service != "" || q.Model != "" || q.Endpoint != "" {
		sh = allColumns
	}
	versions, err := s.periodVersions(ctx, c, run)
	if err != nil {
		return err
	}
	// Closed hours that fall in one bucket (today's, in a report by day)
	// are added as one span, summed once while their versions hold.
	spans := s.hourSpans(q, c, run, versions, sh)
	rows, err := s.periodRows(ctx, c, run, versions, sh, spans)
	if err != nil {
		return err
	}
	for start := run.from; start < run.to; start += c.length() {
		if rows, ok := rows[start]; ok {
			add(start, rows)
		}
	}
	return nil
}

// periodRows are the rows of the periods of c in run, in shape sh, by
// start: from the cache where it holds their version, else from the
// database. A span's hours are summed together under its first hour,
// cached as one while their versions hold.
func (s *sqlStore) periodRows(ctx context.Context, c cachedPeriods, run dayRun, versions map[int64]int64, sh shape,
	spans map[int64]span) (map[int64][]periodRow, error) {
	out := map[int64][]periodRow{}
	var missing []int64
	for start := run.from; start < run.to; {
		if sp, ok := spans[start]; ok {
			if rows, ok := s.periods.get(sp.key, map[int64]int64{start: sp.fingerprint}, allColumns); ok {
				out[start] = rows
				delete(spans, start) // summed already
				start = sp.key.to
				continue
			}
		}
		if rows, ok := s.periods.get(periodKey{hours: c.hours, offset: c.offset, day: start}, versions, sh); ok {
			out[start] = rows
		} else {
			missing = append(missing, start)
		}
		start += c.length()
	}
	if len(missing) > 0 {
		loaded, err := s.readPeriods(ctx, c, missing)
		if err != nil {
			return nil, err
		}
		for _, start := range missing {
			out[start] = loaded[start]
			if v, ok := versions[start]; ok {
				out[start] = s.periods.put(periodKey{hours: c.hours, offset: c.offset, day: start}, v, loaded[start], sh)
			}
		}
	}
	for first, sp := range spans {
		var parts []periodRow
		for h := first; h < sp.key.to; h += c.length() {
			parts = append(parts, out[h]...)
			delete(out, h)
		}
		out[first] = s.periods.putSpan(sp.key, sp.fingerprint, fold(parts, sh))
	}
	return out, nil
}

// span is a run of two or more closed hours that fall in one bucket, each
// with a version: it is summed, and cached, as one.
type span struct {
	key         periodKey
	fingerprint int64
}

// hourSpans are the spans of the closed hours of run, by first hour, for
// a query of buckets longer than an hour; a period's rows in shape sh.
func (s *sqlStore) hourSpans(q Query, c cachedPeriods, run dayRun, versions map[int64]int64, sh shape) map[int64]span {
	if !c.hours || q.Granularity == Hour || q.Granularity == Minute {
		return nil
	}
	spans := map[int64]span{}
	for first := run.from; first < run.to; {
		bucket := bucketStart(time.Unix(first, 0), q)
		end := first
		fingerprint := fnv.New64a()
		for ; end < run.to; end += 3600 {
			v, ok := versions[end]
			if !ok || !bucketStart(time.Unix(end, 0), q).Equal(bucket) {
				break
			}
			_ = binary.Write(fingerprint, binary.BigEndian, [2]int64{end, v})
		}
		if end-first >= 2*3600 {
			spans[first] = span{key: periodKey{hours: true, day: first, to: end, sh: sh}, fingerprint: int64(fingerprint.Sum64())}
		}
		first = max(end, first+3600)
	}
	return spans
}

// periodVersions reads the versions of the periods of c in run.
func (s *sqlStore) periodVersions(ctx context.Context, c cachedPeriods, run dayRun) (map[int64]int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+c.table.start+", version FROM "+c.versions+" WHERE "+c.where([]dayRun{run}))
	if err != nil {
		return nil, fmt.Errorf("reading the versions of usage periods: %w", err)
	}
	defer func() { _ = rows.Close() }()
	versions := map[int64]int64{}
	for rows.Next() {
		var start, v int64
		if err := rows.Scan(&start, &v); err != nil {
			return nil, err
		}
		versions[start] = v
	}
	return versions, rows.Err()
}

// readPeriods reads the rows of the periods of c that start at starts (in
// order), by start.
func (s *sqlStore) readPeriods(ctx context.Context, c cachedPeriods, starts []int64) (map[int64][]periodRow, error) {
	var runs []dayRun
	for _, d := range starts {
		if n := len(runs); n > 0 && runs[n-1].to == d {
			runs[n-1].to += c.length()
		} else {
			runs = append(runs, dayRun{c.offset, d, d + c.length()})
		}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+c.table.start+", project, service, model, endpoint, "+totalsColumns+
		" FROM "+c.table.name+" WHERE "+c.where(runs))
	if err != nil {
		return nil, fmt.Errorf("reading usage periods: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[int64][]periodRow{}
	for rows.Next() {
		var start int64
		var r periodRow
		t := &r.t
		if err := rows.Scan(&start, &r.project, &r.service, &r.model, &r.endpoint,
			&t.Calls, &t.InputTokens, &t.CachedInputTokens, &t.OutputTokens, &t.VideoSeconds, &t.StorageByteHours); err != nil {
			return nil, fmt.Errorf("reading usage periods: %w", err)
		}
		out[start] = append(out[start], r)
	}
	return out, rows.Err()
}

// get returns the cached rows of a period in shape sh if the cache holds
// the version versions give; a period whose version changed or is gone is
// dropped. Rows not folded into sh yet are folded, and kept.
func (c *periodCache) get(k periodKey, versions map[int64]int64, sh shape) ([]periodRow, bool) {
	c.mu.Lock()
	d, ok := c.days[k]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	if v, ok := versions[k.day]; !ok || v != d.version {
		c.drop(k)
		c.mu.Unlock()
		return nil, false
	}
	c.clock++
	d.used = c.clock
	if k.to != 0 {
		c.spanHits++
	}
	if sh == allColumns {
		c.mu.Unlock()
		return d.rows, true
	}
	if rows, ok := d.folded[sh]; ok {
		c.mu.Unlock()
		return rows, true
	}
	rows := d.rows // never changed once cached: folded outside the lock
	c.mu.Unlock()
	folded := fold(rows, sh)
	c.keepFolded(k, d, sh, folded)
	return folded, true
}

// put caches the rows of a period at a version, evicting the periods used
// longest ago while the cache would hold too many rows, and returns them
// in shape sh.
func (c *periodCache) put(k periodKey, version int64, rows []periodRow, sh shape) []periodRow {
	if len(rows) > maxCachedRows {
		if sh == allColumns {
			return rows
		}
		return fold(rows, sh)
	}
	kept := make([]periodRow, len(rows))
	c.mu.Lock()
	if c.days == nil {
		c.days, c.names = map[periodKey]*cachedPeriod{}, map[string]string{}
	}
	for i, r := range rows {
		r.project, r.service, r.model, r.endpoint = c.intern(r.project), c.intern(r.service), c.intern(r.model), c.intern(r.endpoint)
		kept[i] = r
	}
	if _, ok := c.days[k]; ok {
		c.drop(k)
	}
	c.makeRoom(len(kept))
	c.clock++
	d := &cachedPeriod{version: version, used: c.clock, rows: kept}
	c.days[k] = d
	c.rows += len(kept)
	c.mu.Unlock()
	if sh == allColumns {
		return kept
	}
	folded := fold(kept, sh)
	c.keepFolded(k, d, sh, folded)
	return folded
}

// putSpan caches the rows of a span of hours summed together (in its
// shape) at the fingerprint of its hours' versions, and returns them.
func (c *periodCache) putSpan(k periodKey, fingerprint int64, rows []periodRow) []periodRow {
	if len(rows) > maxCachedRows {
		return rows
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.days == nil {
		c.days, c.names = map[periodKey]*cachedPeriod{}, map[string]string{}
	}
	if _, ok := c.days[k]; ok {
		c.drop(k)
	}
	c.makeRoom(len(rows))
	c.clock++
	c.days[k] = &cachedPeriod{version: fingerprint, used: c.clock, rows: rows}
	c.rows += len(rows)
	return rows
}

// keepFolded keeps rows folded into sh beside the period d of k, if d is
// still the one cached.
func (c *periodCache) keepFolded(k periodKey, d *cachedPeriod, sh shape, rows []periodRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.days[k] != d || d.folded[sh] != nil {
		return
	}
	c.makeRoom(len(rows))
	if c.days[k] != d { // evicted to make room
		return
	}
	if d.folded == nil {
		d.folded = map[shape][]periodRow{}
	}
	d.folded[sh] = rows
	c.rows += len(rows)
}

// makeRoom evicts the periods used longest ago while the cache would hold
// too many rows with n more. The caller holds mu.
func (c *periodCache) makeRoom(n int) {
	for c.rows+n > maxCachedRows && len(c.days) > 0 {
		var oldest periodKey
		first := true
		for key, d := range c.days {
			if first || d.used < c.days[oldest].used {
				oldest, first = key, false
			}
		}
		c.drop(oldest)
	}
}

// drop forgets the period of k. The caller holds mu.
func (c *periodCache) drop(k periodKey) {
	c.rows -= c.days[k].size()
	delete(c.days, k)
}

func (c *periodCache) intern(s string) string {
	if v, ok := c.names[s]; ok {
		return v
	}
	s = strings.Clone(s)
	c.names[s] = s
	return s
}

// bumpDayVersionsSQL is the statement that bumps the version of each day
// of the per-project rollups that the per-project hourly row NEW adds to
// (the triggers' second statement).
const bumpDayVersionsSQL = "INSERT INTO usage_project_day_versions (utc_offset, day, version) " +
	"SELECT o.utc_offset, NEW.hour - (NEW.hour + o.utc_offset) % 86400, 1 FROM usage_day_offsets o " +
	"WHERE NEW.hour < o.rolled_up_before ON CONFLICT (utc_offset, day) DO UPDATE SET version = usage_project_day_versions.version + 1"

// bumpHourVersionSQL is the statement that bumps the version of the
// closed per-project hour NEW (the triggers' statement).
const bumpHourVersionSQL = "INSERT INTO usage_project_hour_versions (hour, version) VALUES (NEW.hour, 1) " +
	"ON CONFLICT (hour) DO UPDATE SET version = usage_project_hour_versions.version + 1"

// closeHours closes the per-project hours before before (a UTC hour):
// each gets a version, and a write to it from now on bumps it. It keeps
// writers out meanwhile, so that no hour is written between.
func (s *sqlStore) closeHours(ctx context.Context, before int64) error {
	return s.whileWritersWait(ctx, func(tx *sql.Tx) error {
		closed, err := s.metaValue(ctx, tx, metaHoursClosedBefore)
		if err != nil || closed >= before {
			return err
		}
		p := s.d.Placeholder
		_, err = tx.ExecContext(ctx, "INSERT INTO usage_project_hour_versions (hour, version) SELECT DISTINCT hour, 1 FROM usage_project_hourly "+
			"WHERE hour >= "+p(1)+" AND hour < "+p(2)+" ON CONFLICT (hour) DO NOTHING", closed, before)
		if err != nil {
			return fmt.Errorf("closing usage hours: %w", err)
		}
		return s.setMeta(ctx, tx, metaHoursClosedBefore, before)
	})
}

// metaPeriodsPrunedBefore names, in usage_meta, the UTC hour (Unix
// seconds) before which the versions of per-project periods were bumped
// for their pruning.
const metaPeriodsPrunedBefore = "project_periods_pruned_before"

// bumpPruned bumps the versions of the per-project hours before hour, and
// of the days that end by then, that were pruned since the last call.
// Versions are never deleted, so that a period written again after its
// pruning (usage older than retention, arriving late) never finds a
// version a cache still holds.
func (s *sqlStore) bumpPruned(ctx context.Context, hour int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	prev, err := s.metaValue(ctx, tx, metaPeriodsPrunedBefore)
	if err != nil || prev >= hour {
		return err
	}
	p := s.d.Placeholder
	_, err1 := tx.ExecContext(ctx, "UPDATE usage_project_hour_versions SET version = version + 1 WHERE hour >= "+p(1)+
		" AND hour < "+p(2), prev, hour)
	_, err2 := tx.ExecContext(ctx, "UPDATE usage_project_day_versions SET version = version + 1 WHERE day > "+p(1)+
		" AND day <= "+p(2), prev-secondsPerDay, hour-secondsPerDay)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("recording the pruning of usage periods: %w", err)
	}
	if err := s.setMeta(ctx, tx, metaPeriodsPrunedBefore, hour); err != nil {
		return err
	}
	return tx.Commit()
}

// bumpDayVersion bumps the version of one day, in tx.
func (s *sqlStore) bumpDayVersion(ctx context.Context, tx *sql.Tx, offset, day int64) error {
	p := s.d.Placeholder
	_, err := tx.ExecContext(ctx, "INSERT INTO usage_project_day_versions (utc_offset, day, version) VALUES ("+p(1)+", "+p(2)+
		", 1) ON CONFLICT (utc_offset, day) DO UPDATE SET version = usage_project_day_versions.version + 1", offset, day)
	if err != nil {
		return fmt.Errorf("recording a change of a usage day: %w", err)
	}
	return nil
}

// lockVersions locks the versions of periods (days, then hours, each in
// order), creating those that are missing (see lockForTriggers).
func (s *sqlStore) lockVersions(ctx context.Context, tx *sql.Tx, periods []periodKey) error {
	p := s.d.Placeholder
	for _, d := range periods {
		var err error
		if d.hours {
			_, err = tx.ExecContext(ctx, "INSERT INTO usage_project_hour_versions (hour, version) VALUES ("+p(1)+
				", 0) ON CONFLICT (hour) DO UPDATE SET version = usage_project_hour_versions.version", d.day)
		} else {
			_, err = tx.ExecContext(ctx, "INSERT INTO usage_project_day_versions (utc_offset, day, version) VALUES ("+p(1)+", "+p(2)+
				", 0) ON CONFLICT (utc_offset, day) DO UPDATE SET version = usage_project_day_versions.version", d.offset, d.day)
		}
		if err != nil {
			return fmt.Errorf("locking the versions of usage periods: %w", err)
		}
	}
	return nil
}
