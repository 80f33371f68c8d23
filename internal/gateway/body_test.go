package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

func TestPrepareBody(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		service          pricing.Service
		// want is the body sent upstream, compared as JSON; "" means unchanged.
		want    string
		model   string
		seconds int64
		flags   []usage.Flag
	}{
		{name: "a JSON call passes unchanged", path: "/v1/chat/completions", service: pricing.Chat,
			body: `{"model":"MiniMax-M2","messages":[{"role":"user","content":"hi"}]}`, model: "MiniMax-M2"},
		{name: "a stream is asked for usage", path: "/v1/chat/completions", service: pricing.Chat,
			body:  `{"model":"MiniMax-M2","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.2}`,
			want:  `{"model":"MiniMax-M2","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.2,"stream_options":{"include_usage":true}}`,
			model: "MiniMax-M2"},
		{name: "other stream options are kept", path: "/v1/chat/completions", service: pricing.Chat,
			body:  `{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}`,
			want:  `{"model":"m","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`,
			model: "m"},
		{name: "null stream options become an object", path: "/v1/chat/completions", service: pricing.Chat,
			body: `{"model":"m","stream":true,"stream_options":null}`,
			want: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, model: "m"},
		{name: "a stream that asks for usage passes unchanged", path: "/v1/chat/completions", service: pricing.Chat,
			body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, model: "m"},
		{name: "only chat completions are rewritten", path: "/v1/responses", service: pricing.Chat,
			body: `{"model":"m","stream":true}`, model: "m"},
		{name: "usage is asked for whatever the request said, in any case", path: "/v1/chat/completions", service: pricing.Chat,
			body:  `{"model":"m","stream":true,"stream_options":{"include_usage":false,"Include_Usage":true,"x":1}}`,
			want:  `{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}`,
			model: "m"},
		{name: "video takes its duration", path: "/v1/video_generation", service: pricing.Video,
			body: `{"model":"MiniMax-Hailuo-02","duration":10}`, model: "MiniMax-Hailuo-02", seconds: 10},
		{name: "video rounds a fraction of a second up", path: "/v1/video_generation", service: pricing.Video,
			body: `{"model":"MiniMax-Hailuo-02","duration":6.2}`, model: "MiniMax-Hailuo-02", seconds: 7},
		{name: "video defaults to 6 seconds", path: "/v1/video_generation", service: pricing.Video,
			body: `{"model":"MiniMax-Hailuo-02"}`, model: "MiniMax-Hailuo-02", seconds: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			c := &call{route: testRoutes.Match(http.MethodPost, tc.path)}
			if c.route.Service != tc.service {
				t.Fatalf("%s is billed as %s", tc.path, c.route.Service)
			}
			if err := prepareBody(r, c); err != nil {
				t.Fatal(err)
			}
			sent := new(bytes.Buffer)
			if _, err := sent.ReadFrom(r.Body); err != nil {
				t.Fatal(err)
			}
			if r.ContentLength != int64(sent.Len()) {
				t.Errorf("Content-Length %d for a body of %d bytes", r.ContentLength, sent.Len())
			}
			want := tc.want
			if want == "" {
				if sent.String() != tc.body {
					t.Errorf("sent %s, want the body unchanged", sent)
				}
			} else if !sameJSON(t, sent.String(), want) {
				t.Errorf("sent %s, want %s", sent, want)
			}
			if c.model != tc.model || c.seconds != tc.seconds || !slices.Equal(c.flags, tc.flags) {
				t.Errorf("metered model %q, %d seconds, flags %v; want %q, %d, %v", c.model, c.seconds, c.flags, tc.model, tc.seconds, tc.flags)
			}
		})
	}
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

var testRoutes, _ = NewRouteTable(DefaultRoutes())

func TestPrepareBodyRefusesTooLarge(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(strings.Repeat(" ", maxRequestBody+1)))
	r.Header.Set("Content-Type", "application/json")
	if err := prepareBody(r, &call{route: testRoutes.Match(http.MethodPost, "/v1/chat/completions")}); !errors.Is(err, errTooLarge) {
		t.Fatalf("got %v, want errTooLarge", err)
	}
}

func TestPrepareBodyRefusesWhatIsNotAJSONObject(t *testing.T) {
	for _, body := range []string{`{"model":`, `[1,2]`, `"text"`, `model=x`, `{} {}`} {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		err := prepareBody(r, &call{route: testRoutes.Match(http.MethodPost, "/v1/chat/completions")})
		if err == nil || !strings.Contains(err.Error(), "must be a JSON object") {
			t.Errorf("%s: got %v", body, err)
		}
	}
}

// TestPrepareBodyRefusesKeysNamedTwice: JSON readers disagree on which of
// two values of a key wins (and some match keys whatever their case), so a
// body that names a metered key twice could be metered as one model and
// served as another.
func TestPrepareBodyRefusesKeysNamedTwice(t *testing.T) {
	for path, bodies := range map[string][]string{
		"/v1/chat/completions": {`{"model":"m","stream":"yes"}`, `{"model":7}`, `{"stream":1}`},
		"/v1/video_generation": {`{"duration":-3}`, `{"duration":"10"}`, `{"duration":1e12}`},
		"/v1/responses":        {`{"model":"m","background":true}`, `{"model":"m","background":"no"}`},
	} {
		for _, body := range bodies {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			err := prepareBody(r, &call{route: testRoutes.Match(http.MethodPost, path)})
			if err == nil || !strings.Contains(err.Error(), "must be") && !strings.Contains(err.Error(), "background") {
				t.Errorf("%s %s: got %v", path, body, err)
			}
		}
	}
	for _, body := range []string{
		`{"model":"cheap","model":"dear"}`,
		`{"model":"cheap","Model":"dear"}`,
		`{"stream":false,"STREAM":true}`,
		`{"model":"m","stream_options":{},"Stream_Options":{"include_usage":false}}`,
	} {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		err := prepareBody(r, &call{route: testRoutes.Match(http.MethodPost, "/v1/chat/completions")})
		if err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("%s: got %v", body, err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"model":"nested is fine"}]}`))
	if err := prepareBody(r, &call{route: testRoutes.Match(http.MethodPost, "/v1/chat/completions")}); err != nil {
		t.Errorf("a nested key of the same name is not the request's: %v", err)
	}
}

func TestBodyObjectsFindsEveryReference(t *testing.T) {
	body := `{"training_file":"file-mine","Training_File":"file-theirs","training_file":"file-last",` +
		`"messages":[{"content":[{"file":{"FILE_ID":"file-nested"}},"file_id"]}],"n":1,"validation_file":null}`
	got, err := bodyObjects([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(got))
	for _, ref := range got {
		ids = append(ids, string(ref.kind)+":"+ref.id)
	}
	want := []string{"file:file-mine", "file:file-theirs", "file:file-last", "file:file-nested"}
	if !slices.Equal(ids, want) {
		t.Errorf("found %v, want %v", ids, want)
	}
	if refs, _ := bodyObjects([]byte(`{"model":"m"}`)); refs != nil {
		t.Error("a body without references is not decoded")
	}
	hidden := []string{`{"training\u005ffile":"file-x"}`, `{"n":1e400,"training_file":"file-x"}`, `{"file_ids":["file-x"]}`}
	for _, body := range hidden {
		if refs, err := bodyObjects([]byte(body)); err != nil || len(refs) != 1 || refs[0].id != "file-x" {
			t.Errorf("%s: found %v, %v", body, refs, err)
		}
	}
	if _, err := bodyObjects([]byte(`{"file_id":"a",`)); err == nil {
		t.Error("a body that does not decode is an error, not a body without references")
	}
	many := `{"file_ids":[` + strings.Repeat(`"f",`, maxReferences) + `"f"]}`
	if _, err := bodyObjects([]byte(many)); err == nil {
		t.Error("too many references are refused")
	}
}

func TestRouteTable(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/v1/chat/completions", "/v1/chat/completions"},
		{"GET", "/v1/files/file-abc123/content", "/v1/files/{file_id}/content"},
		{"GET", "/v1/files/retrieve", "/v1/files/retrieve"},
		{"HEAD", "/v1/models", "/v1/models"},
		{"GET", "/v1/chat/completions", ""},
		{"POST", "/v1/chat/completions/", ""},
		{"GET", "/v1/files//content", ""},
		{"GET", "/v1/files/a/b/content", ""},
		{"GET", "/v1/files/../content", ""},
		{"GET", "/v1/files/./content", ""},
		{"POST", "/v2/anything", ""},
	} {
		got := ""
		if r := testRoutes.Match(tc.method, tc.path); r != nil {
			got = r.Path
		}
		if got != tc.want {
			t.Errorf("%s %s: matched %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
	for _, bad := range []Route{
		{Method: "GET", Path: "v1/x", Service: "chat"},
		{Method: "GET", Path: "/v1/{x", Service: "chat"},
		{Method: "GET", Path: "/v1/x", Service: "tea"},
		{Method: "GET", Path: "/v1/x", Service: "chat", Usage: "guess"},
		{Method: "GET", Path: "/v1/x", Service: "video", Usage: UsageVideoRequest},
	} {
		if _, err := NewRouteTable([]Route{bad}); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}
