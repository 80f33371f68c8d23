// Package objects records which project owns each object made upstream
// through the gateway, in the server's database (see Object).
package objects

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/sqldb"
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
	MaxKindLength    = 32
	MaxIDLength      = 256
	MaxProjectLength = 253
)

// Validate says which field of an object is wrong and how, if any: each
// is required, of bounded length, valid UTF-8 without control characters.
func (o *Object) Validate() (field, problem string) {
	for _, f := range []struct {
		name, value string
		max         int
	}{{"kind", o.Kind, MaxKindLength}, {"id", o.ID, MaxIDLength}, {"project", o.Project, MaxProjectLength}} {
		if msg := sqldb.TextProblem(f.value, f.max, true); msg != "" {
			return f.name, msg
		}
	}
	return "", ""
}

// Store records which project owns each upstream object. An object's owner
// never changes: the first claim wins.
type Store interface {
	// ClaimObjects records objects as their projects'. An object already
	// recorded for the same project is left as it was; one recorded for
	// another project is left too, and returned among the conflicts, with
	// its recorded owner.
	ClaimObjects(ctx context.Context, objects []Object) (conflicts []Object, err error)
	// ObjectOwners returns the owner of each of ids (of one kind) that is
	// recorded; unrecorded IDs are absent.
	ObjectOwners(ctx context.Context, kind string, ids []string) (map[string]string, error)
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS upstream_objects (
		kind TEXT NOT NULL,
		id TEXT NOT NULL,
		project TEXT NOT NULL,
		created BIGINT NOT NULL,
		PRIMARY KEY (kind, id))` + "%TABLE_OPTIONS%",
}

// sqlStore implements Store in the hub's database.
type sqlStore struct {
	db *sqldb.DB
	d  sqldb.Dialect
}

// New returns the object registry in db, creating its table if needed.
func New(ctx context.Context, db *sqldb.DB) (Store, error) {
	if err := db.Migrate(ctx, "objects", schema, nil); err != nil {
		return nil, err
	}
	return &sqlStore{db: db, d: db.D}, nil
}

// ClaimObjects implements Store.
func (s *sqlStore) ClaimObjects(ctx context.Context, objects []Object) ([]Object, error) {
	for i := range objects {
		if field, msg := objects[i].Validate(); field != "" {
			return nil, fmt.Errorf("object %d: %s: %s", i, field, msg)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claiming objects: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder
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

// ObjectOwners implements Store.
func (s *sqlStore) ObjectOwners(ctx context.Context, kind string, ids []string) (map[string]string, error) {
	owners := make(map[string]string, len(ids))
	for _, chunk := range sqldb.Chunks(ids, 500) {
		c := sqldb.Conds{D: s.d}
		c.Add("kind = ?", kind)
		marks := make([]string, 0, len(chunk))
		for _, id := range chunk {
			c.Args = append(c.Args, id)
			marks = append(marks, s.d.Placeholder(len(c.Args)))
		}
		c.Where = append(c.Where, "id IN ("+strings.Join(marks, ", ")+")")
		rows, err := s.db.QueryContext(ctx, "SELECT id, project FROM upstream_objects"+c.SQL(), c.Args...)
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
