package gateway

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/minimax/platform-hub/internal/keys"
)

// Headers the gateway adds to every request it forwards, so that the
// upstream knows whose call it serves. A client cannot set them: they are
// not among the forwarded headers.
const (
	// ProjectHeader names the project (and namespace) of the calling key.
	ProjectHeader = "X-Hub-Project"
	// KeyIDHeader is the public ID of the calling key.
	KeyIDHeader = "X-Hub-Key-Id"
)

// encodingGzip is the content coding the gateway asks the upstream for.
const encodingGzip = "gzip"

// forwardedHeaders are the only request headers passed upstream: what the
// OpenAI and Anthropic APIs and their SDKs read, and tracing. Everything
// else (cookies, proxy and credential headers such as Authorization,
// x-api-key, api-key) stays at the gateway.
var forwardedHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "User-Agent",
	"OpenAI-Beta", "Anthropic-Version", "Anthropic-Beta",
	"X-Request-Id", "X-Client-Request-Id", "Idempotency-Key",
	"Traceparent", "Tracestate",
	// Conditional and partial downloads of files and videos.
	"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
}

func init() {
	for i, h := range forwardedHeaders {
		forwardedHeaders[i] = http.CanonicalHeaderKey(h)
	}
}

// holdsHubKey tells whether a value holds something shaped like a hub key
// (its prefix, in any case): such a value never leaves the gateway, whatever
// header or parameter it is in.
func holdsHubKey(v string) bool {
	return strings.Contains(strings.ToLower(v), keys.Prefix)
}

// upstreamHeaders builds the headers of a forwarded request from the
// client's: the allowed ones that hold no hub key, the caller's identity,
// and the upstream's own credential.
func upstreamHeaders(in http.Header, c *call, upstreamKey string) http.Header {
	out := make(http.Header, len(forwardedHeaders)+4)
	for _, name := range forwardedHeaders {
		for _, v := range in[name] {
			if !holdsHubKey(v) {
				out[name] = append(out[name], v)
			}
		}
	}
	if c.route.Body == BodyJSON {
		out.Set("Content-Type", "application/json") // what the gateway read it as
	}
	out.Set(ProjectHeader, c.key.Namespace)
	out.Set(KeyIDHeader, c.keyID)
	if upstreamKey != "" {
		out.Set("Authorization", "Bearer "+upstreamKey)
	}
	if c.acceptsGzip {
		// The answer comes compressed, as the client accepts it, and is
		// decompressed for metering on the side. Otherwise the header stays
		// unset: Go's transport then asks for gzip and decompresses itself.
		out.Set("Accept-Encoding", encodingGzip)
	}
	return out
}

// withoutHubKeys drops the query parameters whose name or (decoded) value
// holds a hub key.
func withoutHubKeys(q url.Values) url.Values {
	for name, values := range q {
		if holdsHubKey(name) {
			delete(q, name)
			continue
		}
		kept := values[:0]
		for _, v := range values {
			if !holdsHubKey(v) {
				kept = append(kept, v)
			}
		}
		q[name] = kept
	}
	return q
}

// acceptsGzip tells whether an Accept-Encoding header (RFC 9110, section
// 12.5.3) lets the answer be gzip: gzip or x-gzip, or * when gzip is not
// named, with a quality above zero.
func acceptsGzip(h http.Header) bool {
	star := false
	for _, line := range h.Values("Accept-Encoding") {
		for _, item := range strings.Split(line, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						q = f
					}
				}
			}
			switch coding {
			case encodingGzip, "x-" + encodingGzip:
				return q > 0
			case "*":
				star = q > 0
			}
		}
	}
	return star
}
