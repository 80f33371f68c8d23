// Package testpg starts a throwaway PostgreSQL server for tests, from the
// PostgreSQL binaries installed on the machine (Debian's postgresql-15). It
// is used by tests only; nothing in the hub's binaries imports it.
package testpg

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	// The pgx driver, registered as "pgx".
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// binDirs are where PostgreSQL's server programs may be.
var binDirs = []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin", "/usr/bin"}

// Server is a running PostgreSQL server with a database for tests.
type Server struct {
	// DSN connects to the server's "postgres" database as superuser.
	DSN string

	dir, pgCtl string
	port       int
	asUser     []string
}

// Start initialises a cluster in a temporary directory and starts it on a
// free loopback port. As root (initdb refuses root) it runs the server as the
// postgres user.
func Start() (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hub-testpg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, pgCtl: filepath.Join(bin, "pg_ctl")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running PostgreSQL as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	if err := s.run(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	if err := s.run(s.pgCtl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "start"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.port = port
	s.DSN = s.dsn("postgres")
	return s, nil
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(ctx context.Context, name string) (string, error) {
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		return "", err
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return s.dsn(name), nil
}

func (s *Server) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

// Stop stops the server and removes its files.
func (s *Server) Stop() error {
	err := s.run(s.pgCtl, "-D", filepath.Join(s.dir, "data"), "-m", "fast", "-w", "stop")
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) run(args ...string) error {
	args = append(append([]string(nil), s.asUser...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = s.dir
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(args[len(s.asUser)]), err, out.String())
	}
	return nil
}

func findBinDir() (string, error) {
	if dir := os.Getenv("HUB_POSTGRES_BIN"); dir != "" {
		return dir, nil
	}
	for _, dir := range binDirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
				return dir, nil
			}
		}
	}
	return "", errors.New("PostgreSQL server programs (initdb, pg_ctl) not found; install postgresql-15 " +
		"(apt-get install postgresql-15) or set HUB_POSTGRES_BIN")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func quoteIdent(s string) string { return `"` + s + `"` }

// WaitReady waits until the server accepts connections.
func (s *Server) WaitReady(ctx context.Context) error {
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	for {
		if err := db.PingContext(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Run starts a server for a test package, runs its tests, and stops the
// server: the body of a TestMain, which sets *into for the tests.
func Run(m *testing.M, into **Server) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting PostgreSQL for the tests:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = s.WaitReady(ctx)
	cancel()
	code := 1
	if err == nil {
		*into = s
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, "PostgreSQL did not come up:", err)
	}
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Databases are the databases a store's test suite runs on, by name: a new
// SQLite file, and a new database of s. Each is closed when its test ends.
func Databases(s *Server) map[string]func(t *testing.T) *sqldb.DB {
	return map[string]func(t *testing.T) *sqldb.DB{
		"sqlite": func(t *testing.T) *sqldb.DB {
			db, err := sqldb.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "hub.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
		"postgres": func(t *testing.T) *sqldb.DB {
			ctx := context.Background()
			dsn, err := s.NewDatabase(ctx, fmt.Sprintf("t%d", time.Now().UnixNano()))
			if err != nil {
				t.Fatal(err)
			}
			db, err := sqldb.OpenPostgres(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
}

// Case is one test of a store's suite.
type Case[S any] struct {
	Name string
	Run  func(t *testing.T, s S)
}

// RunSuite runs a store's suite on every database of Databases, each case
// on a fresh store that open makes in a fresh database.
func RunSuite[S any](t *testing.T, s *Server, open func(context.Context, *sqldb.DB) (S, error), suite []Case[S]) {
	for name, db := range Databases(s) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range suite {
				t.Run(tc.Name, func(t *testing.T) {
					store, err := open(context.Background(), db(t))
					if err != nil {
						t.Fatal(err)
					}
					tc.Run(t, store)
				})
			}
		})
	}
}
