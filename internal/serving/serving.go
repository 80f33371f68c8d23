// Package serving builds the hub's HTTP servers with bounds on how long a
// client may take: to send its headers, its whole request, to take the
// answer, and to keep an idle connection. Without them a client that
// trickles bytes (slowloris) holds a connection and its goroutine for ever.
package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// Timeouts are an http.Server's bounds. Read covers the request's body
// (ReadHeader its headers); Write runs from the end of the request's
// headers to the end of the answer, so it bounds the longest answer (a
// stream).
//
// Read is not http.Server's ReadTimeout: that deadline stays on the
// connection while the answer is written, and when it passes, the server's
// background read fails and cancels the request's context, cutting a long
// answer at the read bound. Here the deadline is set when a request with a
// body starts and lifted once the body has been read.
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

// Webhooks is for admission webhooks: the API server sends a review and
// waits at most 30 s for the answer.
var Webhooks = Timeouts{Read: 10 * time.Second, Write: 30 * time.Second}

// Dashboard is for the dashboard's pages and forms: small requests, pages
// answered in well under a second.
var Dashboard = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: time.Minute, Idle: 2 * time.Minute}

// Metrics is for metrics endpoints: a scrape is small and quick.
var Metrics = Timeouts{Read: 30 * time.Second, Write: time.Minute}

// NewServer is an http.Server for h with t's bounds, HTTP/1.1 only when it
// serves TLS (HTTP/2 is off against rapid-reset and stream-cancellation
// attacks, as on controller-runtime's servers).
func NewServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{
		Handler:           bodyDeadline(h, t.Read),
		ReadHeaderTimeout: t.ReadHeader,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// Serve serves on l until ctx ends, over TLS with certDir's tls.crt and
// tls.key when certDir is set, then shuts down, giving requests under way
// 30 seconds.
func Serve(ctx context.Context, srv *http.Server, l net.Listener, certDir string) error {
	errs := make(chan error, 1)
	go func() {
		if certDir != "" {
			errs <- srv.ServeTLS(l, filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
		} else {
			errs <- srv.Serve(l)
		}
	}()
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// WithDeadlines bounds each request h serves, for servers whose
// http.Server the hub does not build (controller-runtime's metrics
// endpoint): its body by t.Read, its answer by t.Write, from when the
// request reaches h.
func WithDeadlines(h http.Handler, t Timeouts) http.Handler {
	h = bodyDeadline(h, t.Read)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.Write > 0 {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(t.Write))
		}
		h.ServeHTTP(w, r)
	})
}

// bodyDeadline gives a request that has a body read seconds to send it,
// and lifts the deadline once the body has been read to its end. A body
// left unread keeps the deadline, which then bounds the server's discarding
// of it.
// A request without a body gets none: the server reads on in the
// background while the answer is written, and a deadline then would
// cancel the request.
func bodyDeadline(h http.Handler, read time.Duration) http.Handler {
	if read <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(read))
		r.Body = &liftOnEnd{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		h.ServeHTTP(w, r)
	})
}

// liftOnEnd calls lift once, at the body's end.
type liftOnEnd struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *liftOnEnd) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}
