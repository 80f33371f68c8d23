// Package gateway is the reference gateway: an OpenAI-compatible reverse
// proxy that authenticates Platform Hub keys from memory (the informer cache,
// indexed by digest), enforces scope, IP allowlist, archived projects and
// spending caps, forwards to the upstream model API, and records the usage of
// every forwarded call.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// Recorder takes the usage events of forwarded calls.
type Recorder interface {
	Record(usage.Event)
}

// maxRequestBody bounds a request body the gateway reads to add
// stream_options (chat completions only).
const maxRequestBody = 16 << 20

// Gateway is the reference gateway's HTTP handler.
type Gateway struct {
	// Cache reads APIKeys (indexed by DigestIndex), Projects and the
	// Organization.
	Cache client.Reader
	// Upstream is the model API the gateway forwards to.
	Upstream *url.URL
	// UpstreamKey, when set, is sent upstream as the bearer token instead
	// of the caller's key, which never leaves the gateway.
	UpstreamKey string
	Recorder    Recorder
	Clock       clock.PassiveClock
	Metrics     *Metrics
	// TrustForwardedFor takes the client address from X-Forwarded-For.
	TrustForwardedFor bool
	// Budgets, when set, enforces Hard spending caps from this gateway's
	// own metering, ahead of the usage server's mark.
	Budgets *Budgets

	proxy *httputil.ReverseProxy
}

type callKey struct{}

// call is what the gateway knows about a forwarded request.
type call struct {
	key      *hubv1.APIKey
	keyID    string
	service  pricing.Service
	model    string
	seconds  int64 // video duration asked for
	started  time.Time
	endpoint string
}

// Init prepares the proxy; call it once before serving.
func (g *Gateway) Init() {
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(g.Upstream)
			pr.Out.Host = g.Upstream.Host
			pr.Out.Header.Del("x-api-key")
			pr.Out.Header.Del("Authorization")
			if g.UpstreamKey != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+g.UpstreamKey)
			}
		},
		ModifyResponse: g.meter,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.Metrics.upstreamErrors.Inc()
			writeOpenAIError(w, http.StatusBadGateway, "api_error", "The upstream model API is unreachable; retry later.", 0)
		},
		// FlushInterval stays 0: the proxy flushes server-sent events and
		// bodies of unknown length as they come, and buffers the rest.
		Transport:  UpstreamTransport(),
		BufferPool: bufferPool{},
	}
}

// bufferPool lends the proxy its copy buffers, which it would otherwise
// allocate (32 KiB) for every response.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte  { return copyBuffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) { copyBuffers.Put((*[32 << 10]byte)(b)) }

// UpstreamTransport is the transport to the upstream model API. All of the
// gateway's traffic goes to that one host, so it keeps many idle
// connections to it: with the default of 2, a busy gateway would open and
// close a connection for most calls.
func UpstreamTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	return tr
}

// ServeHTTP authenticates, forwards and meters one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := g.Clock.Now()
	v := g.authorize(r.Context(), r, now)
	if !v.allowed() {
		g.Metrics.rejections.WithLabelValues(v.reason).Inc()
		writeOpenAIError(w, v.status, v.errType, v.message, v.retryAfter)
		return
	}
	c := &call{key: v.key, keyID: v.keyID, started: now, endpoint: r.URL.Path, service: serviceOf(r.URL.Path)}
	if err := prepareBody(r, c); err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", err.Error(), 0)
		return
	}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
}

// meter wraps the upstream response body so that usage is recorded when the
// body has been passed on.
func (g *Gateway) meter(resp *http.Response) error {
	c, _ := resp.Request.Context().Value(callKey{}).(*call)
	if c == nil {
		return nil
	}
	g.Metrics.upstreamLatency.Observe(g.Clock.Since(c.started).Seconds())
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	resp.Body = &meteredBody{ReadCloser: resp.Body, capture: &capture{sse: sse}, done: func(cap *capture, _ bool) {
		g.record(c, resp.StatusCode, cap)
	}}
	return nil
}

func (g *Gateway) record(c *call, status int, cap *capture) {
	g.Metrics.requests.WithLabelValues(string(c.service), strconv.Itoa(status)).Inc()
	tokens, model := cap.result()
	if model == "" {
		model = c.model
	}
	e := usage.Event{
		ID: uuid.Must(uuid.NewV7()).String(), Time: c.started.UTC(), Project: c.key.Namespace, KeyID: c.keyID,
		Service: c.service, Endpoint: c.endpoint, Model: model, StatusCode: status,
	}
	if tokens != nil {
		e.InputTokens, e.OutputTokens = tokens.PromptTokens, tokens.CompletionTokens
	}
	if c.service == pricing.Video && status < 300 {
		e.VideoSeconds = c.seconds
	}
	if g.Budgets != nil {
		g.Budgets.Metered(&e, g.organization)
	}
	g.Recorder.Record(e)
}

// organization is the Organization from the cache, or nil.
func (g *Gateway) organization() *hubv1.Organization {
	org := &hubv1.Organization{}
	if g.Cache.Get(context.Background(), client.ObjectKey{Name: hubv1.OrganizationName}, org, client.UnsafeDisableDeepCopy) != nil {
		return nil
	}
	return org
}

// serviceOf maps an API path to the service it is billed under.
func serviceOf(path string) pricing.Service {
	switch {
	case strings.Contains(path, "video"):
		return pricing.Video
	case strings.Contains(path, "fine_tuning"):
		return pricing.FineTuning
	case strings.HasPrefix(path, "/v1/files"):
		return pricing.Storage
	}
	return pricing.Chat
}

// prepareBody reads what metering needs from a JSON request body: the model
// and the video duration; for streamed chat completions it also asks the
// upstream to include usage in the last chunk (stream_options.include_usage),
// which clients of the OpenAI API accept.
func prepareBody(r *http.Request, c *call) error {
	if r.Body == nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	raw, err := readBody(r)
	_ = r.Body.Close()
	if err != nil {
		return err
	}
	if len(raw) > maxRequestBody {
		return errTooLarge
	}
	if m, ok := readMetering(raw, c); ok && m.needsStreamUsage(r.URL.Path) {
		if rewritten, err := withStreamUsage(raw); err == nil {
			raw = rewritten
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
	return nil
}

// readBody reads a request body of at most maxRequestBody+1 bytes, in one
// allocation when the client said how long it is.
func readBody(r *http.Request) ([]byte, error) {
	limited := io.LimitReader(r.Body, maxRequestBody+1)
	if r.ContentLength <= 0 || r.ContentLength > maxRequestBody {
		return io.ReadAll(limited)
	}
	buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength+1))
	_, err := buf.ReadFrom(limited)
	return buf.Bytes(), err
}

// requestMeta is what the gateway reads from a request body. Decoding into
// it, rather than into a generic map, allocates nothing for the messages.
type requestMeta struct {
	Model         string   `json:"model"`
	Stream        bool     `json:"stream"`
	Duration      *float64 `json:"duration"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// readMetering takes the model and, for video, the duration from a request
// body. A field of an unexpected type is left out; a body that is not JSON
// is not metered from the request (the response still is).
func readMetering(raw []byte, c *call) (requestMeta, bool) {
	var m requestMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return m, false
		}
	}
	c.model = m.Model
	if c.service == pricing.Video {
		c.seconds = 6 // the API's default duration
		if d := m.Duration; d != nil && *d > 0 && *d < math.MaxInt32 {
			c.seconds = int64(*d)
		}
	}
	return m, true
}

// needsStreamUsage tells whether a request is a streamed chat completion
// that does not ask for usage in its last chunk.
func (m requestMeta) needsStreamUsage(path string) bool {
	return m.Stream && strings.HasSuffix(path, "/chat/completions") && (m.StreamOptions == nil || !m.StreamOptions.IncludeUsage)
}

// withStreamUsage sets stream_options.include_usage in a request body,
// keeping every other field as it was.
func withStreamUsage(raw []byte) ([]byte, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, err
	}
	opts := map[string]json.RawMessage{}
	if existing, ok := body["stream_options"]; ok {
		// Not an object (null, say): replaced by one.
		_ = json.Unmarshal(existing, &opts)
		if opts == nil {
			opts = map[string]json.RawMessage{}
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	encoded, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	body["stream_options"] = encoded
	return json.Marshal(body)
}

var errTooLarge = &requestError{"the request body is larger than 16 MiB"}

type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

// writeOpenAIError answers in the OpenAI error format.
func writeOpenAIError(w http.ResponseWriter, status int, errType, message string, retryAfter time.Duration) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": message, "type": errType, "code": strings.ToLower(http.StatusText(status)),
	}})
}

// Metrics are the gateway's own metrics.
type Metrics struct {
	requests        *prometheus.CounterVec
	rejections      *prometheus.CounterVec
	upstreamLatency prometheus.Histogram
	upstreamErrors  prometheus.Counter
}

// NewMetrics creates the gateway's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_gateway_requests_total", Help: "Requests forwarded upstream, by service and status code.",
		}, []string{"service", "code"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_gateway_rejections_total", Help: "Requests the gateway refused, by reason.",
		}, []string{"reason"}),
		upstreamLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hub_gateway_upstream_latency_seconds", Help: "Time to the upstream's response headers.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hub_gateway_upstream_errors_total", Help: "Requests that could not reach the upstream.",
		}),
	}
	m.requests, m.rejections = metrics.Register(reg, m.requests), metrics.Register(reg, m.rejections)
	m.upstreamLatency, m.upstreamErrors = metrics.Register(reg, m.upstreamLatency), metrics.Register(reg, m.upstreamErrors)
	return m
}
