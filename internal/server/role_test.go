package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestServerRoleWithPrometheus runs the whole server role (as `hub server`
// does) with its price list from the Organization, has a real Prometheus
// scrape it, and checks that PromQL agrees with the store.
func TestServerRoleWithPrometheus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Billing.Currency = "CNY"
	org.Spec.Pricing = &hubv1.PriceList{Chat: &hubv1.TokenPricing{Default: &hubv1.TokenPrice{InputPer1MTokens: "2", OutputPer1MTokens: "8"}}}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })

	apiAddr, metricsAddr := freeAddr(g), freeAddr(g)
	runCtx, stop := context.WithCancel(ctx)
	mgr, store, err := server.NewManager(runCtx, cluster.Config, server.Options{
		StoreURL: "sqlite:" + filepath.Join(t.TempDir(), "usage.db"), ListenAddr: apiAddr, MetricsAddr: metricsAddr,
		ProbeAddr: "0", EventRetention: time.Hour, RollupRetention: time.Hour,
	})
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	t.Cleanup(func() {
		stop()
		g.Expect(<-done).To(Succeed())
		_ = store.Close()
	})

	prom := startPrometheus(t, g, metricsAddr)
	token := serviceAccountToken(g, "gateway", true)
	now := time.Now().UTC()
	events := make([]usage.Event, 0, 50)
	for i := range 50 {
		events = append(events, usage.Event{ID: fmt.Sprintf("r%d", i), Time: now, Project: fmt.Sprintf("p%d", i%3), KeyID: "AbCdEf0123",
			Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "MiniMax-Text-01", InputTokens: int64(100 + i), OutputTokens: int64(i), StatusCode: 200})
	}
	g.Eventually(func(g Gomega) {
		code, body := post(g, "http://"+apiAddr, token, server.IngestRequest{Events: events})
		g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	}).Should(Succeed())

	buckets, err := store.Aggregate(ctx, usage.Query{From: now.Add(-time.Hour), To: now.Add(time.Hour)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(buckets).To(HaveLen(1))
	want := buckets[0].Totals
	g.Expect(want.Calls).To(BeEquivalentTo(50))

	g.Eventually(func(g Gomega) {
		g.Expect(promQuery(g, prom, `sum(hub_usage_tokens_total{direction="input"})`)).To(Equal(float64(want.InputTokens)))
		g.Expect(promQuery(g, prom, `sum(hub_usage_tokens_total{direction="output"})`)).To(Equal(float64(want.OutputTokens)))
		g.Expect(promQuery(g, prom, `sum(hub_usage_requests_total)`)).To(Equal(float64(want.Calls)))
		// Spend at the default prices, in the organization's currency:
		// (input*2 + output*8) / 10^6.
		g.Expect(promQuery(g, prom, `sum(hub_usage_spend_total{currency="CNY"})`)).To(
			BeNumerically("~", float64(want.InputTokens*2+want.OutputTokens*8)/1e6, 1e-9))
	}, time.Minute, time.Second).Should(Succeed())
}

// startPrometheus runs the machine's Prometheus (Debian package prometheus)
// scraping target every second, and returns its address.
func startPrometheus(t *testing.T, g Gomega, target string) string {
	bin, err := exec.LookPath("prometheus")
	g.Expect(err).NotTo(HaveOccurred(), "Prometheus is needed: install it with `make test-deps` (apt-get install prometheus)")
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: hub-server\n  static_configs:\n  - targets: [%q]\n", target)
	g.Expect(os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600)).To(Succeed())
	addr := freeAddr(g)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	g.Eventually(func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}, 30*time.Second).Should(Succeed())
	return addr
}

func promQuery(g Gomega, addr, query string) float64 {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	g.Expect(out.Data.Result).To(HaveLen(1), "query %s", query)
	v, err := strconv.ParseFloat(out.Data.Result[0].Value[1].(string), 64)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

func freeAddr(g Gomega) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
