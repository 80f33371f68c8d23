package usage_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/usage"
)

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
