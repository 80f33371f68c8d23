// Package sqldb is the SQL database the server role keeps: SQLite (the
// embedded default, pure Go, so the binary stays static) or PostgreSQL (for
// several server replicas). It opens the database, migrates each concern's
// schema, and holds what differs between the two dialects and the helpers
// their queries share. The concerns themselves (usage, alerts, the audit
// log, upstream objects) are packages of their own, each with its store
// interface over the one database.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	// The pgx driver for database/sql, registered as "pgx".
	_ "github.com/jackc/pgx/v5/stdlib"
	// The pure-Go SQLite driver, registered as "sqlite": no cgo, so the hub
	// stays a static binary on a distroless image.
	_ "modernc.org/sqlite"
)

// Dialect is what differs between the SQL databases.
type Dialect struct {
	Name string
	// Placeholder returns the placeholder of the i-th argument (from 1).
	Placeholder func(i int) string
	// Greatest is the two-argument maximum function.
	Greatest string
	// TableOptions ends the CREATE TABLE statements. SQLite stores tables
	// by their primary key WITHOUT ROWID, so a table with a text key is one
	// B-tree instead of two (measured: a tenth faster ingest).
	TableOptions string
	// MigrationLock, when set, runs first in a schema transaction so that
	// replicas starting together do not race to create the same tables.
	MigrationLock string
	// ColumnExists counts the columns named $2 of table $1 (0 or 1).
	ColumnExists string
	// ConcurrentWriters is set when several transactions may write at once
	// (PostgreSQL): writers must then lock rows in one order. SQLite
	// writes one transaction at a time.
	ConcurrentWriters bool
	// LockForWrites, when set, is the statement (with %s for the table)
	// that keeps other transactions from writing a table until this one
	// ends. SQLite needs none: its transactions here are immediate, and
	// one writes at a time.
	LockForWrites string
	// LockAsWriter, when set, is the statement (with %s for the table)
	// that takes the lock a writer of a table takes, before it writes:
	// writers do not wait for each other, but wait for, or hold off, a
	// transaction that holds LockForWrites.
	LockAsWriter string
	// RowTrigger returns the statements that (re)create the trigger name,
	// which runs stmt after each row that event (INSERT or UPDATE) writes
	// into table, when the condition when holds for it. Both read the row
	// as NEW (and, for UPDATE, as it was, as OLD).
	RowTrigger func(name, table, event, when, stmt string) []string
}

// The dialects.
var (
	SQLite = Dialect{Name: "sqlite", Placeholder: func(int) string { return "?" }, Greatest: "max", TableOptions: " WITHOUT ROWID",
		ColumnExists: "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?",
		RowTrigger: func(name, table, event, when, stmt string) []string {
			return []string{"DROP TRIGGER IF EXISTS " + name,
				fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW WHEN %s BEGIN %s; END", name, event, table, when, stmt)}
		}}
	Postgres = Dialect{Name: "postgres", Placeholder: func(i int) string { return fmt.Sprintf("$%d", i) }, Greatest: "GREATEST",
		MigrationLock:     "SELECT pg_advisory_xact_lock(7486375001)",
		ColumnExists:      "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
		ConcurrentWriters: true,
		LockForWrites:     "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE",
		LockAsWriter:      "LOCK TABLE %s IN ROW EXCLUSIVE MODE",
		// A PostgreSQL trigger runs a function; each trigger here has its
		// own, of the same name, which checks the condition (a trigger's
		// WHEN may not hold a subquery).
		RowTrigger: func(name, table, event, when, stmt string) []string {
			return []string{
				fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF %s THEN %s; END IF; RETURN NULL; END $$",
					name, when, stmt),
				fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", name, table),
				fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION %s()", name, event, table, name)}
		}}
)

// DB is an open database and its dialect. Its methods are safe for
// concurrent use.
type DB struct {
	*sql.DB
	D Dialect
	// stmts caches prepared statements by kind and row count.
	stmts sync.Map
}

// Open opens the database a URL names: "sqlite:<path>" or a postgres:// URL.
func Open(ctx context.Context, u string) (*DB, error) {
	switch {
	case strings.HasPrefix(u, "sqlite:"):
		path := strings.TrimPrefix(u, "sqlite:")
		if path == "" {
			return nil, errors.New(`--store sqlite: needs a file path, such as sqlite:/var/lib/hub/usage.db`)
		}
		return OpenSQLite(ctx, filepath.Clean(path))
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return OpenPostgres(ctx, u)
	}
	return nil, fmt.Errorf("--store must be sqlite:<path> or a postgres:// URL, not %q", u)
}

// OpenSQLite opens (creating if needed) the SQLite database at path. It
// runs in WAL mode, so readers never wait for the writer, with a busy timeout
// for concurrent writers and immediate transactions, so two writers queue
// rather than fail on upgrading a read lock.
func OpenSQLite(_ context.Context, path string) (*DB, error) {
	q := url.Values{}
	for _, pragma := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-65536)"} {
		q.Add("_pragma", pragma)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	return &DB{DB: db, D: SQLite}, nil
}

// OpenPostgres opens the PostgreSQL database at dsn (a postgres:// URL).
// Several server replicas may share it.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL database: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return &DB{DB: db, D: Postgres}, nil
}

// Column is a column added to a table after the table's first release:
// CREATE TABLE IF NOT EXISTS leaves an older table as it was.
type Column struct{ Table, Name, Definition string }

// Migrate creates a concern's tables and indexes (statements in which
// %TABLE_OPTIONS% ends each CREATE TABLE) and adds the columns added since,
// in one transaction, under the dialect's migration lock.
func (db *DB) Migrate(ctx context.Context, concern string, stmts []string, added []Column) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if db.D.MigrationLock != "" {
		stmts = append([]string{db.D.MigrationLock}, stmts...)
	}
	for _, stmt := range stmts {
		stmt = strings.ReplaceAll(stmt, "%TABLE_OPTIONS%", db.D.TableOptions)
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating the %s %s schema: %w", db.D.Name, concern, err)
		}
	}
	for _, c := range added {
		var n int
		if err := tx.QueryRowContext(ctx, db.D.ColumnExists, c.Table, c.Name).Scan(&n); err != nil {
			return fmt.Errorf("reading the %s %s schema: %w", db.D.Name, concern, err)
		}
		if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", c.Table, c.Name, c.Definition)); err != nil {
			return fmt.Errorf("adding %s.%s to the %s %s schema: %w", c.Table, c.Name, db.D.Name, concern, err)
		}
	}
	return tx.Commit()
}

// Close releases the prepared statements and the database.
func (db *DB) Close() error {
	db.stmts.Range(func(_, stmt any) bool {
		_ = stmt.(*sql.Stmt).Close()
		return true
	})
	return db.DB.Close()
}

// Prepared returns the statement of a kind for a number of rows, built by
// build and prepared on first use.
func (db *DB) Prepared(ctx context.Context, kind string, rows int, build func(rows int) string) (*sql.Stmt, error) {
	key := fmt.Sprintf("%s/%d", kind, rows)
	if stmt, ok := db.stmts.Load(key); ok {
		return stmt.(*sql.Stmt), nil
	}
	stmt, err := db.PrepareContext(ctx, build(rows))
	if err != nil {
		return nil, fmt.Errorf("preparing %s statement: %w", kind, err)
	}
	if prev, loaded := db.stmts.LoadOrStore(key, stmt); loaded {
		_ = stmt.Close()
		return prev.(*sql.Stmt), nil
	}
	return stmt, nil
}

// Values writes "(p1, p2, ...)" for n arguments after the first after.
func (db *DB) Values(b *strings.Builder, after, n int) {
	b.WriteString("(")
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		b.WriteString(db.D.Placeholder(after + i))
	}
	b.WriteString(")")
}

// BatchRows are the row counts of the multi-row statements the stores
// prepare. A batch is split greedily into them, so each kind of statement
// has at most len(BatchRows) prepared forms and no batch is parsed anew
// (parsing a 1,000-row statement cost a fifth of ingest, measured).
var BatchRows = []int{256, 64, 16, 4, 1}

// SplitBatch splits items into runs of BatchRows sizes.
func SplitBatch[T any](items []T) [][]T {
	var out [][]T
	for _, size := range BatchRows {
		for len(items) >= size {
			out = append(out, items[:size])
			items = items[size:]
		}
	}
	return out
}

// Chunks splits items into runs of at most size.
func Chunks[T any](items []T, size int) [][]T {
	var out [][]T
	for len(items) > 0 {
		n := min(size, len(items))
		out = append(out, items[:n])
		items = items[n:]
	}
	return out
}

// Conds collects the conditions of a WHERE clause, numbering the
// placeholders as the dialect wants them.
type Conds struct {
	D     Dialect
	Where []string
	Args  []any
}

// Add adds cond, whose one "?" stands for v.
func (c *Conds) Add(cond string, v any) {
	c.Args = append(c.Args, v)
	c.Where = append(c.Where, strings.ReplaceAll(cond, "?", c.D.Placeholder(len(c.Args))))
}

// TimeRange bounds the microsecond column col to [from, to); a zero bound
// is no bound.
func (c *Conds) TimeRange(col string, from, to time.Time) {
	if !from.IsZero() {
		c.Add(col+" >= ?", from.UnixMicro())
	}
	if !to.IsZero() {
		c.Add(col+" < ?", to.UnixMicro())
	}
}

// Equal requires col = v, unless v is empty.
func (c *Conds) Equal(col, v string) {
	if v != "" {
		c.Add(col+" = ?", v)
	}
}

// SQL is the WHERE clause, or nothing.
func (c *Conds) SQL() string {
	if len(c.Where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.Where, " AND ")
}

// TextProblem says what is wrong with a text of at most max bytes that is
// to be stored, if anything: it must be valid UTF-8 without control
// characters (PostgreSQL refuses NUL in text, and no name needs them).
func TextProblem(s string, max int, required bool) string {
	switch {
	case s == "" && required:
		return "is required"
	case len(s) > max:
		return fmt.Sprintf("must be at most %d bytes", max)
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}
