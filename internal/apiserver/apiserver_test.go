package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/access"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/apiserver"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/demomodel"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/testlog"
	"github.com/minimax/platform-hub/internal/usage"
)

// env is a local control plane with the management API registered through
// its aggregator, and a usage server on SQLite.
type env struct {
	cluster *devcluster.Cluster
	client  client.Client
	store   usage.Store
	audit   auditlog.Store
	alerts  alertlog.Store
	kubectl string
	dir     string
	// api configures the management API; stopAPI stops it.
	api     apiserver.Options
	stopAPI func()

	// With the hub (startHubEnv): the gateway's address, and every log
	// line of the control plane, the manager, the gateway, the usage
	// server and the management API.
	gatewayURL string
	logs       *testlog.Buffer
}

// startEnv starts a control plane, a usage server and the management API,
// but no controllers: tests write the status controllers would.
func startEnv(t *testing.T, g Gomega) *env {
	return startEnvWith(t, g, false)
}

// startHubEnv also runs the hub's admission webhooks and manager, and a
// gateway in front of the demo model.
func startHubEnv(t *testing.T, g Gomega) *env {
	return startEnvWith(t, g, true)
}

// testLogs holds every log line of every test's servers. The loggers are
// set once: servers of an earlier test may still be logging while the next
// test starts.
var (
	testLogs   = &testlog.Buffer{}
	setLoggers sync.Once
)

func startEnvWith(t *testing.T, g Gomega, hub bool) *env {
	logs := testLogs
	setLoggers.Do(func() {
		logger := zap.New(zap.WriteTo(logs))
		ctrl.SetLogger(logger)
		klog.SetLogger(logger)
	})
	dir := t.TempDir() // removed after the servers below stop
	ctx, cancel := context.WithCancel(context.Background())
	crds, err := config.CRDs()
	g.Expect(err).NotTo(HaveOccurred())
	opts := devcluster.Options{Scheme: scheme.New(), CRDs: crds, StateDir: filepath.Join(dir, "cluster"), Output: logs}
	if hub {
		opts.ValidatingWebhooks, err = config.ValidatingWebhooks()
		g.Expect(err).NotTo(HaveOccurred())
	}
	cluster, err := devcluster.Start(opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		cancel()
		_ = cluster.Stop()
	})
	binDir, err := devcluster.FindBinDir()
	g.Expect(err).NotTo(HaveOccurred())
	e := &env{cluster: cluster, kubectl: filepath.Join(binDir, "kubectl"), dir: dir, logs: logs}
	e.client, err = client.New(cluster.Config, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	for _, role := range access.ClusterRoles() {
		g.Expect(e.client.Create(ctx, &role)).To(Succeed())
	}

	// The usage server, checking the management API's ServiceAccount token.
	stores, err := server.OpenStores(ctx, "sqlite:"+filepath.Join(e.dir, "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = stores.Close() })
	e.store, e.audit, e.alerts = stores.Usage, stores.Audit, stores.Alerts
	prices, err := pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{
		Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"}}}}})
	g.Expect(err).NotTo(HaveOccurred())
	usageServer := &server.Server{Store: stores.Usage, Alerts: stores.Alerts, Audit: stores.Audit,
		Auth:    &server.Authorizer{Client: e.client, Clock: clock.RealClock{}},
		Metrics: metrics.NewUsageMetrics(prometheus.NewRegistry()), Log: ctrl.Log}
	usageServer.SetPrices(prices, "USD")
	hs := httptest.NewServer(usageServer.Handler())
	t.Cleanup(hs.Close)
	token := serviceAccountToken(g, cluster, e.client, "hub-system", "hub-apiserver",
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usagereports"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"usagerecords", "auditevents", "alerts"},
			Verbs: []string{"list"}})

	// The management API, registered through the aggregator once it listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ln.Close()).To(Succeed())
	api := devcluster.AggregatedAPI{Group: mgmtv1alpha1.GroupName, Version: "v1alpha1",
		Namespace: "hub-system", Service: "hub-apiserver", Port: ln.Addr().(*net.TCPAddr).Port}
	serving, err := cluster.AggregatedAPICertificate(api)
	g.Expect(err).NotTo(HaveOccurred())
	certFile, keyFile := filepath.Join(e.dir, "tls.crt"), filepath.Join(e.dir, "tls.key")
	g.Expect(os.WriteFile(certFile, serving.CertPEM, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(keyFile, serving.KeyPEM, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(e.dir, "ca.crt"), serving.CAPEM, 0o600)).To(Succeed())
	kubeconfig := filepath.Join(e.dir, "apiserver.kubeconfig")
	g.Expect(cluster.WriteKubeconfig(kubeconfig, "hub-apiserver", "system:masters")).To(Succeed())
	e.api = apiserver.Options{ListenAddr: ln.Addr().String(), CertFile: certFile, KeyFile: keyFile, Kubeconfig: kubeconfig,
		Usage: &apiserver.UsageClient{URL: hs.URL, HTTP: hs.Client(), Token: func() (string, error) { return token, nil }},
		Now:   func() time.Time { return testNow }}
	if hub {
		e.startHub(ctx, g, hs.URL)
	}
	e.startAPI(t, g)
	g.Expect(cluster.RegisterAggregatedAPI(ctx, api)).To(Succeed())
	// Ready when kubectl can explain it: the aggregator has its OpenAPI.
	g.Eventually(func() error {
		_, err := e.run("admin", "get", "--raw", "/openapi/v3/apis/management.hub.minimax.io/v1alpha1")
		return err
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	return e
}

// startHub runs the manager (controllers and webhooks) and a gateway that
// sends usage to serverURL, until ctx ends.
func (e *env) startHub(ctx context.Context, g Gomega, serverURL string) {
	auditToken := serviceAccountToken(g, e.cluster, e.client, "hub-system", "hub-manager",
		rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"auditevents"}, Verbs: []string{"create"}})
	mgr, err := operator.NewManager(e.cluster.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0",
		Webhook: e.cluster.WebhookServerOptions(), SkipControllerNameValidation: true,
		Audit: operator.AuditOptions{ServerURL: serverURL, Token: func() (string, error) { return auditToken, nil },
			SpoolDir: filepath.Join(e.dir, "audit-spool")}})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()
	g.Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }, 30*time.Second, 50*time.Millisecond).Should(Succeed())

	model := httptest.NewServer(demomodel.Handler())
	go func() {
		<-ctx.Done()
		model.Close()
	}()
	token := serviceAccountToken(g, e.cluster, e.client, "hub-system", "hub-gateway", gateway.ServerRules()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	g.Expect(ln.Close()).To(Succeed())
	gw, _, err := gateway.NewManager(ctx, e.cluster.Config, gateway.Options{ListenAddr: addr, Upstream: model.URL,
		ServerURL: serverURL, Token: func() (string, error) { return token, nil }, SpoolDir: filepath.Join(e.dir, "spool"),
		MetricsAddr: "0", ProbeAddr: "0", FlushInterval: 100 * time.Millisecond})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = gw.Start(ctx) }()
	e.gatewayURL = "http://" + addr
}

// startAPI runs the management API until stopAPI or the end of the test,
// and returns once it listens.
func (e *env) startAPI(t *testing.T, g Gomega) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := apiserver.New(e.api)
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Run(ctx)
	}()
	e.stopAPI = func() {
		cancel()
		<-done
	}
	t.Cleanup(e.stopAPI)
	g.Eventually(func() error {
		conn, err := net.Dial("tcp", e.api.ListenAddr)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}, time.Minute, 50*time.Millisecond).Should(Succeed())
}

// serviceAccountToken makes a ServiceAccount allowed rules and returns a
// token of it.
func serviceAccountToken(g Gomega, cluster *devcluster.Cluster, c client.Client, namespace, name string, rules ...rbacv1.PolicyRule) string {
	ctx := context.Background()
	_ = c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})
	g.Expect(c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})).To(Succeed())
	g.Expect(c.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules})).To(Succeed())
	g.Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: name}}})).To(Succeed())
	clientset, err := kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// member signs a person in with a hub role, as the access controller
// binds them.
func (e *env) member(g Gomega, user string, role hubv1.Role) {
	g.Expect(e.client.Create(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + strings.ReplaceAll(user, "@", ".")},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: access.ClusterRoleName(role)},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}})).To(Succeed())
}

// run runs kubectl as user ("admin" for the cluster administrator).
func (e *env) run(user string, args ...string) (string, error) {
	return e.runWithInput(user, "", args...)
}

func (e *env) runWithInput(user, input string, args ...string) (string, error) {
	kubeconfig := filepath.Join(e.dir, "kubeconfig-"+user)
	if _, err := os.Stat(kubeconfig); err != nil {
		groups := []string{}
		if user == "admin" {
			groups = append(groups, "system:masters")
		}
		if err := e.cluster.WriteKubeconfig(kubeconfig, user, groups...); err != nil {
			return "", err
		}
	}
	cmd := exec.Command(e.kubectl, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", e.kubectlCache()}, args...)...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testNow is the management API's clock: in the November 2026 cycle.
var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const reportYAML = `apiVersion: management.hub.minimax.io/v1alpha1
kind: UsageReport
spec:
  startTime: "2026-11-01T00:00:00Z"
  endTime: "2026-12-01T00:00:00Z"
  granularity: Day
  timeZone: UTC
  groupBy: [Project]
`

// TestUsageReportThroughTheAggregator: a Viewer creates a UsageReport with
// kubectl, through kube-apiserver's aggregator, and reads the figures of
// the stored events, priced; kubectl explain reads the published OpenAPI;
// bad input is refused with the field path; someone without a hub role is
// refused by RBAC.
func TestUsageReportThroughTheAggregator(t *testing.T) {
	g := NewWithT(t)
	e := startEnv(t, g)
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	_, err := e.store.Insert(context.Background(), []usage.Event{
		{ID: "a1", Time: at, Project: "chatbot", KeyID: "AbCdEf0123", Service: pricing.Chat, Endpoint: "/v1/chat/completions",
			Model: "MiniMax-M2", InputTokens: 1000, OutputTokens: 500, StatusCode: 200},
		{ID: "a2", Time: at.Add(time.Hour), Project: "research", KeyID: "ZyXwVu9876", Service: pricing.Chat, Endpoint: "/v1/chat/completions",
			Model: "MiniMax-M2", InputTokens: 2000, StatusCode: 200},
	})
	g.Expect(err).NotTo(HaveOccurred())
	e.member(g, "viewer@example.com", hubv1.RoleViewer)

	out, err := e.runWithInput("viewer@example.com", reportYAML, "create", "-f", "-", "-o", "json")
	g.Expect(err).NotTo(HaveOccurred(), out)
	report := &mgmtv1alpha1.UsageReport{}
	g.Expect(json.Unmarshal([]byte(out), report)).To(Succeed(), out)
	g.Expect(report.Status.Currency).To(Equal("USD"))
	g.Expect(report.Status.Total.Calls).To(BeEquivalentTo(2))
	g.Expect(report.Status.Total.InputTokens).To(BeEquivalentTo(3000))
	g.Expect(report.Status.Total.Cost).To(Equal("0.0015"), "3000 input tokens at 0.30/M and 500 output at 1.20/M")
	g.Expect(report.Status.Buckets).To(HaveLen(2))
	g.Expect(report.Status.Buckets[0].Project).To(Equal("chatbot"))
	g.Expect(report.Status.Buckets[0].Cost).To(Equal("0.0009"))

	// The costliest project keeps its buckets; the other is summed into
	// the others, and named so in the CSV.
	out, err = e.runWithInput("viewer@example.com", reportYAML+"  topGroups: 1\n  groupTotals: 1\n  csv: true\n", "create", "-f", "-", "-o", "json")
	g.Expect(err).NotTo(HaveOccurred(), out)
	top := &mgmtv1alpha1.UsageReport{}
	g.Expect(json.Unmarshal([]byte(out), top)).To(Succeed(), out)
	g.Expect(top.Status.OtherGroups).To(BeEquivalentTo(1))
	g.Expect(top.Status.Total).To(Equal(report.Status.Total))
	g.Expect(top.Status.Buckets).To(HaveLen(2))
	g.Expect(top.Status.Buckets[0].Project).To(Equal("chatbot"))
	g.Expect(top.Status.Buckets[1].Others).To(BeTrue())
	g.Expect(top.Status.Buckets[1].Project).To(BeEmpty())
	g.Expect(top.Status.Buckets[1].Cost).To(Equal("0.0006"))
	g.Expect(top.Status.CSV).To(ContainSubstring(",(others),,,,,,1,2000,"))
	// And the costliest project's totals over the whole range, of two.
	g.Expect(top.Status.GroupCount).To(BeEquivalentTo(2))
	g.Expect(top.Status.GroupTotals).To(HaveLen(1))
	g.Expect(top.Status.GroupTotals[0].Project).To(Equal("chatbot"))
	g.Expect(top.Status.GroupTotals[0].StartTime).To(Equal(top.Spec.StartTime))
	g.Expect(top.Status.GroupTotals[0].Cost).To(Equal("0.0009"))
	out, err = e.runWithInput("viewer@example.com", reportYAML+"  topGroups: -1\n", "create", "--validate=false", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("spec.topGroups"))

	// Asked for a Table, the answer is the totals as columns.
	hc, err := rest.HTTPClientFor(e.cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	body, _ := json.Marshal(map[string]any{"apiVersion": "management.hub.minimax.io/v1alpha1", "kind": "UsageReport",
		"spec": map[string]any{"startTime": "2026-11-01T00:00:00Z", "endTime": "2026-12-01T00:00:00Z", "timeZone": "UTC"}})
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(e.cluster.Config.Host, "/")+"/apis/management.hub.minimax.io/v1alpha1/usagereports",
		bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json;as=Table;g=meta.k8s.io;v=v1")
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	table := &metav1.Table{}
	g.Expect(json.NewDecoder(resp.Body).Decode(table)).To(Succeed())
	_ = resp.Body.Close()
	g.Expect(table.Kind).To(Equal("Table"))
	g.Expect(table.ColumnDefinitions[6].Name).To(Equal("Cost"))
	g.Expect(table.Rows).To(HaveLen(1))
	g.Expect(table.Rows[0].Cells[6]).To(Equal("0.0015"))

	// Every project's usage in the current cycle, idle ones included.
	for _, name := range []string{"chatbot", "research", "idle"} {
		g.Expect(e.client.Create(context.Background(), &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	}
	g.Eventually(func() string {
		out, _ = e.run("viewer@example.com", "get", "projectusages")
		return out
	}, 10*time.Second, 200*time.Millisecond).Should(ContainSubstring("idle"))
	g.Expect(out).To(MatchRegexp(`chatbot +1 +1000 +500 +0\.0009 +USD +2026-12-01T00:00:00Z`))
	g.Expect(out).To(MatchRegexp(`idle +0 +0 +0 +0 +USD`))
	g.Expect(out).To(MatchRegexp(`research +1 +2000 +0 +0\.0006 +USD`))
	out, err = e.run("viewer@example.com", "get", "projectusage", "research", "-o", "jsonpath={.usage.calls} {.usage.cost} {.cycleStart}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("1 0.0006 2026-11-01T00:00:00Z"))
	out, err = e.run("viewer@example.com", "get", "projectusage", "nowhere")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`projectusages.management.hub.minimax.io "nowhere" not found`))

	// The calls behind a bucket, a page at a time.
	out, err = e.run("viewer@example.com", "get", "usagerecords", "--field-selector",
		"startTime=2026-11-27T00:00:00Z,endTime=2026-11-28T00:00:00Z,project=research")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(`2026-11-27T11:00:00Z +research +ZyXwVu9876 +/v1/chat/completions +MiniMax-M2 +2000 +0 +0\.0006 +200`))
	g.Expect(out).NotTo(ContainSubstring("chatbot"))
	out, err = e.run("viewer@example.com", "get", "usagerecords", "--chunk-size=1", "-o", "jsonpath={.items[*].metadata.name}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("a1 a2"), "kubectl follows continue, one record per page")
	out, err = e.run("viewer@example.com", "get", "usagerecords", "--field-selector", "owner=x")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`"owner" is not supported for UsageRecords`))

	out, err = e.run("viewer@example.com", "explain", "usagereports.spec.groupBy")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("groupBy splits every bucket"))

	bad := strings.Replace(reportYAML, "groupBy: [Project]", "groupBy: [Owner]", 1)
	out, err = e.runWithInput("viewer@example.com", bad, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`spec.groupBy[0]: Unsupported value: "Owner"`))

	out, err = e.runWithInput("stranger@example.com", reportYAML, "create", "--validate=false", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot create resource "usagereports" in API group "management.hub.minimax.io"`))
}

// TestManagementAPIDown: while the management API is down, its APIService
// says so, the hub's own resources are still served, asking the group
// answers 503, and a namespace deleted meanwhile waits, then goes once the
// management API is back: what deleting a Project does to its namespace.
func TestManagementAPIDown(t *testing.T) {
	g := NewWithT(t)
	e := startEnv(t, g)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}
	g.Expect(e.client.Create(ctx, ns)).To(Succeed())
	e.member(g, "viewer@example.com", hubv1.RoleViewer)

	e.stopAPI()
	// The aggregator notices within its availability checks.
	g.Eventually(func() string {
		out, _ := e.run("admin", "get", "apiservice", "v1alpha1.management.hub.minimax.io")
		return out
	}, time.Minute, time.Second).Should(MatchRegexp(`False \(FailedDiscoveryCheck\)`))
	out, err := e.run("admin", "get", "projects")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("No resources found\n"), "the hub's own resources are served as before, without a warning")
	out, err = e.runWithInput("viewer@example.com", reportYAML, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("Error from server (ServiceUnavailable)"))

	g.Expect(e.client.Delete(ctx, ns)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(e.client.Get(ctx, client.ObjectKeyFromObject(ns), ns)).To(Succeed())
		cond := namespaceCondition(ns, corev1.NamespaceDeletionDiscoveryFailure)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(corev1.ConditionTrue))
		g.Expect(cond.Message).To(ContainSubstring("management.hub.minimax.io"))
	}, time.Minute, 200*time.Millisecond).Should(Succeed())

	e.startAPI(t, g)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.client.Get(ctx, client.ObjectKeyFromObject(ns), ns))
	}, 3*time.Minute, time.Second).Should(BeTrue(), "the namespace goes once the management API is back")
}

func namespaceCondition(ns *corev1.Namespace, t corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range ns.Status.Conditions {
		if ns.Status.Conditions[i].Type == t {
			return &ns.Status.Conditions[i]
		}
	}
	return nil
}

// apiKey makes an issued APIKey in namespace for owner, as the APIKey
// controller would (this suite runs no controllers), and returns its key.
func (e *env) apiKey(g Gomega, namespace, name, owner string, scope hubv1.APIKeyScope) (*hubv1.APIKey, string) {
	ctx := context.Background()
	_ = e.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})
	k := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: hubv1.APIKeySpec{Owner: owner, Scope: scope}}
	g.Expect(e.client.Create(ctx, k)).To(Succeed())
	key, err := keys.New()
	g.Expect(err).NotTo(HaveOccurred())
	k.Status = hubv1.APIKeyStatus{Phase: hubv1.KeyActive, KeyID: key.ID(), Digest: key.Digest(), Revision: 1}
	g.Expect(e.client.Status().Update(ctx, k)).To(Succeed())
	return k, key.Reveal()
}

// kubectlCache is the environment's own kubectl cache: kubectl keys its
// discovery cache by host and port, and a port another test's server had
// would otherwise answer with that server's resources ("member" read as
// the hub's Member instead of the management API's).
func (e *env) kubectlCache() string { return filepath.Join(e.dir, "kubectl-cache") }

// direct runs kubectl against the management API itself, not through
// kube-apiserver, with a bearer token: what a tool outside the cluster does.
func (e *env) direct(token, input string, args ...string) (string, error) {
	empty := filepath.Join(e.dir, "empty-kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command(e.kubectl, append([]string{"--kubeconfig", empty, "--cache-dir", e.kubectlCache(), "--server", "https://" + e.api.ListenAddr,
		"--certificate-authority", filepath.Join(e.dir, "ca.crt"), "--token", token}, args...)...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHubKeysAsCredentials: a tool outside the cluster calls the
// management API with an Admin-scope hub key and acts as the key's owner;
// a Standard-scope key of the same owner is refused with the scope needed;
// a key revoked a moment ago is refused as unauthenticated.
func TestHubKeysAsCredentials(t *testing.T) {
	g := NewWithT(t)
	e := startEnv(t, g)
	ctx := context.Background()
	_, err := e.store.Insert(ctx, []usage.Event{{ID: "k1", Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Project: "chatbot",
		KeyID: "AbCdEf0123", Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: 1000, StatusCode: 200}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.client.Create(ctx, &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "ops"},
		Spec: hubv1.MemberSpec{Email: "Ops@Example.com", Role: hubv1.RoleAdmin}})).To(Succeed())
	e.member(g, "Ops@Example.com", hubv1.RoleAdmin)
	adminKey, admin := e.apiKey(g, "tools", "ops-admin", "ops@example.com", hubv1.ScopeAdmin)
	_, standard := e.apiKey(g, "tools", "ops-standard", "ops@example.com", hubv1.ScopeStandard)

	var out string
	g.Eventually(func() error {
		out, err = e.direct(admin, reportYAML, "create", "-f", "-", "-o", "jsonpath={.status.total.calls} {.status.total.cost}")
		return err
	}, 10*time.Second, 200*time.Millisecond).Should(Succeed(), func() string { return out })
	g.Expect(out).To(Equal("1 0.0003"))

	out, err = e.direct(standard, reportYAML, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("a Standard-scope hub key cannot use the management API; use an Admin-scope key"))

	// The organization's IP allowlist holds for hub keys here as at the
	// gateway: a 403 that says so, then allowed once loopback is listed.
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName},
		Spec: hubv1.OrganizationSpec{Security: hubv1.SecurityPolicy{IPAllowlist: []hubv1.CIDR{"10.0.0.0/8"}}}}
	g.Expect(e.client.Create(ctx, org)).To(Succeed())
	g.Eventually(func() string {
		out, _ = e.direct(admin, reportYAML, "create", "--validate=false", "-f", "-")
		return out
	}, 10*time.Second, 100*time.Millisecond).Should(ContainSubstring("requests from this IP address are not allowed by the organization's IP allowlist"))
	org.Spec.Security.IPAllowlist = append(org.Spec.Security.IPAllowlist, "127.0.0.1/32")
	g.Expect(e.client.Update(ctx, org)).To(Succeed())
	g.Eventually(func() error {
		_, err := e.direct(admin, reportYAML, "create", "--validate=false", "-f", "-")
		return err
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())

	patch := client.MergeFrom(adminKey.DeepCopy())
	adminKey.Spec.Revoked = true
	g.Expect(e.client.Patch(ctx, adminKey, patch)).To(Succeed())
	g.Eventually(func() string {
		out, _ = e.direct(admin, reportYAML, "create", "--validate=false", "-f", "-")
		return out
	}, time.Second, 50*time.Millisecond).Should(ContainSubstring("You must be logged in to the server"))
}
