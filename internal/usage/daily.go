package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// The daily rollups (usage_daily) are the hourly rollups summed by UTC day,
// for the days that are over. Long reports read them instead of 24 times as
// many hourly rows: a 30-day report by project and model over 10 million
// events went from 484 ms to a few milliseconds (docs/usage-store.md).
//
// Days are rolled up once they are over (RollUpDays, hourly, by the server's
// leader), not on every ingest, which stays as fast as it was. usage_meta
// records how far: days before daily_rollups_before are in usage_daily,
// whole, and later ones are read from the hourly rollups. An event that
// arrives late, for a day already rolled up, is added to its day by a
// trigger on usage_hourly. A trigger, rather than code in Insert, so that
// every writer keeps the days, whatever its version: during a rolling
// upgrade with several server replicas on PostgreSQL, one still running an
// older version would otherwise write hours that their days never see.
//
// Rolling up and the triggers' check of how far days are rolled up cannot
// race: rolling up keeps writers of usage_hourly out for its transaction
// (SQLite: one writer at a time; PostgreSQL: a table lock that waits for
// writers that have begun), so an hour is either in usage_hourly before the
// days are summed, or written after their new bound is committed, and then
// added by its trigger.

// dailyTriggersVersion is the version of the triggers below; usage_meta
// records the one the database has, and a start with a newer one replaces
// them.
const dailyTriggersVersion = 1

// Names in usage_meta.
const (
	// metaDailyTriggers is the version of the triggers.
	metaDailyTriggers = "daily_triggers_version"
	// metaDailyRollupsBefore is the UTC midnight (Unix seconds) before
	// which days are in usage_daily.
	metaDailyRollupsBefore = "daily_rollups_before"
)

// rollupKeyColumns are the columns that key a rollup, besides its time.
const rollupKeyColumns = "project, key_id, service, model, endpoint"

// keepDailyRollups creates the triggers that add late hours to their days,
// or replaces them with a newer version.
func (s *sqlStore) keepDailyRollups(ctx context.Context) error {
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
	late := "NEW.hour < (SELECT value FROM usage_meta WHERE name = '" + metaDailyRollupsBefore + "')"
	stmts := s.d.RowTrigger("usage_hourly_late_insert", "usage_hourly", "INSERT", late, addToDaySQL(false))
	stmts = append(stmts, s.d.RowTrigger("usage_hourly_late_update", "usage_hourly", "UPDATE", late, addToDaySQL(true))...)
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating the daily usage rollups' triggers: %w", err)
		}
	}
	if err := s.setMeta(ctx, tx, metaDailyTriggers, dailyTriggersVersion); err != nil {
		return err
	}
	return tx.Commit()
}

// RollUpDays implements Store. Each day is rolled up in a transaction of
// its own, so that writers wait for one day's work at most, and what is
// done stays done if a later day fails.
func (s *sqlStore) RollUpDays(ctx context.Context, before time.Time) error {
	end := before.Unix() - before.Unix()%secondsPerDay
	for {
		done, err := s.rollUpNextDay(ctx, end)
		if err != nil || done {
			return err
		}
	}
}

// rollUpNextDay rolls up the first day not rolled up yet, if it ends at or
// before end (a UTC midnight, Unix seconds). done says that no such day is
// left.
func (s *sqlStore) rollUpNextDay(ctx context.Context, end int64) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("rolling up usage by day: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.d.LockForWrites != "" {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(s.d.LockForWrites, "usage_hourly")); err != nil {
			return false, fmt.Errorf("rolling up usage by day: %w", err)
		}
	}
	day, err := s.metaValue(ctx, tx, metaDailyRollupsBefore)
	if err != nil {
		return false, err
	}
	next := day + secondsPerDay
	if day == 0 { // the first time: from the first hour there is
		var first sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT MIN(hour) FROM usage_hourly").Scan(&first); err != nil {
			return false, fmt.Errorf("rolling up usage by day: %w", err)
		}
		day, next = end, end // none: every day before end is empty
		if first.Valid && first.Int64 < end {
			day = first.Int64 - first.Int64%secondsPerDay
			next = day + secondsPerDay
		}
	}
	if next > end {
		return true, nil
	}
	if day < next {
		if err := s.rollUpDay(ctx, tx, day); err != nil {
			return false, fmt.Errorf("rolling up usage of %s: %w", time.Unix(day, 0).UTC().Format(time.DateOnly), err)
		}
	}
	if err := s.setMeta(ctx, tx, metaDailyRollupsBefore, next); err != nil {
		return false, err
	}
	return next >= end, tx.Commit()
}

// rollUpDay adds the hourly rollups of the UTC day that starts at day to
// the daily rollups.
func (s *sqlStore) rollUpDay(ctx context.Context, tx *sql.Tx, day int64) error {
	p := s.d.Placeholder
	where := "hour >= " + p(1) + " AND hour < " + p(2)
	summed := "SELECT 0, " + rollupKeyColumns + ", " + sumsOf(totalsColumns) + " FROM usage_hourly WHERE " + where +
		" GROUP BY " + rollupKeyColumns
	raw := "SELECT 0, " + rollupKeyColumns + ", " + totalsColumns + " FROM usage_hourly WHERE " + where
	sums := map[rollupKey]Totals{}
	err := s.sumRows(ctx, tx, summed, raw, []any{day, day + secondsPerDay}, 5, func(_ int64, g []string, t Totals) {
		sums[rollupKey{start: day, project: g[0], keyID: g[1], service: g[2], model: g[3], endpoint: g[4]}] = t
	})
	if err != nil {
		return err
	}
	return s.upsertRollups(ctx, tx, dailyRollups, sums)
}

// dailyRollupsBefore is the UTC midnight before which days are in the
// daily rollups (the zero time if none are).
func (s *sqlStore) dailyRollupsBefore(ctx context.Context) (time.Time, error) {
	v, err := s.metaValue(ctx, s.db, metaDailyRollupsBefore)
	if err != nil || v == 0 {
		return time.Time{}, err
	}
	return time.Unix(v, 0).UTC(), nil
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

// lockDays locks the days already rolled up that the batch's hourly rollups
// will add to, in key order, creating those that are missing, before any
// hourly row is written (on databases with concurrent writers). Otherwise
// two writers of late hours of one day would each lock an hour and then, in
// its trigger, the day, and could deadlock. Batches of the current day,
// which is not rolled up, lock nothing here.
func (s *sqlStore) lockDays(ctx context.Context, tx *sql.Tx, rollups map[rollupKey]Totals) error {
	if !s.d.ConcurrentWriters {
		return nil
	}
	rolledUp, err := s.metaValue(ctx, tx, metaDailyRollupsBefore)
	if err != nil {
		return err
	}
	days := map[rollupKey]bool{}
	for k := range rollups {
		if k.start < rolledUp {
			k.start -= k.start % secondsPerDay
			days[k] = true
		}
	}
	keys := slices.SortedFunc(maps.Keys(days), rollupKey.compare)
	for _, chunk := range sqldb.SplitBatch(keys) {
		stmt, err := s.prepared(ctx, "lock-days", len(chunk), lockDaysSQL)
		if err != nil {
			return err
		}
		args := make([]any, 0, len(chunk)*6)
		for _, k := range chunk {
			args = append(args, k.start, k.project, k.keyID, k.service, k.model, k.endpoint)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("locking daily usage rollups: %w", err)
		}
	}
	return nil
}

// lockDaysSQL inserts days with zero figures, or, for a day that is there,
// updates it to itself: either way, the row is locked.
func lockDaysSQL(s *sqlStore, rows int) string {
	zeros := strings.Repeat(", 0", len(strings.Split(totalsColumns, ", ")))
	var b strings.Builder
	b.WriteString("INSERT INTO usage_daily (day, " + rollupKeyColumns + ", " + totalsColumns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		var key strings.Builder
		s.values(&key, i*6, 6) // "(day, project, …)"
		b.WriteString(strings.TrimSuffix(key.String(), ")") + zeros + ")")
	}
	b.WriteString(" ON CONFLICT (day, " + rollupKeyColumns + ") DO UPDATE SET calls = usage_daily.calls")
	return b.String()
}

// addToDaySQL is the triggers' statement: add the hourly row NEW (for an
// update, what it grew by since OLD) to its day.
func addToDaySQL(update bool) string {
	cols := strings.Split(rollupKeyColumns+", "+totalsColumns, ", ")
	keys := len(strings.Split(rollupKeyColumns, ", "))
	values := make([]string, 0, 1+len(cols))
	values = append(values, "NEW.hour - NEW.hour % 86400")
	for i, c := range cols {
		v := "NEW." + c
		if update && i >= keys {
			v += " - OLD." + c // rollups only grow: never negative
		}
		values = append(values, v)
	}
	return "INSERT INTO usage_daily (day, " + rollupKeyColumns + ", " + totalsColumns + ") VALUES (" +
		strings.Join(values, ", ") + ")" + onConflictAdd(dailyRollups)
}
