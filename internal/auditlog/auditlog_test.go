package auditlog_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/testpg"
)

// pg is one PostgreSQL server for the package; each test gets a database.
var pg *testpg.Server

func TestMain(m *testing.M) { os.Exit(testpg.Run(m, &pg)) }

var t0 = time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC)

// TestStore runs the suite on SQLite and on PostgreSQL.
func TestStore(t *testing.T) { testpg.RunSuite(t, pg, auditlog.New, storeSuite) }

var storeSuite = []testpg.Case[auditlog.Store]{
	{Name: "audit entries are stored once, filtered, and pruned", Run: func(t *testing.T, s auditlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		role := auditlog.Entry{ID: "req-1", Time: t0, Actor: "adm@example.com", Groups: []string{"system:authenticated"},
			Action: "update", Kind: "Member", Name: "alice", UID: "u1",
			Changes: []auditlog.FieldChange{{Field: "spec.role", Old: "Developer", New: "Admin"}}}
		key := auditlog.Entry{ID: "req-2", Time: t0.Add(time.Minute), Actor: "dev@example.com", Action: "create",
			Kind: "APIKey", Namespace: "chatbot", Name: "ci"}
		g.Expect(s.RecordAudit(ctx, []auditlog.Entry{role, key})).To(Succeed())
		g.Expect(s.RecordAudit(ctx, []auditlog.Entry{role})).To(Succeed(), "a repeat is stored once")
		all, err := s.AuditEntries(ctx, auditlog.Filter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(all).To(HaveLen(2))
		g.Expect(all[0].Time).To(BeTemporally("==", t0))
		g.Expect(all[0].Changes).To(Equal(role.Changes))
		g.Expect(all[0].Groups).To(Equal(role.Groups))
		byActor, err := s.AuditEntries(ctx, auditlog.Filter{Actor: "dev@example.com"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(byActor).To(HaveLen(1))
		g.Expect(byActor[0].Namespace).To(Equal("chatbot"))
		byObject, err := s.AuditEntries(ctx, auditlog.Filter{Kind: "Member", Name: "alice", From: t0, To: t0.Add(time.Second)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(byObject).To(HaveLen(1))
		g.Expect(s.PruneAudit(ctx, t0.Add(time.Second))).To(Succeed())
		all, err = s.AuditEntries(ctx, auditlog.Filter{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(all).To(HaveLen(1))
		g.Expect(all[0].ID).To(Equal("req-2"))
	}},
	{Name: "audit entries are read a page at a time, after a cursor", Run: func(t *testing.T, s auditlog.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		entry := func(id string, at time.Time) auditlog.Entry {
			return auditlog.Entry{ID: id, Time: at, Actor: "adm@example.com", Action: "create", Kind: "Member", Name: id,
				Via: "management-api", KeyID: "AbCdEf0123"}
		}
		g.Expect(s.RecordAudit(ctx, []auditlog.Entry{entry("b", t0), entry("a", t0), entry("c", t0.Add(time.Minute))})).To(Succeed())
		page := func(after sqldb.Cursor) []string {
			entries, err := s.AuditEntries(ctx, auditlog.Filter{After: &after, Limit: 2})
			g.Expect(err).NotTo(HaveOccurred())
			ids := make([]string, 0, len(entries))
			for _, e := range entries {
				ids = append(ids, e.ID)
				g.Expect(e.Via).To(Equal("management-api"))
				g.Expect(e.KeyID).To(Equal("AbCdEf0123"))
			}
			return ids
		}
		g.Expect(page(sqldb.Cursor{})).To(Equal([]string{"a", "b"}))
		g.Expect(page(sqldb.Cursor{Time: t0, ID: "b"})).To(Equal([]string{"c"}))
		g.Expect(page(sqldb.Cursor{Time: t0.Add(time.Minute), ID: "c"})).To(BeEmpty())
	}},
}
