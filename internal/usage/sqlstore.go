package usage

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/sqldb"
)

// eventSchema creates the table of events. The schema is the same for both
// databases: times are integers (microseconds for events, seconds of the
// UTC hour or day for rollups), so no database converts time zones behind
// our back.
var eventSchema = []string{
	`CREATE TABLE IF NOT EXISTS usage_events (
		id TEXT PRIMARY KEY,
		ts BIGINT NOT NULL,
		project TEXT NOT NULL,
		key_id TEXT NOT NULL,
		service TEXT NOT NULL,
		endpoint TEXT NOT NULL,
		model TEXT NOT NULL,
		input_tokens BIGINT NOT NULL,
		cached_input_tokens BIGINT NOT NULL DEFAULT 0,
		output_tokens BIGINT NOT NULL,
		video_seconds BIGINT NOT NULL,
		storage_byte_hours BIGINT NOT NULL,
		status_code INTEGER NOT NULL,
		flags TEXT NOT NULL DEFAULT '')` + "%TABLE_OPTIONS%",
	// One index besides the primary key: every extra index on the events
	// table halves ingest (measured). Drill-downs and exports read a time
	// range and filter it; per-key and per-project questions over long
	// ranges are answered from the rollups.
	`CREATE INDEX IF NOT EXISTS usage_events_ts ON usage_events (ts)`,
}

// rollupSchema creates the tables of rollups (rollups.go): per key and per
// project, hourly, and the hourly ones summed by day for the days that are
// over (daily.go). Per-project questions (dashboards, caps) are the common
// filter, with an index each; anything else scans the periods of the
// range.
var rollupSchema = slices.Concat(hourlyRollups.schema(), dailyRollups.schema(), projectHourlyRollups.schema(),
	projectDailyRollups.schema(), dayOffsetsSchema, versionsSchema)

// keySchema creates the tables of keys and of the store itself.
var keySchema = []string{
	// One row per key: when it was last used (event time) and when usage of
	// it was last stored (store time). Which keys were used recently is asked
	// by store time, so events delivered late, after an outage, count too.
	// The table is as small as the number of keys and has no other index: a
	// full scan every few seconds is cheaper than an index on every write.
	// Who owns each key ID, kept from the APIKeys by the server, so that
	// usage can be summed by owner without carrying the owner in every
	// event: key IDs of rotated and deleted keys stay.
	`CREATE TABLE IF NOT EXISTS usage_key_owners (
		key_id TEXT PRIMARY KEY,
		project TEXT NOT NULL,
		owner TEXT NOT NULL,
		updated BIGINT NOT NULL)` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS usage_key_owners_owner ON usage_key_owners (owner)`,
	`CREATE TABLE IF NOT EXISTS usage_key_activity (
		project TEXT NOT NULL,
		key_id TEXT NOT NULL,
		last_ts BIGINT NOT NULL,
		updated BIGINT NOT NULL,
		PRIMARY KEY (project, key_id))` + "%TABLE_OPTIONS%",
	// Facts about the store itself, such as how far raw events are pruned.
	`CREATE TABLE IF NOT EXISTS usage_meta (
		name TEXT PRIMARY KEY,
		value BIGINT NOT NULL)` + "%TABLE_OPTIONS%",
	// Events the store could not take although it was otherwise working:
	// kept whole, as JSON, with the reason, and counted in no usage.
	`CREATE TABLE IF NOT EXISTS usage_quarantine (
		id TEXT PRIMARY KEY,
		received BIGINT NOT NULL,
		reason TEXT NOT NULL,
		event TEXT NOT NULL)` + "%TABLE_OPTIONS%",
}

// schema is the usage store's tables, in the order they are created.
var schema = slices.Concat(eventSchema, rollupSchema, keySchema)

// addedColumns are columns added to tables after their first release:
// CREATE TABLE IF NOT EXISTS leaves an older table as it was.
var addedColumns = []sqldb.Column{
	{Table: "usage_events", Name: flagsField, Definition: "TEXT NOT NULL DEFAULT ''"},
	{Table: "usage_events", Name: "cached_input_tokens", Definition: "BIGINT NOT NULL DEFAULT 0"},
	{Table: "usage_hourly", Name: "cached_input_tokens", Definition: "BIGINT NOT NULL DEFAULT 0"},
}

// metaEventsPrunedBefore names the instant (Unix microseconds) before which
// raw events may have been pruned.
const metaEventsPrunedBefore = "events_pruned_before"

// sqlStore implements Store on database/sql for SQLite and PostgreSQL.
type sqlStore struct {
	db *sqldb.DB
	d  sqldb.Dialect
	// own is set when closing the store closes the database.
	own bool
	// periods caches per-project days and closed hours (periodcache.go).
	periods periodCache
}

// New returns the usage store in db, creating its tables if needed.
// Closing the store does not close db.
func New(ctx context.Context, db *sqldb.DB) (Store, error) {
	return newStore(ctx, db, false)
}

func newStore(ctx context.Context, db *sqldb.DB, own bool) (*sqlStore, error) {
	if err := db.Migrate(ctx, "usage", schema, addedColumns); err != nil {
		return nil, err
	}
	s := &sqlStore{db: db, d: db.D, own: own}
	if err := s.keepRollupTriggers(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenSQLite opens (creating if needed) a SQLite database at path with the
// usage store in it; closing the store closes the database.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	db, err := sqldb.OpenSQLite(ctx, path)
	return open(ctx, db, err)
}

// OpenPostgres opens the PostgreSQL database at dsn with the usage store in
// it; closing the store closes the database.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	db, err := sqldb.OpenPostgres(ctx, dsn)
	return open(ctx, db, err)
}

func open(ctx context.Context, db *sqldb.DB, err error) (Store, error) {
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, db, true)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// prepared returns the statement of a kind for a number of rows.
func (s *sqlStore) prepared(ctx context.Context, kind string, rows int, build func(*sqlStore, int) string) (*sql.Stmt, error) {
	return s.db.Prepared(ctx, kind, rows, func(rows int) string { return build(s, rows) })
}

// values writes the placeholders of n arguments after the first after.
func (s *sqlStore) values(b *strings.Builder, after, n int) { s.db.Values(b, after, n) }

const eventColumns = "id, ts, project, key_id, service, endpoint, model, input_tokens, cached_input_tokens, output_tokens, " +
	"video_seconds, storage_byte_hours, status_code, flags"

// eventColumnCount is the number of eventColumns.
const eventColumnCount = 14

// Insert implements Store.
//
// Duplicates are rare (a batch sent again after a lost answer), so the batch
// is first written with plain inserts that skip known IDs and count what
// they wrote. Only when the count falls short is the transaction rolled back
// and written again, asking the database which IDs were new. The fast path
// saves reading an answer row per event (measured: a fifth of ingest).
func (s *sqlStore) Insert(ctx context.Context, events []Event) ([]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	stored, err := s.insert(ctx, events, false)
	if errors.Is(err, errDuplicates) {
		stored, err = s.insert(ctx, events, true)
	}
	return stored, err
}

// errDuplicates says a batch held IDs already stored (or an ID twice).
var errDuplicates = errors.New("the batch holds duplicate event IDs")

// insert writes a batch and its rollups in one transaction. With
// findDuplicates false it fails with errDuplicates, writing nothing, when
// any event of the batch is not new.
func (s *sqlStore) insert(ctx context.Context, events []Event, findDuplicates bool) ([]Event, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("starting a transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	var isNew map[string]bool // nil: all new
	if findDuplicates {
		isNew = make(map[string]bool, len(events))
	}
	if err := s.insertEvents(ctx, tx, events, isNew); err != nil {
		return nil, err
	}
	stored := events
	if isNew != nil {
		stored = make([]Event, 0, len(isNew))
	}
	rollups := map[rollupKey]Totals{}
	activity := map[[2]string]time.Time{}
	for i := range events {
		e := &events[i]
		if isNew != nil {
			if !isNew[e.ID] {
				continue
			}
			delete(isNew, e.ID) // an ID twice in one batch counts once
			stored = append(stored, *e)
		}
		k := rollupKey{start: e.Time.UTC().Truncate(time.Hour).Unix(), project: e.Project, keyID: e.KeyID,
			service: string(e.Service), model: e.Model, endpoint: e.Endpoint}
		t := rollups[k]
		t.Add(e.totals())
		rollups[k] = t
		if a := [2]string{e.Project, e.KeyID}; e.Time.After(activity[a]) {
			activity[a] = e.Time
		}
	}
	if err := s.lockForTriggers(ctx, tx, rollups); err != nil {
		return nil, err
	}
	if err := s.upsertRollups(ctx, tx, hourlyRollups, rollups); err != nil {
		return nil, err
	}
	if err := s.upsertActivity(ctx, tx, activity); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing usage: %w", err)
	}
	return stored, nil
}

// insertEvents inserts the events, skipping IDs already stored. With isNew
// nil it fails with errDuplicates as soon as one was skipped; otherwise it
// records the IDs it inserted in isNew.
func (s *sqlStore) insertEvents(ctx context.Context, tx *sql.Tx, events []Event, isNew map[string]bool) error {
	kind, build := "events", insertEventsSQL(false)
	if isNew != nil {
		kind, build = "events-returning", insertEventsSQL(true)
	}
	for _, chunk := range sqldb.SplitBatch(events) {
		stmt, err := s.prepared(ctx, kind, len(chunk), build)
		if err != nil {
			return err
		}
		args := make([]any, 0, len(chunk)*eventColumnCount)
		for i := range chunk {
			e := &chunk[i]
			args = append(args, e.ID, e.Time.UnixMicro(), e.Project, e.KeyID, string(e.Service), e.Endpoint, e.Model,
				e.InputTokens, e.CachedInputTokens, e.OutputTokens, e.VideoSeconds, e.StorageByteHours, e.StatusCode,
				joinFlags(e.Flags))
		}
		if isNew != nil {
			if err := scanIDs(tx.StmtContext(ctx, stmt).QueryContext(ctx, args...))(isNew); err != nil {
				return fmt.Errorf("inserting usage events: %w", err)
			}
			continue
		}
		res, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("inserting usage events: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(chunk)) {
			return errDuplicates
		}
	}
	return nil
}

// scanIDs collects the ids returned by a query.
func scanIDs(rows *sql.Rows, err error) func(map[string]bool) error {
	return func(into map[string]bool) error {
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			into[id] = true
		}
		return rows.Err()
	}
}

// insertEventsSQL builds the multi-row insert of events, which answers with
// the IDs it inserted when returning is set.
func insertEventsSQL(returning bool) func(s *sqlStore, rows int) string {
	return func(s *sqlStore, rows int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO usage_events (" + eventColumns + ") VALUES ")
		for i := range rows {
			if i > 0 {
				b.WriteString(",")
			}
			s.values(&b, i*eventColumnCount, eventColumnCount)
		}
		b.WriteString(" ON CONFLICT (id) DO NOTHING")
		if returning {
			b.WriteString(" RETURNING id")
		}
		return b.String()
	}
}

func upsertActivitySQL(s *sqlStore, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO usage_key_activity (project, key_id, last_ts, updated) VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		s.values(&b, i*4, 4)
	}
	b.WriteString(` ON CONFLICT (project, key_id) DO UPDATE SET
		last_ts = ` + s.d.Greatest + `(usage_key_activity.last_ts, excluded.last_ts),
		updated = excluded.updated`)
	return b.String()
}

// maxInt64SQL is math.MaxInt64 as an SQL literal (a bigint in both
// databases).
const maxInt64SQL = "9223372036854775807"

// saturatingSum is the SQL for a + b of non-negative bigints, saturating at
// the largest bigint: SQLite would turn an overflowing sum into a float and
// PostgreSQL would fail the statement, and either would break every later
// query of the row.
func saturatingSum(a, b string) string {
	return fmt.Sprintf("CASE WHEN %s > %s - %s THEN %s ELSE %s + %s END", a, maxInt64SQL, b, maxInt64SQL, a, b)
}

// upsertActivity records when each key of the batch was used and stored,
// in key order (no deadlocks between replicas).
func (s *sqlStore) upsertActivity(ctx context.Context, tx *sql.Tx, activity map[[2]string]time.Time) error {
	keys := make([][2]string, 0, len(activity))
	for k := range activity {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
	now := time.Now().UnixMicro()
	for _, chunk := range sqldb.SplitBatch(keys) {
		stmt, err := s.prepared(ctx, "activity", len(chunk), upsertActivitySQL)
		if err != nil {
			return err
		}
		args := make([]any, 0, len(chunk)*4)
		for _, k := range chunk {
			args = append(args, k[0], k[1], activity[k].UnixMicro(), now)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("updating key activity: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) filterSQL(where string, args []any, f Filter) (string, []any) {
	for _, c := range []struct {
		dim Dimension
		val string
	}{
		{ByProject, f.Project}, {ByKeyID, f.KeyID}, {ByService, f.Service}, {ByModel, f.Model}, {ByEndpoint, f.Endpoint},
	} {
		if c.val != "" {
			args = append(args, c.val)
			where += fmt.Sprintf(" AND %s = %s", dimensionColumns[c.dim], s.d.Placeholder(len(args)))
		}
	}
	if f.Owners != nil {
		if len(f.Owners) == 0 {
			return where + " AND 1 = 0", args // nobody's keys
		}
		marks := make([]string, 0, len(f.Owners))
		for _, o := range f.Owners {
			args = append(args, hubv1.EmailKey(o)) // as RecordKeyOwners keeps them
			marks = append(marks, s.d.Placeholder(len(args)))
		}
		where += " AND key_id IN (SELECT key_id FROM usage_key_owners WHERE owner IN (" + strings.Join(marks, ", ") + "))"
	}
	return where, args
}

// KeyOwners implements Store, in chunks of at most 500 key IDs a query.
func (s *sqlStore) KeyOwners(ctx context.Context, keyIDs []string) (map[string]string, error) {
	owners := make(map[string]string, len(keyIDs))
	for chunk := range slices.Chunk(keyIDs, 500) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			marks[i], args[i] = s.d.Placeholder(i+1), id
		}
		rows, err := s.db.QueryContext(ctx, "SELECT key_id, owner FROM usage_key_owners WHERE key_id IN ("+
			strings.Join(marks, ", ")+")", args...)
		if err != nil {
			return nil, fmt.Errorf("reading key owners: %w", err)
		}
		for rows.Next() {
			var id, owner string
			if err := rows.Scan(&id, &owner); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("reading key owners: %w", err)
			}
			owners[id] = owner
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("reading key owners: %w", err)
		}
	}
	return owners, nil
}

// RecordKeyOwners implements Store.
func (s *sqlStore) RecordKeyOwners(ctx context.Context, owners []KeyOwner) error {
	if len(owners) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recording key owners: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder
	stmt := fmt.Sprintf(`INSERT INTO usage_key_owners (key_id, project, owner, updated) VALUES (%s, %s, %s, %s)
		ON CONFLICT (key_id) DO UPDATE SET project = excluded.project, owner = excluded.owner, updated = excluded.updated`,
		p(1), p(2), p(3), p(4))
	now := time.Now().UnixMicro()
	for _, o := range owners {
		// Owners are kept in the form the hub compares emails in, so that
		// Member@Example.com's keys count in member@example.com's group.
		if _, err := tx.ExecContext(ctx, stmt, o.KeyID, o.Project, hubv1.EmailKey(o.Owner), now); err != nil {
			return fmt.Errorf("recording the owner of key %s: %w", o.KeyID, err)
		}
	}
	return tx.Commit()
}

// Events implements Store.
func (s *sqlStore) Events(ctx context.Context, f EventFilter, fn func(Event) error) error {
	// A page starts its scan of the time index at its cursor: the range's
	// one lower bound is the later of From and the cursor's time (two
	// bounds, and the planner may start at the earlier one, scanning every
	// event before the cursor: 13 s a page deep in 10 million events).
	from := f.From
	if f.After != nil && f.After.Time.After(from) {
		from = f.After.Time
	}
	args := []any{from.UnixMicro(), f.To.UnixMicro()}
	where := fmt.Sprintf("ts >= %s AND ts < %s", s.d.Placeholder(1), s.d.Placeholder(2))
	where, args = s.filterSQL(where, args, f.Filter)
	if f.After != nil {
		// With ts at or after the cursor's time, after it in (ts, id)
		// order is: a later time, or the same time and a greater ID.
		args = append(args, f.After.Time.UnixMicro(), f.After.ID)
		n := len(args)
		where += fmt.Sprintf(" AND (ts > %s OR id > %s)", s.d.Placeholder(n-1), s.d.Placeholder(n))
	}
	query := "SELECT " + eventColumns + " FROM usage_events WHERE " + where + " ORDER BY ts, id"
	if f.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("reading usage events: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var e Event
		var ts int64
		var service, flags string
		if err := rows.Scan(&e.ID, &ts, &e.Project, &e.KeyID, &service, &e.Endpoint, &e.Model,
			&e.InputTokens, &e.CachedInputTokens, &e.OutputTokens, &e.VideoSeconds, &e.StorageByteHours, &e.StatusCode, &flags); err != nil {
			return err
		}
		e.Time = time.UnixMicro(ts).UTC()
		e.Service = pricing.Service(service)
		e.Flags = splitFlags(flags)
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// LastUsed implements Store.
func (s *sqlStore) LastUsed(ctx context.Context, since time.Time) ([]KeyActivity, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT project, key_id, last_ts, updated FROM usage_key_activity WHERE updated >= "+
		s.d.Placeholder(1), since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("reading key activity: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []KeyActivity
	for rows.Next() {
		var a KeyActivity
		var ts, updated int64
		if err := rows.Scan(&a.Project, &a.KeyID, &ts, &updated); err != nil {
			return nil, err
		}
		a.Last, a.Stored = time.UnixMicro(ts).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// Prune implements Store. How far events are pruned is recorded first, so
// that no aggregation counts on events that are gone.
func (s *sqlStore) Prune(ctx context.Context, eventsBefore, rollupsBefore time.Time) error {
	p := s.d.Placeholder
	_, err := s.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO usage_meta (name, value) VALUES (%s, %s)
		ON CONFLICT (name) DO UPDATE SET value = %s(usage_meta.value, excluded.value)`, p(1), p(2), s.d.Greatest),
		metaEventsPrunedBefore, eventsBefore.UnixMicro())
	if err != nil {
		return fmt.Errorf("pruning usage: %w", err)
	}
	_, err1 := s.db.ExecContext(ctx, "DELETE FROM usage_events WHERE ts < "+p(1), eventsBefore.UnixMicro())
	hour := rollupsBefore.UTC().Truncate(time.Hour).Unix()
	_, err2 := s.db.ExecContext(ctx, "DELETE FROM usage_hourly WHERE hour < "+p(1), hour)
	_, err3 := s.db.ExecContext(ctx, "DELETE FROM usage_project_hourly WHERE hour < "+p(1), hour)
	// A day that holds the first hour kept stays whole.
	_, err4 := s.db.ExecContext(ctx, "DELETE FROM usage_daily WHERE day < "+p(1), hour-hour%secondsPerDay)
	_, err5 := s.db.ExecContext(ctx, "DELETE FROM usage_project_daily WHERE day <= "+p(1), hour-secondsPerDay)
	if err := errors.Join(err1, err2, err3, err4, err5, s.bumpPruned(ctx, hour)); err != nil {
		return fmt.Errorf("pruning usage: %w", err)
	}
	return nil
}

// Quarantine implements Store.
func (s *sqlStore) Quarantine(ctx context.Context, events []Event, reason string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("quarantining usage events: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder
	stmt := fmt.Sprintf(`INSERT INTO usage_quarantine (id, received, reason, event) VALUES (%s, %s, %s, %s)
		ON CONFLICT (id) DO NOTHING`, p(1), p(2), p(3), p(4))
	now := time.Now().UnixMicro()
	for i := range events {
		raw, err := json.Marshal(&events[i])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, stmt, events[i].ID, now, reason, string(raw)); err != nil {
			return fmt.Errorf("quarantining usage event %s: %w", events[i].ID, err)
		}
	}
	return tx.Commit()
}

// Quarantined implements Store.
func (s *sqlStore) Quarantined(ctx context.Context, limit int) ([]QuarantinedEvent, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT received, reason, event FROM usage_quarantine ORDER BY received, id LIMIT "+
		strconv.Itoa(max(limit, 1)))
	if err != nil {
		return nil, fmt.Errorf("reading quarantined usage events: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []QuarantinedEvent
	for rows.Next() {
		var q QuarantinedEvent
		var received int64
		var raw string
		if err := rows.Scan(&received, &q.Reason, &raw); err != nil {
			return nil, err
		}
		q.Received = time.UnixMicro(received).UTC()
		if err := json.Unmarshal([]byte(raw), &q.Event); err != nil {
			return nil, fmt.Errorf("reading a quarantined usage event: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// joinFlags is the stored form of flags: comma-separated.
func joinFlags(flags []Flag) string {
	parts := make([]string, len(flags))
	for i, f := range flags {
		parts[i] = string(f)
	}
	return strings.Join(parts, ",")
}

func splitFlags(s string) []Flag {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]Flag, len(parts))
	for i, p := range parts {
		out[i] = Flag(p)
	}
	return out
}

// Close implements Store: it closes the database only if the store opened it.
func (s *sqlStore) Close() error {
	if s.own {
		return s.db.Close()
	}
	return nil
}
