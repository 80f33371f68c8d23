package openaiadmin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// Errors rewrites the answers that the management API's filters give
// before a request reaches the Handler (401 from authentication, 403 from
// authorization, 429, 5xx), which are Kubernetes Status objects, into
// OpenAI's error body for requests under Prefix, so that OpenAI clients
// read them. Every other answer passes unchanged.
func Errors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		rw := &statusRewriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		rw.finish()
	})
}

// statusRewriter holds back the body of an error answer until it is
// known whether it is a Kubernetes Status.
type statusRewriter struct {
	http.ResponseWriter
	status int
	held   bytes.Buffer
	passed bool
}

func (s *statusRewriter) WriteHeader(code int) {
	if s.passed || s.status != 0 {
		return
	}
	if code < http.StatusBadRequest {
		s.passed = true
		s.ResponseWriter.WriteHeader(code)
		return
	}
	s.status = code
}

func (s *statusRewriter) Write(p []byte) (int, error) {
	if s.status == 0 && !s.passed {
		s.WriteHeader(http.StatusOK)
	}
	if s.passed {
		return s.ResponseWriter.Write(p)
	}
	return s.held.Write(p)
}

// Flush passes a flush on once the answer is known to pass unchanged.
func (s *statusRewriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok && s.passed {
		f.Flush()
	}
}

func (s *statusRewriter) finish() {
	if s.passed || s.status == 0 {
		return
	}
	var status struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	if json.Unmarshal(s.held.Bytes(), &status) != nil || status.Kind != "Status" {
		s.ResponseWriter.WriteHeader(s.status)
		_, _ = s.ResponseWriter.Write(s.held.Bytes())
		return
	}
	kind, code := "invalid_request_error", strings.ToLower(status.Reason)
	switch {
	case s.status == http.StatusUnauthorized:
		code = "invalid_api_key"
		status.Message = "Incorrect or unusable API key: " + status.Message
	case s.status == http.StatusForbidden:
		code = "insufficient_permissions"
	case s.status == http.StatusTooManyRequests:
		kind = "rate_limit_error"
	case s.status >= http.StatusInternalServerError:
		kind = "server_error"
	}
	s.ResponseWriter.Header().Del("Content-Length")
	writeError(s.ResponseWriter, s.status, status.Message, kind, "", code)
}
