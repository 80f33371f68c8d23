package dev

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/identity"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// Scale of BenchmarkDashboardPages: the 1,000 projects, 10,000
// keys and 10 million usage events, over the last 30 days.
const (
	benchProjects    = 1000
	keysPerProject   = 10
	benchEvents      = 10_000_000
	benchDays        = 30
	benchRuns        = 100
	benchEventsBatch = 5000
)

// BenchmarkDashboardPages runs the whole hub (hub dev in-process: the
// control plane, the manager, the usage server with the dashboard, the
// management API behind the aggregator) with 1,000 projects and 10,000
// issued keys, and a usage store of 10 million events over the last 30
// days, and times the dashboard as the first Owner on loopback (target: p99
// under 100 ms):
//   - the overview, against the account page (the dashboard's fixed cost:
//     session, member, layout) as its baseline;
//   - the overview's usage section (the last 7 days by day and project,
//     which the overview loads after it shows), and the Usage page's
//     default view (this billing cycle by day and project, with its
//     comparisons) and its last 30 days, each against the usage report it
//     asks the management API for, created directly as the same member.
//
// Each figure takes benchRuns requests, or as many as fit in benchBudget
// (a page of tens of seconds cannot take a hundred), and is reported as p99
// over the runs taken and as the ratio to its baseline of the same run (the
// machines are noisy). Set HUB_BENCH_USAGE_DB to a file to keep the seeded
// usage store between runs, HUB_BENCH_CPUPROFILE to a file for a CPU
// profile of the hub while the figures are taken, and
// HUB_BENCH_HEAPPROFILE for its heap after them (and before them, at the
// path with .before).
func BenchmarkDashboardPages(b *testing.B) {
	setTestLogger()
	g := NewWithT(b)
	ctx := context.Background()
	stateDir := b.TempDir()
	now := time.Now().UTC()
	usageDB(b, g, filepath.Join(stateDir, "usage.db"), now)

	d := startDev(b, stateDir)
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(stateDir, "kubeconfig"))
	g.Expect(err).NotTo(HaveOccurred())
	cfg.QPS, cfg.Burst = 500, 1000 // seeding, not the figures: no client-side throttling
	admin, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	seedProjectsAndKeys(b, g, admin)

	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/v1/invitations/accept\?\S+`).FindString(d.out.String())
	g.Expect(link).NotTo(BeEmpty(), d.out.String())
	owner := newBrowser(g, link[:strings.Index(link, invitations.AcceptPath)])
	owner.signUp(link, "the first owner's passphrase")
	asOwner := ownerClient(g, filepath.Join(stateDir, "kubeconfig"))

	// A page or a report that fails is counted, not fatal: a figure that
	// fails at this scale is a finding like a slow one.
	page := func(path, want string) func() error {
		return func() error {
			status, body := owner.get(path)
			if status != http.StatusOK || !strings.Contains(body, want) {
				return fmt.Errorf("GET %s answered %d", path, status)
			}
			return nil
		}
	}
	// The sample Organization bills in Asia/Shanghai from the 1st: the
	// Owner, who chose no zone, reads days there.
	zone, err := time.LoadLocation("Asia/Shanghai")
	g.Expect(err).NotTo(HaveOccurred())
	// Each page's baseline is the report it asks the management API for,
	// asked the same way: what the page adds is the difference. The same
	// report is also timed at the hops behind kube-apiserver, the
	// management API and the usage server each alone, so that a report's
	// time shows where it goes.
	hops := reportHops(g, cfg, admin, d.out.String())
	// A chart asks for its 7 costliest groups' lines (and the others');
	// the Usage page also for comparisons and its table's 50 groups.
	report := func(from, to time.Time, page bool) []measure {
		spec := mgmtv1alpha1.UsageReportSpec{StartTime: metav1.NewTime(from), EndTime: metav1.NewTime(to),
			Granularity: mgmtv1alpha1.GranularityDay, TimeZone: zone.String(), GroupBy: []mgmtv1alpha1.Dimension{mgmtv1alpha1.DimensionProject},
			TopGroups: 7}
		if page {
			spec.Compare, spec.GroupTotals = true, 50
		}
		return []measure{
			{"its report through kube-apiserver", func() error { return asOwner.Create(ctx, &mgmtv1alpha1.UsageReport{Spec: spec}) }},
			{"the management API alone", func() error { return hops.managementAPI.Create(ctx, &mgmtv1alpha1.UsageReport{Spec: spec}) }},
			{"the usage server alone", func() error { return hops.usageServer(ctx, spec) }},
		}
	}
	cycle := billing.CycleAt(now, 1, zone)
	to := now.Truncate(time.Hour).Add(time.Hour)
	today := now.In(zone)
	lastDays := func(n int) time.Time {
		return time.Date(today.Year(), today.Month(), today.Day()-(n-1), 0, 0, 0, 0, zone)
	}
	figures := []struct {
		name, metric string
		page         func() error
		baselines    []measure
	}{
		{"overview", "overview", page("/", "<h1>Overview</h1>"), []measure{{"account page", page("/account", "<h1>Your account</h1>")}}},
		{"overview's usage section (7 days, by day and project)", "overview-usage", page("/overview/usage", `id="recent-usage"`),
			report(lastDays(7), to, false)},
		{"usage (this cycle, by day and project, compared)", "usage-cycle", page("/usage", "<h1>Usage</h1>"),
			report(cycle.Start, cycle.End, true)},
		{"usage (30 days, by day and project, compared)", "usage-30d", page("/usage?range=30d&granularity=Day&group=Project", "<h1>Usage</h1>"),
			report(lastDays(30), to, true)},
	}
	b.ResetTimer()
	if path := os.Getenv("HUB_BENCH_CPUPROFILE"); path != "" {
		// The figures' part only, not the seeding (go test's -cpuprofile
		// covers both).
		out, err := os.Create(path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pprof.StartCPUProfile(out)).To(Succeed())
		defer func() {
			pprof.StopCPUProfile()
			_ = out.Close()
		}()
	}
	if path := os.Getenv("HUB_BENCH_HEAPPROFILE"); path != "" {
		// The heap before the figures too, at path.before: what the
		// figures allocate is the difference (pprof -diff_base).
		writeHeapProfile(g, path+".before")
		defer writeHeapProfile(g, path)
	}
	for range b.N {
		for _, f := range figures {
			pg := p99Of(f.page)
			b.ReportMetric(ms(pg.p99), "ms-p99-"+f.metric)
			fmt.Printf("%s: %s\n", f.name, pg)
			for _, m := range f.baselines {
				base := p99Of(m.run)
				fmt.Printf("  %s: %s (page %.2f×)\n", m.name, base, ms(pg.p99)/ms(base.p99))
			}
		}
	}
}

// writeHeapProfile writes the process's heap profile (live and allocated
// since start) to path.
func writeHeapProfile(g Gomega, path string) {
	out, err := os.Create(path)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = out.Close() }()
	g.Expect(pprof.Lookup("heap").WriteTo(out, 0)).To(Succeed())
}

// benchBudget bounds the time one figure's runs take.
const benchBudget = time.Minute

// measure is one thing BenchmarkDashboardPages times.
type measure struct {
	name string
	run  func() error
}

// timing is a figure's runs.
type timing struct {
	p99, median  time.Duration
	runs, failed int
	lastErr      error
	// gcs counts the hub's garbage collections during the runs (the hub
	// runs in this process), and heap is its live heap after them.
	gcs  uint32
	heap uint64
}

func (t timing) String() string {
	out := fmt.Sprintf("p99 %v, median %v over %d runs (%d GCs, heap %d MB)", t.p99.Round(100*time.Microsecond),
		t.median.Round(100*time.Microsecond), t.runs, t.gcs, t.heap>>20)
	if t.failed > 0 {
		out += fmt.Sprintf(", %d failed (%v)", t.failed, t.lastErr)
	}
	return out
}

// p99Of times f benchRuns times, or as many as fit in benchBudget, after a
// run to warm caches, and returns the 99th percentile (the slowest run when
// there are fewer than 100), failures included.
func p99Of(f func() error) timing {
	_ = f()
	var t timing
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var times []time.Duration
	deadline := time.Now().Add(benchBudget)
	for len(times) < benchRuns && (len(times) < 3 || time.Now().Before(deadline)) {
		start := time.Now()
		if err := f(); err != nil {
			t.failed, t.lastErr = t.failed+1, err
		}
		times = append(times, time.Since(start))
	}
	runtime.ReadMemStats(&after)
	t.gcs, t.heap = after.NumGC-before.NumGC, after.HeapAlloc
	slices.Sort(times)
	t.p99, t.median, t.runs = times[(len(times)*99-1)/100], times[len(times)/2], len(times)
	return t
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// usageDB puts the benchmark's usage store at path: seeded (several
// minutes), or copied from $HUB_BENCH_USAGE_DB when that file exists, which
// a seeding then fills for the next run. Events are spread over the 30 days
// before the seeding; a copy is first brought up to now at the same rate.
func usageDB(b *testing.B, g Gomega, path string, now time.Time) {
	cached := os.Getenv("HUB_BENCH_USAGE_DB")
	if cached != "" {
		if _, err := os.Stat(cached); err == nil {
			// Brought up to this version's schema and to now first, in
			// place: once.
			catchUp(b, g, cached, now)
			g.Expect(copyFile(cached, path)).To(Succeed())
			b.Logf("usage store copied from %s", cached)
			return
		}
	}
	seedUsage(b, g, path, now)
	if cached != "" {
		g.Expect(copyFile(path, cached)).To(Succeed())
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// seedUsage writes benchEvents events over the benchDays days before now
// into the usage store at path, and rolls up the days that are over, as
// the server's leader does hourly.
func seedUsage(b *testing.B, g Gomega, path string, now time.Time) {
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, path)
	g.Expect(err).NotTo(HaveOccurred())
	start := now.Add(-benchDays * 24 * time.Hour)
	started := time.Now()
	insertBenchEvents(g, store, "ev", start, benchEvents)
	g.Expect(store.Close()).To(Succeed())
	catchUp(b, g, path, now)
	b.Logf("seeded %d events in %v", benchEvents, time.Since(started).Round(time.Second))
}

// benchEventEvery is the time between two of the benchmark's events.
const benchEventEvery = benchDays * 24 * time.Hour / benchEvents

// insertBenchEvents stores n events, one every benchEventEvery from start,
// spread over the projects, keys, models and endpoints as the seeding
// spreads them, with IDs that start with prefix.
func insertBenchEvents(g Gomega, store usage.Store, prefix string, start time.Time, n int) {
	for offset := 0; offset < n; offset += benchEventsBatch {
		events := make([]usage.Event, 0, benchEventsBatch)
		for j := offset; j < min(n, offset+benchEventsBatch); j++ {
			events = append(events, usage.Event{
				ID: fmt.Sprintf("%s-%010d", prefix, j), Time: start.Add(benchEventEvery * time.Duration(j)),
				Project: fmt.Sprintf("p-%04d", j%benchProjects), KeyID: fmt.Sprintf("key%07d", j%(benchProjects*keysPerProject)),
				Service: pricing.Chat, Endpoint: []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses"}[j%3],
				Model: fmt.Sprintf("model-%d", j%5), InputTokens: int64(100 + j%1000), OutputTokens: int64(50 + j%500), StatusCode: 200,
			})
		}
		_, err := store.Insert(context.Background(), events)
		g.Expect(err).NotTo(HaveOccurred())
	}
}

// catchUp brings the usage store at path up to now, as a live hub's would
// be: the events of the hours since its last one, at the seeding's rate
// (so that today's hours are as busy as the seeded ones), and the days
// that are over rolled up, in UTC and in the sample Organization's zone,
// as the server's leader does hourly.
func catchUp(b *testing.B, g Gomega, path string, now time.Time) {
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, path)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = store.Close() }()
	keys, err := store.LastUsed(ctx, time.Time{})
	g.Expect(err).NotTo(HaveOccurred())
	var last time.Time
	for _, k := range keys {
		if k.Last.After(last) {
			last = k.Last
		}
	}
	if n := int(now.Sub(last) / benchEventEvery); n > 1 && !last.IsZero() {
		insertBenchEvents(g, store, fmt.Sprintf("up%d", last.Unix()), last.Add(benchEventEvery), n-1)
		b.Logf("usage store brought up to now: %d events since %s", n-1, last.Format(time.RFC3339))
	}
	zone, err := time.LoadLocation("Asia/Shanghai")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(store.RollUpDays(ctx, now, zone)).To(Succeed())
}

// seedProjectsAndKeys creates the projects, waits for their namespaces,
// creates the keys and waits until the manager has issued them all.
func seedProjectsAndKeys(b *testing.B, g Gomega, admin client.Client) {
	ctx := context.Background()
	started := time.Now()
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range benchProjects {
		eg.Go(func() error {
			p := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%04d", i)},
				Spec: hubv1.ProjectSpec{DisplayName: fmt.Sprintf("Project %d", i)}}
			return admin.Create(ctx, p)
		})
	}
	g.Expect(eg.Wait()).To(Succeed())
	namespaces := map[string]string{}
	g.Eventually(func() int {
		var list hubv1.ProjectList
		g.Expect(admin.List(ctx, &list)).To(Succeed())
		for _, p := range list.Items {
			if p.Status.Namespace != "" {
				namespaces[p.Name] = p.Status.Namespace
			}
		}
		return len(namespaces)
	}, 10*time.Minute, 2*time.Second).Should(BeNumerically(">=", benchProjects))
	for i := range benchProjects {
		ns := namespaces[fmt.Sprintf("p-%04d", i)]
		for k := range keysPerProject {
			eg.Go(func() error {
				key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-%d", k)},
					Spec: hubv1.APIKeySpec{Label: fmt.Sprintf("Service %d", k), Scope: hubv1.ScopeStandard, Owner: "owner@example.com"}}
				return admin.Create(ctx, key)
			})
		}
	}
	g.Expect(eg.Wait()).To(Succeed())
	g.Eventually(func() int {
		var list hubv1.APIKeyList
		g.Expect(admin.List(ctx, &list)).To(Succeed())
		active := 0
		for _, k := range list.Items {
			if k.Status.Phase == hubv1.KeyActive {
				active++
			}
		}
		return active
	}, 20*time.Minute, 5*time.Second).Should(BeNumerically(">=", benchProjects*keysPerProject))
	b.Logf("created %d projects and %d keys in %v", benchProjects, benchProjects*keysPerProject, time.Since(started).Round(time.Second))
}

// ownerClient acts as the first Owner, signed in with a second factor, as
// the dashboard does: for the baseline reports.
func ownerClient(g Gomega, kubeconfig string) client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "owner@example.com", Groups: []string{"system:authenticated"},
		Extra: map[string][]string{identity.AMRExtra: {"pwd", "otp", "mfa"}}}
	// A baseline, not a load test: client-go's default limit (5 requests
	// a second) would time its own waiting.
	cfg.QPS, cfg.Burst = 1000, 1000
	s := scheme.New()
	g.Expect(mgmtv1alpha1.AddToScheme(s)).To(Succeed())
	c, err := client.New(cfg, client.Options{Scheme: s})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// hops reach the servers behind kube-apiserver directly, for
// BenchmarkDashboardPages's breakdown of a report's time.
type hops struct {
	// managementAPI creates reports on the management API's own port, as
	// a ServiceAccount allowed to.
	managementAPI client.Client
	// usageServer asks the usage server for the report a spec names, as
	// the management API does.
	usageServer func(context.Context, mgmtv1alpha1.UsageReportSpec) error
}

// reportHops sets up, as the administrator (adminCfg, admin), a
// ServiceAccount that may create reports at both hops, and reaches them at
// the addresses in the banner of `hub dev`, trusting the management API's
// serving CA as the aggregator does (from its APIService).
func reportHops(g Gomega, adminCfg *rest.Config, admin client.Client, banner string) hops {
	ctx := context.Background()
	apiURL := regexp.MustCompile(`management API\s+(https://\S+),`).FindStringSubmatch(banner)
	serverURL := regexp.MustCompile(`usage server \(API, invitations\)\s+(http://\S+)`).FindStringSubmatch(banner)
	g.Expect(apiURL).To(HaveLen(2), banner)
	g.Expect(serverURL).To(HaveLen(2), banner)
	token, err := serviceAccountToken(ctx, adminCfg, "bench-reports", "bench-reports",
		rbacv1.PolicyRule{APIGroups: []string{mgmtv1alpha1.GroupName, hubv1.GroupVersion.Group}, Resources: []string{"usagereports"},
			Verbs: []string{"create"}})
	g.Expect(err).NotTo(HaveOccurred())
	bearer, err := token()
	g.Expect(err).NotTo(HaveOccurred())

	apiService := &unstructured.Unstructured{}
	apiService.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"})
	g.Expect(admin.Get(ctx, client.ObjectKey{Name: mgmtv1alpha1.SchemeGroupVersion.Version + "." + mgmtv1alpha1.GroupName}, apiService)).To(Succeed())
	caBundle, _, err := unstructured.NestedString(apiService.Object, "spec", "caBundle")
	g.Expect(err).NotTo(HaveOccurred())
	ca, err := base64.StdEncoding.DecodeString(caBundle)
	g.Expect(err).NotTo(HaveOccurred())
	cfg := &rest.Config{Host: apiURL[1], BearerToken: bearer, QPS: 1000, Burst: 1000,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: "hub-apiserver." + hubNamespace + ".svc"}}
	s := scheme.New()
	g.Expect(mgmtv1alpha1.AddToScheme(s)).To(Succeed())
	direct, err := client.New(cfg, client.Options{Scheme: s})
	g.Expect(err).NotTo(HaveOccurred())

	httpClient := &http.Client{Timeout: time.Minute}
	return hops{managementAPI: direct, usageServer: func(ctx context.Context, spec mgmtv1alpha1.UsageReportSpec) error {
		req := usagereport.Request{From: spec.StartTime.Time, To: spec.EndTime.Time, Granularity: usage.Day, TimeZone: spec.TimeZone,
			GroupBy: []usage.Dimension{usage.ByProject}, Compare: spec.Compare, TopGroups: int(spec.TopGroups),
			GroupTotals: int(spec.GroupTotals)}
		resp, err := serverclient.Post(ctx, httpClient, serverURL[1]+usagereport.Path, token, req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the usage server answered %d", resp.StatusCode)
		}
		var answer usagereport.Report
		return json.NewDecoder(resp.Body).Decode(&answer)
	}}
}
