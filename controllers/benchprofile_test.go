package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// diagnoseAPIServer, when HUB_BENCH_APISERVER_PROFILE names a directory,
// records a CPU profile of the API server for the given seconds into
// <dir>/<name>.pprof (read it with `go tool pprof`) and counts the requests
// the API server served meanwhile. The returned function waits for the
// profile and prints every request count that changed, so a benchmark shows
// what it cost the API server and that nothing but the expected writes ran.
func diagnoseAPIServer(b *testing.B, name string, seconds int) (finish func()) {
	dir := os.Getenv("HUB_BENCH_APISERVER_PROFILE")
	if dir == "" {
		return func() {}
	}
	cfg := rest.CopyConfig(restCfg)
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	cfg.Timeout = 0
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	before := requestCounts(b, rc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		body, err := rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(seconds)).
			DoRaw(context.Background())
		if err != nil {
			b.Error("profiling the API server:", err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pprof"), body, 0o600); err != nil {
			b.Error(err)
		}
	}()
	return func() {
		after := requestCounts(b, rc)
		<-done
		var lines []string
		for series, v := range after {
			if d := v - before[series]; d != 0 {
				lines = append(lines, fmt.Sprintf("%8.0f %s", d, series))
			}
		}
		slices.Sort(lines)
		fmt.Printf("API server requests during %s:\n%s\n", name, strings.Join(lines, "\n"))
	}
}

// requestCounts reads the API server's request and terminated-watcher
// counters.
func requestCounts(b *testing.B, rc *rest.RESTClient) map[string]float64 {
	body, err := rc.Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") &&
			!strings.HasPrefix(line, "apiserver_terminated_watchers_total{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
