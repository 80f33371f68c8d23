package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minimax/platform-hub/internal/pricing"
)

func TestPrepareBody(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		service          pricing.Service
		// want is the body sent upstream, compared as JSON; "" means unchanged.
		want    string
		model   string
		seconds int64
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
		{name: "a field of the wrong type is left out", path: "/v1/chat/completions", service: pricing.Chat,
			body: `{"model":"m","stream":"yes"}`, model: "m"},
		{name: "a body that is not JSON passes unchanged", path: "/v1/chat/completions", service: pricing.Chat,
			body: `{"model":`},
		{name: "video takes its duration", path: "/v1/video_generation", service: pricing.Video,
			body: `{"model":"MiniMax-Hailuo-02","duration":10}`, model: "MiniMax-Hailuo-02", seconds: 10},
		{name: "video defaults to 6 seconds", path: "/v1/video_generation", service: pricing.Video,
			body: `{"model":"MiniMax-Hailuo-02","duration":-3}`, model: "MiniMax-Hailuo-02", seconds: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			c := &call{service: tc.service}
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
			if c.model != tc.model || c.seconds != tc.seconds {
				t.Errorf("metered model %q and %d seconds, want %q and %d", c.model, c.seconds, tc.model, tc.seconds)
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

func TestPrepareBodyRefusesTooLarge(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(strings.Repeat(" ", maxRequestBody+1)))
	r.Header.Set("Content-Type", "application/json")
	if err := prepareBody(r, &call{}); !errors.Is(err, errTooLarge) {
		t.Fatalf("got %v, want errTooLarge", err)
	}
}
