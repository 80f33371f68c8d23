package usage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The day cache keeps per-project days in memory, as read from
// usage_project_daily. A day that is over changes only when usage arrives
// late for it, or when it is pruned or its offset dropped, and each of
// these bumps the day's version in usage_project_day_versions in the same
// transaction. A query reads the versions of its days first (a row a day)
// and then only the days whose version it has not cached; a day without a
// version is read from the database each time. Readers on other replicas
// see a late write once it is committed, as they would without the cache.
// A dashboard's month by project (about 3,000 rows a day at 1,000 projects)
// is then summed in Go in a few milliseconds instead of read again.

// dayVersionsSchema creates the table of the per-project days' versions.
var dayVersionsSchema = []string{`CREATE TABLE IF NOT EXISTS usage_project_day_versions (
		utc_offset BIGINT NOT NULL,
		day BIGINT NOT NULL,
		version BIGINT NOT NULL,
		PRIMARY KEY (utc_offset, day))` + "%TABLE_OPTIONS%"}

// maxCachedDayRows bounds the rows the day cache holds (about 100 bytes
// each): 500,000 are about 160 days of 1,000 projects with three models.
// The days used longest ago go first.
const maxCachedDayRows = 500_000

// dayCache is a store's cache of per-project days. Safe for concurrent
// use.
type dayCache struct {
	mu    sync.Mutex
	days  map[cachedDayKey]*cachedDay
	rows  int
	clock int64 // counts reads, for evicting the least recently used
	// names interns the group values, which repeat from day to day.
	names map[string]string
}

type cachedDayKey struct{ offset, day int64 }

type cachedDay struct {
	version, used int64
	rows          []dayRow
}

// dayRow is a row of usage_project_daily: its group and its figures.
type dayRow struct {
	project, service, model, endpoint string
	t                                 Totals
}

// value is the row's value of a column of the per-project rollups.
func (r *dayRow) value(col string) string {
	switch col {
	case dimensionColumns[ByProject]:
		return r.project
	case dimensionColumns[ByService]:
		return r.service
	case dimensionColumns[ByModel]:
		return r.model
	}
	return r.endpoint
}

// matches tells whether the row passes f (per-project filters only).
func (r *dayRow) matches(f Filter) bool {
	return (f.Project == "" || f.Project == r.project) && (f.Service == "" || f.Service == r.service) &&
		(f.Model == "" || f.Model == r.model) && (f.Endpoint == "" || f.Endpoint == r.endpoint)
}

// sumCachedDays adds the per-project days of runs to acc, from the cache
// where it holds their current version.
func (s *sqlStore) sumCachedDays(ctx context.Context, q Query, groupCols []string, runs []dayRun, acc *bucketSet) error {
	group := make([]string, len(groupCols))
	add := func(day int64, rows []dayRow) {
		start := bucketStart(time.Unix(day, 0), q)
		for i := range rows {
			r := &rows[i]
			if !r.matches(q.Filter) {
				continue
			}
			for j, c := range groupCols {
				group[j] = r.value(c)
			}
			acc.add(start, group, r.t)
		}
	}
	for _, run := range runs {
		versions, err := s.dayVersions(ctx, run)
		if err != nil {
			return err
		}
		var missing []int64
		for day := run.from; day < run.to; day += secondsPerDay {
			if rows, ok := s.days.get(cachedDayKey{run.offset, day}, versions); ok {
				add(day, rows)
			} else {
				missing = append(missing, day)
			}
		}
		if len(missing) == 0 {
			continue
		}
		loaded, err := s.readDays(ctx, run.offset, missing)
		if err != nil {
			return err
		}
		for _, day := range missing {
			add(day, loaded[day])
			if v, ok := versions[day]; ok {
				s.days.put(cachedDayKey{run.offset, day}, v, loaded[day])
			}
		}
	}
	return nil
}

// dayVersions reads the versions of the days of run.
func (s *sqlStore) dayVersions(ctx context.Context, run dayRun) (map[int64]int64, error) {
	p := s.d.Placeholder
	rows, err := s.db.QueryContext(ctx, "SELECT day, version FROM usage_project_day_versions WHERE utc_offset = "+p(1)+
		" AND day >= "+p(2)+" AND day < "+p(3), run.offset, run.from, run.to)
	if err != nil {
		return nil, fmt.Errorf("reading the versions of usage days: %w", err)
	}
	defer func() { _ = rows.Close() }()
	versions := map[int64]int64{}
	for rows.Next() {
		var day, v int64
		if err := rows.Scan(&day, &v); err != nil {
			return nil, err
		}
		versions[day] = v
	}
	return versions, rows.Err()
}

// readDays reads the rows of the per-project days of offset that start at
// days (in order), by day.
func (s *sqlStore) readDays(ctx context.Context, offset int64, days []int64) (map[int64][]dayRow, error) {
	var runs []dayRun
	for _, d := range days {
		if n := len(runs); n > 0 && runs[n-1].to == d {
			runs[n-1].to += secondsPerDay
		} else {
			runs = append(runs, dayRun{offset, d, d + secondsPerDay})
		}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT day, project, service, model, endpoint, "+totalsColumns+
		" FROM usage_project_daily WHERE "+daysSQL(dayColumn, true, runs))
	if err != nil {
		return nil, fmt.Errorf("reading usage days: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[int64][]dayRow{}
	for rows.Next() {
		var day int64
		var r dayRow
		t := &r.t
		if err := rows.Scan(&day, &r.project, &r.service, &r.model, &r.endpoint,
			&t.Calls, &t.InputTokens, &t.CachedInputTokens, &t.OutputTokens, &t.VideoSeconds, &t.StorageByteHours); err != nil {
			return nil, fmt.Errorf("reading usage days: %w", err)
		}
		out[day] = append(out[day], r)
	}
	return out, rows.Err()
}

// get returns the cached rows of a day if the cache holds the version
// versions give; a day whose version changed or is gone is dropped.
func (c *dayCache) get(k cachedDayKey, versions map[int64]int64) ([]dayRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.days[k]
	if !ok {
		return nil, false
	}
	if v, ok := versions[k.day]; !ok || v != d.version {
		c.rows -= len(d.rows)
		delete(c.days, k)
		return nil, false
	}
	c.clock++
	d.used = c.clock
	return d.rows, true
}

// put caches the rows of a day at a version, evicting the days used
// longest ago while the cache would hold too many rows.
func (c *dayCache) put(k cachedDayKey, version int64, rows []dayRow) {
	if len(rows) > maxCachedDayRows {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.days == nil {
		c.days, c.names = map[cachedDayKey]*cachedDay{}, map[string]string{}
	}
	if old, ok := c.days[k]; ok {
		c.rows -= len(old.rows)
		delete(c.days, k)
	}
	for c.rows+len(rows) > maxCachedDayRows {
		var oldest cachedDayKey
		first := true
		for key, d := range c.days {
			if first || d.used < c.days[oldest].used {
				oldest, first = key, false
			}
		}
		c.rows -= len(c.days[oldest].rows)
		delete(c.days, oldest)
	}
	kept := make([]dayRow, len(rows))
	for i, r := range rows {
		r.project, r.service, r.model, r.endpoint = c.intern(r.project), c.intern(r.service), c.intern(r.model), c.intern(r.endpoint)
		kept[i] = r
	}
	c.clock++
	c.days[k] = &cachedDay{version: version, used: c.clock, rows: kept}
	c.rows += len(kept)
}

func (c *dayCache) intern(s string) string {
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

// lockDayVersions locks the versions of days (offset and start) in order,
// creating those that are missing (see lockForTriggers).
func (s *sqlStore) lockDayVersions(ctx context.Context, tx *sql.Tx, days []cachedDayKey) error {
	p := s.d.Placeholder
	for _, d := range days {
		_, err := tx.ExecContext(ctx, "INSERT INTO usage_project_day_versions (utc_offset, day, version) VALUES ("+p(1)+", "+p(2)+
			", 0) ON CONFLICT (utc_offset, day) DO UPDATE SET version = usage_project_day_versions.version", d.offset, d.day)
		if err != nil {
			return fmt.Errorf("locking the versions of usage days: %w", err)
		}
	}
	return nil
}
