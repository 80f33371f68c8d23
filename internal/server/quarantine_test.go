package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/testpg"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestPoisonEventIsQuarantined gives the server an event that passes every
// check but that its store refuses (PostgreSQL, with a trigger that raises
// for one model): the event is quarantined and counted, the rest of its
// batch is stored, and the batches behind it are not held up.
func TestPoisonEventIsQuarantined(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	pg, err := testpg.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = pg.Stop() })
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g.Expect(pg.WaitReady(waitCtx)).To(Succeed())
	dsn, err := pg.NewDatabase(ctx, "poison")
	g.Expect(err).NotTo(HaveOccurred())
	stores, err := server.OpenStores(ctx, dsn)
	g.Expect(err).NotTo(HaveOccurred())
	store := stores.Usage
	db, err := sql.Open("pgx", dsn)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = db.Close() }()
	_, err = db.ExecContext(ctx, `CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
		BEGIN
			IF NEW.model = 'poison' THEN RAISE EXCEPTION 'this row cannot be stored'; END IF;
			IF NEW.model = 'timeout' THEN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END IF;
			RETURN NEW;
		END $$ LANGUAGE plpgsql`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = db.ExecContext(ctx, `CREATE TRIGGER refuse_poison BEFORE INSERT ON usage_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()`)
	g.Expect(err).NotTo(HaveOccurred())

	srv := startServerWith(t, g, stores)
	token := serviceAccountToken(g, "gateway", true)
	batch := make([]usage.Event, 0, 100)
	for i := range 100 {
		batch = append(batch, chatEvent(fmt.Sprintf("b1-%d", i), 10, 1))
	}
	batch[37].Model = "poison"
	code, body := post(g, srv.url, token, server.IngestRequest{Events: batch})
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	g.Expect(body).To(Equal(map[string]any{"received": 100.0, "stored": 99.0, "quarantined": 1.0}))

	// The next batch goes straight in, and a retry of the first stores
	// nothing twice (the quarantined event fails alone again and is kept
	// once).
	code, body = post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{chatEvent("b2-0", 5, 0)}})
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body["stored"]).To(BeEquivalentTo(1))
	code, body = post(g, srv.url, token, server.IngestRequest{Events: batch})
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(Equal(map[string]any{"received": 100.0, "stored": 0.0, "quarantined": 1.0}))

	buckets, err := store.Aggregate(ctx, usage.Query{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(buckets).To(HaveLen(1))
	g.Expect(buckets[0].Totals).To(Equal(usage.Totals{Calls: 100, InputTokens: 99*10 + 5, OutputTokens: 99}))
	q, err := store.Quarantined(ctx, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(HaveLen(1))
	g.Expect(q[0].Event).To(Equal(batch[37]))
	g.Expect(q[0].Reason).To(ContainSubstring("this row cannot be stored"))
	g.Expect(counterValue(g, srv, "hub_usage_quarantined_events_total")).To(Equal(2.0))

	// An error of the store's state (a statement timeout), even one that
	// strikes a single event every time, quarantines nothing: the batch is
	// refused with 503, to be sent again.
	slow := chatEvent("b3-0", 1, 1)
	slow.Model = "timeout"
	code, body = post(g, srv.url, token, server.IngestRequest{Events: []usage.Event{chatEvent("b3-1", 1, 1), slow}})
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), "%v", body)
	q, err = store.Quarantined(ctx, 10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(q).To(HaveLen(1), "still only the poison event")
}

func counterValue(g Gomega, srv *testServer, name string) float64 {
	families, err := srv.reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestObjectRegistry: gateways record which project owns each upstream
// object and ask it back; a claim on another project's object is refused;
// callers need RBAC on upstreamobjects.
func TestObjectRegistry(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	token := serviceAccountTokenWith(g, "gateway-objects", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"upstreamobjects"}, Verbs: []string{"create", "get"}})
	claims, owners := srv.url+server.ObjectsPath, srv.url+server.ObjectOwnersPath

	code, body := postTo(g, claims, token, server.ClaimRequest{Objects: []objects.Object{
		{Kind: "file", ID: "file-1", Project: "alpha"}, {Kind: "file", ID: "file-2", Project: "beta"}}})
	g.Expect(code).To(Equal(http.StatusOK), "%v", body)
	g.Expect(body).To(Equal(map[string]any{"claimed": 2.0}))
	code, body = postTo(g, claims, token, server.ClaimRequest{Objects: []objects.Object{{Kind: "file", ID: "file-1", Project: "beta"}}})
	g.Expect(code).To(Equal(http.StatusConflict))
	g.Expect(errorMessage(body)).To(ContainSubstring(`file file-1 belongs to project "alpha"`))
	code, body = postTo(g, claims, token, server.ClaimRequest{Objects: []objects.Object{{Kind: "file", ID: "", Project: "beta"}}})
	g.Expect(code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body["error"]).To(HaveKeyWithValue("field", "objects[0].id"))

	code, body = postTo(g, owners, token, server.OwnersRequest{Kind: "file", IDs: []string{"file-1", "file-2", "file-3"}})
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(Equal(map[string]any{"owners": map[string]any{"file-1": "alpha", "file-2": "beta"}}))

	code, body = postTo(g, owners, serviceAccountToken(g, "ingest-only", true), server.OwnersRequest{Kind: "file", IDs: []string{"file-1"}})
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(errorMessage(body)).To(ContainSubstring("may not get upstreamobjects.hub.minimax.io"))
}
