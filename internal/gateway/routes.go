package gateway

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// UsageSource says where a route's usage is found. Usage is read only
// there: a response body that merely contains a "usage" object (a file
// downloaded through /v1/files/{file_id}/content, say) books nothing.
type UsageSource string

// Usage sources.
const (
	// UsageNone: the call counts, with no tokens (files, jobs, models,
	// reads of objects whose usage was counted when they were made).
	UsageNone UsageSource = ""
	// UsageOpenAI: the top-level usage object of a JSON answer
	// (prompt_tokens, completion_tokens), or of the last server-sent event
	// that carries one (with stream_options.include_usage, which the gateway
	// adds to streamed chat completions). OpenAI chat completions,
	// completions and embeddings.
	UsageOpenAI UsageSource = "openai"
	// UsageResponses: the OpenAI Responses API: the top-level usage of a
	// JSON answer (input_tokens, output_tokens), or response.usage of the
	// response.completed (or .incomplete, .failed) event of a stream.
	UsageResponses UsageSource = "responses"
	// UsageAnthropic: the Anthropic Messages API: usage of a JSON answer, or
	// message.usage of the message_start event and usage of message_delta
	// events (whose output_tokens are cumulative). Input counts
	// input_tokens, cache_creation_input_tokens and cache_read_input_tokens.
	UsageAnthropic UsageSource = "anthropic"
	// UsageVideoRequest: the duration the request asks for (default 6 s),
	// when the upstream accepts the task (2xx, and base_resp.status_code 0
	// where the answer has one).
	UsageVideoRequest UsageSource = "video_request"
	// UsageFineTuningJob: the trained_tokens of the fine-tuning jobs an
	// answer shows succeeded (a job, or a list of them), each job metered
	// once, however often it is read: training is billed when its result
	// is first seen. Creating a job checks its model's price.
	UsageFineTuningJob UsageSource = "fine_tuning_job"
)

// RequestBody is what a route's request body holds.
type RequestBody string

// Request bodies.
const (
	// BodyNone: the body, if any, is passed on unread.
	BodyNone RequestBody = ""
	// BodyJSON: a JSON object, read (whatever its Content-Type says) for the
	// model, the stream flag and the video duration, and sent upstream as
	// application/json. A body that is not a JSON object is refused with
	// 400, as the upstream would.
	BodyJSON RequestBody = "json"
)

// Route is one operation of the platform's API that the gateway forwards.
type Route struct {
	// Method is the HTTP method (GET, POST, DELETE).
	Method string `json:"method"`
	// Path is the path template: literal segments and {name} segments that
	// match any one segment, such as /v1/files/{file_id}/content. It names
	// the route in usage records and metrics.
	Path string `json:"path"`
	// Service is what calls of the route are billed under.
	Service pricing.Service `json:"service"`
	// Usage is where the route's usage is found.
	Usage UsageSource `json:"usage,omitempty"`
	// Body is what the request body holds.
	Body RequestBody `json:"body,omitempty"`
	// StreamUsage asks streamed calls for usage in their last event
	// (stream_options.include_usage), for OpenAI chat completions and
	// completions.
	StreamUsage bool `json:"streamUsage,omitempty"`
	// Objects says how the route touches objects that projects own
	// upstream: names them, creates, lists or yields them.
	Objects *ObjectRule `json:"objects,omitempty"`

	segments []string
}

// metered tells whether the route's calls carry usage beyond the call.
func (r *Route) metered() bool { return r.Usage != UsageNone }

// DefaultRoutes is the platform's API as the gateway knows it: the
// OpenAI-compatible and Anthropic-compatible paths, MiniMax's video tasks
// and file retrieval. Paths outside the table get 404; --routes replaces it.
func DefaultRoutes() []Route {
	chat := func(method, path string, source UsageSource) Route {
		r := Route{Method: method, Path: path, Service: pricing.Chat, Usage: source}
		if method == http.MethodPost {
			r.Body = BodyJSON // read, if only for the objects it names
		}
		return r
	}
	names := func(kind ObjectKind, in, name string) *ObjectRule {
		return &ObjectRule{Names: []ObjectName{{Kind: kind, In: in, Name: name}}}
	}
	response := names(ObjectResponse, InPath, "response_id")
	file := names(ObjectFile, InPath, "file_id")
	job := names(ObjectFineTuningJob, InPath, "fine_tuning_job_id")
	// A list's "after" cursor must be the caller's too, or a list would
	// tell whether another project's ID exists.
	list := func(kind ObjectKind) *ObjectRule {
		return &ObjectRule{Lists: kind, Names: []ObjectName{{Kind: kind, In: InQuery, Name: "after"}}}
	}
	withObjects := func(r Route, o *ObjectRule) Route {
		r.Objects = o
		return r
	}
	routes := []Route{
		{Method: http.MethodPost, Path: "/v1/chat/completions", Service: pricing.Chat, Usage: UsageOpenAI, Body: BodyJSON, StreamUsage: true},
		{Method: http.MethodPost, Path: "/v1/completions", Service: pricing.Chat, Usage: UsageOpenAI, Body: BodyJSON, StreamUsage: true},
		chat(http.MethodPost, "/v1/embeddings", UsageOpenAI),
		withObjects(chat(http.MethodPost, "/v1/responses", UsageResponses), &ObjectRule{Creates: ObjectResponse}),
		withObjects(chat(http.MethodGet, "/v1/responses/{response_id}", UsageNone), response),
		withObjects(chat(http.MethodDelete, "/v1/responses/{response_id}", UsageNone), response),
		withObjects(chat(http.MethodPost, "/v1/responses/{response_id}/cancel", UsageNone), response),
		withObjects(chat(http.MethodGet, "/v1/responses/{response_id}/input_items", UsageNone), response),
		chat(http.MethodPost, "/v1/messages", UsageAnthropic),
		chat(http.MethodPost, "/v1/messages/count_tokens", UsageNone),
		chat(http.MethodGet, "/v1/models", UsageNone),
		chat(http.MethodGet, "/v1/models/{model}", UsageNone),

		{Method: http.MethodPost, Path: "/v1/video_generation", Service: pricing.Video, Usage: UsageVideoRequest, Body: BodyJSON,
			Objects: &ObjectRule{Creates: ObjectVideoTask, IDField: "task_id"}},
		{Method: http.MethodGet, Path: "/v1/query/video_generation", Service: pricing.Video,
			Objects: &ObjectRule{Names: []ObjectName{{Kind: ObjectVideoTask, In: InQuery, Name: "task_id"}},
				Yields: []ObjectField{{Kind: ObjectFile, Field: "file_id"}}}},

		{Method: http.MethodPost, Path: "/v1/files", Service: pricing.Storage, Objects: &ObjectRule{Creates: ObjectFile}},
		{Method: http.MethodGet, Path: "/v1/files", Service: pricing.Storage, Objects: list(ObjectFile)},
		{Method: http.MethodGet, Path: "/v1/files/{file_id}", Service: pricing.Storage, Objects: file},
		{Method: http.MethodDelete, Path: "/v1/files/{file_id}", Service: pricing.Storage, Objects: file},
		{Method: http.MethodGet, Path: "/v1/files/{file_id}/content", Service: pricing.Storage, Objects: file},
		{Method: http.MethodGet, Path: "/v1/files/retrieve", Service: pricing.Storage, Objects: names(ObjectFile, InQuery, "file_id")},

		{Method: http.MethodPost, Path: "/v1/fine_tuning/jobs", Service: pricing.FineTuning, Usage: UsageFineTuningJob, Body: BodyJSON,
			Objects: &ObjectRule{Creates: ObjectFineTuningJob}},
		{Method: http.MethodGet, Path: "/v1/fine_tuning/jobs", Service: pricing.FineTuning, Usage: UsageFineTuningJob,
			Objects: list(ObjectFineTuningJob)},
		{Method: http.MethodGet, Path: "/v1/fine_tuning/jobs/{fine_tuning_job_id}", Service: pricing.FineTuning, Usage: UsageFineTuningJob,
			Objects: &ObjectRule{Names: job.Names, Yields: []ObjectField{{Kind: ObjectFile, Field: "result_files"}}}},
		{Method: http.MethodPost, Path: "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel", Service: pricing.FineTuning, Objects: job},
		{Method: http.MethodGet, Path: "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events", Service: pricing.FineTuning, Objects: job},
		{Method: http.MethodGet, Path: "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", Service: pricing.FineTuning, Objects: job},
	}
	return routes
}

// RouteTable finds the route of a request.
type RouteTable struct {
	routes []Route
}

// NewRouteTable checks routes and builds a table of them. Errors name the
// route and the field to change.
func NewRouteTable(routes []Route) (*RouteTable, error) {
	t := &RouteTable{routes: slices.Clone(routes)}
	seen := map[string]bool{}
	for i := range t.routes {
		r := &t.routes[i]
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("routes[%d] (%s %s): %w", i, r.Method, r.Path, err)
		}
		key := r.Method + " " + r.Path
		if seen[key] {
			return nil, fmt.Errorf("routes[%d]: %s is in the table twice", i, key)
		}
		seen[key] = true
		r.segments = strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
		if r.Objects != nil {
			if err := r.Objects.check(r.segments); err != nil {
				return nil, fmt.Errorf("routes[%d] (%s %s): %w", i, r.Method, r.Path, err)
			}
		}
	}
	// A literal segment wins over a {name}: /v1/files/retrieve is not the
	// file "retrieve".
	slices.SortStableFunc(t.routes, func(a, b Route) int { return params(a) - params(b) })
	return t, nil
}

func params(r Route) int { return strings.Count(r.Path, "{") }

// LoadRoutes reads a route table from a YAML or JSON file: a list of routes
// with the fields of Route.
func LoadRoutes(path string) (*RouteTable, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the route table: %w", err)
	}
	var routes []Route
	if err := yaml.UnmarshalStrict(raw, &routes); err != nil {
		return nil, fmt.Errorf("reading the route table %s: %w", path, err)
	}
	t, err := NewRouteTable(routes)
	if err != nil {
		return nil, fmt.Errorf("the route table %s: %w", path, err)
	}
	return t, nil
}

func (r *Route) check() error {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch:
	default:
		return fmt.Errorf("method must be GET, POST, PUT, PATCH or DELETE")
	}
	if err := checkPath(r.Path); err != nil {
		return err
	}
	return r.checkMetering()
}

func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
		return fmt.Errorf("path must start with / and have no empty segment")
	}
	// It names the route in every usage event, which must take it.
	if msg := usage.TextProblem(path, usage.MaxEndpointLength, true); msg != "" {
		return fmt.Errorf("path %s", msg)
	}
	for _, seg := range strings.Split(path[1:], "/") {
		whole := strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && len(seg) > 2
		if strings.ContainsAny(seg, "{}") && !whole {
			return fmt.Errorf("path segment %q must be a literal or a whole {name}", seg)
		}
	}
	return nil
}

// checkMetering checks the fields that say how the route is metered.
func (r *Route) checkMetering() error {
	switch r.Service {
	case pricing.Chat, pricing.Video, pricing.FineTuning, pricing.Storage:
	default:
		return fmt.Errorf("service must be chat, video, fine_tuning or storage, not %q", r.Service)
	}
	switch r.Usage {
	case UsageNone, UsageOpenAI, UsageResponses, UsageAnthropic, UsageVideoRequest, UsageFineTuningJob:
	default:
		return fmt.Errorf("usage must be openai, responses, anthropic, video_request, fine_tuning_job or empty, not %q", r.Usage)
	}
	switch r.Body {
	case BodyNone, BodyJSON:
	default:
		return fmt.Errorf("body must be json or empty, not %q", r.Body)
	}
	if (r.Usage == UsageVideoRequest || r.StreamUsage) && r.Body != BodyJSON {
		return fmt.Errorf("usage %q and streamUsage read the request, so body must be json", r.Usage)
	}
	return nil
}

// Match returns the route of a request's method and path, or nil. HEAD
// matches a GET route.
func (t *RouteTable) Match(method, path string) *Route {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	rest := path[1:]
	for i := range t.routes {
		r := &t.routes[i]
		if r.Method == method && matchSegments(r.segments, rest) {
			return r
		}
	}
	return nil
}

// matchSegments matches a path (without its leading slash) against a
// template's segments, without allocating.
func matchSegments(template []string, path string) bool {
	for i, seg := range template {
		part, rest, more := strings.Cut(path, "/")
		if part == "" || part == "." || part == ".." || (seg[0] != '{' && seg != part) {
			return false // dot segments would mean another path upstream
		}
		if last := i == len(template)-1; last == more {
			return false // the path is shorter or longer than the template
		}
		path = rest
	}
	return true
}
