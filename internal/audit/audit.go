// Package audit records every stored change to a hub resource, with who
// made it, into the usage server's audit log.
//
// The manager's admission webhooks see each create, update and delete with
// the user the API server authenticated. Once the hub's own checks have let
// a request through, they hand a Stamp to the Committer, which keeps it in
// memory. The Committer watches the audited kinds and, when it sees the
// change stored, turns the stamp into an entry with the version the change
// produced; a request refused later (by another webhook, or an edit
// conflict) is never stored, and its stamp expires unrecorded. Entries go to
// a Recorder, which sends them to the usage server in batches (the server
// owns the store). While the server is unreachable, entries wait in spool
// files and go out when it is back.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/shipping"
)

// Path is where the usage server takes audit entries (POST) and lists
// them (GET).
const Path = "/v1/audit/events"

// Recorder sends audit entries to the usage server, through a
// shipping.Shipper: in batches, spooled on disk while the server is
// unreachable, an entry the server refuses kept in the spool's quarantine.
// Record never blocks an admission request.
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
	// Metrics, when set, registers the shipper's metrics (hub_audit_…).
	Metrics prometheus.Registerer
	// MaxSpoolBytes bounds the spool; past it, Accepting is false and
	// admission refuses changes. Zero means no bound.
	MaxSpoolBytes int64

	once    sync.Once
	shipper *shipping.Shipper[auditlog.Entry]
}

func (r *Recorder) init() {
	r.once.Do(func() {
		interval := r.FlushInterval
		if interval <= 0 {
			interval = 500 * time.Millisecond
		}
		r.shipper = shipping.New[auditlog.Entry](&auditSender{r: r}, shipping.Options{
			Kind: "audit", SpoolDir: r.SpoolDir, BatchSize: 500, FlushInterval: interval, MemorySize: 10_000,
			Log: r.Log, MetricsPrefix: "hub_audit", MaxSpoolBytes: r.MaxSpoolBytes,
		})
		if r.Metrics != nil {
			r.shipper.RegisterMetrics(r.Metrics)
		}
	})
}

// Accepting tells whether the spool is below its bound.
func (r *Recorder) Accepting() bool {
	r.init()
	return r.shipper.Accepting()
}

// Record queues an entry; when the queue is full, or the sender has
// stopped, it goes to the spool.
func (r *Recorder) Record(e auditlog.Entry) {
	r.init()
	r.shipper.Record(e)
}

// NeedLeaderElection is false: every replica serves webhooks.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start sends entries until ctx ends, then sends or spools what is left.
func (r *Recorder) Start(ctx context.Context) error {
	r.init()
	return r.shipper.Run(ctx)
}

// Pending is the number of entries waiting in memory and on disk.
func (r *Recorder) Pending() int {
	r.init()
	return r.shipper.Pending()
}

// auditSender posts batches of entries.
type auditSender struct{ r *Recorder }

// Send implements shipping.Sender. The server refuses a batch with an
// invalid entry with 400, naming the entry's index.
func (s *auditSender) Send(ctx context.Context, batch []auditlog.Entry) (map[int]string, error) {
	resp, err := serverclient.Post(ctx, s.r.Client, s.r.URL+Path, s.r.Token, map[string][]auditlog.Entry{"entries": batch})
	if err != nil {
		return nil, err
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
		if json.Unmarshal(msg, &answer) == nil && answer.Error.Index != nil && *answer.Error.Index >= 0 && *answer.Error.Index < len(batch) {
			return map[int]string{*answer.Error.Index: answer.Error.Message}, nil
		}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the usage server answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil, nil
}
