package alertlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/testpg"
)

// pg is one PostgreSQL server for the package; each test gets a database.
var pg *testpg.Server

func TestMain(m *testing.M) { os.Exit(testpg.Run(m, &pg)) }

var t0 = time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC)

// TestStore runs the suite on SQLite and on PostgreSQL.
func TestStore(t *testing.T) { testpg.RunSuite(t, pg, alertlog.New, storeSuite) }

var storeSuite = []testpg.Case[alertlog.Store]{
	{Name: "an alert is recorded once, with a delivery per channel", Run: func(t *testing.T, s alertlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		a50 := capAlert("cap-uid-1-50", t0, 50, "p1/hook", "hub-system/finance")
		recorded, err := s.RecordAlerts(ctx, []alertlog.Alert{a50})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(recorded).To(HaveLen(1))
		a80 := capAlert("cap-uid-1-80", t0.Add(time.Microsecond), 80, "p1/hook")
		recorded, err = s.RecordAlerts(ctx, []alertlog.Alert{a50, a80})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(recorded).To(HaveLen(1), "the 50%% alert was recorded before")
		g.Expect(recorded[0].ID).To(Equal("cap-uid-1-80"))

		listed, err := s.Alerts(ctx, alertlog.Filter{SourceUID: "uid-1", CycleStart: a50.CycleStart})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed).To(HaveLen(2))
		g.Expect(listed[0].ID).To(Equal("cap-uid-1-50"))
		g.Expect(listed[0].Time).To(BeTemporally("==", t0))
		g.Expect(listed[0].Deliveries).To(HaveLen(2))
		g.Expect(listed[0].Deliveries[0].State).To(Equal(alertlog.DeliveryPending))
		g.Expect(string(listed[0].Payload)).To(MatchJSON(a50.Payload))
		g.Expect(listed[1].Deliveries).To(HaveLen(1))

		none, err := s.Alerts(ctx, alertlog.Filter{SourceUID: "uid-1", CycleStart: a50.CycleStart.AddDate(0, 1, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(none).To(BeEmpty(), "a new cycle has fired nothing")
		newest, err := s.Alerts(ctx, alertlog.Filter{Project: "p1", Limit: 1})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(newest).To(HaveLen(1))
		g.Expect(newest[0].ID).To(Equal("cap-uid-1-80"), "a limit keeps the newest")
	}},
	{Name: "alerts are read a page at a time, after a cursor", Run: func(t *testing.T, s alertlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		// Two alerts at one time: the ID orders them.
		_, err := s.RecordAlerts(ctx, []alertlog.Alert{capAlert("b", t0, 80, "p1/hook"), capAlert("a", t0, 50, "p1/hook"),
			capAlert("c", t0.Add(time.Minute), 100, "p1/hook")})
		g.Expect(err).NotTo(HaveOccurred())
		page := func(after sqldb.Cursor) []string {
			alerts, err := s.Alerts(ctx, alertlog.Filter{After: &after, Limit: 2})
			g.Expect(err).NotTo(HaveOccurred())
			ids := make([]string, 0, len(alerts))
			for _, a := range alerts {
				ids = append(ids, a.ID)
				g.Expect(a.Deliveries).To(HaveLen(1))
			}
			return ids
		}
		g.Expect(page(sqldb.Cursor{})).To(Equal([]string{"a", "b"}))
		g.Expect(page(sqldb.Cursor{Time: t0, ID: "b"})).To(Equal([]string{"c"}))
		g.Expect(page(sqldb.Cursor{Time: t0.Add(time.Minute), ID: "c"})).To(BeEmpty())
	}},
	{Name: "pending deliveries come by channel in firing order, and leave when done", Run: func(t *testing.T, s alertlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.RecordAlerts(ctx, []alertlog.Alert{
			capAlert("a80", t0.Add(time.Second), 80, "p1/hook"),
			capAlert("a50", t0, 50, "p1/hook", "p1/mail"),
		})
		g.Expect(err).NotTo(HaveOccurred())
		pending, err := s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending).To(HaveLen(3))
		g.Expect([]string{pending[0].Channel + " " + pending[0].Alert.ID, pending[1].Channel + " " + pending[1].Alert.ID,
			pending[2].Channel + " " + pending[2].Alert.ID}).To(Equal([]string{"p1/hook a50", "p1/hook a80", "p1/mail a50"}))
		g.Expect(pending[0].NextAttempt).To(BeTemporally("==", t0))

		delivered := pending[0].Delivery
		d := delivered
		d.State, d.Attempts, d.Updated = alertlog.DeliveryDelivered, 1, t0.Add(time.Minute)
		g.Expect(s.UpdateDelivery(ctx, d)).To(Succeed())
		d = pending[1].Delivery
		d.Attempts, d.NextAttempt, d.LastError, d.Updated = 1, t0.Add(time.Hour), "503 Service Unavailable", t0.Add(time.Minute)
		g.Expect(s.UpdateDelivery(ctx, d)).To(Succeed())

		pending, err = s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending).To(HaveLen(2))
		g.Expect(pending[0].Alert.ID).To(Equal("a80"))
		g.Expect(pending[0].NextAttempt).To(BeTemporally("==", t0.Add(time.Hour)))
		g.Expect(pending[0].LastError).To(Equal("503 Service Unavailable"))
		listed, err := s.Alerts(ctx, alertlog.Filter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed[0].Deliveries[0].State).To(Equal(alertlog.DeliveryDelivered))

		// A dispatcher that lost its lease cannot reopen what another
		// finished.
		stale := delivered // attempts 0, as read before
		stale.State, stale.Attempts, stale.Updated = alertlog.DeliveryPending, 1, t0.Add(2*time.Minute)
		g.Expect(s.UpdateDelivery(ctx, stale)).To(MatchError(alertlog.ErrDeliveryMoved))

		// Recipients already served are kept with a pending delivery.
		d = pending[1].Delivery
		d.Attempts, d.Done, d.NextAttempt, d.Updated = 1, []string{"+8613800138000"}, t0.Add(time.Hour), t0.Add(time.Minute)
		g.Expect(s.UpdateDelivery(ctx, d)).To(Succeed())
		pending, err = s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending[1].Channel).To(Equal("p1/mail"))
		g.Expect(pending[1].Done).To(Equal([]string{"+8613800138000"}))
	}},
	{Name: "alerts are pruned with their deliveries", Run: func(t *testing.T, s alertlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.RecordAlerts(ctx, []alertlog.Alert{capAlert("old", t0.AddDate(-1, 0, -1), 50, "p1/hook"),
			capAlert("new", t0, 50, "p1/hook")})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.PruneAlerts(ctx, t0.AddDate(-1, 0, 0))).To(Succeed())
		listed, err := s.Alerts(ctx, alertlog.Filter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed).To(HaveLen(1))
		g.Expect(listed[0].ID).To(Equal("new"))
		pending, err := s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending).To(HaveLen(1))
	}},
}

func capAlert(id string, at time.Time, threshold int32, channels ...string) alertlog.Alert {
	a := alertlog.Alert{ID: id, Kind: alertlog.KindCapThreshold, Time: at, Namespace: "p1", Name: "budget", SourceUID: "uid-1",
		Project: "p1", CycleStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Threshold: threshold,
		Payload: json.RawMessage(fmt.Sprintf(`{"threshold": %d}`, threshold))}
	for _, c := range channels {
		a.Deliveries = append(a.Deliveries, alertlog.Delivery{Channel: c})
	}
	return a
}
