package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/usage"
)

var (
	cluster   *devcluster.Cluster
	k8sClient client.Client
	clientset *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	crds, err := config.CRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster, err = devcluster.Start(devcluster.Options{Scheme: scheme.New(), CRDs: crds})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme.New()})
	if err == nil {
		clientset, err = kubernetes.NewForConfig(cluster.Config)
	}
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = cluster.Stop()
	os.Exit(code)
}

// serviceAccountToken creates a ServiceAccount and returns a token for it;
// with allowed, RBAC lets it post usage events.
func serviceAccountToken(g Gomega, name string, allowed bool) string {
	if !allowed {
		return serviceAccountTokenWith(g, name)
	}
	return serviceAccountTokenWith(g, name, rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"usageevents"}, Verbs: []string{"create"}})
}

// serviceAccountTokenWith creates a ServiceAccount that RBAC grants rules,
// and returns a token for it.
func serviceAccountTokenWith(g Gomega, name string, rules ...rbacv1.PolicyRule) string {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hub-"}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}}
	g.Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	if len(rules) > 0 {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ingest-" + ns.Name}, Rules: rules}
		g.Expect(k8sClient.Create(ctx, role)).To(Succeed())
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "ingest-" + ns.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: name}},
		}
		g.Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

type testServer struct {
	url    string
	store  usage.Store
	stores *server.Stores
	reg    *prometheus.Registry
}

func startServer(t *testing.T, g Gomega) *testServer {
	stores, err := server.OpenStores(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	return startServerWith(t, g, stores)
}

// startServerWith serves stores, which it closes at the end of the test.
func startServerWith(t *testing.T, g Gomega, stores *server.Stores) *testServer {
	store := stores.Usage
	t.Cleanup(func() { _ = stores.Close() })
	reg := prometheus.NewRegistry()
	prices, err := pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{
		Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"},
	}}}})
	g.Expect(err).NotTo(HaveOccurred())
	srv := &server.Server{
		Objects: stores.Objects,
		Store:   store,
		Alerts:  stores.Alerts,
		Audit:   stores.Audit,
		Auth:    &server.Authorizer{Client: k8sClient, Clock: clock.RealClock{}},
		Metrics: metrics.NewUsageMetrics(reg),
		Log:     ctrl.Log,
	}
	srv.SetPrices(prices, "USD")
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testServer{url: hs.URL, store: store, stores: stores, reg: reg}
}

func post(g Gomega, url, token string, body any) (int, map[string]any) {
	return postTo(g, url+server.IngestPath, token, body)
}

// postTo posts JSON (or raw bytes) to a URL and returns the status and the
// decoded JSON answer.
func postTo(g Gomega, url, token string, body any) (int, map[string]any) {
	raw, ok := body.([]byte)
	if !ok {
		var err error
		raw, err = json.Marshal(body)
		g.Expect(err).NotTo(HaveOccurred())
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	g.Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(resp.Header.Get("Content-Type")).To(Equal("application/json"))
	var out map[string]any
	g.Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return resp.StatusCode, out
}

func chatEvent(id string, in, out int64) usage.Event {
	return usage.Event{ID: id, Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Project: "chatbot", KeyID: "AbCdEf0123",
		Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: in, OutputTokens: out, StatusCode: 200}
}

func TestIngest(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	token := serviceAccountToken(g, "gateway", true)

	cached := chatEvent("e2", 2000, 0)
	cached.CachedInputTokens = 600

	code, body := post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{chatEvent("e1", 1000, 500), cached}})
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	g.Expect(body).To(Equal(map[string]any{"received": 2.0, "stored": 2.0}))

	// The same batch again (a retry after a lost response) stores nothing new.
	code, body = post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{chatEvent("e1", 1000, 500), cached}})
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body["stored"]).To(BeEquivalentTo(0))

	buckets, err := srv.store.Aggregate(context.Background(), usage.Query{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(buckets).To(HaveLen(1))
	g.Expect(buckets[0].Totals).To(Equal(usage.Totals{Calls: 2, InputTokens: 3000, CachedInputTokens: 600, OutputTokens: 500}))

	// Metrics count each event once, with spend from the price list.
	g.Expect(testutil.ToFloat64(counter(g, srv.reg, "hub_usage_requests_total"))).To(Equal(2.0))
	expected := `
# HELP hub_usage_tokens_total Tokens used, by direction (input or output).
# TYPE hub_usage_tokens_total counter
hub_usage_tokens_total{api_service="chat",direction="input",model="MiniMax-M2",project="chatbot",route="/v1/chat/completions"} 3000
hub_usage_tokens_total{api_service="chat",direction="output",model="MiniMax-M2",project="chatbot",route="/v1/chat/completions"} 500
`
	g.Expect(testutil.GatherAndCompare(srv.reg, strings.NewReader(expected), "hub_usage_tokens_total")).To(Succeed())
	g.Expect(testutil.ToFloat64(counter(g, srv.reg, "hub_usage_cached_input_tokens_total"))).To(Equal(600.0))
	// 3000 input tokens at 0.30/M and 500 output at 1.20/M: 0.0009 + 0.0006.
	g.Expect(testutil.ToFloat64(counter(g, srv.reg, "hub_usage_spend_total"))).To(BeNumerically("~", 0.0015, 1e-12))
}

func TestIngestRefusals(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	token := serviceAccountToken(g, "gateway", true)

	code, body := post(g, srv.url, "", server.IngestRequest{})
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(errorMessage(body)).To(ContainSubstring("bearer token is required"))

	code, body = post(g, srv.url, "not-a-token", server.IngestRequest{})
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(errorMessage(body)).To(ContainSubstring("not valid"))

	code, body = post(g, srv.url, serviceAccountToken(g, "stranger", false), server.IngestRequest{})
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(errorMessage(body)).To(ContainSubstring("may not create usageevents.hub.minimax.io"))

	bad := chatEvent("e3", -5, 0)
	code, body = post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{chatEvent("ok", 1, 1), bad}})
	g.Expect(code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body["error"]).To(HaveKeyWithValue("index", 1.0))
	g.Expect(body["error"]).To(HaveKeyWithValue("field", "events[1].inputTokens"))
	g.Expect(errorMessage(body)).To(ContainSubstring("must be between 0 and 1000000000, not -5"))

	// Above the ceiling, every invalid event is listed with its field.
	huge := chatEvent("e4", 0, usage.MaxTokensPerCall+1)
	forged := chatEvent("e5", 9223372036854775807, 0)
	code, body = post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{huge, chatEvent("ok", 1, 1), forged}})
	g.Expect(code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body["error"]).To(HaveKeyWithValue("invalid", ConsistOf(
		HaveKeyWithValue("field", "events[0].outputTokens"), HaveKeyWithValue("field", "events[2].inputTokens"))))

	code, body = post(g, srv.url, token, []byte(`{"events": [{"id": "x", "colour": "blue"}]}`))
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(errorMessage(body)).To(ContainSubstring(`unknown field "colour"`))

	code, body = post(g, srv.url, token, []byte(`{"events": [`+strings.Repeat(`{"id":"padding-padding-padding"},`, 200_000)+`{}]}`))
	g.Expect(code).To(Equal(http.StatusRequestEntityTooLarge))
	g.Expect(errorMessage(body)).To(ContainSubstring("send smaller batches"))

	// Nothing of the refused batches was stored.
	var n int
	g.Expect(srv.store.Events(context.Background(), usage.EventFilter{From: time.Time{}, To: time.Now()}, func(usage.Event) error {
		n++
		return nil
	})).To(Succeed())
	g.Expect(n).To(BeZero())
}

func errorMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func counter(g Gomega, reg *prometheus.Registry, name string) prometheus.Collector {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	sum := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	c.Add(sum)
	return c
}
