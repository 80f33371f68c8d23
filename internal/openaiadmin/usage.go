package openaiadmin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// widths are the bucket widths served, with their default and largest
// number of buckets a page (OpenAI's).
var widths = map[string]struct {
	step         time.Duration
	granularity  usage.Granularity
	def, maximum int
}{
	"1m": {time.Minute, usage.Minute, 60, 1440},
	"1h": {time.Hour, usage.Hour, 24, 168},
	"1d": {24 * time.Hour, usage.Day, 7, 31},
}

// usageWindow is a page of time buckets: [start, end), its granularity,
// and where the next page starts (zero when none).
type usageWindow struct {
	start, end, next time.Time
	step             time.Duration
	granularity      usage.Granularity
}

// window reads start_time, end_time, bucket_width, limit and page.
func (h *Handler) window(w http.ResponseWriter, r *http.Request, defaultWidth string, costs bool) (usageWindow, bool) {
	q := r.URL.Query()
	width := q.Get("bucket_width")
	if width == "" {
		width = defaultWidth
	}
	spec, ok := widths[width]
	if !ok || (costs && width != "1d") {
		invalid(w, "bucket_width", fmt.Sprintf("bucket_width must be 1m, 1h or 1d (costs: 1d), not %q", width))
		return usageWindow{}, false
	}
	maximum, def := spec.maximum, spec.def
	if costs {
		maximum = 180
	}
	limit, ok := limitParam(w, r, def, maximum)
	if !ok {
		return usageWindow{}, false
	}
	start, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
	if err != nil {
		invalid(w, "start_time", "start_time is required: the start of the range, in Unix seconds")
		return usageWindow{}, false
	}
	end := h.now()
	if v := q.Get("end_time"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			invalid(w, "end_time", "end_time must be Unix seconds")
			return usageWindow{}, false
		}
		end = time.Unix(n, 0)
	}
	from := time.Unix(start, 0).UTC().Truncate(spec.step)
	if token := q.Get("page"); token != "" {
		at, err := decodePage(token)
		if err != nil {
			invalid(w, "page", "page is not a next_page this server gave; start again without it")
			return usageWindow{}, false
		}
		from = at
	}
	if !end.After(from) {
		invalid(w, "end_time", "end_time must be after start_time")
		return usageWindow{}, false
	}
	win := usageWindow{start: from, end: from.Add(time.Duration(limit) * spec.step), step: spec.step, granularity: spec.granularity}
	if win.end.Before(end) {
		win.next = win.end
	} else {
		win.end = end.UTC()
	}
	return win, true
}

func encodePage(t time.Time) string {
	return "page_" + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.Unix(), 10)))
}

func decodePage(token string) (time.Time, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "page_"))
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}

// mayReadUsage says whether the user may read the organization's usage:
// create usagereports in the management group, as kubectl users need.
func (h *Handler) mayReadUsage(w http.ResponseWriter, r *http.Request) bool {
	u, _ := genericapirequest.UserFrom(r.Context())
	decision, reason, err := h.Authorizer.Authorize(r.Context(), authorizer.AttributesRecord{User: u, Verb: "create",
		APIGroup: "management.hub.minimax.io", APIVersion: "v1alpha1", Resource: "usagereports", ResourceRequest: true})
	if err == nil && decision == authorizer.DecisionAllow {
		return true
	}
	message := "Reading usage needs a hub role (Viewer and up)"
	if reason != "" {
		message += ": " + reason
	}
	writeError(w, http.StatusForbidden, message, "invalid_request_error", "", "insufficient_permissions")
	return false
}

// groupings maps OpenAI's group_by values to the hub's dimensions.
var groupings = map[string]usage.Dimension{groupProject: usage.ByProject, groupKey: usage.ByKeyID, groupModel: usage.ByModel,
	groupLineItem: usage.ByModel, groupUser: usagereport.ByMember}

// The group_by values served.
const (
	groupProject  = "project_id"
	groupKey      = "api_key_id"
	groupModel    = "model"
	groupLineItem = "line_item"
	// groupUser groups by the member who owns each key: OpenAI's users.
	groupUser = "user_id"
)

// bucket is OpenAI's time bucket of results.
type bucket[T any] struct {
	Object    string `json:"object"`
	StartTime int64  `json:"start_time"`
	EndTime   int64  `json:"end_time"`
	Results   []T    `json:"results"`
}

// usagePage is OpenAI's page of buckets.
type usagePage[T any] struct {
	Object   string      `json:"object"`
	Data     []bucket[T] `json:"data"`
	HasMore  bool        `json:"has_more"`
	NextPage *string     `json:"next_page"`
}

// completionsResult is one group's usage of the completions endpoints in
// a bucket.
type completionsResult struct {
	Object            string  `json:"object"`
	InputTokens       int64   `json:"input_tokens"`
	OutputTokens      int64   `json:"output_tokens"`
	InputCachedTokens int64   `json:"input_cached_tokens"`
	InputAudioTokens  int64   `json:"input_audio_tokens"`
	OutputAudioTokens int64   `json:"output_audio_tokens"`
	NumModelRequests  int64   `json:"num_model_requests"`
	ProjectID         *string `json:"project_id"`
	UserID            *string `json:"user_id"`
	APIKeyID          *string `json:"api_key_id"`
	Model             *string `json:"model"`
	Batch             *bool   `json:"batch"`
}

// completions answers GET /v1/organization/usage/completions: the chat
// service's usage (chat completions, responses, messages), in 1h or 1d
// buckets.
func (h *Handler) completions(w http.ResponseWriter, r *http.Request) {
	if !h.mayReadUsage(w, r) {
		return
	}
	win, ok := h.window(w, r, "1d", false)
	if !ok {
		return
	}
	req, ok := reportRequest(w, r, win, "group_by", []string{groupProject, groupKey, groupModel, groupUser})
	if !ok {
		return
	}
	req.Filter.Services = []string{string(pricing.Chat)}
	report, err := h.Usage.Report(r.Context(), req)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, buckets(win, report, func(b usagereport.Bucket) completionsResult {
		return completionsResult{Object: "organization.usage.completions.result", InputTokens: b.InputTokens,
			InputCachedTokens: b.CachedInputTokens, OutputTokens: b.OutputTokens, NumModelRequests: b.Calls, ProjectID: group(b, usage.ByProject),
			APIKeyID: group(b, usage.ByKeyID), Model: group(b, usage.ByModel), UserID: group(b, usagereport.ByMember)}
	}))
}

// costsResult is one group's cost in a bucket.
type costsResult struct {
	Object    string  `json:"object"`
	Amount    amount  `json:"amount"`
	LineItem  *string `json:"line_item"`
	ProjectID *string `json:"project_id"`
	UserID    *string `json:"user_id"`
}

// amount is money as OpenAI writes it: a JSON number, here the exact
// decimal the hub computed, and a lower-case ISO 4217 currency.
type amount struct {
	Value    json.Number `json:"value"`
	Currency string      `json:"currency"`
}

// costs answers GET /v1/organization/costs: every service's cost, in
// daily buckets, by project or line item (the model, or the service for
// usage without one).
func (h *Handler) costs(w http.ResponseWriter, r *http.Request) {
	if !h.mayReadUsage(w, r) {
		return
	}
	win, ok := h.window(w, r, "1d", true)
	if !ok {
		return
	}
	req, ok := reportRequest(w, r, win, "group_by", []string{groupProject, groupLineItem, groupUser})
	if !ok {
		return
	}
	lineItems := false
	for _, d := range req.GroupBy {
		if d == usage.ByModel {
			lineItems = true
			req.GroupBy = append(req.GroupBy, usage.ByService)
		}
	}
	report, err := h.Usage.Report(r.Context(), req)
	if err != nil {
		fail(w, err)
		return
	}
	currency := strings.ToLower(report.Currency)
	writeJSON(w, http.StatusOK, buckets(win, report, func(b usagereport.Bucket) costsResult {
		out := costsResult{Object: "organization.costs.result", Amount: amount{Value: json.Number(b.Cost), Currency: currency},
			ProjectID: group(b, usage.ByProject), UserID: group(b, usagereport.ByMember)}
		if lineItems {
			item := b.Group[usage.ByModel]
			if item == "" {
				item = b.Group[usage.ByService]
			}
			out.LineItem = &item
		}
		return out
	}))
}

// reportRequest builds the usage report behind a page: UTC buckets of the
// window, grouped and filtered as asked (project_ids, api_key_ids,
// models).
func reportRequest(w http.ResponseWriter, r *http.Request, win usageWindow, param string, allowed []string) (usagereport.Request, bool) {
	req := usagereport.Request{From: win.start, To: win.end, Granularity: win.granularity, TimeZone: "UTC",
		Filter: usagereport.Filter{Projects: values(r, "project_ids"), KeyIDs: values(r, "api_key_ids"), Models: values(r, "models"),
			Members: values(r, "user_ids")}}
	for _, g := range values(r, param) {
		d, ok := groupings[g]
		if !ok || !slices.Contains(allowed, g) {
			invalid(w, param, fmt.Sprintf("%s %q is not served; use %s", param, g, strings.Join(allowed, ", ")))
			return req, false
		}
		req.GroupBy = append(req.GroupBy, d)
	}
	if err := usagereportValidate(&req); err != nil {
		invalid(w, "", err.Error())
		return req, false
	}
	return req, true
}

func usagereportValidate(req *usagereport.Request) error {
	_, err := req.Validate()
	var bad *usagereport.InvalidError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s %s", bad.Field, bad.Message)
	}
	return err
}

// buckets lays the report's groups out in every time bucket of the window,
// empty ones included, as OpenAI does.
func buckets[T any](win usageWindow, report *usagereport.Report, result func(usagereport.Bucket) T) usagePage[T] {
	byStart := map[int64][]T{}
	for _, b := range report.Buckets {
		byStart[b.Start.Unix()] = append(byStart[b.Start.Unix()], result(b))
	}
	out := usagePage[T]{Object: "page", Data: []bucket[T]{}}
	for at := win.start; at.Before(win.end); at = at.Add(win.step) {
		end := at.Add(win.step)
		if end.After(win.end) {
			end = win.end
		}
		results := byStart[at.Unix()]
		if results == nil {
			results = []T{}
		}
		out.Data = append(out.Data, bucket[T]{Object: "bucket", StartTime: at.Unix(), EndTime: end.Unix(), Results: results})
	}
	if !win.next.IsZero() {
		next := encodePage(win.next)
		out.HasMore, out.NextPage = true, &next
	}
	return out
}

// group is a grouped dimension's value, or nil (JSON null) when the
// report is not grouped by it.
func group(b usagereport.Bucket, d usage.Dimension) *string {
	v, ok := b.Group[d]
	if !ok {
		return nil
	}
	return &v
}
