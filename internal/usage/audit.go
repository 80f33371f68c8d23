package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AuditEntry is one change to a hub resource, as admission saw it.
type AuditEntry struct {
	// ID identifies the change (see webhooks.entryID): an entry sent twice,
	// or asked for twice by the API server, is stored once.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Actor and Groups are the user the API server authenticated.
	Actor  string   `json:"actor"`
	Groups []string `json:"groups,omitempty"`
	// Action is create, update or delete.
	Action string `json:"action"`
	// Kind, Namespace, Name and UID name the object.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	// Changes are the old and new values of the fields that grant access
	// (roles, membership, project access lists) and of the plan.
	Changes []FieldChange `json:"changes,omitempty"`
}

// FieldChange is a field's value before and after a change.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// AuditFilter selects audit entries; empty fields match all.
type AuditFilter struct {
	From, To  time.Time
	Actor     string
	Kind      string
	Namespace string
	Name      string
	// Limit caps the entries (the newest are kept); zero means no cap.
	Limit int
}

// AuditStore is the audit log.
type AuditStore interface {
	// RecordAudit stores the entries whose IDs are new.
	RecordAudit(ctx context.Context, entries []AuditEntry) error
	// AuditEntries lists entries, oldest first.
	AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// PruneAudit deletes entries before before.
	PruneAudit(ctx context.Context, before time.Time) error
}

var auditSchema = []string{
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
		changes_json TEXT NOT NULL)` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts)`,
	`CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, ts)`,
	`CREATE INDEX IF NOT EXISTS audit_events_object ON audit_events (kind, name, ts)`,
}

// RecordAudit implements AuditStore.
func (s *sqlStore) RecordAudit(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recording audit entries: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.placeholder
	stmt := fmt.Sprintf(`INSERT INTO audit_events (id, ts, actor, groups_json, action, kind, namespace, name, uid, changes_json)
		VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING`,
		p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10))
	for _, e := range entries {
		groups, _ := json.Marshal(e.Groups)
		changes, _ := json.Marshal(e.Changes)
		if _, err := tx.ExecContext(ctx, stmt, e.ID, e.Time.UnixMicro(), e.Actor, string(groups), e.Action, e.Kind,
			e.Namespace, e.Name, e.UID, string(changes)); err != nil {
			return fmt.Errorf("recording audit entry %s: %w", e.ID, err)
		}
	}
	return tx.Commit()
}

// AuditEntries implements AuditStore.
func (s *sqlStore) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	c := &conds{d: s.d}
	c.timeRange("ts", f.From, f.To)
	c.equal("actor", f.Actor)
	c.equal("kind", f.Kind)
	c.equal("namespace", f.Namespace)
	c.equal("name", f.Name)
	args := c.args
	q := "SELECT id, ts, actor, groups_json, action, kind, namespace, name, uid, changes_json FROM audit_events" + c.sql()
	q += " ORDER BY ts DESC, id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	q = "SELECT * FROM (" + q + ") e ORDER BY ts, id"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var ts int64
		var groups, changes string
		if err := rows.Scan(&e.ID, &ts, &e.Actor, &groups, &e.Action, &e.Kind, &e.Namespace, &e.Name, &e.UID, &changes); err != nil {
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

// PruneAudit implements AuditStore.
func (s *sqlStore) PruneAudit(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM audit_events WHERE ts < "+s.d.placeholder(1), before.UnixMicro()); err != nil {
		return fmt.Errorf("pruning the audit log: %w", err)
	}
	return nil
}
