package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/usage"
)

// shapes is an upstream on loopback that answers every route of the table
// in the shape the real APIs use (OpenAI chat completions, completions,
// embeddings and responses; Anthropic messages; MiniMax video tasks; files,
// fine-tuning jobs, models), as JSON or as server-sent events, gzipped
// whenever the request accepts gzip. Its answers carry decoys: "usage" in
// generated text, in nested objects, and in every answer of routes whose
// usage is not read, so that only the place the route names can count.
//
// The query parameter ct sets the answer's Content-Type: "" (as the APIs
// send it), "upper" (upper case, with a charset), or "none" (missing).
type shapes struct {
	mu   sync.Mutex
	seen []*http.Request
}

// The usage each shape reports.
const (
	chatIn, chatOut = 8, 11
	// Cached input tokens, a part of the input: OpenAI's
	// prompt_tokens_details and input_tokens_details.
	chatCached, responsesCached = 5, 6
	completionIn, completionOut = 4, 6
	embeddingIn                 = 9
	responsesIn, responsesOut   = 13, 17
	// Anthropic: input, cache writes and cache reads all count as input.
	anthropicIn, anthropicCacheWrite, anthropicCacheRead, anthropicOut = 5, 7, 3, 21
)

// forgedUsage is the content of a file a caller uploaded: downloading it
// must book nothing.
const forgedUsage = `{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"input_tokens":1000000}}`

func (s *shapes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	clone := r.Clone(context.Background())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	s.seen = append(s.seen, clone)
	s.mu.Unlock()

	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &req)
	if strings.HasPrefix(req.Model, "bogus-") {
		s.write(w, r, "application/json", http.StatusNotFound,
			[]string{`{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`})
		return
	}
	model, _ := json.Marshal(req.Model)
	switch path := r.URL.Path; {
	case path == "/v1/chat/completions", path == "/v1/completions", path == "/v1/embeddings":
		s.openAI(w, r, path, string(model), req.Stream, req.StreamOptions.IncludeUsage)
	case path == "/v1/responses":
		s.responses(w, r, string(model), req.Stream)
	case path == "/v1/messages":
		s.messages(w, r, string(model), req.Stream)
	case path == "/v1/video_generation":
		s.write(w, r, "application/json", http.StatusOK, []string{`{"task_id":"t-1","base_resp":{"status_code":0,"status_msg":"success"}}`})
	case strings.HasSuffix(path, "/content"):
		s.write(w, r, "application/json", http.StatusOK, []string{forgedUsage})
	default:
		s.write(w, r, "application/json", http.StatusOK, []string{
			`{"object":"list","data":[],"usage":{"prompt_tokens":1000,"input_tokens":1000},"model":"decoy"}`})
	}
}

// decoy is a message with "usage" in its text and in a nested object.
const decoy = `"message":{"role":"assistant","content":"the \"usage\": {\"prompt_tokens\": 999} of words","usage":{"prompt_tokens":999}}`

// openAI answers chat completions, completions and embeddings.
func (s *shapes) openAI(w http.ResponseWriter, r *http.Request, path, model string, stream, includeUsage bool) {
	switch {
	case path == "/v1/chat/completions" && stream:
		events := []string{
			fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","model":%s,"choices":[{"index":0,"delta":{"role":"assistant"}}]}`, model),
			`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\"usage\":{\"prompt_tokens\":999}"}}]}`,
		}
		if includeUsage {
			events = append(events, fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0}}}`,
				chatIn, chatOut, chatIn+chatOut, chatCached))
		}
		s.write(w, r, "text/event-stream", http.StatusOK, append(events, "data: [DONE]"))
	case path == "/v1/chat/completions":
		s.write(w, r, "application/json", http.StatusOK, []string{fmt.Sprintf(
			`{"id":"c1","object":"chat.completion","model":%s,"choices":[{"index":0,%s}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}}`,
			model, decoy, chatIn, chatOut, chatIn+chatOut, chatCached)})
	case path == "/v1/completions" && stream:
		events := []string{fmt.Sprintf(`data: {"id":"t1","object":"text_completion","model":%s,"choices":[{"text":"usage","index":0}]}`, model)}
		if includeUsage {
			events = append(events, fmt.Sprintf(`data: {"id":"t1","object":"text_completion","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`,
				completionIn, completionOut))
		}
		s.write(w, r, "text/event-stream", http.StatusOK, append(events, "data: [DONE]"))
	case path == "/v1/completions":
		s.write(w, r, "application/json", http.StatusOK, []string{fmt.Sprintf(
			`{"id":"t1","object":"text_completion","model":%s,"choices":[{"text":"hi","index":0}],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`,
			model, completionIn, completionOut)})
	default:
		// A large answer: thousands of numbers before the usage.
		floats := strings.TrimSuffix(strings.Repeat("0.0123456789,", 8000), ",")
		s.write(w, r, "application/json", http.StatusOK, []string{fmt.Sprintf(
			`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[%s]}],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
			floats, model, embeddingIn, embeddingIn)})
	}
}

// responses answers the OpenAI Responses API.
func (s *shapes) responses(w http.ResponseWriter, r *http.Request, model string, stream bool) {
	if !stream {
		s.write(w, r, "application/json", http.StatusOK, []string{fmt.Sprintf(
			`{"id":"r1","object":"response","model":%s,"output":[{"type":"message",%s}],"usage":{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"total_tokens":%d}}`,
			model, decoy, responsesIn, responsesCached, responsesOut, responsesIn+responsesOut)})
		return
	}
	s.write(w, r, "text/event-stream", http.StatusOK, []string{
		fmt.Sprintf("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"model\":%s,\"usage\":null}}", model),
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\\\"usage\\\"\",\n" +
			"data: \"usage\":{\"input_tokens\":999}}",
		fmt.Sprintf("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"model\":%s,"+
			"\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"%s\"}]}],"+
			"\"usage\":{\"input_tokens\":%d,\"input_tokens_details\":{\"cached_tokens\":%d},\"output_tokens\":%d,\"total_tokens\":%d}}}",
			model, strings.Repeat("long reply ", 20000), responsesIn, responsesCached, responsesOut, responsesIn+responsesOut),
	})
}

// messages answers the Anthropic Messages API.
func (s *shapes) messages(w http.ResponseWriter, r *http.Request, model string, stream bool) {
	if !stream {
		s.write(w, r, "application/json", http.StatusOK, []string{fmt.Sprintf(
			`{"id":"m1","type":"message","role":"assistant","model":%s,"content":[{"type":"text","text":"usage"}],`+
				`"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
			model, anthropicIn, anthropicCacheWrite, anthropicCacheRead, anthropicOut)})
		return
	}
	s.write(w, r, "text/event-stream", http.StatusOK, []string{
		fmt.Sprintf(`event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":%s,"content":[],`+
			`"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
			model, anthropicIn, anthropicCacheWrite, anthropicCacheRead),
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"usage"}}`,
		`event: ping` + "\n" + `data: {"type":"ping"}`,
		fmt.Sprintf(`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":%d}}`, anthropicOut),
		`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
	})
}

// write answers with parts: JSON parts as one body, event parts as server-
// sent events, gzipped if the request accepts it.
func (s *shapes) write(w http.ResponseWriter, r *http.Request, contentType string, status int, parts []string) {
	sse := contentType == "text/event-stream"
	switch r.URL.Query().Get("ct") {
	case "upper":
		contentType = strings.ToUpper(contentType) + "; charset=UTF-8"
	case "none":
		contentType = ""
	}
	w.Header()["Content-Type"] = nil // no sniffing when it is missing
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	var out io.Writer = w
	var zw *gzip.Writer
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw = gzip.NewWriter(w)
		out = zw
	}
	w.WriteHeader(status)
	for _, p := range parts {
		if sse {
			p += "\n\n"
		}
		_, _ = io.WriteString(out, p)
		if zw != nil {
			_ = zw.Flush()
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if zw != nil {
		_ = zw.Close()
	}
}

func (s *shapes) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.seen...)
}

// claimObjects records objects as a project's, as its gateway would when it
// made them.
func claimObjects(g Gomega, project string, ids map[gateway.ObjectKind]string) {
	owners := gateway.NewOwners(serverURL, http.DefaultClient, func() (string, error) { return ingestToken, nil })
	claims := make([]objects.Object, 0, len(ids))
	for kind, id := range ids {
		claims = append(claims, objects.Object{Kind: string(kind), ID: id, Project: project})
	}
	g.Expect(owners.Claim(context.Background(), claims)).To(Succeed())
}

// shapesGateway starts a shapes upstream and a gateway in front of it, and
// issues a key of a new project.
func shapesGateway(t *testing.T, g Gomega, project string) (up *shapes, base string, apiKey *hubv1.APIKey, key string) {
	up = &shapes{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	base = startGateway(t, g, upstream.URL)
	apiKey, key = issueKey(g, project, nil)
	return up, base, apiKey, key
}

// startGateway runs another gateway of the suite's cluster and server, in
// front of upstream, and returns its base URL.
func startGateway(t *testing.T, g Gomega, upstream string) string {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr := freeAddr()
	mgr, _, err := gateway.NewManager(ctx, env.Cluster.Config, gateway.Options{
		ListenAddr: addr, Upstream: upstream, ServerURL: serverURL,
		Token: func() (string, error) { return ingestToken, nil }, SpoolDir: filepath.Join(t.TempDir(), "spool"),
		MetricsAddr: "0", ProbeAddr: "0", Clock: testClock, FlushInterval: 100 * time.Millisecond,
	})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()
	base := "http://" + addr
	g.Expect(waitForHTTP(base)).To(Succeed())
	return base
}

// shapeCase is one way to call one route.
type shapeCase struct {
	route      gateway.Route
	gzip       bool   // the client accepts gzip
	reqType    string // the request's Content-Type ("" for none)
	respType   string // the ct parameter for the upstream
	stream     bool
	model      string
	in, out    int64
	cached     int64 // the part of in read from a prompt cache
	seconds    int64
	marker     string // in every answer the client must receive whole
	statusWant int
}

// samplePath fills a route's {name} segments.
func samplePath(template string) string {
	segs := strings.Split(template, "/")
	parts := make([]string, 0, len(segs))
	for _, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			seg = "sample-" + strings.Trim(seg, "{}")
		}
		parts = append(parts, seg)
	}
	return strings.Join(parts, "/")
}

// expected is the usage the shapes upstream reports for a route.
func expected(c *shapeCase) {
	c.marker, c.statusWant = "", http.StatusOK
	switch c.route.Path {
	case "/v1/chat/completions":
		c.in, c.cached, c.out, c.marker = chatIn, chatCached, chatOut, `"completion_tokens":11`
	case "/v1/completions":
		c.in, c.out, c.marker = completionIn, completionOut, `"completion_tokens":6`
	case "/v1/embeddings":
		c.in, c.marker = embeddingIn, `"prompt_tokens":9`
	case "/v1/responses":
		c.in, c.cached, c.out, c.marker = responsesIn, responsesCached, responsesOut, `"output_tokens":17`
	case "/v1/messages":
		c.in, c.out, c.marker = anthropicIn+anthropicCacheWrite+anthropicCacheRead, anthropicOut, `"output_tokens":21`
		c.cached = anthropicCacheRead
	case "/v1/video_generation":
		c.seconds, c.marker = 10, `"task_id":"t-1"`
	default:
		c.marker = `"usage"` // the decoys reach the client, and book nothing
	}
}

func shapeCases() []shapeCase {
	cases := make([]shapeCase, 0, 512)
	n := 0
	for _, route := range gateway.DefaultRoutes() {
		streams := []bool{false}
		switch route.Path {
		case "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages":
			if route.Method == http.MethodPost {
				streams = []bool{false, true}
			}
		}
		reqTypes := []string{""}
		respTypes := []string{""}
		if route.Body == gateway.BodyJSON {
			reqTypes = []string{"application/json", "", "Application/JSON", "application/json; charset=utf-8"}
			respTypes = []string{"", "upper", "none"}
		}
		for _, gz := range []bool{false, true} {
			for _, stream := range streams {
				for _, reqType := range reqTypes {
					for _, respType := range respTypes {
						n++
						c := shapeCase{route: route, gzip: gz, reqType: reqType, respType: respType, stream: stream}
						if route.Body == gateway.BodyJSON {
							c.model = fmt.Sprintf("case-%d", n)
						}
						expected(&c)
						cases = append(cases, c)
					}
				}
			}
		}
	}
	return cases
}

// checkAnswer checks that the client got the answer whole, in an encoding
// it accepts: gzip when it asked for it, except JSON answers whose objects
// the gateway records or filters (read whole and passed on uncompressed).
func checkAnswer(g Gomega, c shapeCase, resp *http.Response) {
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(c.statusWant), "%+v: %s", c, raw)
	if o := c.route.Objects; c.gzip && (c.stream || o == nil || (o.Creates == "" && o.Lists == "" && o.Yields == nil)) {
		g.Expect(resp.Header.Get("Content-Encoding")).To(Equal("gzip"), "%+v", c)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		g.Expect(err).NotTo(HaveOccurred())
		raw, err = io.ReadAll(zr)
		g.Expect(err).NotTo(HaveOccurred(), "%+v", c)
	} else {
		g.Expect(resp.Header.Get("Content-Encoding")).To(BeEmpty(), "%+v", c)
	}
	g.Expect(string(raw)).To(ContainSubstring(c.marker), "%+v: the client gets the answer whole", c)
}

// TestEveryRouteIsMeteredExactly calls every route of the table through
// the real gateway in every way a client can send it: with and without
// Accept-Encoding: gzip; with the request's Content-Type missing, upper
// case, or with parameters; as JSON and as a stream; and with the answer's
// Content-Type as the APIs send it, upper case, or missing. The recorded
// usage of each call equals what the upstream reported, exactly, and the
// client gets the answer whole, in the encoding it accepts.
func TestEveryRouteIsMeteredExactly(t *testing.T) {
	g := NewWithT(t)
	_, base, _, key := shapesGateway(t, g, "gw-shapes")
	// The objects the sample paths name are the project's.
	claimObjects(g, "gw-shapes", map[gateway.ObjectKind]string{gateway.ObjectFile: "sample-file_id",
		gateway.ObjectResponse: "sample-response_id", gateway.ObjectFineTuningJob: "sample-fine_tuning_job_id"})

	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	cases := shapeCases()
	calls := map[string]int{} // by route, for routes without a model
	for _, c := range cases {
		var body io.Reader
		if c.route.Body == gateway.BodyJSON {
			fields := map[string]any{"model": c.model, "stream": c.stream, "duration": 10,
				"messages": []map[string]string{{"role": "user", "content": "hi"}}}
			raw, _ := json.Marshal(fields)
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(c.route.Method, base+samplePath(c.route.Path)+"?ct="+c.respType, body)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+key)
		if c.reqType != "" {
			req.Header.Set("Content-Type", c.reqType)
		}
		if c.gzip {
			req.Header.Set("Accept-Encoding", "gzip, br;q=0.5")
		}
		resp, err := client.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		checkAnswer(g, c, resp)
		if c.model == "" {
			calls[c.route.Path]++
		}
	}

	events := projectEvents(g, "gw-shapes", len(cases))
	byModel := map[string]usage.Event{}
	byRoute := map[string]int{}
	for _, e := range events {
		g.Expect(e.Flags).To(BeEmpty(), "%+v", e)
		if e.Model == "" {
			g.Expect([]int64{e.InputTokens, e.OutputTokens, e.VideoSeconds}).To(Equal([]int64{0, 0, 0}),
				"%s books nothing, whatever its answer holds", e.Endpoint)
			byRoute[e.Endpoint]++
			continue
		}
		byModel[e.Model] = e
	}
	g.Expect(byRoute).To(Equal(calls))
	for _, c := range cases {
		if c.model == "" {
			continue
		}
		e, ok := byModel[c.model]
		g.Expect(ok).To(BeTrue(), "%+v was recorded", c)
		g.Expect(e.Endpoint).To(Equal(c.route.Path))
		g.Expect(e.Service).To(Equal(c.route.Service))
		g.Expect([]int64{e.InputTokens, e.CachedInputTokens, e.OutputTokens, e.VideoSeconds}).To(
			Equal([]int64{c.in, c.cached, c.out, c.seconds}), "%+v: recorded what the upstream reported", c)
	}
}
