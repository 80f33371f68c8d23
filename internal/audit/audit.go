// Package audit records every change to a hub resource, with who made it,
// into the usage store's audit log.
//
// The manager's admission webhooks see each create, update and delete with
// the user the API server authenticated. Once the hub's own checks have let
// a request through, its entry goes to a Recorder, which sends entries to the
// usage server in batches (the server owns the store). While the server is
// unreachable, entries wait in a spool file and go out when it is back.
//
// Entries are taken at admission: a request refused after the hub's checks
// (by an edit conflict, or by another admission webhook of the cluster) can
// still have an entry. The API server's own audit log, where the cluster has
// one, is the record of what was stored.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/minimax/platform-hub/internal/jsonl"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/usage"
)

// Path is where the usage server takes audit entries.
const Path = "/v1/audit/events"

// Recorder sends audit entries to the usage server. Record never blocks an
// admission request.
type Recorder struct {
	// URL is the usage server's base URL.
	URL    string
	Client *http.Client
	// Token returns the bearer token shown to the server.
	Token func() (string, error)
	// SpoolDir keeps entries while the server is unreachable.
	SpoolDir string
	Log      logr.Logger
	// FlushInterval bounds how long an entry waits; default 500ms.
	FlushInterval time.Duration

	once sync.Once
	in   chan usage.AuditEntry
	// stopped is set once the sender has stopped: webhooks still admitting
	// changes during shutdown write their entries straight to the spool.
	stopped atomic.Bool
	// spoolMu guards appends to the spool and its hand-over to the sender;
	// it is never held across a request to the server.
	spoolMu sync.Mutex
	// nextDrain holds the spool back for a while after the server failed
	// (touched by the sender only).
	nextDrain time.Time
}

func (r *Recorder) init() {
	r.once.Do(func() { r.in = make(chan usage.AuditEntry, 10_000) })
}

// Record queues an entry; when the queue is full, or the sender has
// stopped, it goes to the spool.
func (r *Recorder) Record(e usage.AuditEntry) {
	r.init()
	if !r.stopped.Load() {
		select {
		case r.in <- e:
			return
		default:
		}
	}
	if err := r.spill([]usage.AuditEntry{e}); err != nil {
		r.Log.Error(err, "Could not keep an audit entry", "entry", e.ID)
	}
}

// NeedLeaderElection is false: every replica serves webhooks.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start sends entries until ctx ends, then sends or spools what is left.
func (r *Recorder) Start(ctx context.Context) error {
	r.init()
	r.stopped.Store(false)
	if err := os.MkdirAll(r.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("creating the audit spool directory: %w", err)
	}
	interval := r.FlushInterval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var batch []usage.AuditEntry
	for {
		select {
		case e := <-r.in:
			if batch = append(batch, e); len(batch) < 500 {
				continue
			}
		case <-ticker.C:
		case <-ctx.Done():
			r.stopped.Store(true)
			r.flush(context.Background(), append(batch, r.drain()...))
			return nil
		}
		if len(batch) > 0 {
			r.flush(ctx, batch)
			batch = nil
		}
		r.drainSpool(ctx)
	}
}

func (r *Recorder) drain() []usage.AuditEntry {
	var out []usage.AuditEntry
	for {
		select {
		case e := <-r.in:
			out = append(out, e)
		default:
			return out
		}
	}
}

// flush sends a batch, or spools it.
func (r *Recorder) flush(ctx context.Context, batch []usage.AuditEntry) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.send(ctx, batch); err != nil {
		r.nextDrain = time.Now().Add(5 * time.Second)
		r.Log.V(1).Info("Usage server unreachable; spooling audit entries", "entries", len(batch), "error", err.Error())
		if err := r.spill(batch); err != nil {
			r.Log.Error(err, "Could not keep audit entries", "entries", len(batch))
		}
	}
}

// send posts a batch. An entry the server refuses as invalid (which no
// retry can fix) is dropped, with an error logged, and the rest sent again:
// one bad entry must not hold back the others for ever.
func (r *Recorder) send(ctx context.Context, batch []usage.AuditEntry) error {
	for len(batch) > 0 {
		err := r.post(ctx, batch)
		var bad *invalidEntry
		if !errors.As(err, &bad) || bad.index < 0 || bad.index >= len(batch) {
			return err
		}
		e := batch[bad.index]
		r.Log.Error(errors.New(bad.message), "The usage server refused an audit entry; dropping it", "kind", e.Kind, "name", e.Name, "action", e.Action)
		batch = append(batch[:bad.index:bad.index], batch[bad.index+1:]...)
	}
	return nil
}

// invalidEntry is the server's 400 for one entry of a batch.
type invalidEntry struct {
	index   int
	message string
}

func (e *invalidEntry) Error() string { return e.message }

func (r *Recorder) post(ctx context.Context, batch []usage.AuditEntry) error {
	resp, err := serverclient.Post(ctx, r.Client, r.URL+Path, r.Token, map[string][]usage.AuditEntry{"entries": batch})
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusBadRequest {
		var answer struct {
			Error struct {
				Message string `json:"message"`
				Index   *int   `json:"index"`
			} `json:"error"`
		}
		if json.Unmarshal(msg, &answer) == nil && answer.Error.Index != nil {
			return &invalidEntry{index: *answer.Error.Index, message: answer.Error.Message}
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the usage server answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// The spool: new entries are appended to spoolFile; the sender takes the
// file over as sendingFile and sends it without holding the lock.
func (r *Recorder) spoolFile() string   { return filepath.Join(r.SpoolDir, "audit.jsonl") }
func (r *Recorder) sendingFile() string { return filepath.Join(r.SpoolDir, "audit.sending.jsonl") }

func (r *Recorder) spill(entries []usage.AuditEntry) error {
	r.spoolMu.Lock()
	defer r.spoolMu.Unlock()
	return appendEntries(r.spoolFile(), entries)
}

func appendEntries(name string, entries []usage.AuditEntry) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	return jsonl.WriteAndClose(f, entries)
}

// drainSpool sends the spooled entries in batches. What the server has taken
// leaves the spool batch by batch, so a large spool drains over several
// rounds; entries are idempotent by ID, so a crash halfway sends some twice,
// harmlessly.
func (r *Recorder) drainSpool(ctx context.Context) {
	if time.Now().Before(r.nextDrain) {
		return
	}
	r.spoolMu.Lock()
	if _, err := os.Stat(r.sendingFile()); os.IsNotExist(err) {
		if err := os.Rename(r.spoolFile(), r.sendingFile()); err != nil {
			r.spoolMu.Unlock()
			return // nothing spooled
		}
	}
	r.spoolMu.Unlock()
	entries := readEntries(r.sendingFile())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(entries) > 0 {
		n := min(500, len(entries))
		if err := r.send(ctx, entries[:n]); err != nil {
			r.nextDrain = time.Now().Add(5 * time.Second)
			break
		}
		entries = entries[n:]
	}
	if len(entries) == 0 {
		_ = os.Remove(r.sendingFile())
		return
	}
	// Keep what is left, written whole before it replaces the file.
	tmp := r.sendingFile() + ".tmp"
	_ = os.Remove(tmp)
	if err := appendEntries(tmp, entries); err == nil {
		_ = os.Rename(tmp, r.sendingFile())
	}
}

// readEntries reads a spool file; a torn last line (a crash mid-append)
// ends it.
func readEntries(name string) []usage.AuditEntry {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	var entries []usage.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var e usage.AuditEntry
		if err := dec.Decode(&e); err != nil {
			return entries
		}
		entries = append(entries, e)
	}
}
