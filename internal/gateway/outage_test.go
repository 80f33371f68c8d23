package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestUsageSurvivesServerOutage keeps traffic flowing through a gateway while
// its usage server is down for 30 seconds. Events wait in memory, then on
// disk (the memory queue is kept small here), and reach the server when it is
// back: the stored totals equal what the clients were served, with no event
// counted twice.
func TestUsageSurvivesServerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 45 seconds")
	}
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, key := issueKey(g, "gw-outage", nil)
	dir := t.TempDir()

	// A usage server we can stop and start on the same address.
	outageStore, err := usage.OpenSQLite(ctx, filepath.Join(dir, "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = outageStore.Close() }()
	api := &server.Server{Store: outageStore, Auth: &server.Authorizer{Client: env.Client, Clock: clock.RealClock{}}, Log: ctrl.Log}
	serverAddr := freeAddr()
	var serving *http.Server
	startServer := func() {
		l, err := net.Listen("tcp", serverAddr)
		g.Expect(err).NotTo(HaveOccurred())
		serving = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = serving.Serve(l) }()
	}
	startServer()

	token, err := env.ServiceAccountToken(ctx, "outage-gateway", rbacv1.PolicyRule{
		APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usageevents"}, Verbs: []string{"create"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	gatewayAddr := freeAddr()
	mgr, shipper, err := gateway.NewManager(ctx, env.Cluster.Config, gateway.Options{
		ListenAddr: gatewayAddr, Upstream: upstreamURL, ServerURL: "http://" + serverAddr,
		Token: func() (string, error) { return token, nil }, SpoolDir: filepath.Join(dir, "spool"),
		MetricsAddr: "0", ProbeAddr: "0", Clock: testClock, FlushInterval: 100 * time.Millisecond, MemoryEvents: 200,
	})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()
	g.Expect(waitForHTTP("http://" + gatewayAddr)).To(Succeed())

	// Four clients call for 40 seconds; the server is down from 5s to 35s.
	// Their clock is the suite's fake clock, so events of this test land in
	// the same hour.
	var served, inTokens, outTokens atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				in, out, err := chatThrough("http://"+gatewayAddr, key)
				if err == nil {
					served.Add(1)
					inTokens.Add(in)
					outTokens.Add(out)
				}
				// About 200 calls a second in all: enough to overflow
				// memory into the spool, little enough for a quick drain.
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(5 * time.Second)
	g.Expect(serving.Close()).To(Succeed())
	time.Sleep(30 * time.Second)
	g.Expect(shipper.Pending()).To(BeNumerically(">", 200), "events waited, beyond memory, on disk")
	startServer()
	defer func() { _ = serving.Close() }()
	time.Sleep(5 * time.Second)
	close(stopLoad)
	wg.Wait()

	g.Eventually(shipper.Pending, time.Minute).Should(BeZero())
	want := usage.Totals{Calls: served.Load(), InputTokens: inTokens.Load(), OutputTokens: outTokens.Load()}
	g.Expect(want.Calls).To(BeNumerically(">", 100), "the load ran")
	g.Eventually(func() usage.Totals {
		buckets, err := outageStore.Aggregate(ctx, usage.Query{From: testClock.Now().Add(-time.Hour), To: testClock.Now().Add(time.Hour)})
		g.Expect(err).NotTo(HaveOccurred())
		var total usage.Totals
		for _, b := range buckets {
			total.Add(b.Totals)
		}
		return total
	}, time.Minute).Should(Equal(want))
	t.Logf("served %d calls across a 30 s outage; the store holds exactly them", want.Calls)
}

// chatThrough makes one chat completion and returns the usage it reported.
func chatThrough(base, key string) (int64, int64, error) {
	body := `{"model":"MiniMax-M2","messages":[{"role":"user","content":"count these words please"}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", stringsReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, errors.New(resp.Status)
	}
	var out struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, err
	}
	return out.Usage.PromptTokens, out.Usage.CompletionTokens, nil
}

// TestFullSpoolRefusesCalls: with the usage server away long enough for
// the spool to reach its bound, the gateway refuses calls (503, with
// Retry-After) instead of serving them unmetered or filling its volume;
// once the server is back and has the backlog, calls are served again,
// and every call that was served is stored.
func TestFullSpoolRefusesCalls(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, key := issueKey(g, "gw-spool-full", nil)
	dir := t.TempDir()
	store, err := usage.OpenSQLite(ctx, filepath.Join(dir, "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = store.Close() }()
	api := &server.Server{Store: store, Auth: &server.Authorizer{Client: env.Client, Clock: clock.RealClock{}}, Log: ctrl.Log}
	token, err := env.ServiceAccountToken(ctx, "spool-full-gateway", rbacv1.PolicyRule{
		APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usageevents"}, Verbs: []string{"create"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	serverAddr, gatewayAddr := freeAddr(), freeAddr() // nothing listens on serverAddr yet
	mgr, _, err := gateway.NewManager(ctx, env.Cluster.Config, gateway.Options{
		ListenAddr: gatewayAddr, Upstream: upstreamURL, ServerURL: "http://" + serverAddr,
		Token: func() (string, error) { return token, nil }, SpoolDir: filepath.Join(dir, "spool"),
		MetricsAddr: "0", ProbeAddr: "0", Clock: testClock, FlushInterval: 50 * time.Millisecond,
		SpoolLimit: 1, // the first spilled event reaches it
	})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()
	g.Expect(waitForHTTP("http://" + gatewayAddr)).To(Succeed())

	chat := func() (*http.Response, []byte) {
		body := `{"model":"MiniMax-M2","messages":[{"role":"user","content":"count these words please"}]}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+gatewayAddr+"/v1/chat/completions", stringsReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}
	served := 0
	var refused *http.Response
	var refusal []byte
	g.Eventually(func() int {
		resp, body := chat()
		if resp.StatusCode == http.StatusOK {
			served++
		}
		refused, refusal = resp, body
		return resp.StatusCode
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(http.StatusServiceUnavailable))
	g.Expect(served).To(BeNumerically(">=", 1))
	g.Expect(refused.Header.Get("Retry-After")).To(Equal("30"))
	g.Expect(answer{body: refusal}.errorMessage()).To(ContainSubstring("cannot record usage right now"))

	l, err := net.Listen("tcp", serverAddr)
	g.Expect(err).NotTo(HaveOccurred())
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()
	g.Eventually(func() int {
		resp, _ := chat()
		if resp.StatusCode == http.StatusOK {
			served++
		}
		return resp.StatusCode
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "served again once the backlog is taken")
	g.Eventually(func() int64 {
		buckets, err := store.Aggregate(ctx, usage.Query{From: testClock.Now().Add(-time.Hour), To: testClock.Now().Add(time.Hour),
			Filter: usage.Filter{Project: "gw-spool-full"}})
		g.Expect(err).NotTo(HaveOccurred())
		var total usage.Totals
		for _, b := range buckets {
			total.Add(b.Totals)
		}
		return total.Calls
	}, 30*time.Second).Should(BeEquivalentTo(served), "every call served was stored; none refused was")
}
