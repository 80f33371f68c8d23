package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/usage"
)

// projectEvents lists the stored events of a project, once there are n.
func projectEvents(g Gomega, project string, n int) []usage.Event {
	var events []usage.Event
	g.Eventually(func() int {
		events = events[:0]
		g.Expect(store.Events(context.Background(), usage.EventFilter{From: testClock.Now().Add(-time.Hour), To: testClock.Now().Add(time.Hour),
			Filter: usage.Filter{Project: project}}, func(e usage.Event) error {
			events = append(events, e)
			return nil
		})).To(Succeed())
		return len(events)
	}, 20*time.Second).Should(Equal(n))
	return events
}

// TestHubKeyNeverReachesTheUpstream sends the caller's key in every header
// and query parameter a client might put it in: none reaches the upstream,
// which learns the caller's project from X-Hub-Project instead.
func TestHubKeyNeverReachesTheUpstream(t *testing.T) {
	g := NewWithT(t)
	up, base, apiKey, key := shapesGateway(t, g, "gw-headers")

	headers := []string{"x-api-key", "api-key", "OpenAI-Organization", "OpenAI-Project", "Cookie", "Proxy-Authorization",
		"Accept", "Accept-Language", "X-Request-Id", "X-Client-Request-Id", "Idempotency-Key", "Traceparent",
		"Tracestate", "OpenAI-Beta", "Anthropic-Version", "Anthropic-Beta", "X-Forwarded-For", "Forwarded", "X-Goog-Api-Key",
		"Ocp-Apim-Subscription-Key", "X-Custom"}
	for _, path := range []string{"/v1/models", "/v1/chat/completions"} {
		method, body := http.MethodGet, ""
		if path != "/v1/models" {
			method, body = http.MethodPost, `{"model":"m","messages":[]}`
		}
		resp := doOnceKnown(g, func() *http.Request {
			req, err := http.NewRequest(method, base+path+"?api_key="+key+"&key=Bearer%20"+strings.ToUpper(key)+"&keep=1", strings.NewReader(body))
			g.Expect(err).NotTo(HaveOccurred())
			req.Header.Set("Authorization", "Bearer "+key)
			for _, h := range headers {
				req.Header.Set(h, "Bearer "+key)
			}
			req.Header.Set("User-Agent", "OpenAI/Python 1.99") // Go sends one User-Agent only
			req.Header.Add("X-Request-Id", "req-42")
			return req
		})
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}
	seen := up.requests()
	g.Expect(seen).To(HaveLen(2))
	secret := key[len("mhub_")+10+1:]
	for _, r := range seen {
		g.Expect(strings.ToLower(r.URL.String())).NotTo(ContainSubstring("mhub_"))
		g.Expect(r.URL.Query().Get("keep")).To(Equal("1"), "other parameters pass")
		for name, values := range r.Header {
			for _, v := range values {
				g.Expect(strings.ToLower(v)).NotTo(ContainSubstring("mhub_"), "header %s", name)
				g.Expect(v).NotTo(ContainSubstring(secret), "header %s", name)
			}
		}
		g.Expect(r.Header.Get("Authorization")).To(BeEmpty(), "no upstream key is configured in the test")
		g.Expect(r.Header.Get("X-Custom")).To(BeEmpty(), "only allowed headers pass")
		g.Expect(r.Header.Values("User-Agent")).To(Equal([]string{"OpenAI/Python 1.99"}))
		g.Expect(r.Header.Values("X-Request-Id")).To(Equal([]string{"req-42"}))
		g.Expect(r.Header.Get(gateway.ProjectHeader)).To(Equal("gw-headers"))
		g.Expect(r.Header.Get(gateway.KeyIDHeader)).To(Equal(apiKey.Status.KeyID))
	}
}

// figures is an upstream whose chat answers report usage as the model name
// of the request says.
func figures(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/json")
	switch req.Model {
	case "string-figure":
		_, _ = io.WriteString(w, `{"model":"x","usage":{"prompt_tokens":"12","completion_tokens":5}}`)
	case "negative":
		_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":-3,"completion_tokens":5}}`)
	case "huge":
		_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":100000000000000000000,"completion_tokens":5}}`)
	case "fraction":
		_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":2.5,"completion_tokens":5}}`)
	case "details-not-an-object":
		_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":9,"completion_tokens":5,"prompt_tokens_details":"cached"}}`)
	case "cache-beyond-input":
		_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":9,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":40}}}`)
	case "no-usage":
		_, _ = io.WriteString(w, `{"id":"c","choices":[]}`)
	case "cut-short":
		_, _ = io.WriteString(w, `{"id":"c","usage":{"prompt_tokens":7,`)
	case "brotli":
		w.Header().Set("Content-Encoding", "br")
		_, _ = io.WriteString(w, "\x1b\x00\x00 not really brotli")
	}
}

// TestMalformedUpstreamFiguresAreRecordedAndFlagged: usage of the wrong
// type, negative, huge or fractional counts as zero; a malformed details
// object costs only the cached figure, and a cached figure beyond the input
// counts as the input; a missing or unreadable usage is flagged; an answer in an encoding the gateway did not ask for is
// not passed on (502). In every case the call is recorded.
func TestMalformedUpstreamFiguresAreRecordedAndFlagged(t *testing.T) {
	g := NewWithT(t)
	upstream := httptest.NewServer(http.HandlerFunc(figures))
	defer upstream.Close()
	base := startGateway(t, g, upstream.URL)
	_, key := issueKey(g, "gw-figures", nil)
	status := map[string]int{}
	models := []string{"string-figure", "negative", "huge", "fraction", "details-not-an-object", "cache-beyond-input",
		"no-usage", "cut-short", "brotli"}
	for _, model := range models {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		status[model] = resp.StatusCode
	}
	g.Expect(status["brotli"]).To(Equal(http.StatusBadGateway))
	got := map[string]usage.Event{}
	for _, e := range projectEvents(g, "gw-figures", len(models)) {
		got[e.Model] = e
	}
	for model, want := range map[string]struct {
		in, cached, out int64
		flag            usage.Flag
	}{
		"string-figure":         {0, 0, 5, usage.FlagUsageMalformed},
		"negative":              {0, 0, 5, usage.FlagUsageMalformed},
		"huge":                  {0, 0, 5, usage.FlagUsageMalformed},
		"fraction":              {0, 0, 5, usage.FlagUsageMalformed},
		"details-not-an-object": {9, 0, 5, usage.FlagUsageMalformed},
		"cache-beyond-input":    {9, 9, 5, usage.FlagUsageMalformed},
		"no-usage":              {0, 0, 0, usage.FlagUsageMissing},
		"cut-short":             {0, 0, 0, usage.FlagUsageUnreadable},
		"brotli":                {0, 0, 0, usage.FlagUsageUnreadable},
	} {
		e := got[model]
		g.Expect([]int64{e.InputTokens, e.CachedInputTokens, e.OutputTokens}).To(Equal([]int64{want.in, want.cached, want.out}), model)
		g.Expect(e.Flags).To(ContainElement(want.flag), model)
		g.Expect(e.StatusCode).To(Equal(status[model]), model)
	}
}

// TestHardMoneyCapRefusesUnpricedModels: under a Hard money cap, a call of
// a model with no price (and no default for its service) is refused with
// 403 model_not_priced, naming what to add; a priced model passes; a default
// price for the service lets the unlisted model through.
func TestHardMoneyCapRefusesUnpricedModels(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Pricing = &hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{
		Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"}}}}}
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, org)
		g.Eventually(func() bool {
			return env.Client.Get(ctx, client.ObjectKeyFromObject(org), &hubv1.Organization{}) != nil
		}, 10*time.Second).Should(BeTrue())
	})
	_, key := issueKey(g, "gw-unpriced", nil)
	capObj := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "gw-unpriced", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("100")), Enforcement: hubv1.CapHard}}
	g.Expect(env.Client.Create(ctx, capObj)).To(Succeed())
	chat := func(model string) answer {
		return call(g, http.MethodPost, "/v1/chat/completions", key, map[string]any{"model": model,
			"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	}
	g.Eventually(func() int { return chat("brand-new-model").status }, 10*time.Second).Should(Equal(http.StatusForbidden))
	a := chat("brand-new-model")
	g.Expect(a.errorCode()).To(Equal("model_not_priced"))
	g.Expect(a.errorMessage()).To(And(ContainSubstring(`"brand-new-model"`), ContainSubstring("gw-unpriced/budget"),
		ContainSubstring("spec.pricing.chat")))
	for range 20 {
		g.Expect(chat("brand-new-model").status).To(Equal(http.StatusForbidden), "no unpriced call slips through")
	}
	g.Expect(chat("MiniMax-M2").status).To(Equal(http.StatusOK))
	g.Expect(call(g, http.MethodGet, "/v1/models", key, nil).status).To(Equal(http.StatusOK), "calls without usage need no price")

	// A default price for chat is the organization's opt-in.
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	org.Spec.Pricing.Chat.Default = &hubv1.TokenPrice{InputPer1MTokens: "1", OutputPer1MTokens: "2"}
	g.Expect(env.Client.Update(ctx, org)).To(Succeed())
	g.Eventually(func() int { return chat("brand-new-model").status }, 10*time.Second).Should(Equal(http.StatusOK))
}

// TestMetricSeriesAreBounded calls 1,000 distinct file IDs and names 1,000
// models that do not exist: the scrape that follows has no series for any
// of them. Routes are the table's templates and models the priced ones or
// "other", so the project has at most 4 usage series per metric (two routes,
// times the model values "" and "other").
func TestMetricSeriesAreBounded(t *testing.T) {
	g := NewWithT(t)
	_, base, _, key := shapesGateway(t, g, "gw-series")
	const n = 1000
	files := make([]objects.Object, 0, n)
	for i := range n {
		files = append(files, objects.Object{Kind: string(gateway.ObjectFile), ID: fmt.Sprintf("file-%d", i), Project: "gw-series"})
	}
	owners := gateway.NewOwners(serverURL, http.DefaultClient, func() (string, error) { return ingestToken, nil })
	g.Expect(owners.Claim(context.Background(), files)).To(Succeed(), "the files are the project's")
	var wg sync.WaitGroup
	work := make(chan *http.Request)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for req := range work {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		}()
	}
	for i := range n {
		get, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/files/file-%d/content", base, i), nil)
		get.Header.Set("Authorization", "Bearer "+key)
		post, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
			bytes.NewReader([]byte(fmt.Sprintf(`{"model":"bogus-%d"}`, i))))
		post.Header.Set("Authorization", "Bearer "+key)
		work <- get
		work <- post
	}
	close(work)
	wg.Wait()
	g.Eventually(func() int64 { return usageOf(g, "gw-series").Calls }, 30*time.Second).Should(BeEquivalentTo(2 * n))

	scrape := httptest.NewServer(promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))
	defer scrape.Close()
	g.Eventually(func(g Gomega) {
		resp, err := http.Get(scrape.URL)
		g.Expect(err).NotTo(HaveOccurred())
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		text := string(raw)
		g.Expect(text).NotTo(ContainSubstring("file-"), "no series names a file ID")
		g.Expect(text).NotTo(ContainSubstring("bogus-"), "no series names a model that is not priced")
		series := 0
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "hub_usage_requests_total{") && strings.Contains(line, `project="gw-series"`) {
				series++
				g.Expect(line).To(Or(ContainSubstring(`model=""`), ContainSubstring(`model="other"`)))
			}
		}
		g.Expect(series).To(BeNumerically("<=", 4))
		g.Expect(series).To(BeNumerically(">=", 2))
		g.Expect(text).To(ContainSubstring(`hub_gateway_requests_total{code="200",route="/v1/files/{file_id}/content"}`))
		g.Expect(text).To(ContainSubstring(`hub_gateway_requests_total{code="404",route="/v1/chat/completions"}`))
	}, 10*time.Second).Should(Succeed())
}

// TestClientLeavingAStreamIsMeteredWhole: a client that reads a stream up
// to its last words and hangs up before the usage event still has the whole
// call metered: the gateway reads on after it left, and the upstream call
// is not cancelled with the client. A call the upstream breaks off is
// recorded too, flagged.
func TestClientLeavingAStreamIsMeteredWhole(t *testing.T) {
	g := NewWithT(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Model == "breaks-off" {
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		flush := w.(http.Flusher).Flush
		for i := range 20 {
			_, _ = fmt.Fprintf(w, "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"word %d \"}}]}\n\n", i)
			flush()
		}
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		flush()
		time.Sleep(300 * time.Millisecond) // the client is gone by now
		_, _ = io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":100000,\"completion_tokens\":4000}}\n\ndata: [DONE]\n\n")
	}))
	defer upstream.Close()
	base := startGateway(t, g, upstream.URL)
	_, key := issueKey(g, "gw-leaver", nil)

	resp := doOnceKnown(g, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true}`))
		req.Header.Set("Authorization", "Bearer "+key)
		return req
	})
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	read := make([]byte, 0, 4096)
	buf := make([]byte, 512)
	for !strings.Contains(string(read), "finish_reason") {
		n, err := resp.Body.Read(buf)
		read = append(read, buf[:n]...)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(resp.Body.Close()).To(Succeed()) // hangs up before the usage

	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(`{"model":"breaks-off"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusBadGateway))

	got := map[string]usage.Event{}
	for _, e := range projectEvents(g, "gw-leaver", 2) {
		got[e.Model] = e
	}
	g.Expect([]int64{got["m"].InputTokens, got["m"].OutputTokens}).To(Equal([]int64{100000, 4000}))
	g.Expect(got["m"].Flags).To(BeEmpty())
	g.Expect(got["breaks-off"].StatusCode).To(Equal(http.StatusBadGateway))
	g.Expect(got["breaks-off"].Flags).To(ContainElement(usage.FlagUsageUnreadable))
}

// doOnceKnown sends the request that newRequest makes until the gateway
// knows the key: a gateway started for a test may not have the key in its
// cache yet, and answers 401 then, without calling the upstream. It
// returns the first other answer, whose body the caller closes.
func doOnceKnown(g Gomega, newRequest func() *http.Request) *http.Response {
	var resp *http.Response
	g.EventuallyWithOffset(1, func(g Gomega) {
		var err error
		resp, err = http.DefaultClient.Do(newRequest())
		g.Expect(err).NotTo(HaveOccurred())
		if resp.StatusCode == http.StatusUnauthorized {
			_ = resp.Body.Close()
		}
		g.Expect(resp.StatusCode).NotTo(Equal(http.StatusUnauthorized))
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	return resp
}
