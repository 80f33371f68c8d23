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
	"bufio"
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
	"time"

	"github.com/go-logr/logr"

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

	once    sync.Once
	in      chan usage.AuditEntry
	spoolMu sync.Mutex
	// nextDrain holds the spool back for a while after the server failed.
	nextDrain time.Time
}

func (r *Recorder) init() {
	r.once.Do(func() { r.in = make(chan usage.AuditEntry, 10_000) })
}

// Record queues an entry; when the queue is full it goes to the spool.
func (r *Recorder) Record(e usage.AuditEntry) {
	r.init()
	select {
	case r.in <- e:
	default:
		if err := r.spill([]usage.AuditEntry{e}); err != nil {
			r.Log.Error(err, "Could not keep an audit entry", "entry", e.ID)
		}
	}
}

// NeedLeaderElection is false: every replica serves webhooks.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start sends entries until ctx ends, then sends or spools what is left.
func (r *Recorder) Start(ctx context.Context) error {
	r.init()
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
	if err := r.post(ctx, batch); err != nil {
		r.nextDrain = time.Now().Add(5 * time.Second)
		r.Log.V(1).Info("Usage server unreachable; spooling audit entries", "entries", len(batch), "error", err.Error())
		if err := r.spill(batch); err != nil {
			r.Log.Error(err, "Could not keep audit entries", "entries", len(batch))
		}
	}
}

func (r *Recorder) post(ctx context.Context, batch []usage.AuditEntry) error {
	body, err := json.Marshal(map[string][]usage.AuditEntry{"entries": batch})
	if err != nil {
		return err
	}
	token, err := r.Token()
	if err != nil {
		return fmt.Errorf("reading the ServiceAccount token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the usage server answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// spoolFile is the one file entries wait in.
func (r *Recorder) spoolFile() string { return filepath.Join(r.SpoolDir, "audit.jsonl") }

func (r *Recorder) spill(entries []usage.AuditEntry) error {
	r.spoolMu.Lock()
	defer r.spoolMu.Unlock()
	f, err := os.OpenFile(r.spoolFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range entries {
		if err := enc.Encode(&entries[i]); err != nil {
			_ = f.Close()
			return err
		}
	}
	return errors.Join(w.Flush(), f.Sync(), f.Close())
}

// drainSpool sends the spooled entries, and empties the spool once the
// server took them. Entries are idempotent by ID, so a crash halfway sends
// some twice, harmlessly.
func (r *Recorder) drainSpool(ctx context.Context) {
	if time.Now().Before(r.nextDrain) {
		return
	}
	r.spoolMu.Lock()
	defer r.spoolMu.Unlock()
	raw, err := os.ReadFile(r.spoolFile())
	if err != nil || len(raw) == 0 {
		return
	}
	var entries []usage.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var e usage.AuditEntry
		if err := dec.Decode(&e); err != nil {
			break // a torn last line: what came before is kept
		}
		entries = append(entries, e)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for start := 0; start < len(entries); start += 500 {
		if err := r.post(ctx, entries[start:min(start+500, len(entries))]); err != nil {
			r.nextDrain = time.Now().Add(5 * time.Second)
			return // the spool stays; sent entries are deduplicated later
		}
	}
	if err := os.Remove(r.spoolFile()); err != nil {
		r.Log.Error(err, "Emptying the audit spool")
	}
}
