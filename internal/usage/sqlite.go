package usage

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	// The pure-Go SQLite driver, registered as "sqlite": no cgo, so the hub
	// stays a static binary on a distroless image.
	_ "modernc.org/sqlite"
)

// OpenSQLite opens (creating if needed) the SQLite usage store at path. It
// runs in WAL mode, so readers never wait for the writer, with a busy timeout
// for concurrent writers and immediate transactions, so two writers queue
// rather than fail on upgrading a read lock.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	q := url.Values{}
	for _, pragma := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-65536)"} {
		q.Add("_pragma", pragma)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening SQLite usage store %s: %w", path, err)
	}
	s := &sqlStore{db: db, d: sqliteDialect}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}
