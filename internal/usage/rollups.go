package usage

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// Rollups are usage summed by period and group, in two levels:
//
//   - per key (usage_hourly, usage_daily): by project, key, service, model
//     and endpoint, for questions about keys (grouped or filtered by key,
//     or by the members who own keys);
//   - per project (usage_project_hourly, usage_project_daily): the same
//     without the key, for every other question. With thousands of keys
//     busy, an hour holds thousands of per-key rows and a few hundred
//     per-project ones, and a month's report by project reads the latter
//     (docs/usage-store.md, "Performance at scale").
//
// Daily rollups per key are UTC days. Daily rollups per project are kept
// for every UTC offset in usage_day_offsets: days that start at a midnight
// of that offset, so that a day in the organization's billing zone (Asia/
// Shanghai, +08:00) is one row per group rather than 24.

// rollupKey keys a rollup: the start of its hour or day (Unix seconds), the
// UTC offset of its day (seconds east; per-project days only), and its
// group (keyID empty per project).
type rollupKey struct {
	start, offset                            int64
	project, keyID, service, model, endpoint string
}

func (k rollupKey) compare(o rollupKey) int {
	return cmp.Or(cmp.Compare(k.offset, o.offset), cmp.Compare(k.start, o.start), strings.Compare(k.project, o.project),
		strings.Compare(k.keyID, o.keyID), strings.Compare(k.service, o.service), strings.Compare(k.model, o.model),
		strings.Compare(k.endpoint, o.endpoint))
}

// rollupTable is a table of rollups.
type rollupTable struct {
	// name is the table's; start, the column of the start of its periods.
	name, start string
	// perKey is set when rows are per key (key_id is a column), offsets
	// when they are per UTC offset (utc_offset is a column).
	perKey, offsets bool
}

// The rollup tables.
var (
	hourlyRollups        = rollupTable{name: "usage_hourly", start: hourColumn, perKey: true}
	dailyRollups         = rollupTable{name: "usage_daily", start: dayColumn, perKey: true}
	projectHourlyRollups = rollupTable{name: "usage_project_hourly", start: hourColumn}
	projectDailyRollups  = rollupTable{name: "usage_project_daily", start: dayColumn, offsets: true}
)

// The columns of the start of a rollup's period (Unix seconds).
const (
	hourColumn = "hour"
	dayColumn  = "day"
)

// groupColumns are the columns of a row's group, in order.
func (t rollupTable) groupColumns() []string {
	cols := make([]string, 0, 5)
	for _, d := range []Dimension{ByProject, ByKeyID, ByService, ByModel, ByEndpoint} {
		if d != ByKeyID || t.perKey {
			cols = append(cols, dimensionColumns[d])
		}
	}
	return cols
}

// keyColumns are the columns of the table's primary key, in order.
//
// The offset comes first: a query reads one offset's days, and the rows
// then lie in the order it groups them (day, then group), so the database
// sums them as it reads them instead of sorting them first.
func (t rollupTable) keyColumns() []string {
	var cols []string
	if t.offsets {
		cols = append(cols, "utc_offset")
	}
	return append(append(cols, t.start), t.groupColumns()...)
}

// keyValues are k's values of keyColumns.
func (t rollupTable) keyValues(k rollupKey) []any {
	var v []any
	if t.offsets {
		v = append(v, k.offset)
	}
	v = append(v, k.start, k.project)
	if t.perKey {
		v = append(v, k.keyID)
	}
	return append(v, k.service, k.model, k.endpoint)
}

// keyOf is the key of a row of this table with the given start, offset
// and group values (in the order of groupColumns).
func (t rollupTable) keyOf(start, offset int64, g []string) rollupKey {
	if t.perKey {
		return rollupKey{start: start, offset: offset, project: g[0], keyID: g[1], service: g[2], model: g[3], endpoint: g[4]}
	}
	return rollupKey{start: start, offset: offset, project: g[0], service: g[1], model: g[2], endpoint: g[3]}
}

// schema creates the table and its index by project.
func (t rollupTable) schema() []string {
	var cols strings.Builder
	for _, c := range t.keyColumns() {
		typ := "TEXT"
		if c == t.start || c == "utc_offset" {
			typ = "BIGINT"
		}
		fmt.Fprintf(&cols, "\n\t\t%s %s NOT NULL,", c, typ)
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.name + ` (` + cols.String() + `
		calls BIGINT NOT NULL,
		input_tokens BIGINT NOT NULL,
		cached_input_tokens BIGINT NOT NULL DEFAULT 0,
		output_tokens BIGINT NOT NULL,
		video_seconds BIGINT NOT NULL,
		storage_byte_hours BIGINT NOT NULL,
		PRIMARY KEY (` + strings.Join(t.keyColumns(), ", ") + `))` + "%TABLE_OPTIONS%",
		`CREATE INDEX IF NOT EXISTS ` + t.name + `_project_` + t.start + ` ON ` + t.name + ` (project, ` + t.start + `)`,
	}
}

// totalsColumns are the rollups' sums, in the order of Totals.
const totalsColumns = "calls, input_tokens, cached_input_tokens, output_tokens, video_seconds, storage_byte_hours"

// totalsCount is the number of totalsColumns.
const totalsCount = 6

// upsertRollups adds sums to a table of rollups. Rows are written in key
// order, so concurrent writers (server replicas on PostgreSQL) take row
// locks in the same order and cannot deadlock.
func (s *sqlStore) upsertRollups(ctx context.Context, tx *sql.Tx, table rollupTable, rollups map[rollupKey]Totals) error {
	keys := slices.SortedFunc(maps.Keys(rollups), rollupKey.compare)
	width := len(table.keyColumns()) + totalsCount
	for _, chunk := range sqldb.SplitBatch(keys) {
		stmt, err := s.prepared(ctx, table.name, len(chunk), upsertRollupsSQL(table))
		if err != nil {
			return err
		}
		args := make([]any, 0, len(chunk)*width)
		for _, k := range chunk {
			t := rollups[k]
			args = append(args, table.keyValues(k)...)
			args = append(args, t.Calls, t.InputTokens, t.CachedInputTokens, t.OutputTokens, t.VideoSeconds, t.StorageByteHours)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("updating usage rollups: %w", err)
		}
	}
	return nil
}

func upsertRollupsSQL(table rollupTable) func(s *sqlStore, rows int) string {
	return func(s *sqlStore, rows int) string {
		width := len(table.keyColumns()) + totalsCount
		var b strings.Builder
		b.WriteString("INSERT INTO " + table.name + " (" + strings.Join(table.keyColumns(), ", ") + ", " + totalsColumns + ") VALUES ")
		for i := range rows {
			if i > 0 {
				b.WriteString(",")
			}
			s.values(&b, i*width, width)
		}
		return b.String() + onConflictAdd(table)
	}
}

// onConflictAdd ends an insert of rollups: a rollup already there gains
// the figures, saturating.
func onConflictAdd(table rollupTable) string {
	sums := strings.Split(totalsColumns, ", ")
	for i, c := range sums {
		sums[i] = c + " = " + saturatingSum(table.name+"."+c, "excluded."+c)
	}
	return " ON CONFLICT (" + strings.Join(table.keyColumns(), ", ") + ") DO UPDATE SET " + strings.Join(sums, ", ")
}

// lockRollups locks rows of a rollup table, in key order, creating those
// that are missing with zero figures (an update of a row to itself locks
// it as well as an insert does). Writers on a database with concurrent
// writers lock the rows the triggers of their batch will add to before
// they write any, so that two of them never wait for each other's rows.
func (s *sqlStore) lockRollups(ctx context.Context, tx *sql.Tx, table rollupTable, rows map[rollupKey]bool) error {
	keys := slices.SortedFunc(maps.Keys(rows), rollupKey.compare)
	width := len(table.keyColumns())
	for _, chunk := range sqldb.SplitBatch(keys) {
		stmt, err := s.prepared(ctx, "lock-"+table.name, len(chunk), lockRollupsSQL(table))
		if err != nil {
			return err
		}
		args := make([]any, 0, len(chunk)*width)
		for _, k := range chunk {
			args = append(args, table.keyValues(k)...)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("locking usage rollups: %w", err)
		}
	}
	return nil
}

// lockRollupsSQL inserts rows with zero figures, or, for a row that is
// there, updates it to itself: either way, the row is locked.
func lockRollupsSQL(table rollupTable) func(s *sqlStore, rows int) string {
	return func(s *sqlStore, rows int) string {
		width := len(table.keyColumns())
		zeros := strings.Repeat(", 0", totalsCount)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table.name + " (" + strings.Join(table.keyColumns(), ", ") + ", " + totalsColumns + ") VALUES ")
		for i := range rows {
			if i > 0 {
				b.WriteString(",")
			}
			var key strings.Builder
			s.values(&key, i*width, width) // "(start, project, …)"
			b.WriteString(strings.TrimSuffix(key.String(), ")") + zeros + ")")
		}
		b.WriteString(" ON CONFLICT (" + strings.Join(table.keyColumns(), ", ") + ") DO UPDATE SET calls = " + table.name + ".calls")
		return b.String()
	}
}
