package gateway

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

func feed(c *capture, body string, chunk int) {
	for len(body) > 0 {
		n := min(chunk, len(body))
		_, _ = c.Write([]byte(body[:n]))
		body = body[n:]
	}
}

func TestCaptureJSON(t *testing.T) {
	body := `{"id":"x","model":"MiniMax-M2","choices":[{"message":{"content":"the \"usage\" of words"}}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46},"base_resp":{"status_code":0}}`
	for _, chunk := range []int{1, 7, 1 << 20} {
		c := &capture{}
		feed(c, body, chunk)
		u, model := c.result()
		if u == nil || u.PromptTokens != 12 || u.CompletionTokens != 34 || model != "MiniMax-M2" {
			t.Fatalf("chunks of %d: usage %+v, model %q", chunk, u, model)
		}
	}
}

func TestCaptureLargeJSONKeepsLittle(t *testing.T) {
	// An embeddings response far larger than what the capture keeps.
	var b strings.Builder
	b.WriteString(`{"object":"list","model":"embo-01","data":[`)
	for i := range 200_000 {
		fmt.Fprintf(&b, `{"index":%d,"embedding":[0.1,0.2,0.3]},`, i)
	}
	b.WriteString(`{"index":-1}],"usage":{"prompt_tokens":99999,"total_tokens":99999}}`)
	c := &capture{}
	feed(c, b.String(), 32<<10)
	u, model := c.result()
	if u == nil || u.PromptTokens != 99999 || model != "embo-01" {
		t.Fatalf("usage %+v, model %q", u, model)
	}
	if kept := len(c.head) + cap(c.tail); kept > headSize+4*tailSize {
		t.Fatalf("the capture kept %d bytes of a %d-byte body", kept, b.Len())
	}
}

func TestCaptureSSE(t *testing.T) {
	stream := "data: {\"model\":\"MiniMax-M2\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"the usage\"}}],\"usage\":null}\r\n\r\n" +
		": keep-alive comment\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}\n\n" +
		"data: [DONE]\n\n"
	for _, chunk := range []int{1, 3, 1 << 20} {
		c := &capture{sse: true}
		feed(c, stream, chunk)
		u, model := c.result()
		if u == nil || u.PromptTokens != 5 || u.CompletionTokens != 9 || model != "MiniMax-M2" {
			t.Fatalf("chunks of %d: usage %+v, model %q", chunk, u, model)
		}
	}
}

func TestCaptureWithoutUsage(t *testing.T) {
	for _, c := range []*capture{{}, {sse: true}} {
		feed(c, `{"error":{"message":"bad request"}}`, 5)
		if u, _ := c.result(); u != nil {
			t.Fatalf("found usage %+v in a body without any", u)
		}
	}
}

func TestMeteredBodyReportsOnce(t *testing.T) {
	calls := 0
	m := &meteredBody{ReadCloser: io.NopCloser(strings.NewReader(`{"usage":{"prompt_tokens":1}}`)), capture: &capture{},
		done: func(c *capture, complete bool) {
			calls++
			if u, _ := c.result(); u == nil || u.PromptTokens != 1 || !complete {
				t.Errorf("usage %+v, complete %v", u, complete)
			}
		}}
	if _, err := io.ReadAll(m); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	if calls != 1 {
		t.Fatalf("done called %d times, want 1", calls)
	}
}

func TestValueEnd(t *testing.T) {
	for in, want := range map[string]int{
		`{"a":{"b":[1,2]},"c":"}"},"next":1}`: 25,
		`"a \"quoted\" } string", "x"`:        23,
		`12, "x"`:                             2,
		`null}`:                               4,
		`true`:                                4,
		`{"open": [1, 2`:                      -1,
		`"unterminated`:                       -1,
	} {
		if got := valueEnd([]byte(in)); got != want {
			t.Errorf("valueEnd(%s) = %d, want %d", in, got, want)
		}
	}
}
