// Package serving builds the hub's HTTP servers with bounds on how long a
// client may take: to send its headers, its whole request, to take the
// answer, and to keep an idle connection. Without them a client that
// trickles bytes (slowloris) holds a connection and its goroutine for ever.
package serving

import (
	"crypto/tls"
	"net/http"
	"time"
)

// Timeouts are an http.Server's bounds. Read covers the whole request,
// headers and body; Write runs from the end of the request's headers to
// the end of the answer, so it bounds the longest answer (a stream).
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// API is for the usage server's API: batches of events in, reports and
// CSV exports out.
var API = Timeouts{ReadHeader: 10 * time.Second, Read: time.Minute, Write: 5 * time.Minute, Idle: 2 * time.Minute}

// Gateway is for the OpenAI-compatible API: a request may carry a file
// upload, and an answer may be a stream that lasts as long as a long
// generation does.
var Gateway = Timeouts{ReadHeader: 30 * time.Second, Read: 10 * time.Minute, Write: 30 * time.Minute, Idle: 2 * time.Minute}

// Metrics is for metrics endpoints: a scrape is small and quick.
var Metrics = Timeouts{Read: 30 * time.Second, Write: time.Minute}

// NewServer is an http.Server for h with t's bounds, HTTP/1.1 only when it
// serves TLS (HTTP/2 is off against rapid-reset and stream-cancellation
// attacks, as on controller-runtime's servers).
func NewServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// WithDeadlines bounds each request h serves by t.Read and t.Write (from
// when the request reaches it), for servers whose http.Server the hub does
// not build, such as controller-runtime's metrics endpoint.
func WithDeadlines(h http.Handler, t Timeouts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		if t.Read > 0 {
			_ = rc.SetReadDeadline(now.Add(t.Read))
		}
		if t.Write > 0 {
			_ = rc.SetWriteDeadline(now.Add(t.Write))
		}
		h.ServeHTTP(w, r)
	})
}
