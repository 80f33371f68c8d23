// Package shipping sends records to the usage server in batches, at least
// once: the gateway's usage events and the manager's audit entries.
//
// Records wait in memory, go out in batches (by size or by time), wait on
// disk while the server is unreachable and go out from there, oldest first,
// once it is back. The server stores each record's ID once, so sending a
// record twice is harmless; losing one is not, so nothing is dropped:
//
//   - a failed batch goes to the spool, and the shipper backs off with a
//     delay that grows (k8s.io/apimachinery's wait.Backoff, with jitter) to
//     its cap, while new batches go straight to disk;
//   - spool files are written whole and renamed, so no record is ever
//     appended after a torn line; a file a crash left half written (its
//     .tmp name) is taken at the next start for what it holds, its torn
//     last line cut; a line that cannot be read (a disk fault) is skipped
//     and counted, and the lines after it are still sent;
//   - the spool is bounded (MaxSpoolBytes), below its volume: past the
//     bound, Accepting turns false so that callers refuse new work (the
//     gateway refuses calls) instead of the volume filling up, and what is
//     already under way still spills into the headroom;
//   - records the server refuses as invalid (which no retry can fix) are
//     kept in the spool's quarantine directory and counted, and the rest of
//     their batch is sent again at once;
//   - records that arrive after the shipper stopped go to disk, for the next
//     start.
package shipping

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/minimax/platform-hub/internal/jsonl"
	"github.com/minimax/platform-hub/internal/metrics"
)

// Sender posts batches to the server.
type Sender[T any] interface {
	// Send posts one batch. It returns the records the server refused as
	// invalid, by index in the batch, with the reason (the batch was then
	// not stored, and the rest is sent again), or an error when the batch
	// must be tried again later.
	Send(ctx context.Context, batch []T) (refused map[int]string, err error)
}

// DefaultBackoff is the wait after the server fails: 200ms, doubling, with
// up to 50% jitter, to at most 30s.
func DefaultBackoff() wait.Backoff {
	return wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: math.MaxInt32, Cap: 30 * time.Second}
}

// Options configure a Shipper.
type Options struct {
	// Kind names what is shipped ("usage", "audit"): it names the spool
	// files and appears in logs.
	Kind string
	// SpoolDir keeps records while the server is unreachable.
	SpoolDir string
	// BatchSize and FlushInterval bound how long a record waits before it
	// is sent: whichever comes first. Defaults 1000 and 250ms.
	BatchSize     int
	FlushInterval time.Duration
	// MemorySize is how many records may wait in memory; more go to disk.
	// Default 100,000.
	MemorySize int
	// Backoff is the wait after a failure; zero means DefaultBackoff.
	Backoff wait.Backoff
	// Clock tells the time; nil means the real clock.
	Clock clock.WithTicker
	Log   logr.Logger
	// MaxSpoolBytes bounds the records waiting for the server: past it,
	// Accepting is false. Zero means no bound. Leave headroom below the
	// volume's size for records already under way, and for quarantine,
	// which the bound leaves out: records the server refused do not wait
	// for it, and counting them would stop all work for good once enough
	// had gathered.
	MaxSpoolBytes int64
	// MetricsPrefix names the metrics: <prefix>_shipped_total,
	// _spilled_total, _quarantined_total, _spool_corrupt_lines_total,
	// _spool_bytes and _spool_limit_bytes.
	MetricsPrefix string
}

// Shipper sends records of type T. Create it with New.
type Shipper[T any] struct {
	opts   Options
	sender Sender[T]
	in     chan T

	// stopMu is held shared while a record is queued, so that none goes
	// into the queue after Run has stopped reading it.
	stopMu  sync.RWMutex
	stopped bool

	spoolMu sync.Mutex
	seq     atomic.Uint64

	// backoff and retryAt are the sender's own (touched by Run only).
	backoff wait.Backoff
	retryAt time.Time

	// spoolBytes is the size of the spool's files, kept as they are
	// written and removed.
	spoolBytes atomic.Int64

	shipped, spilled, quarantined, corrupt prometheus.Counter
	spoolSize, spoolLimit                  prometheus.GaugeFunc
}

// New returns a Shipper that sends with sender.
func New[T any](sender Sender[T], opts Options) *Shipper[T] {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 250 * time.Millisecond
	}
	if opts.MemorySize <= 0 {
		opts.MemorySize = 100_000
	}
	if opts.Backoff == (wait.Backoff{}) {
		opts.Backoff = DefaultBackoff()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: opts.MetricsPrefix + "_" + name, Help: help})
	}
	s := &Shipper[T]{
		opts: opts, sender: sender, in: make(chan T, opts.MemorySize), backoff: opts.Backoff,
		shipped:     counter("shipped_total", "Records the server accepted."),
		spilled:     counter("spilled_total", "Records written to disk to wait for the server."),
		quarantined: counter("quarantined_total", "Records the server refused as invalid, kept in the spool's quarantine directory."),
		corrupt:     counter("spool_corrupt_lines_total", "Lines of spool files that could not be read, and were skipped."),
	}
	gauge := func(name, help string, value func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: opts.MetricsPrefix + "_" + name, Help: help}, value)
	}
	s.spoolSize = gauge("spool_bytes", "Bytes of records waiting on disk for the server (quarantine not included).",
		func() float64 { return float64(s.spoolBytes.Load()) })
	s.spoolLimit = gauge("spool_limit_bytes", "The spool's bound: past it, new work is refused (0: no bound).",
		func() float64 { return float64(opts.MaxSpoolBytes) })
	return s
}

// RegisterMetrics registers the shipper's metrics with reg.
func (s *Shipper[T]) RegisterMetrics(reg prometheus.Registerer) {
	s.shipped, s.spilled = metrics.Register(reg, s.shipped), metrics.Register(reg, s.spilled)
	s.quarantined, s.corrupt = metrics.Register(reg, s.quarantined), metrics.Register(reg, s.corrupt)
	s.spoolSize, s.spoolLimit = metrics.Register(reg, s.spoolSize), metrics.Register(reg, s.spoolLimit)
}

// Accepting tells whether the spool is below its bound, so that a caller
// may take on work whose records it will Record. When it is false, the
// server has been unreachable long enough to fill the spool: refuse new
// work (and say so) rather than lose its records.
func (s *Shipper[T]) Accepting() bool {
	return s.opts.MaxSpoolBytes <= 0 || s.spoolBytes.Load() < s.opts.MaxSpoolBytes
}

// Record queues a record. It never blocks: when memory is full, or the
// shipper has stopped, the record goes to disk at once.
func (s *Shipper[T]) Record(r T) {
	s.stopMu.RLock()
	defer s.stopMu.RUnlock()
	if !s.stopped {
		select {
		case s.in <- r:
			return
		default:
		}
	}
	if err := s.spill([]T{r}); err != nil {
		s.opts.Log.Error(err, "Could not keep a record: memory and disk are full", "kind", s.opts.Kind)
	}
}

// Run sends records until ctx ends, then sends what is left if the server
// answers within five seconds, or else keeps it on disk. It may be run
// again after it returns.
func (s *Shipper[T]) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.opts.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("creating the %s spool directory: %w", s.opts.Kind, err)
	}
	if err := s.openSpool(); err != nil {
		return fmt.Errorf("opening the %s spool: %w", s.opts.Kind, err)
	}
	s.stopMu.Lock()
	s.stopped = false
	s.stopMu.Unlock()
	ticker := s.opts.Clock.NewTicker(s.opts.FlushInterval)
	defer ticker.Stop()
	batch := make([]T, 0, s.opts.BatchSize)
	for {
		select {
		case r := <-s.in:
			if batch = append(batch, r); len(batch) < s.opts.BatchSize {
				continue
			}
		case <-ticker.C():
		case <-ctx.Done():
			s.stopMu.Lock()
			s.stopped = true
			s.stopMu.Unlock()
			s.shutdown(append(batch, s.drainMemory()...))
			return nil
		}
		if len(batch) > 0 && s.flush(ctx, batch) {
			batch = batch[:0]
		}
		if !s.backingOff() {
			if err := s.drainSpool(ctx); err != nil {
				s.failed(err)
			}
		}
	}
}

// flush sends a batch, or while the shipper backs off (or when sending
// fails) writes it to disk. It tells whether the batch is taken care of.
func (s *Shipper[T]) flush(ctx context.Context, batch []T) bool {
	if !s.backingOff() {
		err := s.send(ctx, batch)
		if err == nil {
			s.succeeded()
			return true
		}
		s.failed(err)
	}
	if err := s.spill(batch); err != nil {
		s.opts.Log.Error(err, "Could not write records to disk; keeping them in memory", "kind", s.opts.Kind, "records", len(batch))
		return false
	}
	return true
}

func (s *Shipper[T]) backingOff() bool { return s.opts.Clock.Now().Before(s.retryAt) }

// failed backs off: the next wait is longer than the last, to the cap.
func (s *Shipper[T]) failed(err error) {
	delay := s.backoff.Step()
	s.retryAt = s.opts.Clock.Now().Add(delay)
	s.opts.Log.V(1).Info("The usage server is unreachable; records wait on disk", "kind", s.opts.Kind, "retryIn", delay.String(),
		"error", err.Error())
}

func (s *Shipper[T]) succeeded() {
	s.backoff, s.retryAt = s.opts.Backoff, time.Time{}
}

func (s *Shipper[T]) drainMemory() []T {
	var out []T
	for {
		select {
		case r := <-s.in:
			out = append(out, r)
		default:
			return out
		}
	}
}

func (s *Shipper[T]) shutdown(records []T) {
	if len(records) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.send(ctx, records); err == nil {
		return
	}
	if err := s.spill(records); err != nil {
		s.opts.Log.Error(err, "Could not keep records at shutdown", "kind", s.opts.Kind, "records", len(records))
	}
}

// send posts records in batches; records the server refuses are
// quarantined and the rest sent again.
func (s *Shipper[T]) send(ctx context.Context, records []T) error {
	for start := 0; start < len(records); start += s.opts.BatchSize {
		batch := records[start:min(start+s.opts.BatchSize, len(records))]
		for len(batch) > 0 {
			refused, err := s.sender.Send(ctx, batch)
			if err != nil {
				return err
			}
			if len(refused) == 0 {
				s.shipped.Add(float64(len(batch)))
				break
			}
			if batch, err = s.setAside(batch, refused); err != nil {
				return err
			}
		}
	}
	return nil
}

// setAside quarantines the refused records of a batch and returns the rest.
func (s *Shipper[T]) setAside(batch []T, refused map[int]string) ([]T, error) {
	bad := make([]Quarantined[T], 0, len(refused))
	rest := make([]T, 0, len(batch))
	now := s.opts.Clock.Now().UTC()
	for i := range batch {
		if reason, ok := refused[i]; ok {
			bad = append(bad, Quarantined[T]{Time: now, Reason: reason, Record: batch[i]})
			s.opts.Log.Error(errors.New(reason), "The usage server refused a record; it is quarantined", "kind", s.opts.Kind)
			continue
		}
		rest = append(rest, batch[i])
	}
	if err := writeFile(s, filepath.Join(s.opts.SpoolDir, "quarantine"), bad); err != nil {
		return nil, fmt.Errorf("quarantining records the server refused: %w", err)
	}
	s.quarantined.Add(float64(len(bad)))
	return rest, nil
}

// Quarantined is a line of a quarantine file: a record the server refused,
// and why.
type Quarantined[T any] struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Record T         `json:"record"`
}

// spill writes records to a new spool file.
func (s *Shipper[T]) spill(records []T) error {
	if err := writeFile(s, s.opts.SpoolDir, records); err != nil {
		return err
	}
	s.spilled.Add(float64(len(records)))
	return nil
}

// writeFile writes items to a new file of dir, whole, then renames it into
// place: nothing is ever appended to a file, so no record follows a torn
// line. A write that fails (a full disk) leaves no file behind. Names sort
// oldest first.
func writeFile[T any, S any](s *Shipper[S], dir string, items []T) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	name := filepath.Join(dir, fmt.Sprintf("%s-%020d-%08d.jsonl", s.opts.Kind, s.opts.Clock.Now().UnixNano(), s.seq.Add(1)))
	tmp := name + tempSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = jsonl.WriteAndClose(f, items)
	var info os.FileInfo
	if err == nil {
		info, err = os.Stat(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if dir == s.opts.SpoolDir { // quarantine is not what the bound is for
		s.spoolBytes.Add(info.Size())
	}
	return nil
}

// tempSuffix names a spool file while it is written.
const tempSuffix = ".tmp"

// openSpool takes the files a crash left half written (their records up
// to the torn line are good; the reader cuts the torn one) and measures
// the spool.
func (s *Shipper[T]) openSpool() error {
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	var size int64
	for _, dir := range []string{s.opts.SpoolDir, filepath.Join(s.opts.SpoolDir, "quarantine")} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if strings.HasSuffix(e.Name(), ".jsonl"+tempSuffix) {
				final := strings.TrimSuffix(path, tempSuffix)
				if err := os.Rename(path, final); err != nil {
					return err
				}
				s.opts.Log.Info("Recovered a spool file a crash left half written", "kind", s.opts.Kind, "file", final)
				path = final
			}
			if info, err := os.Stat(path); err == nil && dir == s.opts.SpoolDir {
				size += info.Size()
			}
		}
	}
	s.spoolBytes.Store(size)
	return nil
}

// drainSpool sends spooled records, oldest file first, removing each file
// once the server has taken it, or keeping what is left of it.
func (s *Shipper[T]) drainSpool(ctx context.Context) error {
	files, err := s.spoolFiles()
	if err != nil || len(files) == 0 {
		return err
	}
	for _, name := range files {
		records, err := s.readSpool(name)
		if err != nil {
			return err
		}
		if err := s.send(ctx, records); err != nil {
			return err // the file stays; what was sent is deduplicated later
		}
		info, statErr := os.Stat(name)
		if err := os.Remove(name); err != nil {
			return err
		}
		if statErr == nil {
			s.spoolBytes.Add(-info.Size())
		}
	}
	return nil
}

func (s *Shipper[T]) spoolFiles() ([]string, error) {
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	entries, err := os.ReadDir(s.opts.SpoolDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".jsonl") {
			names = append(names, filepath.Join(s.opts.SpoolDir, e.Name()))
		}
	}
	sort.Strings(names)
	return names, nil
}

// readSpool reads a spool file line by line. A line that cannot be read
// (torn, or damaged on disk) is skipped and counted: the lines after it are
// records like any other.
func (s *Shipper[T]) readSpool(name string) ([]T, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var records []T
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var rec T
			if json.Unmarshal(line, &rec) == nil {
				records = append(records, rec)
			} else {
				s.corrupt.Inc()
				s.opts.Log.Error(errors.New("unreadable line"), "Skipping a damaged line of a spool file", "file", name)
			}
		}
		if errors.Is(err, io.EOF) {
			return records, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Pending is the number of records waiting in memory and on disk.
func (s *Shipper[T]) Pending() int {
	n := len(s.in)
	files, _ := s.spoolFiles()
	for _, f := range files {
		records, _ := s.readSpool(f)
		n += len(records)
	}
	return n
}
