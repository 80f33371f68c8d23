package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minimax/platform-hub/internal/jsonl"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/usage"
)

// Shipper sends usage events to the server's ingest API in batches. Delivery
// is at least once; the server deduplicates by event ID. While the server is
// unreachable, events wait in memory and, beyond MemoryEvents, on disk in
// SpoolDir, and go out when it is back. No event is dropped: one the server
// refuses as invalid (which retrying cannot fix) is quarantined in
// SpoolDir/quarantine, with the server's reason, counted, and the rest of
// its batch is sent again; one the server's store refuses it quarantines
// itself.
type Shipper struct {
	// URL is the ingest endpoint, https://<server>/v1/usage/events.
	URL    string
	Client *http.Client
	// Token returns the bearer token to send (the projected ServiceAccount
	// token, re-read as the kubelet rotates it).
	Token func() (string, error)
	// SpoolDir keeps events the server could not take yet.
	SpoolDir string
	// BatchEvents and FlushInterval bound how long an event waits before
	// it is sent: whichever comes first. Defaults 1000 and 250ms: a call
	// that exhausts a Hard spending cap reaches the cap's evaluation in a
	// quarter of a second.
	BatchEvents   int
	FlushInterval time.Duration
	// MemoryEvents is how many events may wait in memory; more go to disk.
	// Default 100,000.
	MemoryEvents int
	Log          logr.Logger
	// OnAck, when set, is told of every batch the server stored, with the
	// Hard cap totals of its answer.
	OnAck func(events []usage.Event, caps []usage.CapTotals)

	once    sync.Once
	in      chan usage.Event
	stopMu  sync.RWMutex
	stopped bool
	spoolMu sync.Mutex
	metrics shipperMetrics
}

type shipperMetrics struct {
	shipped, quarantined, spilled prometheus.Counter
}

// RegisterMetrics registers the shipper's metrics.
func (s *Shipper) RegisterMetrics(reg prometheus.Registerer) {
	s.init()
	s.metrics.shipped = metrics.Register(reg, s.metrics.shipped)
	s.metrics.quarantined = metrics.Register(reg, s.metrics.quarantined)
	s.metrics.spilled = metrics.Register(reg, s.metrics.spilled)
}

func (s *Shipper) init() {
	s.once.Do(func() {
		if s.BatchEvents == 0 {
			s.BatchEvents = 1000
		}
		if s.FlushInterval == 0 {
			s.FlushInterval = 250 * time.Millisecond
		}
		if s.MemoryEvents == 0 {
			s.MemoryEvents = 100_000
		}
		s.in = make(chan usage.Event, s.MemoryEvents)
		s.metrics = shipperMetrics{
			shipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "hub_gateway_usage_shipped_total", Help: "Usage events the server accepted."}),
			quarantined: prometheus.NewCounter(prometheus.CounterOpts{Name: "hub_gateway_usage_quarantined_total",
				Help: "Usage events the server refused as invalid, kept in the spool's quarantine directory."}),
			spilled: prometheus.NewCounter(prometheus.CounterOpts{Name: "hub_gateway_usage_spilled_total", Help: "Usage events written to disk to wait for the server."}),
		}
	})
}

// Record queues an event. It never blocks a request: when memory is full,
// or the shipper has stopped, the event goes to disk at once.
func (s *Shipper) Record(e usage.Event) {
	s.init()
	// Held shared while queueing, so that no event goes into the queue
	// after Run has stopped reading it.
	s.stopMu.RLock()
	defer s.stopMu.RUnlock()
	if s.stopped {
		if err := s.spill([]usage.Event{e}); err != nil {
			s.Log.Error(err, "Could not keep a usage event after the shipper stopped", "event", e.ID)
		}
		return
	}
	select {
	case s.in <- e:
	default:
		if err := s.spill([]usage.Event{e}); err != nil {
			s.Log.Error(err, "Could not keep a usage event: memory and disk are full", "event", e.ID)
		}
	}
}

// Run sends events until ctx ends, then flushes what is left, to the server
// if it answers within a few seconds, else to disk.
func (s *Shipper) Run(ctx context.Context) error {
	s.init()
	if err := os.MkdirAll(s.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("creating the usage spool directory: %w", err)
	}
	ticker := time.NewTicker(s.FlushInterval)
	defer ticker.Stop()
	batch := make([]usage.Event, 0, s.BatchEvents)
	backoff := time.Duration(0)
	for {
		select {
		case e := <-s.in:
			batch = append(batch, e)
			if len(batch) < s.BatchEvents {
				continue
			}
		case <-ticker.C:
		case <-ctx.Done():
			s.stopMu.Lock()
			s.stopped = true
			s.stopMu.Unlock()
			s.shutdown(append(batch, s.drainMemory()...))
			return nil
		}
		if len(batch) > 0 {
			if err := s.send(ctx, batch); err != nil {
				s.Log.V(1).Info("Usage server unreachable; keeping events on disk", "events", len(batch), "error", err.Error())
				if err := s.spill(batch); err != nil {
					s.Log.Error(err, "Spilling usage events")
					continue // keep the batch in memory and try again
				}
				backoff = nextBackoff(backoff)
			} else {
				backoff = 0
			}
			batch = batch[:0]
		}
		if backoff == 0 {
			if err := s.drainSpool(ctx); err != nil {
				backoff = nextBackoff(backoff)
			}
		}
		if backoff > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
				backoff = 0 // try the spool again
			}
		}
	}
}

func nextBackoff(d time.Duration) time.Duration {
	d = max(2*d, 200*time.Millisecond)
	d = min(d, 30*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (s *Shipper) drainMemory() []usage.Event {
	var out []usage.Event
	for {
		select {
		case e := <-s.in:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (s *Shipper) shutdown(events []usage.Event) {
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.send(ctx, events); err == nil {
		return
	}
	if err := s.spill(events); err != nil {
		s.Log.Error(err, "Could not keep usage events at shutdown", "events", len(events))
	}
}

// send posts a batch. When the server refuses events as invalid, they are
// quarantined and the rest is sent again.
func (s *Shipper) send(ctx context.Context, events []usage.Event) error {
	for len(events) > 0 {
		answer, err := s.post(ctx, events)
		if err != nil {
			return err
		}
		if len(answer.invalid) == 0 {
			s.metrics.shipped.Add(float64(len(events)))
			if s.OnAck != nil {
				s.OnAck(events, answer.caps)
			}
			return nil
		}
		bad := make([]usage.Event, 0, len(answer.invalid))
		reasons := make([]string, 0, len(answer.invalid))
		rest := make([]usage.Event, 0, len(events))
		for i := range events {
			if reason, ok := answer.invalid[i]; ok {
				bad, reasons = append(bad, events[i]), append(reasons, reason)
				continue
			}
			rest = append(rest, events[i])
		}
		if err := s.quarantine(bad, reasons); err != nil {
			return fmt.Errorf("quarantining usage events the server refused: %w", err)
		}
		if s.OnAck != nil {
			s.OnAck(bad, nil) // never to be stored: no longer pending
		}
		events = rest
	}
	return nil
}

// ingestAnswer is what the server said of a batch.
type ingestAnswer struct {
	caps []usage.CapTotals
	// invalid are the refused events, by index, with the reason.
	invalid map[int]string
}

// post sends one request and reads the server's answer.
func (s *Shipper) post(ctx context.Context, events []usage.Event) (ingestAnswer, error) {
	var out ingestAnswer
	resp, err := serverclient.Post(ctx, s.Client, s.URL, s.Token, map[string][]usage.Event{"events": events})
	if err != nil {
		return out, err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer ingestReply
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&answer)
	if resp.StatusCode == http.StatusOK {
		out.caps = answer.Caps
		return out, nil
	}
	refused := resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusBadRequest
	if out.invalid = answer.refused(len(events)); refused && len(out.invalid) > 0 {
		return out, nil
	}
	msg := ""
	if answer.Error != nil {
		msg = answer.Error.Message
	}
	return ingestAnswer{}, fmt.Errorf("the usage server answered %s: %s", resp.Status, msg)
}

// ingestReply is the body of the server's answer.
type ingestReply struct {
	Caps  []usage.CapTotals `json:"caps"`
	Error *struct {
		Message string `json:"message"`
		Index   *int   `json:"index"`
		Invalid []struct {
			Index   int    `json:"index"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"invalid"`
	} `json:"error"`
}

// refused lists the events of a batch of n that the reply refuses, by index,
// with the reason.
func (r *ingestReply) refused(n int) map[int]string {
	e := r.Error
	if e == nil {
		return nil
	}
	out := map[int]string{}
	for _, bad := range e.Invalid {
		if bad.Index >= 0 && bad.Index < n {
			out[bad.Index] = bad.Field + ": " + bad.Message
		}
	}
	// A server from before the list names only the first.
	if len(out) == 0 && e.Index != nil && *e.Index >= 0 && *e.Index < n {
		out[*e.Index] = e.Message
	}
	return out
}

// QuarantinedEvent is a line of a quarantine file: an event the server
// refused, and why.
type QuarantinedEvent struct {
	Time   time.Time   `json:"time"`
	Reason string      `json:"reason"`
	Event  usage.Event `json:"event"`
}

// quarantine keeps refused events in a new file of SpoolDir/quarantine,
// written whole then renamed, where an operator finds them; the metric
// hub_gateway_usage_quarantined_total counts them.
func (s *Shipper) quarantine(events []usage.Event, reasons []string) error {
	dir := filepath.Join(s.SpoolDir, "quarantine")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lines := make([]QuarantinedEvent, len(events))
	now := time.Now().UTC()
	for i := range events {
		lines[i] = QuarantinedEvent{Time: now, Reason: reasons[i], Event: events[i]}
		s.Log.Error(errors.New(reasons[i]), "The usage server refused a usage event; it is quarantined", "event", events[i].ID)
	}
	name := filepath.Join(dir, fmt.Sprintf("quarantine-%020d.jsonl", time.Now().UnixNano()))
	f, err := os.OpenFile(name+".tmp", os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := jsonl.WriteAndClose(f, lines); err != nil {
		return err
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		return err
	}
	s.metrics.quarantined.Add(float64(len(events)))
	return nil
}

// spill appends events to a new spool file, written whole then renamed, so
// that a crash never leaves half a file to read.
func (s *Shipper) spill(events []usage.Event) error {
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	name := filepath.Join(s.SpoolDir, fmt.Sprintf("usage-%020d.jsonl", time.Now().UnixNano()))
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := jsonl.WriteAndClose(f, events); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	s.metrics.spilled.Add(float64(len(events)))
	return nil
}

// drainSpool sends spooled events, oldest file first, deleting each file once
// the server has taken it.
func (s *Shipper) drainSpool(ctx context.Context) error {
	files, err := s.spoolFiles()
	if err != nil || len(files) == 0 {
		return err
	}
	for _, name := range files {
		events, err := readSpool(name)
		if err != nil {
			s.Log.Error(err, "Unreadable usage spool file; setting it aside", "file", name)
			_ = os.Rename(name, name+".bad")
			continue
		}
		for start := 0; start < len(events); start += s.BatchEvents {
			if err := s.send(ctx, events[start:min(start+s.BatchEvents, len(events))]); err != nil {
				return err // the file stays; what was sent is deduplicated later
			}
		}
		if err := os.Remove(name); err != nil {
			return err
		}
	}
	return nil
}

func (s *Shipper) spoolFiles() ([]string, error) {
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	entries, err := os.ReadDir(s.SpoolDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jsonl") {
			names = append(names, filepath.Join(s.SpoolDir, e.Name()))
		}
	}
	sort.Strings(names)
	return names, nil
}

func readSpool(name string) ([]usage.Event, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var events []usage.Event
	dec := json.NewDecoder(f)
	for {
		var e usage.Event
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return events, nil
		} else if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
}

// Pending is the number of events waiting in memory and on disk.
func (s *Shipper) Pending() int {
	s.init()
	n := len(s.in)
	files, _ := s.spoolFiles()
	for _, f := range files {
		events, _ := readSpool(f)
		n += len(events)
	}
	return n
}
