package openaiadmin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestErrorsRewritesOnlyStatus: a Kubernetes Status under the prefix
// becomes OpenAI's error body with the same status; the surface's own
// answers, and everything outside the prefix, pass unchanged.
func TestErrorsRewritesOnlyStatus(t *testing.T) {
	status := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no","reason":"Forbidden","code":403}`))
	})
	for _, c := range []struct {
		path, want string
		handler    http.Handler
	}{
		{"/v1/organization/projects", `{"error":{"message":"no","type":"invalid_request_error","param":null,"code":"insufficient_permissions"}}`, status},
		{"/apis/management.hub.minimax.io/v1alpha1", `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no","reason":"Forbidden","code":403}`, status},
		{"/v1/organization/nope", `{"error":{"message":"x","type":"invalid_request_error","param":null,"code":"unknown_url"}}`,
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				writeError(w, http.StatusNotFound, "x", "invalid_request_error", "", "unknown_url")
			})},
	} {
		rec := httptest.NewRecorder()
		Errors(c.handler).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var got, want any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v: %s", c.path, err, rec.Body)
		}
		_ = json.Unmarshal([]byte(c.want), &want)
		if rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
			t.Errorf("%s: status %d", c.path, rec.Code)
		}
		if gotJSON, _ := json.Marshal(got); string(gotJSON) != mustJSON(want) {
			t.Errorf("%s: got %s, want %s", c.path, gotJSON, c.want)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestPage: lists are cut after an ID, to a limit, with first and last
// IDs, as OpenAI's cursor pagination reads them.
func TestPage(t *testing.T) {
	ids := []string{"a", "b", "c"}
	id := func(s string) string { return s }
	p := page(ids, id, "", 2)
	if len(p.Data) != 2 || !p.HasMore || *p.FirstID != "a" || *p.LastID != "b" {
		t.Errorf("first page: %+v", p)
	}
	p = page(ids, id, "b", 2)
	if len(p.Data) != 1 || p.HasMore || *p.FirstID != "c" {
		t.Errorf("after b: %+v", p)
	}
	p = page(ids, id, "c", 2)
	if len(p.Data) != 0 || p.FirstID != nil || p.Data == nil {
		t.Errorf("after the last: %+v", p)
	}
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{"Data Science": "data-science", "  --Ünïcode team 2--": "n-code-team-2", "!!!": ""} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
