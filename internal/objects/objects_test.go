package objects_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/testpg"
)

// pg is one PostgreSQL server for the package; each test gets a database.
var pg *testpg.Server

func TestMain(m *testing.M) { os.Exit(testpg.Run(m, &pg)) }

// TestStore runs the suite on SQLite and on PostgreSQL.
func TestStore(t *testing.T) { testpg.RunSuite(t, pg, objects.New, storeSuite) }

var storeSuite = []testpg.Case[objects.Store]{
	{Name: "an upstream object belongs to the first project that claims it", Run: func(t *testing.T, s objects.Store) {
		g := NewWithT(t)
		ctx := context.Background()
		registry := s
		conflicts, err := registry.ClaimObjects(ctx, []objects.Object{
			{Kind: "file", ID: "file-a", Project: "p1"}, {Kind: "file", ID: "file-b", Project: "p2"},
			{Kind: "video_task", ID: "file-a", Project: "p2"}, // another kind, another object
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(conflicts).To(BeEmpty())
		conflicts, err = registry.ClaimObjects(ctx, []objects.Object{{Kind: "file", ID: "file-a", Project: "p1"}, {Kind: "file", ID: "file-a", Project: "p2"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(conflicts).To(Equal([]objects.Object{{Kind: "file", ID: "file-a", Project: "p1"}}), "a claim again is a no-op; another project's is refused")
		owners, err := registry.ObjectOwners(ctx, "file", []string{"file-a", "file-b", "file-c"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(owners).To(Equal(map[string]string{"file-a": "p1", "file-b": "p2"}))
		many := make([]string, 0, 1200)
		for i := range 1200 {
			many = append(many, fmt.Sprintf("x-%d", i))
		}
		owners, err = registry.ObjectOwners(ctx, "file", append(many, "file-b"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(owners).To(Equal(map[string]string{"file-b": "p2"}))
		_, err = registry.ClaimObjects(ctx, []objects.Object{{Kind: "file", ID: "bad\x00id", Project: "p1"}})
		g.Expect(err).To(MatchError(ContainSubstring("id: must not contain control characters")))
	}},
}
