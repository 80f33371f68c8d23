package usage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/usage"
)

func capAlert(id string, at time.Time, threshold int32, channels ...string) usage.Alert {
	a := usage.Alert{ID: id, Kind: usage.KindCapThreshold, Time: at, Namespace: "p1", Name: "budget", SourceUID: "uid-1",
		Project: "p1", CycleStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Threshold: threshold,
		Payload: json.RawMessage(fmt.Sprintf(`{"threshold": %d}`, threshold))}
	for _, c := range channels {
		a.Deliveries = append(a.Deliveries, usage.Delivery{Channel: c})
	}
	return a
}

// alertSuite runs with the store suite, on every implementation.
var alertSuite = []storeCase{
	{"an alert is recorded once, with a delivery per channel", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		a50 := capAlert("cap-uid-1-50", t0, 50, "p1/hook", "hub-system/finance")
		recorded, err := s.RecordAlerts(ctx, []usage.Alert{a50})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(recorded).To(HaveLen(1))
		a80 := capAlert("cap-uid-1-80", t0.Add(time.Microsecond), 80, "p1/hook")
		recorded, err = s.RecordAlerts(ctx, []usage.Alert{a50, a80})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(recorded).To(HaveLen(1), "the 50%% alert was recorded before")
		g.Expect(recorded[0].ID).To(Equal("cap-uid-1-80"))

		listed, err := s.Alerts(ctx, usage.AlertFilter{SourceUID: "uid-1", CycleStart: a50.CycleStart})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed).To(HaveLen(2))
		g.Expect(listed[0].ID).To(Equal("cap-uid-1-50"))
		g.Expect(listed[0].Time).To(BeTemporally("==", t0))
		g.Expect(listed[0].Deliveries).To(HaveLen(2))
		g.Expect(listed[0].Deliveries[0].State).To(Equal(usage.DeliveryPending))
		g.Expect(string(listed[0].Payload)).To(MatchJSON(a50.Payload))
		g.Expect(listed[1].Deliveries).To(HaveLen(1))

		none, err := s.Alerts(ctx, usage.AlertFilter{SourceUID: "uid-1", CycleStart: a50.CycleStart.AddDate(0, 1, 0)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(none).To(BeEmpty(), "a new cycle has fired nothing")
		newest, err := s.Alerts(ctx, usage.AlertFilter{Project: "p1", Limit: 1})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(newest).To(HaveLen(1))
		g.Expect(newest[0].ID).To(Equal("cap-uid-1-80"), "a limit keeps the newest")
	}},
	{"pending deliveries come by channel in firing order, and leave when done", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.RecordAlerts(ctx, []usage.Alert{
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
		d.State, d.Attempts, d.Updated = usage.DeliveryDelivered, 1, t0.Add(time.Minute)
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
		listed, err := s.Alerts(ctx, usage.AlertFilter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed[0].Deliveries[0].State).To(Equal(usage.DeliveryDelivered))

		// A dispatcher that lost its lease cannot reopen what another
		// finished.
		stale := delivered // attempts 0, as read before
		stale.State, stale.Attempts, stale.Updated = usage.DeliveryPending, 1, t0.Add(2*time.Minute)
		g.Expect(s.UpdateDelivery(ctx, stale)).To(MatchError(usage.ErrDeliveryMoved))

		// Recipients already served are kept with a pending delivery.
		d = pending[1].Delivery
		d.Attempts, d.Done, d.NextAttempt, d.Updated = 1, []string{"+8613800138000"}, t0.Add(time.Hour), t0.Add(time.Minute)
		g.Expect(s.UpdateDelivery(ctx, d)).To(Succeed())
		pending, err = s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending[1].Channel).To(Equal("p1/mail"))
		g.Expect(pending[1].Done).To(Equal([]string{"+8613800138000"}))
	}},
	{"alerts are pruned with their deliveries", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.RecordAlerts(ctx, []usage.Alert{capAlert("old", t0.AddDate(-1, 0, -1), 50, "p1/hook"),
			capAlert("new", t0, 50, "p1/hook")})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.PruneAlerts(ctx, t0.AddDate(-1, 0, 0))).To(Succeed())
		listed, err := s.Alerts(ctx, usage.AlertFilter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(listed).To(HaveLen(1))
		g.Expect(listed[0].ID).To(Equal("new"))
		pending, err := s.PendingDeliveries(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pending).To(HaveLen(1))
	}},
}

func init() { storeSuite = append(storeSuite, alertSuite...) }

var auditSuite = []storeCase{
	{"audit entries are stored once, filtered, and pruned", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		role := usage.AuditEntry{ID: "req-1", Time: t0, Actor: "adm@example.com", Groups: []string{"system:authenticated"},
			Action: "update", Kind: "Member", Name: "alice", UID: "u1",
			Changes: []usage.FieldChange{{Field: "spec.role", Old: "Developer", New: "Admin"}}}
		key := usage.AuditEntry{ID: "req-2", Time: t0.Add(time.Minute), Actor: "dev@example.com", Action: "create",
			Kind: "APIKey", Namespace: "chatbot", Name: "ci"}
		g.Expect(s.RecordAudit(ctx, []usage.AuditEntry{role, key})).To(Succeed())
		g.Expect(s.RecordAudit(ctx, []usage.AuditEntry{role})).To(Succeed(), "a repeat is stored once")
		all, err := s.AuditEntries(ctx, usage.AuditFilter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(all).To(HaveLen(2))
		g.Expect(all[0].Time).To(BeTemporally("==", t0))
		g.Expect(all[0].Changes).To(Equal(role.Changes))
		g.Expect(all[0].Groups).To(Equal(role.Groups))
		byActor, err := s.AuditEntries(ctx, usage.AuditFilter{Actor: "dev@example.com"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(byActor).To(HaveLen(1))
		g.Expect(byActor[0].Namespace).To(Equal("chatbot"))
		byObject, err := s.AuditEntries(ctx, usage.AuditFilter{Kind: "Member", Name: "alice", From: t0, To: t0.Add(time.Second)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(byObject).To(HaveLen(1))
		g.Expect(s.PruneAudit(ctx, t0.Add(time.Second))).To(Succeed())
		all, err = s.AuditEntries(ctx, usage.AuditFilter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(all).To(HaveLen(1))
		g.Expect(all[0].ID).To(Equal("req-2"))
	}},
}

func init() { storeSuite = append(storeSuite, auditSuite...) }

var ownerSuite = []storeCase{
	{"usage is summed by key owner, rotated keys included", func(t *testing.T, s usage.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		_, err := s.Insert(ctx, []usage.Event{
			event("o1", t0, "p1", "k-ann-old", "m", 100, 0),
			event("o2", t0, "p1", "k-ann-new", "m", 10, 0),
			event("o3", t0, "p2", "k-bob", "m", 1, 0),
			event("o4", t0, "p2", "k-nobody", "m", 1000, 0),
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.RecordKeyOwners(ctx, []usage.KeyOwner{{KeyID: "k-ann-old", Project: "p1", Owner: "ann@example.com"},
			{KeyID: "k-ann-new", Project: "p1", Owner: "ann@example.com"}, {KeyID: "k-bob", Project: "p2", Owner: "bob@example.com"}})).To(Succeed())
		sum := func(owners []string) int64 {
			b, err := s.Aggregate(ctx, usage.Query{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Filter: usage.Filter{Owners: owners}})
			g.Expect(err).NotTo(HaveOccurred())
			var n int64
			for _, x := range b {
				n += x.InputTokens
			}
			return n
		}
		g.Expect(sum([]string{"ann@example.com"})).To(BeEquivalentTo(110))
		g.Expect(sum([]string{"ann@example.com", "bob@example.com"})).To(BeEquivalentTo(111))
		g.Expect(sum([]string{})).To(BeZero(), "a group with no members owns nothing")
		g.Expect(sum(nil)).To(BeEquivalentTo(1111), "no filter")
		// A key changing hands counts for its new owner.
		g.Expect(s.RecordKeyOwners(ctx, []usage.KeyOwner{{KeyID: "k-bob", Project: "p2", Owner: "ann@example.com"}})).To(Succeed())
		g.Expect(sum([]string{"ann@example.com"})).To(BeEquivalentTo(111))
	}},
}

func init() { storeSuite = append(storeSuite, ownerSuite...) }
