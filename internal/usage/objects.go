package usage

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Object is an object a project created upstream through the gateway: a
// file, a fine-tuning job, a video task, a stored response. The upstream is
// shared by every project (the platform calls it with one key), so the hub
// records whose each object is, and the gateway lets only that project name
// it.
type Object struct {
	// Kind is the kind of object: file, fine_tuning_job, video_task,
	// response.
	Kind string `json:"kind"`
	// ID is the upstream's ID of the object.
	ID string `json:"id"`
	// Project owns it.
	Project string `json:"project"`
}

// Limits of object fields.
const (
	MaxObjectKindLength = 32
	MaxObjectIDLength   = 256
)

// Validate says what is wrong with an object, if anything, as a *FieldError.
func (o *Object) Validate() error {
	for _, f := range []struct {
		name, value string
		max         int
	}{{"kind", o.Kind, MaxObjectKindLength}, {"id", o.ID, MaxObjectIDLength}, {projectField, o.Project, MaxNameLength}} {
		if msg := TextProblem(f.value, f.max, true); msg != "" {
			return &FieldError{Field: f.name, Message: msg}
		}
	}
	return nil
}

// ObjectStore records which project owns each upstream object. An object's
// owner never changes: the first claim wins. It is kept apart from Store,
// whose usage, alerts and audit are other concerns.
type ObjectStore interface {
	// ClaimObjects records objects as their projects'. An object already
	// recorded for the same project is left as it was; one recorded for
	// another project is left too, and returned among the conflicts, with
	// its recorded owner.
	ClaimObjects(ctx context.Context, objects []Object) (conflicts []Object, err error)
	// ObjectOwners returns the owner of each of ids (of one kind) that is
	// recorded; unrecorded IDs are absent.
	ObjectOwners(ctx context.Context, kind string, ids []string) (map[string]string, error)
}

var objectSchema = []string{
	`CREATE TABLE IF NOT EXISTS upstream_objects (
		kind TEXT NOT NULL,
		id TEXT NOT NULL,
		project TEXT NOT NULL,
		created BIGINT NOT NULL,
		PRIMARY KEY (kind, id))` + "%TABLE_OPTIONS%",
}

var _ ObjectStore = (*sqlStore)(nil)

// Objects returns the object registry that shares s's database: every
// store this package opens has one. It is nil for other stores.
func Objects(s Store) ObjectStore {
	o, _ := s.(ObjectStore)
	return o
}

// ClaimObjects implements ObjectStore.
func (s *sqlStore) ClaimObjects(ctx context.Context, objects []Object) ([]Object, error) {
	for i := range objects {
		if err := objects[i].Validate(); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claiming objects: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.placeholder
	insert := fmt.Sprintf(`INSERT INTO upstream_objects (kind, id, project, created) VALUES (%s, %s, %s, %s)
		ON CONFLICT (kind, id) DO NOTHING`, p(1), p(2), p(3), p(4))
	owner := fmt.Sprintf(`SELECT project FROM upstream_objects WHERE kind = %s AND id = %s`, p(1), p(2))
	now := time.Now().UnixMicro()
	var conflicts []Object
	for _, o := range objects {
		if _, err := tx.ExecContext(ctx, insert, o.Kind, o.ID, o.Project, now); err != nil {
			return nil, fmt.Errorf("claiming %s %s: %w", o.Kind, o.ID, err)
		}
		var recorded string
		if err := tx.QueryRowContext(ctx, owner, o.Kind, o.ID).Scan(&recorded); err != nil {
			return nil, fmt.Errorf("reading the owner of %s %s: %w", o.Kind, o.ID, err)
		}
		if recorded != o.Project {
			conflicts = append(conflicts, Object{Kind: o.Kind, ID: o.ID, Project: recorded})
		}
	}
	return conflicts, tx.Commit()
}

// ObjectOwners implements ObjectStore.
func (s *sqlStore) ObjectOwners(ctx context.Context, kind string, ids []string) (map[string]string, error) {
	owners := make(map[string]string, len(ids))
	for _, chunk := range chunks(ids, 500) {
		c := conds{d: s.d}
		c.add("kind = ?", kind)
		marks := make([]string, 0, len(chunk))
		for _, id := range chunk {
			c.args = append(c.args, id)
			marks = append(marks, s.d.placeholder(len(c.args)))
		}
		c.where = append(c.where, "id IN ("+strings.Join(marks, ", ")+")")
		rows, err := s.db.QueryContext(ctx, "SELECT id, project FROM upstream_objects"+c.sql(), c.args...)
		if err != nil {
			return nil, fmt.Errorf("reading object owners: %w", err)
		}
		for rows.Next() {
			var id, project string
			if err := rows.Scan(&id, &project); err != nil {
				_ = rows.Close()
				return nil, err
			}
			owners[id] = project
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return owners, nil
}

func chunks[T any](items []T, size int) [][]T {
	var out [][]T
	for len(items) > 0 {
		n := min(size, len(items))
		out = append(out, items[:n])
		items = items[n:]
	}
	return out
}
