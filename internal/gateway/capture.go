package gateway

import (
	"bytes"
	"encoding/json"
	"io"
)

// tokenUsage is the OpenAI usage object.
type tokenUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

const (
	// headSize and tailSize bound what a JSON capture keeps: the model name
	// comes early in a response, the usage object last, and nothing else is
	// needed, so large responses (embeddings) cost no memory.
	headSize = 4 << 10
	tailSize = 64 << 10
	// maxEventLine bounds one server-sent event line; longer lines are
	// skipped (they carry content, not usage).
	maxEventLine = 1 << 20
)

// capture watches a response body stream past and finds its token usage:
// in a JSON body, the top-level "usage" object; in server-sent events, the
// last event that carries one (the final chunk, with stream_options
// include_usage). It never holds the whole body.
type capture struct {
	sse bool

	head []byte
	tail []byte

	line     []byte
	skipping bool
	usage    *tokenUsage
	model    string
}

var _ io.Writer = &capture{}

func (c *capture) Write(p []byte) (int, error) {
	if c.sse {
		c.writeSSE(p)
		return len(p), nil
	}
	if room := headSize - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*tailSize {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailSize:]...)
	}
	return len(p), nil
}

func (c *capture) writeSSE(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !c.skipping {
				c.line = append(c.line, p...)
				if len(c.line) > maxEventLine {
					c.line, c.skipping = c.line[:0], true
				}
			}
			return
		}
		if !c.skipping {
			c.line = append(c.line, p[:i]...)
			c.event(c.line)
		}
		c.line, c.skipping = c.line[:0], false
		p = p[i+1:]
	}
}

// event reads one "data:" line of an event stream.
func (c *capture) event(line []byte) {
	data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:"))
	if !ok || !bytes.Contains(data, []byte(`"usage"`)) {
		if ok && c.model == "" {
			c.modelFrom(data)
		}
		return
	}
	var chunk struct {
		Model string      `json:"model"`
		Usage *tokenUsage `json:"usage"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &chunk) == nil {
		if chunk.Usage != nil {
			c.usage = chunk.Usage
		}
		if chunk.Model != "" {
			c.model = chunk.Model
		}
	}
}

func (c *capture) modelFrom(data []byte) {
	var chunk struct {
		Model string `json:"model"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &chunk) == nil {
		c.model = chunk.Model
	}
}

// result returns what the body said about usage.
func (c *capture) result() (u *tokenUsage, model string) {
	if c.sse {
		return c.usage, c.model
	}
	return lastObject[tokenUsage](c.tail, `"usage"`), firstString(c.head, `"model"`)
}

// lastObject decodes the value after the last occurrence of key in b.
func lastObject[T any](b []byte, key string) *T {
	var v T
	if !decodeAfter(b, bytes.LastIndex(b, []byte(key)), len(key), &v) {
		return nil
	}
	return &v
}

// firstString decodes the string after the first occurrence of key in b.
func firstString(b []byte, key string) string {
	var s string
	decodeAfter(b, bytes.Index(b, []byte(key)), len(key), &s)
	return s
}

// decodeAfter decodes into v the JSON value that follows the key found at
// b[i:i+n] and a colon.
func decodeAfter(b []byte, i, n int, v any) bool {
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(b[i+n:], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	end := valueEnd(rest)
	return end > 0 && json.Unmarshal(rest[:end], v) == nil
}

// valueEnd returns the length of the JSON value at the start of b (which is
// followed by more of the document), or -1 if b ends inside it. It only
// finds the value's end; json.Unmarshal checks it.
func valueEnd(b []byte) int {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
				if depth == 0 {
					return i + 1
				}
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // a number, true, false or null ended by its container
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 && !inString {
		return len(b)
	}
	return -1
}

// meteredBody passes a response body through to the client and calls done,
// once, with what the capture found when the body ends or is closed.
type meteredBody struct {
	io.ReadCloser
	capture *capture
	done    func(c *capture, complete bool)
	fired   bool
}

func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	if n > 0 {
		_, _ = m.capture.Write(p[:n])
	}
	if err == io.EOF {
		m.finish(true)
	}
	return n, err
}

func (m *meteredBody) Close() error {
	m.finish(false)
	return m.ReadCloser.Close()
}

func (m *meteredBody) finish(complete bool) {
	if !m.fired {
		m.fired = true
		m.done(m.capture, complete)
	}
}
