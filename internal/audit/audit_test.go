package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/audit"
	"github.com/minimax/platform-hub/internal/auditlog"
)

// TestRecorderSpoolsWhileTheServerIsDown: entries recorded while the server
// refuses them wait in the spool and all arrive once it is back; entries
// recorded after the sender stopped go to the spool too; an entry the
// server refuses as invalid is dropped without holding back the others.
func TestRecorderSpoolsWhileTheServerIsDown(t *testing.T) {
	g := NewWithT(t)
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" || r.URL.Path != audit.Path {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body struct{ Entries []auditlog.Entry }
		g.Expect(json.NewDecoder(r.Body).Decode(&body)).To(Succeed())
		for i, e := range body.Entries {
			if e.Name == "" { // as the usage server refuses it
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprintf(w, `{"error": {"message": "entry %d lacks [name]", "index": %d}}`, i, i)
				return
			}
		}
		mu.Lock()
		for _, e := range body.Entries {
			got[e.ID]++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	dir := t.TempDir()
	rec := &audit.Recorder{URL: srv.URL, Client: srv.Client(), Token: func() (string, error) { return "t0ken", nil },
		SpoolDir: dir, Log: logr.Discard(), FlushInterval: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Start(ctx) }()

	entry := func(i int) auditlog.Entry {
		return auditlog.Entry{ID: fmt.Sprintf("e%d", i), Time: time.Now(), Actor: "a", Action: "update", Kind: "Member", Name: "m"}
	}
	for i := range 1200 {
		rec.Record(entry(i))
		if i == 600 {
			bad := entry(-1)
			bad.Name = ""
			rec.Record(bad) // dropped, and holds nothing back
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	g.Expect(got).To(BeEmpty())
	mu.Unlock()

	down.Store(false)
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(got) }, 20*time.Second).Should(Equal(1200))

	cancel()
	<-done
	rec.Record(entry(5000)) // after the sender stopped: spooled, sent by the next start
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rec.Start(ctx) }()
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return got["e5000"] }, 20*time.Second).Should(Equal(1))
}
