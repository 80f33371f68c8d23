// Package gateway is the reference gateway: an OpenAI- and
// Anthropic-compatible reverse proxy that routes each call by a table of the
// platform's API, authenticates Platform Hub keys from memory (the informer
// cache, indexed by digest), enforces scope, IP allowlist, archived projects
// and spending caps, forwards to the upstream model API with an allowlist of
// headers, and records the usage of every forwarded call from the answer the
// upstream really sent, read where the route says it is.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/jsonpick"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/usage"
)

// Recorder takes the usage events of forwarded calls.
type Recorder interface {
	Record(usage.Event)
	// Accepting is false while events could not be kept (the usage
	// server has been away long enough to fill the spool): the gateway
	// then refuses calls rather than serve them unmetered.
	Accepting() bool
}

// maxRequestBody bounds a JSON request body the gateway reads.
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
	// Routes is the platform's API; nil means DefaultRoutes.
	Routes *RouteTable
	// Owners records and tells which project owns each upstream object;
	// nil turns the checks of objects off (a gateway in front of an
	// upstream that keeps projects apart itself).
	Owners *Owners

	proxy *httputil.ReverseProxy
}

type callKey struct{}

// call is what the gateway knows about a forwarded request.
type call struct {
	route   *Route
	key     *hubv1.APIKey
	keyID   string
	model   string
	seconds int64 // video duration asked for
	started time.Time
	// acceptsGzip: the client takes gzip answers.
	acceptsGzip bool
	// body is a JSON request body as read, and stream whether it asks for
	// a streamed answer.
	body   []byte
	stream bool
	// query is the query string forwarded.
	query string
	// flags are what was wrong with the request's own figures.
	flags []usage.Flag
}

// Init prepares the proxy; call it once before serving.
func (g *Gateway) Init() {
	if g.Routes == nil {
		g.Routes, _ = NewRouteTable(DefaultRoutes())
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			c := pr.In.Context().Value(callKey{}).(*call)
			pr.SetURL(g.Upstream)
			pr.Out.Host = g.Upstream.Host
			// The upstream gets the path the gateway routed and checked:
			// "/v1/files/a%2Fb" is not passed on as the file "a/b".
			pr.Out.URL.RawPath = ""
			pr.Out.Header = upstreamHeaders(pr.In.Header, c, g.UpstreamKey)
			pr.Out.URL.RawQuery = c.query
		},
		ModifyResponse: g.meter,
		ErrorHandler:   g.proxyError,
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
// close a connection for most calls. It asks for gzip and decompresses
// answers itself unless a request names Accept-Encoding (see
// upstreamHeaders).
func UpstreamTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	return tr
}

// ServeHTTP routes, authenticates, forwards and meters one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := g.Clock.Now()
	route := g.Routes.Match(r.Method, r.URL.Path)
	if route == nil {
		g.refuse(w, refuse(http.StatusNotFound, reasonUnknownURL, "invalid_request_error", "unknown_url",
			fmt.Sprintf("Unknown request URL: %s %s. Please check the URL for typos, or see the API reference for the paths this gateway serves.",
				r.Method, r.URL.Path)))
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		g.refuse(w, refuse(http.StatusUnsupportedMediaType, reasonEncoding, "invalid_request_error", "unsupported_content_encoding",
			"Request bodies must not be compressed (Content-Encoding "+ce+"); send them uncompressed."))
		return
	}
	v := g.authorize(r.Context(), r, now)
	if !v.allowed() {
		g.refuse(w, v)
		return
	}
	c := &call{route: route, key: v.key, keyID: v.keyID, started: now, acceptsGzip: acceptsGzip(r.Header)}
	if v := c.prepareQuery(r); !v.allowed() {
		g.refuse(w, v)
		return
	}
	if err := prepareBody(r, c); err != nil {
		g.refuse(w, refuse(http.StatusBadRequest, reasonBadRequest, "invalid_request_error", "invalid_request_body", err.Error()))
		return
	}
	if v := g.checkPriced(r.Context(), c); !v.allowed() {
		g.refuse(w, v)
		return
	}
	if v := g.checkObjects(r.Context(), r, c); !v.allowed() {
		g.refuse(w, v)
		return
	}
	if !g.Recorder.Accepting() {
		// A 503 with Retry-After is what OpenAI's SDKs retry with backoff.
		w.Header().Set("Retry-After", "30")
		g.refuse(w, refuse(http.StatusServiceUnavailable, reasonSpoolFull, "api_error", "service_unavailable",
			"The gateway cannot record usage right now (the usage server has been unreachable for a while), so it takes "+
				"no calls; retry later."))
		return
	}
	// The upstream call outlives a client that leaves, for a while, so
	// that what it served is still metered (see meteredBody.Close).
	ctx, cancel := detached(r.Context(), drainTimeout)
	defer cancel()
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, callKey{}, c)))
}

// drainTimeout is how long an upstream call goes on after its client left:
// long enough for a stream to reach its usage, bounded so that a client
// cannot keep the gateway's resources for ever.
const drainTimeout = 2 * time.Minute

// detached returns a context that is not cancelled with parent, but
// grace after it; the returned function releases it.
func detached(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	var timer *time.Timer
	var mu sync.Mutex
	stop := context.AfterFunc(parent, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(grace, cancel)
	})
	return ctx, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// prepareQuery reads the query as the gateway will forward it: parsed once
// and encoded again, so that the upstream cannot read a parameter the
// gateway did not (a semicolon-separated one, say), and without anything
// holding a hub key. A path holding a hub key is refused outright.
func (c *call) prepareQuery(r *http.Request) verdict {
	if holdsHubKey(r.URL.Path) {
		return refuse(http.StatusBadRequest, reasonBadRequest, "invalid_request_error", "invalid_request_url",
			"The request path holds something shaped like an API key; send keys only in the Authorization header.")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return refuse(http.StatusBadRequest, reasonBadRequest, "invalid_request_error", "invalid_request_url",
			"The query string is not valid ("+err.Error()+"); separate parameters with &, and escape ; as %3B.")
	}
	c.query = withoutHubKeys(q).Encode()
	return verdict{}
}

func (g *Gateway) refuse(w http.ResponseWriter, v verdict) {
	g.Metrics.rejections.WithLabelValues(v.reason).Inc()
	writeOpenAIError(w, v.status, v.errType, v.code, v.message)
}

// errUnexpectedEncoding: the upstream compressed an answer in a way the
// gateway did not ask for, so its usage cannot be read.
var errUnexpectedEncoding = errors.New("the upstream answered in a content encoding the gateway did not ask for")

// meter wraps the upstream response body so that usage is recorded when the
// body has been passed on. An answer whose usage cannot be read (an encoding
// the gateway did not ask for) is not passed on: the client gets 502, and
// the call is recorded, flagged.
func (g *Gateway) meter(resp *http.Response) error {
	c, _ := resp.Request.Context().Value(callKey{}).(*call)
	if c == nil {
		return nil
	}
	g.Metrics.upstreamLatency.Observe(g.Clock.Since(c.started).Seconds())
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		resp.StatusCode = http.StatusBadGateway // not HTTP: what the client gets, and what is recorded
	}
	gzipped, ok := answerEncoding(resp, c)
	if !ok {
		r := &reading{}
		r.flag(usage.FlagUsageUnreadable)
		g.record(c, http.StatusBadGateway, r)
		return errUnexpectedEncoding
	}
	if c.route.touchesObjects() && resp.StatusCode >= 200 && resp.StatusCode < 300 &&
		resp.Request.Method != http.MethodHead && jsonAnswer(resp, c) {
		// Read whole and passed on decompressed.
		gzipped = false
		if err := g.applyObjects(resp, c); err != nil {
			return err
		}
	}
	body := &meteredBody{ReadCloser: resp.Body, done: func(r *reading) { g.record(c, resp.StatusCode, r) },
		usage: newUsageReader(c.route, resp.Header.Get("Content-Type"))}
	if gzipped && body.usage != nil {
		body.gzip = newGunzipTee(body.usage)
	}
	resp.Body = body
	return nil
}

// answerEncoding tells whether an answer is gzip the client takes as it
// is, and whether it is in an encoding the gateway can meter at all: none,
// or gzip it asked for.
func answerEncoding(resp *http.Response, c *call) (gzipped, ok bool) {
	ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	gzipped = (ce == encodingGzip || ce == "x-"+encodingGzip) && c.acceptsGzip
	return gzipped, ce == "" || ce == "identity" || gzipped
}

// applyObjects reads a successful JSON answer whole and applies the route's
// object rule to it (see objectAnswer), then passes it on uncompressed.
// When that fails, the call is recorded with the usage the answer held,
// and the client gets an error instead of the answer.
func (g *Gateway) applyObjects(resp *http.Response, c *call) error {
	body, err := readAnswer(resp)
	var out []byte
	if err != nil {
		err = fmt.Errorf("%w: %w", errObjectAnswer, err)
	} else {
		out, err = g.objectAnswer(resp.Request.Context(), resp, c, body)
	}
	if err != nil {
		r := &reading{}
		if u := newUsageReader(c.route, resp.Header.Get("Content-Type")); u != nil && body != nil {
			_, _ = u.Write(body)
			u.finish(r, true)
		}
		g.record(c, resp.StatusCode, r) // the upstream did the work
		return err
	}
	if c.route.Usage == UsageFineTuningJob {
		g.meterJobs(c, out)
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	return nil
}

// proxyError answers a call the proxy could not complete.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errUnexpectedEncoding):
		writeOpenAIError(w, http.StatusBadGateway, "api_error", "upstream_error",
			"The upstream model API answered in a form the gateway cannot meter; the call was not passed on. Retry later.")
		return
	case errors.Is(err, errObjectRecord):
		ctrl.Log.WithName("gateway").Error(err, "An object made upstream could not be recorded as its project's")
		writeOpenAIError(w, http.StatusServiceUnavailable, "api_error", "service_unavailable",
			"The upstream made the object, but the gateway could not record it as this project's, so it cannot be used "+
				"through the gateway; retry the call later.")
		return
	case errors.Is(err, errObjectAnswer):
		ctrl.Log.WithName("gateway").Error(err, "Reading the objects of an answer")
		writeOpenAIError(w, http.StatusBadGateway, "api_error", "upstream_error", "The upstream's answer could not be read; retry later.")
		return
	}
	g.Metrics.upstreamErrors.Inc()
	if c, _ := r.Context().Value(callKey{}).(*call); c != nil {
		// Whether the upstream did the work before the call failed cannot
		// be told: the call is recorded, flagged, never dropped.
		failed := &reading{}
		failed.flag(usage.FlagUsageUnreadable)
		g.record(c, http.StatusBadGateway, failed)
	}
	writeOpenAIError(w, http.StatusBadGateway, "api_error", "upstream_unreachable", "The upstream model API is unreachable; retry later.")
}

// record builds a call's usage event from the request and what its answer
// said, and hands it to the recorder. Every forwarded call is recorded,
// whatever was wrong with its figures (then it is flagged).
func (g *Gateway) record(c *call, status int, r *reading) {
	route := c.route
	g.Metrics.requests.WithLabelValues(route.Path, strconv.Itoa(status)).Inc()
	e := usage.Event{
		ID: uuid.Must(uuid.NewV7()).String(), Time: c.started.UTC(), Project: c.key.Namespace, KeyID: c.keyID,
		Service: route.Service, Endpoint: route.Path, StatusCode: status,
	}
	for _, f := range c.flags {
		r.flag(f)
	}
	// The model the client asked for is the one priced and checked against
	// the price list before the call; the answer's names it only when the
	// request did not.
	e.Model = c.model
	if e.Model == "" {
		e.Model = r.model
	}
	if usage.TextProblem(e.Model, usage.MaxNameLength, false) != "" || holdsHubKey(e.Model) {
		e.Model = ""
		r.flag(usage.FlagModelInvalid)
	}
	ok := status >= 200 && status < 300
	fillUsage(&e, c, r, ok)
	if ok && r.createdID != "" {
		g.claimStreamed(c, route, r.createdID)
	}
	e.Flags = r.flags
	g.recordEvent(e)
}

// recordEvent counts an event towards this gateway's Hard caps and hands
// it to the recorder.
func (g *Gateway) recordEvent(e usage.Event) {
	for _, f := range e.Flags {
		g.Metrics.flagged.WithLabelValues(string(f)).Inc()
	}
	if g.Budgets != nil {
		g.Budgets.Metered(&e, g.organization)
	}
	g.Recorder.Record(e)
}

// fillUsage sets an event's quantities from the request and the reading of
// the answer (ok: the answer was a success).
func fillUsage(e *usage.Event, c *call, r *reading, ok bool) {
	switch c.route.Usage {
	case UsageNone, UsageFineTuningJob: // a job's training is metered apart (meterJobs)
	case UsageVideoRequest:
		if ok && !r.rejected {
			e.VideoSeconds = c.seconds
		}
	default:
		e.InputTokens, e.CachedInputTokens, e.OutputTokens = r.tokens(c.route.Usage)
		if ok && !r.seen && len(r.flags) == 0 {
			r.flag(usage.FlagUsageMissing)
		}
	}
}

// claimStreamed records the object a streamed answer made (a response) as
// the caller's project's, once the stream has ended: until then, the
// object is nobody's and other calls naming it get 404.
func (g *Gateway) claimStreamed(c *call, route *Route, id string) {
	if g.Owners == nil || route.Objects == nil || route.Objects.Creates == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Owners.Claim(ctx, []objects.Object{{Kind: string(route.Objects.Creates), ID: id, Project: c.key.Namespace}}); err != nil {
		ctrl.Log.WithName("gateway").Error(err, "A streamed object could not be recorded as its project's", "kind", route.Objects.Creates, "id", id)
	}
}

// organization is the Organization from the cache, or nil.
func (g *Gateway) organization() *hubv1.Organization {
	org := &hubv1.Organization{}
	if g.Cache.Get(context.Background(), client.ObjectKey{Name: hubv1.OrganizationName}, org, client.UnsafeDisableDeepCopy) != nil {
		return nil
	}
	return org
}

// prepareBody reads what metering needs from a JSON request body, whatever
// its Content-Type says (the upstream reads it as JSON too): the model and
// the video duration. For streamed chat completions it also asks the
// upstream to include usage in the last chunk (stream_options.include_usage),
// which clients of the OpenAI API accept. A body that is not a JSON object
// is refused, as the upstream would refuse it.
func prepareBody(r *http.Request, c *call) error {
	if c.route.Body != BodyJSON || r.Body == nil || r.Body == http.NoBody {
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
	if err := readMetering(raw, c); err != nil {
		return err
	}
	c.body = raw
	if c.route.StreamUsage && c.stream {
		if rewritten, err := withStreamUsage(raw); err == nil {
			raw = rewritten
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	r.Header.Del("Content-Length")
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

// The top-level keys of a request body that metering reads.
const (
	reqModel = iota
	reqStream
	reqDuration
	reqStreamOptions
	reqBackground
)

var requestKeys = []string{"model", "stream", "duration", "stream_options", "background"}

// requestPickers pick those keys in any letter case, so that a body that
// names one twice (or as "Model" and "model") is seen: readers of JSON
// disagree on which of two wins, and the upstream must not meter a
// different model or stream than the gateway.
var requestPickers = sync.Pool{New: func() any {
	paths := make([][]string, len(requestKeys))
	for i, key := range requestKeys {
		paths[i] = []string{key}
	}
	p := jsonpick.New(maxUsageValue, paths...)
	p.FoldCase = true
	return p
}}

// defaultVideoSeconds is the video API's default duration.
const defaultVideoSeconds = 6

// readMetering takes the model, the stream flag and, for video, the
// duration from a request body, which must be a JSON object naming each
// of them at most once, each of its type: a lenient upstream could read
// "stream": "true" as a stream the gateway did not ask usage for. A
// background response (Responses API) is refused: its usage would come
// only to whoever polls it.
func readMetering(raw []byte, c *call) error {
	if trimmed := bytes.TrimLeft(raw, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return &requestError{"the request body must be a JSON object"}
	}
	p := requestPickers.Get().(*jsonpick.Picker)
	p.Reset()
	defer requestPickers.Put(p)
	_, _ = p.Write(raw)
	if err := p.Close(); err != nil {
		return &requestError{"the request body must be a JSON object: " + err.Error()}
	}
	for i, key := range requestKeys {
		if p.Count(i) > 1 {
			return &requestError{fmt.Sprintf("the request body names %q more than once (keys are matched whatever their case); name it once", key)}
		}
	}
	if p.Oversize(reqModel) {
		return &requestError{"model is longer than 64 KiB"}
	}
	var background bool
	for _, f := range []struct {
		key  int
		into any
		what string
	}{{reqModel, &c.model, "a string"}, {reqStream, &c.stream, "true or false"}, {reqBackground, &background, "true or false"}} {
		if v, ok := p.Value(f.key); ok && string(v) != jsonNull && json.Unmarshal(v, f.into) != nil {
			return &requestError{fmt.Sprintf("%s must be %s", requestKeys[f.key], f.what)}
		}
	}
	if background && c.route.Usage == UsageResponses {
		return &requestError{"background responses are not served through this gateway: their usage is known only to whoever polls them; " +
			"stream the response instead"}
	}
	if c.route.Usage == UsageVideoRequest {
		v, _ := p.Value(reqDuration)
		seconds, err := videoSeconds(v)
		if err != nil {
			return err
		}
		c.seconds = seconds
	}
	return nil
}

// videoSeconds is the duration a video request asks for: its "duration",
// rounded up, or the API's default. Anything but a positive number of at
// most a day is refused.
func videoSeconds(raw json.RawMessage) (int64, error) {
	if raw == nil || string(raw) == jsonNull {
		return defaultVideoSeconds, nil
	}
	var d float64
	if err := json.Unmarshal(raw, &d); err != nil || d <= 0 || d > usage.MaxVideoSecondsPerCall {
		return 0, &requestError{fmt.Sprintf("duration must be a number of seconds between 1 and %d", usage.MaxVideoSecondsPerCall)}
	}
	return int64(math.Ceil(d)), nil
}

// withStreamUsage sets stream_options.include_usage in a streamed request's
// body, whatever it said (in whatever case), keeping every other field as it
// was, so that the stream's last event carries the call's usage.
func withStreamUsage(raw []byte) ([]byte, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, err
	}
	opts := map[string]json.RawMessage{}
	for key, existing := range body {
		if strings.EqualFold(key, "stream_options") {
			// Not an object (null, say): replaced by one.
			_ = json.Unmarshal(existing, &opts)
			if opts == nil {
				opts = map[string]json.RawMessage{}
			}
			delete(body, key)
		}
	}
	for key := range opts {
		if strings.EqualFold(key, "include_usage") {
			delete(opts, key)
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

// openAIError is the body of an error in the OpenAI format.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// writeOpenAIError answers in the OpenAI error format:
// {"error": {"message", "type", "param", "code"}}.
func writeOpenAIError(w http.ResponseWriter, status int, errType, code, message string) {
	var body openAIError
	body.Error.Message, body.Error.Type, body.Error.Code = message, errType, code
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&body)
}

// Metrics are the gateway's own metrics. Their labels have bounded values:
// routes are the table's templates, never raw paths.
type Metrics struct {
	requests        *prometheus.CounterVec
	rejections      *prometheus.CounterVec
	flagged         *prometheus.CounterVec
	upstreamLatency prometheus.Histogram
	upstreamErrors  prometheus.Counter
}

// NewMetrics creates the gateway's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_gateway_requests_total", Help: "Requests forwarded upstream, by route template and status code.",
		}, []string{"route", "code"}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_gateway_usage_flagged_total",
			Help: "Calls recorded with a flag: usage the upstream reported missing, malformed or unreadable, by flag.",
		}, []string{"flag"}),
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
	m.requests, m.rejections, m.flagged = metrics.Register(reg, m.requests), metrics.Register(reg, m.rejections), metrics.Register(reg, m.flagged)
	m.upstreamLatency, m.upstreamErrors = metrics.Register(reg, m.upstreamLatency), metrics.Register(reg, m.upstreamErrors)
	return m
}
