package serving

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// trickle connects to addr, sends a request whose body never ends (a byte
// every 50ms), and returns how long the server took to close the
// connection, or fails after 5s.
func trickle(t *testing.T, addr string) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	for {
		select {
		case <-closed:
			return time.Since(start)
		case <-time.After(50 * time.Millisecond):
			if time.Since(start) > 5*time.Second {
				t.Fatal("the server kept a trickling client for 5s")
			}
			_, _ = conn.Write([]byte("x"))
		}
	}
}

func serve(t *testing.T, srv *http.Server) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func readAll(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, "too slow", http.StatusRequestTimeout)
	}
}

// TestSlowClientsAreCutOff: a client that trickles its request body is cut
// off at the read bound, by the servers the hub builds and, through
// WithDeadlines, by servers it only hands a handler to.
func TestSlowClientsAreCutOff(t *testing.T) {
	bounds := Timeouts{ReadHeader: time.Second, Read: 300 * time.Millisecond, Write: time.Second, Idle: time.Second}
	if took := trickle(t, serve(t, NewServer(http.HandlerFunc(readAll), bounds))); took > 2*time.Second {
		t.Errorf("NewServer's server took %v", took)
	}
	plain := &http.Server{Handler: WithDeadlines(http.HandlerFunc(readAll), bounds), ReadHeaderTimeout: time.Second}
	if took := trickle(t, serve(t, plain)); took > 2*time.Second {
		t.Errorf("WithDeadlines took %v", took)
	}
}

// TestEveryRoleHasBounds: the roles' bounds are all set.
func TestEveryRoleHasBounds(t *testing.T) {
	for name, b := range map[string]Timeouts{"API": API, "Gateway": Gateway, "Dashboard": Dashboard} {
		if b.ReadHeader <= 0 || b.Read <= 0 || b.Write <= 0 || b.Idle <= 0 {
			t.Errorf("%s: %+v", name, b)
		}
	}
	for name, b := range map[string]Timeouts{"Metrics": Metrics, "Webhooks": Webhooks} {
		if b.Read <= 0 || b.Write <= 0 {
			t.Errorf("%s: %+v", name, b)
		}
	}
}

// TestLongAnswersOutliveTheReadBound: an answer that takes longer than the
// read bound (a stream) is not cut by it, with or without a request body:
// the request's context stays alive, and the answer arrives whole.
func TestLongAnswersOutliveTheReadBound(t *testing.T) {
	bounds := Timeouts{ReadHeader: time.Second, Read: 200 * time.Millisecond, Write: 5 * time.Second, Idle: time.Second}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-time.After(600 * time.Millisecond):
			_, _ = io.WriteString(w, "done")
		case <-r.Context().Done():
			t.Error("the request's context was cancelled while answering")
		}
	})
	for name, h := range map[string]http.Handler{"NewServer": nil, "WithDeadlines": WithDeadlines(slow, bounds)} {
		srv := NewServer(slow, bounds)
		if h != nil {
			srv = &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
		}
		base := "http://" + serve(t, srv)
		for _, body := range []string{"", "a body"} {
			method := http.MethodGet
			if body != "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, base, strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", name, method, err)
			}
			got, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(got) != "done" {
				t.Errorf("%s %s: got %q", name, method, got)
			}
		}
	}
}
