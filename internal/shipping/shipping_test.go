package shipping_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/minimax/platform-hub/internal/shipping"
)

type record struct {
	ID string `json:"id"`
}

// receiver is a server on loopback that takes batches of records, or fails
// while down, and remembers when each attempt came (by the test's clock).
type receiver struct {
	mu       sync.Mutex
	down     bool
	attempts []time.Time
	got      map[string]int
	clock    *clocktesting.FakeClock
	srv      *httptest.Server
}

func newReceiver(t *testing.T, clk *clocktesting.FakeClock) *receiver {
	r := &receiver{got: map[string]int{}, clock: clk}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts = append(r.attempts, r.clock.Now())
		if r.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var batch []record
		_ = json.NewDecoder(req.Body).Decode(&batch)
		for _, rec := range batch {
			r.got[rec.ID]++
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// Send implements shipping.Sender by posting to the receiver.
func (r *receiver) Send(ctx context.Context, batch []record) (map[int]string, error) {
	body, _ := json.Marshal(batch)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.srv.URL, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	return nil, nil
}

func (r *receiver) snapshot() ([]time.Time, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := make(map[string]int, len(r.got))
	for k, v := range r.got {
		got[k] = v
	}
	return append([]time.Time(nil), r.attempts...), got
}

// TestBackoffGrows: while the server is down, the shipper waits longer
// after each failure (to its cap), rather than trying every flush
// interval; nothing recorded meanwhile is lost or doubled once it is back.
func TestBackoffGrows(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	rcv := newReceiver(t, clk)
	rcv.down = true
	s := shipping.New[record](rcv, shipping.Options{Kind: "test", SpoolDir: t.TempDir(), FlushInterval: 100 * time.Millisecond,
		Clock: clk, Log: logr.Discard(), MetricsPrefix: "test"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// A minute of the test's clock, in flush intervals, with a record in
	// each of the first 100.
	for i := range 600 {
		if i < 100 {
			s.Record(record{ID: fmt.Sprintf("r%d", i)})
		}
		g.Eventually(clk.HasWaiters).Should(BeTrue())
		clk.Step(100 * time.Millisecond)
		time.Sleep(time.Millisecond) // the shipper's turn
	}
	attempts, got := rcv.snapshot()
	g.Expect(got).To(BeEmpty())
	// Trying every 100ms would be 600 attempts; doubling from 200ms to a
	// 30s cap is about 9 in a minute.
	g.Expect(len(attempts)).To(BeNumerically("<=", 14), "attempts at %v", attempts)
	g.Expect(len(attempts)).To(BeNumerically(">=", 5))
	first, last := attempts[1].Sub(attempts[0]), attempts[len(attempts)-1].Sub(attempts[len(attempts)-2])
	g.Expect(last).To(BeNumerically(">=", 8*first), "the waits grow: first %v, last %v", first, last)
	g.Expect(last).To(BeNumerically("<=", 30*time.Second+200*time.Millisecond), "to the cap")

	rcv.mu.Lock()
	rcv.down = false
	rcv.mu.Unlock()
	g.Eventually(func() int {
		clk.Step(time.Second)
		_, got := rcv.snapshot()
		return len(got)
	}, 20*time.Second, 20*time.Millisecond).Should(Equal(100))
	_, got = rcv.snapshot()
	for id, n := range got {
		g.Expect(n).To(Equal(1), "%s was sent once", id)
	}
	// The receiver has them all before the shipper reads its answer.
	g.Eventually(s.Pending, 5*time.Second, 10*time.Millisecond).Should(BeZero())
	cancel()
	g.Expect(<-done).To(Succeed())
}

// TestDamagedSpoolLines: a spool file with a torn or damaged line in the
// middle still has every other line sent, and the damage is counted.
func TestDamagedSpoolLines(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	rcv := newReceiver(t, clk)
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "test-00000000000000000001-00000001.jsonl"),
		[]byte("{\"id\":\"before\"}\n{\"id\":\"tor\n{\"id\":\"after\"}\n\x00\x00garbage\n{\"id\":\"last\"}"), 0o600)).To(Succeed())
	s := shipping.New[record](rcv, shipping.Options{Kind: "test", SpoolDir: dir, FlushInterval: 100 * time.Millisecond,
		Clock: clk, Log: logr.Discard(), MetricsPrefix: "test_damaged"})
	reg := prometheus.NewRegistry()
	s.RegisterMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	g.Eventually(func() map[string]int {
		clk.Step(100 * time.Millisecond)
		_, got := rcv.snapshot()
		return got
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(map[string]int{"before": 1, "after": 1, "last": 1}))
	g.Eventually(s.Pending).Should(BeZero(), "the file is gone once sent")
	g.Expect(testutil.ToFloat64(counter(g, reg, "test_damaged_spool_corrupt_lines_total"))).To(Equal(2.0))
}

func counter(g Gomega, reg *prometheus.Registry, name string) prometheus.Collector {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	for _, f := range families {
		if f.GetName() == name {
			c.Add(f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return c
}

// TestHalfWrittenFileIsRecovered: a spool file a crash left half written
// (still under its .tmp name, its last line torn) is taken at the next
// start: its whole lines are sent, the torn one is cut and counted, and no
// file is left.
func TestHalfWrittenFileIsRecovered(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	rcv := newReceiver(t, clk)
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "test-00000000000000000001-00000001.jsonl.tmp"),
		[]byte("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c"), 0o600)).To(Succeed())
	s := shipping.New[record](rcv, shipping.Options{Kind: "test", SpoolDir: dir, FlushInterval: 100 * time.Millisecond,
		Clock: clk, Log: logr.Discard(), MetricsPrefix: "test_torn"})
	reg := prometheus.NewRegistry()
	s.RegisterMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	g.Eventually(func() map[string]int {
		clk.Step(100 * time.Millisecond)
		_, got := rcv.snapshot()
		return got
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(map[string]int{"a": 1, "b": 1}))
	g.Eventually(func() ([]os.DirEntry, error) { return os.ReadDir(dir) }).Should(BeEmpty())
	g.Expect(testutil.ToFloat64(counter(g, reg, "test_torn_spool_corrupt_lines_total"))).To(Equal(1.0))
}

// TestSpoolIsBounded: while the server is down, the spool grows to its
// bound and no further: Accepting turns false there (callers refuse new
// work), the size is exported, and once the server is back every record
// is sent once and Accepting is true again.
func TestSpoolIsBounded(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	rcv := newReceiver(t, clk)
	rcv.down = true
	dir := t.TempDir()
	const limit = 2000
	s := shipping.New[record](rcv, shipping.Options{Kind: "test", SpoolDir: dir, FlushInterval: 100 * time.Millisecond,
		BatchSize: 10, Clock: clk, Log: logr.Discard(), MetricsPrefix: "test_bounded", MaxSpoolBytes: limit})
	reg := prometheus.NewRegistry()
	s.RegisterMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()

	recorded := 0
	for s.Accepting() {
		g.Expect(recorded).To(BeNumerically("<", 1000), "the spool never reached its bound")
		before := gauge(g, reg, "test_bounded_spool_bytes")
		for range 10 {
			s.Record(record{ID: fmt.Sprintf("r%d", recorded)})
			recorded++
		}
		g.Eventually(func() float64 { // the batch is on disk
			clk.Step(100 * time.Millisecond)
			return gauge(g, reg, "test_bounded_spool_bytes")
		}).Should(BeNumerically(">", before))
	}
	size := gauge(g, reg, "test_bounded_spool_bytes")
	g.Expect(size).To(BeNumerically(">=", limit))
	g.Expect(size).To(BeNumerically("<", limit+500), "one batch past the bound at most")
	g.Expect(gauge(g, reg, "test_bounded_spool_limit_bytes")).To(BeEquivalentTo(limit))

	rcv.mu.Lock()
	rcv.down = false
	rcv.mu.Unlock()
	g.Eventually(func() int {
		clk.Step(time.Second)
		_, got := rcv.snapshot()
		return len(got)
	}, 20*time.Second, 20*time.Millisecond).Should(Equal(recorded))
	_, got := rcv.snapshot()
	for id, n := range got {
		g.Expect(n).To(Equal(1), "%s was sent once", id)
	}
	g.Eventually(s.Accepting).Should(BeTrue())
	g.Expect(gauge(g, reg, "test_bounded_spool_bytes")).To(BeZero())
}

func gauge(g Gomega, reg *prometheus.Registry, name string) float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	g.Expect(false).To(BeTrue(), "no metric %s", name)
	return 0
}
