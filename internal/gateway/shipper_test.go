package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/shipping"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestShipperQuarantinesRefusedEvents sends the real usage server a batch
// with an event above a ceiling: the server refuses it (422), the shipper
// keeps it in its quarantine directory and counts it, the rest of the
// batch is stored, and later events are not held up.
func TestShipperQuarantinesRefusedEvents(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s := gateway.NewShipper(gateway.ShipperOptions{URL: serverURL + "/v1/usage/events", Client: http.DefaultClient,
		Token: func() (string, error) { return ingestToken, nil }, SpoolDir: dir, FlushInterval: 50 * time.Millisecond,
		Log: logr.Discard()})
	s.RegisterMetrics(reg)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	ev := func(id string, in int64) usage.Event {
		return usage.Event{ID: "ship-" + id, Time: testClock.Now(), Project: "gw-shipper", KeyID: "k1", Service: pricing.Chat,
			Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: in, StatusCode: 200}
	}
	poison := ev("poison", usage.MaxTokensPerCall+1)
	s.Record(ev("1", 1))
	s.Record(poison)
	s.Record(ev("2", 2))
	g.Eventually(func() int64 { return usageOf(g, "gw-shipper").InputTokens }, 10*time.Second).Should(BeEquivalentTo(3))
	s.Record(ev("3", 4))
	g.Eventually(func() int64 { return usageOf(g, "gw-shipper").InputTokens }, 10*time.Second).Should(BeEquivalentTo(7))

	files, err := filepath.Glob(filepath.Join(dir, "quarantine", "*.jsonl"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).To(HaveLen(1))
	raw, err := os.ReadFile(files[0])
	g.Expect(err).NotTo(HaveOccurred())
	var line shipping.Quarantined[usage.Event]
	g.Expect(json.Unmarshal(raw, &line)).To(Succeed())
	g.Expect(line.Record.ID).To(Equal(poison.ID))
	g.Expect(line.Reason).To(ContainSubstring("events[1].inputTokens"))
	g.Expect(gatherCounter(g, reg, "hub_gateway_usage_quarantined_total")).To(Equal(1.0))
	g.Expect(s.Pending()).To(BeZero(), "nothing waits behind the refused event")
	cancel()
	g.Expect(<-done).To(Succeed())
}

func gatherCounter(g Gomega, reg prometheus.Gatherer, name string) float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	panic(fmt.Sprintf("no metric %s", name))
}
