package usage

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The daily rollups are the hourly rollups summed by day, for the days that
// are over: per key by UTC day (usage_daily), and per project by day in
// each UTC offset that usage_day_offsets lists (usage_project_daily). Long
// reports read them instead of 24 times as many hourly rows
// (docs/usage-store.md).
//
// Days are rolled up once they are over (RollUpDays, hourly, by the server's
// leader), not on every ingest, which stays as fast as it was. How far is
// recorded: for per-key days in usage_meta (daily_rollups_before), for
// per-project days in usage_day_offsets, one bound per offset. Days before
// the bound are in the daily rollups, whole; later ones are read from the
// hourly rollups. An event that arrives late, for a day already rolled up,
// is added to its days by triggers. The per-project hourly rollups are kept
// by a trigger on the per-key ones too. Triggers, rather than code in
// Insert, so that every writer keeps them, whatever its version: during a
// rolling upgrade with several server replicas on PostgreSQL, one still
// running an older version would otherwise write hours that the other
// rollups never see.
//
// Rolling up and the triggers' check of how far days are rolled up cannot
// race: rolling up keeps writers of usage_hourly (and so of
// usage_project_hourly, which only its triggers write) out for its
// transaction (SQLite: one writer at a time; PostgreSQL: a table lock that
// waits for writers that have begun), so an hour is either in the hourly
// rollups before the days are summed, or written after their new bound is
// committed, and then added by its trigger.

// dailyTriggersVersion is the version of the triggers below; usage_meta
// records the one the database has, and a start with a newer one replaces
// them. Version 2 added the per-project rollups, which the start that
// installs it fills from the per-key hourly rollups; version 3, the
// versions of per-project days (periodcache.go), which it gives the days
// there are; version 4, the versions of closed per-project hours.
const dailyTriggersVersion = 4

// Names in usage_meta.
const (
	// metaDailyTriggers is the version of the triggers.
	metaDailyTriggers = "daily_triggers_version"
	// metaDailyRollupsBefore is the UTC midnight (Unix seconds) before
	// which per-key days are in usage_daily.
	metaDailyRollupsBefore = "daily_rollups_before"
)

// dayOffsetsSchema creates the table of the UTC offsets (seconds east) in
// whose days per-project usage is rolled up, each with the midnight (Unix
// seconds) before which its days are in usage_project_daily; 0 until its
// first roll-up.
var dayOffsetsSchema = []string{`CREATE TABLE IF NOT EXISTS usage_day_offsets (
		utc_offset BIGINT PRIMARY KEY,
		rolled_up_before BIGINT NOT NULL)` + "%TABLE_OPTIONS%"}

// keepRollupTriggers creates the triggers that keep the per-project hourly
// rollups and add late hours to their days, or replaces them with a newer
// version; a database that had no per-project rollups gets them filled.
func (s *sqlStore) keepRollupTriggers(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if s.d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.MigrationLock); err != nil {
			return err
		}
	}
	version, err := s.metaValue(ctx, tx, metaDailyTriggers)
	if err != nil || version >= dailyTriggersVersion {
		return err
	}
	if err := s.lockForWrites(ctx, tx); err != nil {
		return err
	}
	late := "NEW.hour < (SELECT value FROM usage_meta WHERE name = '" + metaDailyRollupsBefore + "')"
	lateForOffsets := "NEW.hour < (SELECT MAX(rolled_up_before) FROM usage_day_offsets)"
	closedHour := "NEW.hour < (SELECT value FROM usage_meta WHERE name = '" + metaHoursClosedBefore + "')"
	stmts := slices.Concat(
		s.d.RowTrigger("usage_hourly_late_insert", "usage_hourly", "INSERT", late, addToDaySQL(false)),
		s.d.RowTrigger("usage_hourly_late_update", "usage_hourly", "UPDATE", late, addToDaySQL(true)),
		s.d.RowTrigger("usage_hourly_project_insert", "usage_hourly", "INSERT", "1 = 1", addToProjectHourSQL(false)),
		s.d.RowTrigger("usage_hourly_project_update", "usage_hourly", "UPDATE", "1 = 1", addToProjectHourSQL(true)),
		s.d.RowTrigger("usage_project_hourly_late_insert", "usage_project_hourly", "INSERT", lateForOffsets,
			addToProjectDaysSQL(false)+"; "+bumpDayVersionsSQL),
		s.d.RowTrigger("usage_project_hourly_late_update", "usage_project_hourly", "UPDATE", lateForOffsets,
			addToProjectDaysSQL(true)+"; "+bumpDayVersionsSQL),
		s.d.RowTrigger("usage_project_hourly_closed_insert", "usage_project_hourly", "INSERT", closedHour, bumpHourVersionSQL),
		s.d.RowTrigger("usage_project_hourly_closed_update", "usage_project_hourly", "UPDATE", closedHour, bumpHourVersionSQL),
	)
	// Filled first: creating a trigger on a table locks it until the
	// transaction ends, and the fill prepares its statements on other
	// connections, which would wait for that lock.
	if version < 2 {
		if err := s.fillProjectHours(ctx, tx); err != nil {
			return fmt.Errorf("filling the per-project usage rollups: %w", err)
		}
	}
	if version < 3 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO usage_project_day_versions (utc_offset, day, version)
			SELECT DISTINCT utc_offset, day, 1 FROM usage_project_daily WHERE TRUE ON CONFLICT (utc_offset, day) DO NOTHING`); err != nil {
			return fmt.Errorf("recording the versions of usage days: %w", err)
		}
	}
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating the usage rollups' triggers: %w", err)
		}
	}
	if err := s.setMeta(ctx, tx, metaDailyTriggers, dailyTriggersVersion); err != nil {
		return err
	}
	return tx.Commit()
}

// lockForWrites keeps writers of usage_hourly out until tx ends, on
// databases with concurrent writers.
func (s *sqlStore) lockForWrites(ctx context.Context, tx *sql.Tx) error {
	if s.d.LockForWrites == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(s.d.LockForWrites, "usage_hourly")); err != nil {
		return fmt.Errorf("locking the usage rollups: %w", err)
	}
	return nil
}

// whileWritersWait runs fn in a transaction that keeps writers of
// usage_hourly out (lockForWrites), and commits what fn did unless it
// fails.
func (s *sqlStore) whileWritersWait(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.lockForWrites(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// fillProjectHours sums the per-key hourly rollups into the per-project
// ones, a UTC day at a time (in Go when a sum would overflow the
// database's integers, as every sum here).
func (s *sqlStore) fillProjectHours(ctx context.Context, tx *sql.Tx) error {
	var first, last sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT MIN(hour), MAX(hour) FROM usage_hourly").Scan(&first, &last); err != nil || !first.Valid {
		return err
	}
	p := s.d.Placeholder
	group := strings.Join(projectHourlyRollups.groupColumns(), ", ")
	where := "hour >= " + p(1) + " AND hour < " + p(2)
	summed := "SELECT hour, " + group + ", " + sumsOf(totalsColumns) + " FROM usage_hourly WHERE " + where + " GROUP BY hour, " + group
	raw := "SELECT hour, " + group + ", " + totalsColumns + " FROM usage_hourly WHERE " + where
	for day := first.Int64 - first.Int64%secondsPerDay; day <= last.Int64; day += secondsPerDay {
		sums := map[rollupKey]Totals{}
		err := s.sumRows(ctx, tx, summed, raw, []any{day, day + secondsPerDay}, 4, func(hour int64, g []string, t Totals) {
			sums[projectHourlyRollups.keyOf(hour, 0, g)] = t
		})
		if err != nil {
			return err
		}
		if err := s.upsertRollups(ctx, tx, projectHourlyRollups, sums); err != nil {
			return err
		}
	}
	return nil
}

// daySeries is one series of daily rollups: the days of offset (seconds
// east of UTC) summed from source into target.
type daySeries struct {
	source, target rollupTable
	offset         int64
}

// perKeyDays are the per-key UTC days.
var perKeyDays = daySeries{source: hourlyRollups, target: dailyRollups}

// perProjectDays are the per-project days of a UTC offset.
func perProjectDays(offset int64) daySeries {
	return daySeries{source: projectHourlyRollups, target: projectDailyRollups, offset: offset}
}

// dayStart is the start (Unix seconds) of the series' day that holds t.
func (d daySeries) dayStart(t int64) int64 {
	return t - ((t+d.offset)%secondsPerDay+secondsPerDay)%secondsPerDay
}

// rolledUpBefore reads the bound of the series' days rolled up (0: none).
func (s *sqlStore) rolledUpBefore(ctx context.Context, q querier, d daySeries) (int64, error) {
	if !d.target.offsets {
		return s.metaValue(ctx, q, metaDailyRollupsBefore)
	}
	var v int64
	err := q.QueryRowContext(ctx, "SELECT rolled_up_before FROM usage_day_offsets WHERE utc_offset = "+s.d.Placeholder(1), d.offset).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading how far usage is rolled up by day: %w", err)
	}
	return v, nil
}

// setRolledUpBefore records the bound of the series' days rolled up.
func (s *sqlStore) setRolledUpBefore(ctx context.Context, tx *sql.Tx, d daySeries, v int64) error {
	if !d.target.offsets {
		return s.setMeta(ctx, tx, metaDailyRollupsBefore, v)
	}
	p := s.d.Placeholder
	if _, err := tx.ExecContext(ctx, "UPDATE usage_day_offsets SET rolled_up_before = "+p(1)+" WHERE utc_offset = "+p(2), v, d.offset); err != nil {
		return fmt.Errorf("recording how far usage is rolled up by day: %w", err)
	}
	return nil
}

// RollUpDays implements Store. Each day is rolled up in a transaction of
// its own, so that writers wait for one day's work at most, and what is
// done stays done if a later day fails.
func (s *sqlStore) RollUpDays(ctx context.Context, before time.Time, zones ...*time.Location) error {
	offsets := DayOffsets(before, zones...)
	if err := s.keepDayOffsets(ctx, offsets); err != nil {
		return err
	}
	series := []daySeries{perKeyDays}
	for _, o := range offsets {
		series = append(series, perProjectDays(o))
	}
	for _, d := range series {
		end := d.dayStart(before.Unix())
		for {
			done, err := s.rollUpNextDay(ctx, d, end)
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	return s.closeHours(ctx, before.Unix()-before.Unix()%3600)
}

// DayOffsets are the UTC offsets (seconds east) whose days per-project
// usage is rolled up in, for zones around t: UTC, and each offset each zone
// has in the year before and after t that is a whole number of hours (the
// hourly rollups cannot make days that start on a half hour, such as
// Asia/Kolkata's, +05:30: those are read from hours and raw events).
func DayOffsets(t time.Time, zones ...*time.Location) []int64 {
	offsets := []int64{0}
	for _, z := range zones {
		if z == nil {
			continue
		}
		for d := -366; d <= 366; d++ {
			_, off := t.AddDate(0, 0, d).In(z).Zone()
			if o := int64(off); o%3600 == 0 && !slices.Contains(offsets, o) {
				offsets = append(offsets, o)
			}
		}
	}
	slices.Sort(offsets)
	return offsets
}

// keepDayOffsets makes usage_day_offsets list offsets: an offset added
// starts with no days rolled up (and no rows left from an earlier time it
// was listed), an offset no longer asked for loses its days. It keeps
// writers out meanwhile, so that no trigger adds to days of an offset
// being added or removed.
func (s *sqlStore) keepDayOffsets(ctx context.Context, offsets []int64) error {
	rows, err := s.db.QueryContext(ctx, "SELECT utc_offset FROM usage_day_offsets")
	if err != nil {
		return fmt.Errorf("reading the usage rollups' day offsets: %w", err)
	}
	var have []int64
	for rows.Next() {
		var o int64
		if err := rows.Scan(&o); err != nil {
			_ = rows.Close()
			return err
		}
		have = append(have, o)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("reading the usage rollups' day offsets: %w", err)
	}
	slices.Sort(have)
	if slices.Equal(have, offsets) {
		return nil
	}
	return s.whileWritersWait(ctx, func(tx *sql.Tx) error {
		for _, o := range have {
			if !slices.Contains(offsets, o) {
				if err := s.dropDayOffset(ctx, tx, o); err != nil {
					return err
				}
			}
		}
		for _, o := range offsets {
			if slices.Contains(have, o) {
				continue
			}
			if err := s.dropDayOffset(ctx, tx, o); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO usage_day_offsets (utc_offset, rolled_up_before) VALUES ("+
				s.d.Placeholder(1)+", 0)", o); err != nil {
				return fmt.Errorf("adding a day offset to the usage rollups: %w", err)
			}
		}
		return nil
	})
}

// dropDayOffset deletes an offset and its days.
func (s *sqlStore) dropDayOffset(ctx context.Context, tx *sql.Tx, offset int64) error {
	p := s.d.Placeholder
	_, err1 := tx.ExecContext(ctx, "DELETE FROM usage_day_offsets WHERE utc_offset = "+p(1), offset)
	_, err2 := tx.ExecContext(ctx, "DELETE FROM usage_project_daily WHERE utc_offset = "+p(1), offset)
	// Versions are bumped, never deleted: a day rolled up again later must
	// not find its old version, which a cache may still hold.
	_, err3 := tx.ExecContext(ctx, "UPDATE usage_project_day_versions SET version = version + 1 WHERE utc_offset = "+p(1), offset)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("removing a day offset from the usage rollups: %w", err)
	}
	return nil
}

// rollUpNextDay rolls up the first day of d not rolled up yet, if it ends
// at or before end (a midnight of d, Unix seconds). done says that no such
// day is left.
func (s *sqlStore) rollUpNextDay(ctx context.Context, d daySeries, end int64) (done bool, err error) {
	err = s.whileWritersWait(ctx, func(tx *sql.Tx) error {
		day, err := s.rolledUpBefore(ctx, tx, d)
		if err != nil {
			return err
		}
		next := day + secondsPerDay
		if day == 0 { // the first time: from the first hour there is
			var first sql.NullInt64
			if err := tx.QueryRowContext(ctx, "SELECT MIN(hour) FROM "+d.source.name).Scan(&first); err != nil {
				return fmt.Errorf("rolling up usage by day: %w", err)
			}
			day, next = end, end // none: every day before end is empty
			if first.Valid && first.Int64 < end {
				day = d.dayStart(first.Int64)
				next = day + secondsPerDay
			}
		}
		if next > end {
			done = true
			return nil
		}
		if day < next {
			if err := s.rollUpDay(ctx, tx, d, day); err != nil {
				return fmt.Errorf("rolling up usage of the day from %s: %w", time.Unix(day, 0).UTC().Format(time.RFC3339), err)
			}
		}
		done = next >= end
		return s.setRolledUpBefore(ctx, tx, d, next)
	})
	return done && err == nil, err
}

// rollUpDay adds the hourly rollups of d's day that starts at day to its
// daily rollups.
func (s *sqlStore) rollUpDay(ctx context.Context, tx *sql.Tx, d daySeries, day int64) error {
	p := s.d.Placeholder
	group := strings.Join(d.source.groupColumns(), ", ")
	where := "hour >= " + p(1) + " AND hour < " + p(2)
	summed := "SELECT 0, " + group + ", " + sumsOf(totalsColumns) + " FROM " + d.source.name + " WHERE " + where + " GROUP BY " + group
	raw := "SELECT 0, " + group + ", " + totalsColumns + " FROM " + d.source.name + " WHERE " + where
	sums := map[rollupKey]Totals{}
	err := s.sumRows(ctx, tx, summed, raw, []any{day, day + secondsPerDay}, len(d.source.groupColumns()), func(_ int64, g []string, t Totals) {
		sums[d.target.keyOf(day, d.offset, g)] = t
	})
	if err != nil {
		return err
	}
	if d.target.offsets {
		if err := s.bumpDayVersion(ctx, tx, d.offset, day); err != nil {
			return err
		}
	}
	return s.upsertRollups(ctx, tx, d.target, sums)
}

// dayBound is how far the days of one offset are rolled up.
type dayBound struct{ offset, before int64 }

// dayBounds are how far each series of days a level of rollups has is
// rolled up.
func (s *sqlStore) dayBounds(ctx context.Context, q querier, daily rollupTable) ([]dayBound, error) {
	if !daily.offsets {
		v, err := s.metaValue(ctx, q, metaDailyRollupsBefore)
		if err != nil || v == 0 {
			return nil, err
		}
		return []dayBound{{0, v}}, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT utc_offset, rolled_up_before FROM usage_day_offsets WHERE rolled_up_before > 0")
	if err != nil {
		return nil, fmt.Errorf("reading how far usage is rolled up by day: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []dayBound
	for rows.Next() {
		var b dayBound
		if err := rows.Scan(&b.offset, &b.before); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// metaValue reads a value of usage_meta; a missing one is 0.
func (s *sqlStore) metaValue(ctx context.Context, q querier, name string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, "SELECT value FROM usage_meta WHERE name = "+s.d.Placeholder(1), name).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading %s of the usage store: %w", name, err)
	}
	return v, nil
}

// setMeta writes a value of usage_meta.
func (s *sqlStore) setMeta(ctx context.Context, tx *sql.Tx, name string, v int64) error {
	p := s.d.Placeholder
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO usage_meta (name, value) VALUES (%s, %s)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, p(1), p(2)), name, v)
	if err != nil {
		return fmt.Errorf("recording %s of the usage store: %w", name, err)
	}
	return nil
}

// lockForTriggers locks, in a fixed order, the rows that the triggers of
// a batch's hourly rollups will add to, before any hourly row is written
// (on databases with concurrent writers): the per-key days and per-project
// days already rolled up that late hours add to, the versions of those
// per-project days and of the closed hours written, then the per-project
// hours. Otherwise two writers
// would each lock an hourly row and then, in its triggers, rows the other
// holds, and could deadlock. The rows of each table are locked in key
// order; a batch of the current day locks only its per-project hours.
func (s *sqlStore) lockForTriggers(ctx context.Context, tx *sql.Tx, rollups map[rollupKey]Totals) error {
	if !s.d.ConcurrentWriters {
		return nil
	}
	// The lock a writer of usage_hourly takes, first: a roll-up, a change
	// of offsets or the closing of hours (which hold LockForWrites) is
	// then either over, and its bounds are read below, or waits for this
	// batch; it never holds the table while waiting for rows held here.
	if s.d.LockAsWriter != "" {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(s.d.LockAsWriter, "usage_hourly")); err != nil {
			return fmt.Errorf("locking the usage rollups: %w", err)
		}
	}
	type seriesBound struct {
		d      daySeries
		before int64
	}
	keyed, err := s.rolledUpBefore(ctx, tx, perKeyDays)
	if err != nil {
		return err
	}
	bounds := []seriesBound{{perKeyDays, keyed}}
	offsets, err := s.dayBounds(ctx, tx, projectDailyRollups)
	if err != nil {
		return err
	}
	for _, b := range offsets {
		bounds = append(bounds, seriesBound{perProjectDays(b.offset), b.before})
	}
	days := map[rollupTable]map[rollupKey]bool{dailyRollups: {}, projectDailyRollups: {}}
	hours := map[rollupKey]bool{}
	for k := range rollups {
		project := rollupKey{start: k.start, project: k.project, service: k.service, model: k.model, endpoint: k.endpoint}
		hours[project] = true
		for _, b := range bounds {
			if k.start >= b.before {
				continue
			}
			day := k
			if !b.d.target.perKey {
				day = project
			}
			day.start, day.offset = b.d.dayStart(k.start), b.d.offset
			days[b.d.target][day] = true
		}
	}
	if err := s.lockRollups(ctx, tx, dailyRollups, days[dailyRollups]); err != nil {
		return err
	}
	if err := s.lockRollups(ctx, tx, projectDailyRollups, days[projectDailyRollups]); err != nil {
		return err
	}
	closed, err := s.metaValue(ctx, tx, metaHoursClosedBefore)
	if err != nil {
		return err
	}
	if err := s.lockVersions(ctx, tx, versionsWritten(days[projectDailyRollups], hours, closed)); err != nil {
		return err
	}
	return s.lockRollups(ctx, tx, projectHourlyRollups, hours)
}

// versionsWritten are the periods whose versions the triggers will bump
// for writes to these per-project days and hours (those before closed),
// in the order lockVersions takes them: days by offset and start, then
// hours.
func versionsWritten(days, hours map[rollupKey]bool, closed int64) []periodKey {
	versions := map[periodKey]bool{}
	for k := range days {
		versions[periodKey{offset: k.offset, day: k.start}] = true
	}
	for k := range hours {
		if k.start < closed {
			versions[periodKey{hours: true, day: k.start}] = true
		}
	}
	rank := func(hours bool) int {
		if hours {
			return 1
		}
		return 0
	}
	return slices.SortedFunc(maps.Keys(versions), func(a, b periodKey) int {
		return cmp.Or(cmp.Compare(rank(a.hours), rank(b.hours)), cmp.Compare(a.offset, b.offset), cmp.Compare(a.day, b.day))
	})
}

// figuresSQL are the triggers' figures of the row NEW: for an update, what
// it grew by since OLD (rollups only grow: never negative).
func figuresSQL(update bool) []string {
	cols := strings.Split(totalsColumns, ", ")
	for i, c := range cols {
		cols[i] = "NEW." + c
		if update {
			cols[i] += " - OLD." + c
		}
	}
	return cols
}

// addToDaySQL is a trigger's statement: add the per-key hourly row NEW to
// its UTC day.
func addToDaySQL(update bool) string {
	values := slices.Concat([]string{"NEW.hour - NEW.hour % 86400"}, prefixed("NEW.", dailyRollups.groupColumns()), figuresSQL(update))
	return "INSERT INTO usage_daily (" + strings.Join(dailyRollups.keyColumns(), ", ") + ", " + totalsColumns + ") VALUES (" +
		strings.Join(values, ", ") + ")" + onConflictAdd(dailyRollups)
}

// addToProjectHourSQL is a trigger's statement: add the per-key hourly row
// NEW to its project's hour.
func addToProjectHourSQL(update bool) string {
	values := slices.Concat([]string{"NEW.hour"}, prefixed("NEW.", projectHourlyRollups.groupColumns()), figuresSQL(update))
	return "INSERT INTO usage_project_hourly (" + strings.Join(projectHourlyRollups.keyColumns(), ", ") + ", " + totalsColumns +
		") VALUES (" + strings.Join(values, ", ") + ")" + onConflictAdd(projectHourlyRollups)
}

// addToProjectDaysSQL is a trigger's statement: add the per-project hourly
// row NEW to its day in each offset whose days are rolled up past it.
func addToProjectDaysSQL(update bool) string {
	values := slices.Concat([]string{"o.utc_offset", "NEW.hour - (NEW.hour + o.utc_offset) % 86400"},
		prefixed("NEW.", projectDailyRollups.groupColumns()), figuresSQL(update))
	return "INSERT INTO usage_project_daily (" + strings.Join(projectDailyRollups.keyColumns(), ", ") + ", " + totalsColumns +
		") SELECT " + strings.Join(values, ", ") + " FROM usage_day_offsets o WHERE NEW.hour < o.rolled_up_before" +
		onConflictAdd(projectDailyRollups)
}

// prefixed is each of names after prefix.
func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
