package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/gateway"
)

// benchBody is a small chat completion: the proxy's own work, not the
// payload, is what the benchmark measures.
const benchBody = `{"model":"MiniMax-M2","messages":[{"role":"user","content":"Say hello to the benchmark, briefly."}]}`

// BenchmarkGatewayOverhead compares the gateway (key lookup, checks, request
// and response metering, shipping usage to the server) with a bare
// httputil.ReverseProxy in front of the same upstream (the demo model), in
// the same process and run. Both proxies use the same upstream transport
// settings, so the ratio is the gateway's own work.
//
// Throughput is measured with 32 concurrent clients, latency with one client
// at a time (so that queueing does not hide the added latency). The rounds
// alternate between the two proxies, so that a noisy neighbour hurts both.
// Targets: at least 0.85 of the bare proxy's throughput, at most 2 ms added
// p99 latency. Every call through the gateway must reach the usage store.
// CPU time per call is reported too, for both: on a noisy machine it moves
// far less than throughput, so it is the figure to compare between versions.
func BenchmarkGatewayOverhead(b *testing.B) {
	const (
		rounds      = 5
		concurrency = 32
		calls       = 8000 // per throughput round
		sequential  = 1000 // per latency round
	)
	g := NewWithT(b)
	_, key := issueKey(g, "gw-bench", nil)
	upstream, err := url.Parse(upstreamURL)
	g.Expect(err).NotTo(HaveOccurred())
	bare := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(upstream) },
		Transport: gateway.UpstreamTransport(),
	})
	defer bare.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency * 2}}
	targets := []struct {
		name, url, key string
	}{{"bare", bare.URL, ""}, {"gateway", gatewayURL, key}}

	// Warm up connections and caches on both sides.
	for _, t := range targets {
		g.Expect(load(client, t.url, t.key, concurrency, 500)).To(HaveLen(500))
	}
	var gatewayCalls int64 = 500
	throughput := map[string][]float64{}
	cpuPerCall := map[string][]float64{}
	latencies := map[string][]time.Duration{}
	for range rounds {
		for _, t := range targets {
			start, cpuStart := time.Now(), processCPU()
			lat, err := load(client, t.url, t.key, concurrency, calls)
			g.Expect(err).NotTo(HaveOccurred())
			throughput[t.name] = append(throughput[t.name], float64(len(lat))/time.Since(start).Seconds())
			cpuPerCall[t.name] = append(cpuPerCall[t.name], float64((processCPU()-cpuStart).Microseconds())/float64(len(lat)))
			lat, err = load(client, t.url, t.key, 1, sequential)
			g.Expect(err).NotTo(HaveOccurred())
			latencies[t.name] = append(latencies[t.name], lat...)
			if t.name == "gateway" {
				gatewayCalls += calls + sequential
			}
		}
	}

	bareRate, gwRate := medianFloat(throughput["bare"]), medianFloat(throughput["gateway"])
	bareP50, bareP99 := percentile(latencies["bare"], 0.50), percentile(latencies["bare"], 0.99)
	gwP50, gwP99 := percentile(latencies["gateway"], 0.50), percentile(latencies["gateway"], 0.99)
	b.ReportMetric(gwRate, "gateway-req/s")
	b.ReportMetric(bareRate, "bare-req/s")
	b.ReportMetric(gwRate/bareRate, "x-bare")
	b.ReportMetric(float64((gwP99-bareP99).Microseconds())/1000, "added-p99-ms")
	bareCPU, gwCPU := medianFloat(cpuPerCall["bare"]), medianFloat(cpuPerCall["gateway"])
	b.ReportMetric(gwCPU, "gateway-cpu-us/call")
	b.ReportMetric(bareCPU, "bare-cpu-us/call")
	fmt.Printf("CPU per call (this process: client, proxy, upstream and, for the gateway, the usage server): gateway %.1f µs, "+
		"bare %.1f µs; the gateway's own work %.1f µs; ratio bare/gateway %.2f\n", gwCPU, bareCPU, gwCPU-bareCPU, bareCPU/gwCPU)
	fmt.Printf("gateway throughput (%d clients): %.0f req/s; bare httputil.ReverseProxy %.0f req/s; ratio %.2f (target >= 0.85)\n",
		concurrency, gwRate, bareRate, gwRate/bareRate)
	fmt.Printf("gateway latency (1 client): p50 %v, p99 %v; bare p50 %v, p99 %v; added p99 %v (target <= 2ms)\n",
		gwP50.Round(time.Microsecond), gwP99.Round(time.Microsecond), bareP50.Round(time.Microsecond),
		bareP99.Round(time.Microsecond), (gwP99 - bareP99).Round(time.Microsecond))

	// Nothing metered is lost: every call made through the gateway is in
	// the store once the shipper has caught up.
	g.Eventually(func() int64 { return usageOf(g, "gw-bench").Calls }, time.Minute).Should(Equal(gatewayCalls))
}

// load sends n chat completions to base with the given concurrency and
// returns each call's latency; any answer but 200 is an error.
func load(client *http.Client, base, key string, concurrency, n int) ([]time.Duration, error) {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		all      = make([]time.Duration, 0, n)
		firstErr error
		wg       sync.WaitGroup
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, n/concurrency+1)
			var err error
			for next.Add(1) <= int64(n) && err == nil {
				var d time.Duration
				d, err = chatCall(client, base, key)
				mine = append(mine, d)
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return all, firstErr
}

func chatCall(client *http.Client, base, key string) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader([]byte(benchBody)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s answered %d", base, resp.StatusCode)
	}
	return d, err
}

// processCPU is the CPU time this process has used, user and system. It is
// steadier than throughput on a shared machine: what other processes do
// slows a round down but adds no CPU time to it.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func medianFloat(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}
