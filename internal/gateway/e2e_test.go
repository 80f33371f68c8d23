package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/demomodel"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/testenv"
	"github.com/minimax/platform-hub/internal/usage"
)

// The suite runs the whole path: the hub's manager issues keys, the gateway
// authenticates them and forwards to the demo model, the server stores the
// usage.
var (
	env        *testenv.Env
	testClock  = clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Second))
	gatewayURL string
	// gatewayCache is the shared gateway's cache: waitForKey waits until
	// it has what the API server says, so a test's first call is not
	// refused for a key the gateway has not seen yet.
	gatewayCache cache.Cache
	store        usage.Store
	// upstreamURL is the demo model's address.
	upstreamURL string
	// serverURL is the usage server's address, and ingestToken a token
	// that may post usage events to it.
	serverURL, ingestToken string
)

func TestMain(m *testing.M) {
	logOut := io.Discard
	if os.Getenv("HUB_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut)))
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(testClock); err != nil {
		return 0, err
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "gateway-e2e-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	model := httptest.NewServer(demomodel.Handler())
	defer model.Close()
	upstreamURL = model.URL

	serverAddr := freeAddr()
	serverMgr, s, err := server.NewManager(ctx, env.Cluster.Config, server.Options{
		StoreURL: "sqlite:" + filepath.Join(dir, "usage.db"), ListenAddr: serverAddr, MetricsAddr: "0", ProbeAddr: "0",
		EventRetention: 24 * time.Hour, RollupRetention: 24 * time.Hour, StatusInterval: 300 * time.Millisecond,
	})
	if err != nil {
		return 0, err
	}
	store = s
	go func() { _ = serverMgr.Start(ctx) }()

	token, err := env.ServiceAccountToken(ctx, "gateway", gateway.ServerRules()...)
	if err != nil {
		return 0, err
	}
	serverURL, ingestToken = "http://"+serverAddr, token
	gatewayAddr := freeAddr()
	gatewayMgr, _, err := gateway.NewManager(ctx, env.Cluster.Config, gateway.Options{
		ListenAddr: gatewayAddr, Upstream: model.URL, ServerURL: "http://" + serverAddr,
		Token: func() (string, error) { return token, nil }, SpoolDir: filepath.Join(dir, "spool"),
		MetricsAddr: "0", ProbeAddr: "0", Clock: testClock, FlushInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return 0, err
	}
	go func() { _ = gatewayMgr.Start(ctx) }()
	gatewayURL, gatewayCache = "http://"+gatewayAddr, gatewayMgr.GetCache()
	if err := waitForHTTP(gatewayURL); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func waitForHTTP(url string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/v1/models"); err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come up", url)
}

// issueKey creates a project and an API key in it and returns the key.
func issueKey(g Gomega, project string, mutate func(*hubv1.APIKey)) (*hubv1.APIKey, string) {
	ctx := context.Background()
	p := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: project}}
	g.Expect(env.Client.Create(ctx, p)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(hubv1.ProjectActive))
	}, 30*time.Second).Should(Succeed())
	k := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: project, Name: "key"}, Spec: hubv1.APIKeySpec{Owner: "dev@example.com"}}
	if mutate != nil {
		mutate(k)
	}
	g.Expect(env.Client.Create(ctx, k)).To(Succeed())
	return k, waitForKey(g, k, hubv1.KeyActive)
}

// waitForKey waits for a phase and returns the current key from the Secret.
func waitForKey(g Gomega, k *hubv1.APIKey, phase hubv1.APIKeyPhase) string {
	var plaintext string
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(k), k)).To(Succeed())
		g.Expect(k.Status.Phase).To(Equal(phase))
		secret := &corev1.Secret{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: k.Namespace, Name: k.Name}, secret)).To(Succeed())
		plaintext = string(secret.Data[hubv1.SecretKeyCurrent])
		g.Expect(keys.Digest(plaintext)).To(Equal(k.Status.Digest))
		seen := &hubv1.APIKey{}
		g.Expect(gatewayCache.Get(context.Background(), client.ObjectKeyFromObject(k), seen)).To(Succeed())
		g.Expect(seen.ResourceVersion).To(Equal(k.ResourceVersion), "the shared gateway has the key as it is now")
	}, 30*time.Second).Should(Succeed())
	return plaintext
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorMessage() string { return a.openAIError().Message }

func (a answer) errorCode() string { return a.openAIError().Code }

type openAIError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

func (a answer) openAIError() openAIError {
	var e struct {
		Error openAIError `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error
}

func call(g Gomega, method, path, key string, body any) answer {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		g.Expect(err).NotTo(HaveOccurred())
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, gatewayURL+path, reader)
	g.Expect(err).NotTo(HaveOccurred())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

func chatBody(prompt string, stream bool) map[string]any {
	return map[string]any{"model": "MiniMax-M2", "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": prompt}}}
}

// usageOf sums the stored usage of a project.
func usageOf(g Gomega, project string) usage.Totals {
	buckets, err := store.Aggregate(context.Background(), usage.Query{
		From: testClock.Now().Add(-48 * time.Hour), To: testClock.Now().Add(48 * time.Hour), Filter: usage.Filter{Project: project}})
	g.Expect(err).NotTo(HaveOccurred())
	var t usage.Totals
	for _, b := range buckets {
		t.Add(b.Totals)
	}
	return t
}

func TestGatewayMetersJSONAndStreamedCalls(t *testing.T) {
	g := NewWithT(t)
	apiKey, key := issueKey(g, "gw-metering", nil)

	prompt := "please count these five words"
	a := call(g, http.MethodPost, "/v1/chat/completions", key, chatBody(prompt, false))
	g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	g.Expect(string(a.body)).To(ContainSubstring(demomodel.Reply(" " + prompt)))

	// A streamed call: the client sees the chunks, and the gateway asked for
	// the usage chunk so the call is counted too.
	a = call(g, http.MethodPost, "/v1/chat/completions", key, chatBody(prompt, true))
	g.Expect(a.status).To(Equal(http.StatusOK))
	g.Expect(a.header.Get("Content-Type")).To(HavePrefix("text/event-stream"))
	var chunks int
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: {") {
			chunks++
		}
	}
	g.Expect(chunks).To(BeNumerically(">", 3))

	a = call(g, http.MethodPost, "/v1/embeddings", key, map[string]any{"model": "embo-01", "input": []string{"one two", "three"}})
	g.Expect(a.status).To(Equal(http.StatusOK))

	// Both chat calls: 5 prompt words and the reply's words each; the
	// embeddings: 3 words.
	replyWords := demomodel.Words(demomodel.Reply(" " + prompt))
	g.Eventually(func() usage.Totals { return usageOf(g, "gw-metering") }, 20*time.Second).Should(Equal(usage.Totals{
		Calls: 3, InputTokens: 5 + 5 + 3, OutputTokens: 2 * replyWords,
	}))

	// The usage server puts the cycle's usage on the Project and the APIKey,
	// and when the key was last used.
	g.Eventually(func(g Gomega) {
		p := &hubv1.Project{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Name: "gw-metering"}, p)).To(Succeed())
		g.Expect(p.Status.Usage).NotTo(BeNil())
		g.Expect(p.Status.Usage.Calls).To(BeEquivalentTo(3))
		g.Expect(p.Status.Usage.InputTokens).To(BeEquivalentTo(13))
		g.Expect(p.Status.Usage.ByService).To(HaveLen(1))
		g.Expect(p.Status.Phase).To(Equal(hubv1.ProjectActive), "the manager's status fields are untouched")
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.LastUsedAt).NotTo(BeNil())
		g.Expect(apiKey.Status.Usage).NotTo(BeNil())
		g.Expect(apiKey.Status.Usage.Calls).To(BeEquivalentTo(3))
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyActive))
	}, 20*time.Second).Should(Succeed())

	// The events carry the key's public ID, never the key.
	var events []usage.Event
	g.Expect(store.Events(context.Background(), usage.EventFilter{From: testClock.Now().Add(-time.Hour), To: testClock.Now().Add(time.Hour),
		Filter: usage.Filter{Project: "gw-metering"}}, func(e usage.Event) error {
		events = append(events, e)
		return nil
	})).To(Succeed())
	g.Expect(events).To(HaveLen(3))
	for _, e := range events {
		g.Expect(e.KeyID).To(Equal(apiKey.Status.KeyID))
		raw, _ := json.Marshal(e)
		g.Expect(string(raw)).NotTo(ContainSubstring(key[len(keys.Prefix)+keys.IDLength+1:]))
	}
}

func TestGatewayRefusals(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	_, key := issueKey(g, "gw-refusals", nil)
	readKey, readPlain := issueKeyIn(g, "gw-refusals", "reader", func(k *hubv1.APIKey) { k.Spec.Scope = hubv1.ScopeRead })

	expect := func(a answer, status int, message string, code ...string) {
		t.Helper()
		g.Expect(a.status).To(Equal(status), string(a.body))
		g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
		g.Expect(a.errorMessage()).To(ContainSubstring(message))
		if len(code) > 0 {
			g.Expect(a.errorCode()).To(Equal(code[0]))
		}
	}
	expect(call(g, http.MethodPost, "/v1/chat/completions", "", chatBody("hi", false)), http.StatusUnauthorized, "didn't provide an API key", "missing_api_key")
	typo := key[:20] + string(key[20]^1) + key[21:]
	expect(call(g, http.MethodPost, "/v1/chat/completions", typo, chatBody("hi", false)), http.StatusUnauthorized, "not a well-formed", "invalid_api_key")
	other, _ := keys.New()
	expect(call(g, http.MethodPost, "/v1/chat/completions", other.Reveal(), chatBody("hi", false)), http.StatusUnauthorized, "Incorrect API key", "invalid_api_key")
	expect(call(g, http.MethodPost, "/v1/chat/completions", readPlain, chatBody("hi", false)), http.StatusForbidden, "Read scope", "insufficient_permissions")
	// Paths outside the route table, in the OpenAI way.
	expect(call(g, http.MethodPost, "/v1/chat/completion", key, chatBody("hi", false)), http.StatusNotFound,
		"Unknown request URL: POST /v1/chat/completion", "unknown_url")
	expect(call(g, http.MethodGet, "/v1/chat/completions", key, nil), http.StatusNotFound, "Unknown request URL", "unknown_url")
	expect(call(g, http.MethodPost, "/v1/chat/completions", key, "not an object"), http.StatusBadRequest,
		"must be a JSON object", "invalid_request_body")
	g.Expect(call(g, http.MethodGet, "/v1/models", readPlain, nil).status).To(Equal(http.StatusOK), "a Read key may read")
	_ = readKey

	// An IP allowlist that leaves out loopback.
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Security.IPAllowlist = []hubv1.CIDR{"203.0.113.0/24"}
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	g.Eventually(func() int { return call(g, http.MethodGet, "/v1/models", key, nil).status }, 10*time.Second).Should(Equal(http.StatusForbidden))
	expect(call(g, http.MethodGet, "/v1/models", key, nil), http.StatusForbidden, "IP allowlist", "ip_not_allowed")
	g.Expect(env.Client.Delete(ctx, org)).To(Succeed())
	g.Eventually(func() int { return call(g, http.MethodGet, "/v1/models", key, nil).status }, 10*time.Second).Should(Equal(http.StatusOK))

	// An archived project's keys are refused with 403.
	p := &hubv1.Project{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "gw-refusals"}, p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Archived = true
	g.Expect(env.Client.Patch(ctx, p, patch)).To(Succeed())
	g.Eventually(func() int { return call(g, http.MethodGet, "/v1/models", key, nil).status }, 10*time.Second).Should(Equal(http.StatusForbidden))
	expect(call(g, http.MethodGet, "/v1/models", key, nil), http.StatusForbidden, "is archived", "project_archived")

	// Refused calls never reach the upstream and are not metered: every
	// stored event of the project is an allowed read.
	time.Sleep(500 * time.Millisecond) // two flush intervals
	g.Expect(store.Events(ctx, usage.EventFilter{From: testClock.Now().Add(-time.Hour), To: testClock.Now().Add(time.Hour),
		Filter: usage.Filter{Project: "gw-refusals"}}, func(e usage.Event) error {
		g.Expect(e.StatusCode).To(Equal(http.StatusOK))
		g.Expect(e.Endpoint).To(Equal("/v1/models"))
		return nil
	})).To(Succeed())
}

func TestGatewayRotationRevocationExpiry(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	apiKey, first := issueKey(g, "gw-lifecycle", func(k *hubv1.APIKey) {
		k.Spec.Rotation = &hubv1.RotationSpec{Trigger: "1", Overlap: &metav1.Duration{Duration: time.Hour}}
		k.Spec.ExpiresAfter = ptrLifetime(hubv1.KeyLifetime30Days)
	})
	ok := func(key string) int { return call(g, http.MethodGet, "/v1/models", key, nil).status }
	g.Expect(ok(first)).To(Equal(http.StatusOK))

	// During the overlap both keys work.
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation.Trigger = "2"
	g.Expect(env.Client.Patch(ctx, apiKey, patch)).To(Succeed())
	second := waitForKey(g, apiKey, hubv1.KeyRotating)
	g.Eventually(func() int { return ok(second) }, 10*time.Second).Should(Equal(http.StatusOK))
	g.Expect(ok(first)).To(Equal(http.StatusOK))

	// The gateway stops the previous key at the end of the overlap by its own
	// clock, whatever the controller has done yet.
	saved := testClock.Now()
	t.Cleanup(func() { testClock.SetTime(saved) })
	overlapEnd := apiKey.Status.PreviousKey.ValidUntil.UTC().Format(time.RFC3339)
	testClock.SetTime(apiKey.Status.PreviousKey.ValidUntil.Time)
	a := call(g, http.MethodGet, "/v1/models", first, nil)
	g.Expect(a.status).To(Equal(http.StatusUnauthorized))
	g.Expect(a.errorMessage()).To(ContainSubstring("rotated out"))
	g.Expect(a.errorMessage()).To(ContainSubstring(overlapEnd))
	g.Expect(ok(second)).To(Equal(http.StatusOK))
	// Once the controller has moved it to the retired keys, the answer
	// stays the same: rotated out, and when.
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.PreviousKey).To(BeNil())
		a := call(g, http.MethodGet, "/v1/models", first, nil)
		g.Expect(a.errorMessage()).To(ContainSubstring("rotated out"))
		g.Expect(a.errorMessage()).To(ContainSubstring(overlapEnd))
	}, 10*time.Second).Should(Succeed())

	// Revoked keys are refused.
	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Revoked = true
	g.Expect(env.Client.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func() int { return ok(second) }, 10*time.Second).Should(Equal(http.StatusUnauthorized))
	g.Expect(call(g, http.MethodGet, "/v1/models", second, nil).errorMessage()).To(ContainSubstring("revoked"))

	// And a key at its expiry, by the gateway's clock. A key of its own:
	// the controller, woken by the same clock, may mark it Expired for
	// good meanwhile, and a key expired in status reads "expired" however
	// it is changed after (the revocation check above once met that).
	expiring, third := issueKey(g, "gw-lifecycle-expiry", func(k *hubv1.APIKey) {
		k.Spec.ExpiresAfter = ptrLifetime(hubv1.KeyLifetime30Days)
	})
	g.Eventually(func() int { return ok(third) }, 10*time.Second).Should(Equal(http.StatusOK))
	testClock.SetTime(expiring.Status.ExpiresAt.Time)
	a = call(g, http.MethodGet, "/v1/models", third, nil)
	g.Expect(a.status).To(Equal(http.StatusUnauthorized))
	g.Expect(a.errorMessage()).To(ContainSubstring("expired"))
	testClock.SetTime(saved)
}

func issueKeyIn(g Gomega, project, name string, mutate func(*hubv1.APIKey)) (*hubv1.APIKey, string) {
	k := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: project, Name: name}, Spec: hubv1.APIKeySpec{Owner: "dev@example.com"}}
	if mutate != nil {
		mutate(k)
	}
	g.Expect(env.Client.Create(context.Background(), k)).To(Succeed())
	return k, waitForKey(g, k, hubv1.KeyActive)
}

func ptrLifetime(l hubv1.KeyLifetime) *hubv1.KeyLifetime { return &l }

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
