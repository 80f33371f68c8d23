package serving

import (
	"io"
	"net"
	"net/http"
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
	for name, b := range map[string]Timeouts{"API": API, "Gateway": Gateway} {
		if b.ReadHeader <= 0 || b.Read <= 0 || b.Write <= 0 || b.Idle <= 0 {
			t.Errorf("%s: %+v", name, b)
		}
	}
	if Metrics.Read <= 0 || Metrics.Write <= 0 {
		t.Errorf("Metrics: %+v", Metrics)
	}
}
