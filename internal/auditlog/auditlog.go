// Package auditlog is the audit log of changes to hub resources, in the
// server's database: who changed what, when, and which fields.
package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// Entry is one stored change to a hub resource: who asked for it, as
// admission saw it, and what the API server stored.
type Entry struct {
	// ID identifies the change (the object's UID and the resource version
	// it produced; see audit.Committer): an entry sent twice, or by two
	// replicas, is stored once.
	ID string `json:"id"`
	// Time is when admission let the request through.
	Time time.Time `json:"time"`
	// Actor and Groups are the user the API server authenticated.
	Actor  string   `json:"actor"`
	Groups []string `json:"groups,omitempty"`
	// Via names the hub component that made the change for the actor, by
	// impersonation: "management-api" for key and rotation requests.
	Via string `json:"via,omitempty"`
	// KeyID is the hub key the actor signed in to the management API
	// with, when they did.
	KeyID string `json:"keyID,omitempty"`
	// Action is create, update or delete.
	Action string `json:"action"`
	// Kind, Namespace, Name and UID name the object.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	// ResourceVersion is the object's version the change produced (for a
	// delete, the version it was seen deleted at).
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Changes are the old and new values of the fields that grant access
	// (roles, membership, project access lists) and of the plan.
	Changes []FieldChange `json:"changes,omitempty"`
}

// The actions of an Entry.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
)

// FieldChange is a field's value before and after a change.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// Filter selects audit entries; empty fields match all.
type Filter struct {
	From, To  time.Time
	Actor     string
	Kind      string
	Namespace string
	Name      string
	// Limit caps the entries (the newest are kept); zero means no cap.
	Limit int
	// After, when set, reads a page instead: the entries after it in
	// (time, ID) order, at most Limit of them, oldest first. The zero
	// Cursor starts from the first entry.
	After *sqldb.Cursor
}

// Store is the audit log.
type Store interface {
	// RecordAudit stores the entries whose IDs are new.
	RecordAudit(ctx context.Context, entries []Entry) error
	// AuditEntries lists entries, oldest first.
	AuditEntries(ctx context.Context, f Filter) ([]Entry, error)
	// PruneAudit deletes entries before before.
	PruneAudit(ctx context.Context, before time.Time) error
}

// sqlStore implements Store in the hub's database.
type sqlStore struct {
	db *sqldb.DB
	d  sqldb.Dialect
}

// New returns the audit log in db, creating its tables if needed.
func New(ctx context.Context, db *sqldb.DB) (Store, error) {
	if err := db.Migrate(ctx, "audit", schema, added); err != nil {
		return nil, err
	}
	return &sqlStore{db: db, d: db.D}, nil
}

// The audit table, and the definition of a text column added to it once
// it had rows: empty for them.
const (
	table     = "audit_events"
	emptyText = "TEXT NOT NULL DEFAULT ''"
)

// added are the columns added since the table was first made; Migrate adds
// them to an older table.
var added = []sqldb.Column{
	{Table: table, Name: "resource_version", Definition: emptyText},
	{Table: table, Name: "via", Definition: emptyText},
	{Table: table, Name: "key_id", Definition: emptyText},
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS audit_events (
		id TEXT PRIMARY KEY,
		ts BIGINT NOT NULL,
		actor TEXT NOT NULL,
		groups_json TEXT NOT NULL,
		action TEXT NOT NULL,
		kind TEXT NOT NULL,
		namespace TEXT NOT NULL,
		name TEXT NOT NULL,
		uid TEXT NOT NULL,
		changes_json TEXT NOT NULL,
		resource_version TEXT NOT NULL DEFAULT '',
		via TEXT NOT NULL DEFAULT '',
		key_id TEXT NOT NULL DEFAULT '')` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts)`,
	`CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, ts)`,
	`CREATE INDEX IF NOT EXISTS audit_events_object ON audit_events (kind, name, ts)`,
}

// RecordAudit implements Store.
func (s *sqlStore) RecordAudit(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recording audit entries: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder
	stmt := fmt.Sprintf(`INSERT INTO audit_events (id, ts, actor, groups_json, action, kind, namespace, name, uid, changes_json,
		resource_version, via, key_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING`,
		p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13))
	for _, e := range entries {
		groups, _ := json.Marshal(e.Groups)
		changes, _ := json.Marshal(e.Changes)
		if _, err := tx.ExecContext(ctx, stmt, e.ID, e.Time.UnixMicro(), e.Actor, string(groups), e.Action, e.Kind,
			e.Namespace, e.Name, e.UID, string(changes), e.ResourceVersion, e.Via, e.KeyID); err != nil {
			return fmt.Errorf("recording audit entry %s: %w", e.ID, err)
		}
	}
	return tx.Commit()
}

// AuditEntries implements Store.
func (s *sqlStore) AuditEntries(ctx context.Context, f Filter) ([]Entry, error) {
	c := &sqldb.Conds{D: s.d}
	c.TimeRange("ts", f.From, f.To)
	c.Equal("actor", f.Actor)
	c.Equal("kind", f.Kind)
	c.Equal("namespace", f.Namespace)
	c.Equal("name", f.Name)
	if f.After != nil {
		c.After("ts", "id", *f.After)
	}
	args := c.Args
	q := "SELECT id, ts, actor, groups_json, action, kind, namespace, name, uid, changes_json, resource_version, via, key_id " +
		"FROM audit_events" + c.SQL()
	limit := ""
	if f.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	if f.After != nil {
		q += " ORDER BY ts, id" + limit
	} else {
		// The newest under the limit, answered oldest first.
		q = "SELECT * FROM (" + q + " ORDER BY ts DESC, id DESC" + limit + ") e ORDER BY ts, id"
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ts int64
		var groups, changes string
		if err := rows.Scan(&e.ID, &ts, &e.Actor, &groups, &e.Action, &e.Kind, &e.Namespace, &e.Name, &e.UID, &changes, &e.ResourceVersion,
			&e.Via, &e.KeyID); err != nil {
			return nil, fmt.Errorf("reading an audit entry: %w", err)
		}
		e.Time = time.UnixMicro(ts).UTC()
		if err := errors.Join(json.Unmarshal([]byte(groups), &e.Groups), json.Unmarshal([]byte(changes), &e.Changes)); err != nil {
			return nil, fmt.Errorf("reading audit entry %s: %w", e.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneAudit implements Store.
func (s *sqlStore) PruneAudit(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM audit_events WHERE ts < "+s.d.Placeholder(1), before.UnixMicro()); err != nil {
		return fmt.Errorf("pruning the audit log: %w", err)
	}
	return nil
}
