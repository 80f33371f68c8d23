package dashboard

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestKeyFiguresFollowTheInformer: the overview's key figures count the
// keys that work, and list those of the member's namespaces that expire
// before the deadline, the soonest first, as the informer's events change
// them; nothing is counted before the informer has listed every key.
func TestKeyFiguresFollowTheInformer(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	synced := false
	k := &keyFigures{synced: func() bool { return synced }, keys: map[types.NamespacedName]keyFigure{}}
	key := func(ns, name string, phase hubv1.APIKeyPhase, expiresIn time.Duration) *hubv1.APIKey {
		out := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		out.Status.Phase = phase
		if expiresIn != 0 {
			out.Status.ExpiresAt = &metav1.Time{Time: now.Add(expiresIn)}
		}
		return out
	}
	k.set(key("a", "soon", hubv1.KeyActive, 48*time.Hour))
	k.set(key("a", "sooner", hubv1.KeyRotating, time.Hour))
	k.set(key("a", "later", hubv1.KeyActive, 30*24*time.Hour))
	k.set(key("a", "never", hubv1.KeyActive, 0))
	k.set(key("b", "elsewhere", hubv1.KeyActive, time.Hour))
	k.set(key("a", "revoked", hubv1.KeyRevoked, time.Hour))
	k.set(key("a", "pending", "", 0))

	_, _, err := k.working(map[string]bool{"a": true}, now.Add(expiringWithin))
	g.Expect(err).To(MatchError(errKeysLoading), "not before the informer has listed the keys")
	synced = true

	count, expiring, err := k.working(map[string]bool{"a": true}, now.Add(expiringWithin))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(count).To(Equal(5), "Active and Rotating keys, in every namespace")
	g.Expect(expiring).To(Equal([]expiringKey{
		{types.NamespacedName{Namespace: "a", Name: "sooner"}, now.Add(time.Hour)},
		{types.NamespacedName{Namespace: "a", Name: "soon"}, now.Add(48 * time.Hour)},
	}), "the member's namespaces only, the soonest first")

	// A key that is revoked, one deleted, and one whose deletion the
	// informer missed (a tombstone) leave the figures.
	k.set(key("a", "sooner", hubv1.KeyRevoked, time.Hour))
	k.delete(key("a", "never", hubv1.KeyActive, 0))
	k.delete(toolscache.DeletedFinalStateUnknown{Key: "b/elsewhere", Obj: key("b", "elsewhere", hubv1.KeyActive, time.Hour)})
	count, expiring, err = k.working(map[string]bool{"a": true, "b": true}, now.Add(expiringWithin))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(count).To(Equal(2))
	g.Expect(expiring).To(HaveLen(1))
	g.Expect(expiring[0].name.Name).To(Equal("soon"))
}
