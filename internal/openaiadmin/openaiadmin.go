// Package openaiadmin serves the management API's OpenAI Admin
// API–compatible surface, so that cost dashboards and scripts written for
// OpenAI's organization endpoints work against the hub by changing the
// base URL and the key:
//
//	GET    /v1/organization/usage/completions
//	GET    /v1/organization/costs
//	GET    /v1/organization/projects, POST (create), GET/POST …/{id}, POST …/{id}/archive
//	GET    /v1/organization/projects/{id}/api_keys, GET/DELETE …/api_keys/{key_id}
//	GET    /v1/organization/users, GET/POST/DELETE …/users/{id}
//	GET    /v1/organization/invites, POST, GET/DELETE …/invites/{id}
//	GET    /v1/organization/audit_logs
//
// Shapes follow OpenAI's public API reference (objects, list and page
// envelopes, error bodies); docs/openai-admin-api.md gives the mapping of
// IDs, roles and services and every difference. Every read and write of a
// hub resource is made in kube-apiserver as the caller (impersonated), so
// RBAC and admission decide as for kubectl; usage and costs are asked of
// the usage server once the caller may read usage.
package openaiadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// Prefix is the path under which the surface is served.
const Prefix = "/v1/organization/"

// Usage answers usage reports and pages of the audit log (the management
// API's client of the usage server).
type Usage interface {
	Report(ctx context.Context, req usagereport.Request) (*usagereport.Report, error)
	AuditPage(ctx context.Context, q AuditQuery) (entries []auditlog.Entry, next string, err error)
}

// AuditQuery selects a page of the audit log.
type AuditQuery struct {
	From, To time.Time
	Actor    string
	Limit    int
	// Continue is the token of the entry the page starts after.
	Continue string
}

// Handler serves the surface. The request's user is the one the management
// API's authentication filter put in its context.
type Handler struct {
	Usage Usage
	// ActAs is a client of kube-apiserver acting as the request's user.
	ActAs func(ctx context.Context) (client.Client, error)
	// Authorizer decides what RBAC lets the user do (usage reads).
	Authorizer authorizer.Authorizer
	// Now tells the time; nil means time.Now.
	Now func() time.Time

	routesOnce sync.Once
	routes     *http.ServeMux
}

// ServeHTTP routes a request under Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.routesOnce.Do(h.route)
	h.routes.ServeHTTP(w, r)
}

// route builds the routes, once.
func (h *Handler) route() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/organization/usage/completions", h.completions)
	mux.HandleFunc("GET /v1/organization/costs", h.costs)
	mux.HandleFunc("GET /v1/organization/projects", h.listProjects)
	mux.HandleFunc("POST /v1/organization/projects", h.createProject)
	mux.HandleFunc("GET /v1/organization/projects/{project}", h.getProject)
	mux.HandleFunc("POST /v1/organization/projects/{project}", h.updateProject)
	mux.HandleFunc("POST /v1/organization/projects/{project}/archive", h.archiveProject)
	mux.HandleFunc("GET /v1/organization/projects/{project}/api_keys", h.listKeys)
	mux.HandleFunc("GET /v1/organization/projects/{project}/api_keys/{key}", h.getKey)
	mux.HandleFunc("DELETE /v1/organization/projects/{project}/api_keys/{key}", h.deleteKey)
	mux.HandleFunc("GET /v1/organization/users", h.listUsers)
	mux.HandleFunc("GET /v1/organization/users/{user}", h.getUser)
	mux.HandleFunc("POST /v1/organization/users/{user}", h.updateUser)
	mux.HandleFunc("DELETE /v1/organization/users/{user}", h.deleteUser)
	mux.HandleFunc("GET /v1/organization/invites", h.listInvites)
	mux.HandleFunc("POST /v1/organization/invites", h.createInvite)
	mux.HandleFunc("GET /v1/organization/invites/{invite}", h.getInvite)
	mux.HandleFunc("DELETE /v1/organization/invites/{invite}", h.deleteInvite)
	mux.HandleFunc("GET /v1/organization/audit_logs", h.auditLogs)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", "", "unknown_url")
	})
	h.routes = mux
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// errorBody is OpenAI's error envelope.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError writes an OpenAI error body; param and code are null when
// empty.
func writeError(w http.ResponseWriter, status int, message, kind, param, code string) {
	e := apiError{Message: message, Type: kind}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	writeJSON(w, status, errorBody{Error: e})
}

// invalid refuses a request parameter (400).
func invalid(w http.ResponseWriter, param, message string) {
	writeError(w, http.StatusBadRequest, message, "invalid_request_error", param, "")
}

// fail answers an error of kube-apiserver or of the usage server in
// OpenAI's terms: its status (403, 404, 409, 422 as 400, …) and message.
func fail(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		writeError(w, http.StatusInternalServerError, "The hub could not answer; retry later.", "server_error", "", "")
		return
	}
	s := status.Status()
	code := int(s.Code)
	switch code {
	case http.StatusUnprocessableEntity:
		code = http.StatusBadRequest
	case 0:
		code = http.StatusInternalServerError
	}
	kind := "invalid_request_error"
	if code >= 500 {
		kind = "server_error"
	}
	writeError(w, code, s.Message, kind, "", strings.ToLower(string(s.Reason)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// listObject is the object of OpenAI's list envelope.
const listObject = "list"

// list is OpenAI's list envelope, paged with after and limit.
type list[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// page cuts items (sorted by id) after the id after, to at most limit, as
// OpenAI's cursor pagination does.
func page[T any](items []T, id func(T) string, after string, limit int) list[T] {
	start := 0
	if after != "" {
		for start < len(items) && id(items[start]) <= after {
			start++
		}
	}
	items = items[start:]
	out := list[T]{Object: listObject, Data: items}
	if len(items) > limit {
		out.Data, out.HasMore = items[:limit], true
	}
	if out.Data == nil {
		out.Data = []T{}
	}
	if n := len(out.Data); n > 0 {
		first, last := id(out.Data[0]), id(out.Data[n-1])
		out.FirstID, out.LastID = &first, &last
	}
	return out
}

// limitParam reads limit: default def, at most max.
func limitParam(w http.ResponseWriter, r *http.Request, def, maximum int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maximum {
		invalid(w, "limit", fmt.Sprintf("limit must be an integer from 1 to %d, not %q", maximum, v))
		return 0, false
	}
	return n, true
}

// values reads a list parameter, in either form clients send it: name[]=a
// or name=a (each possibly repeated).
func values(r *http.Request, name string) []string {
	q := r.URL.Query()
	out := append([]string{}, q[name+"[]"]...)
	return append(out, q[name]...)
}

// unix is a time as OpenAI's Unix seconds; nil for the zero time.
func unix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := t.Unix()
	return &s
}

// decodeBody reads a JSON body of at most 64 KiB into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(v); err != nil {
		invalid(w, "", "The body must be a JSON object: "+err.Error())
		return false
	}
	return true
}

// dnsLabel turns a display name into a name kube-apiserver takes: lower
// case letters, digits and dashes, at most 63.
func dnsLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if len(out) > validation.DNS1123LabelMaxLength {
		out = strings.TrimSuffix(out[:validation.DNS1123LabelMaxLength], "-")
	}
	return out
}
