package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestHardCapStopsAndResumes: calls through the gateway exhaust a Hard token
// cap; the next call gets 429 insufficient_quota (with no Retry-After, which
// would make SDKs sleep until the cycle ends, and a message that says when
// the cap resets), the project turns CapReached
// and its key Suspended; raising the cap lets traffic through again without
// anyone touching the key.
func TestHardCapStopsAndResumes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	apiKey, key := issueKey(g, "gw-cap", nil)
	capObj := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "gw-cap", Name: "monthly"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](100), Enforcement: hubv1.CapHard}}
	g.Expect(env.Client.Create(ctx, capObj)).To(Succeed())

	// Each call spends 4 prompt and 11 completion tokens: the seventh
	// crosses 100. The gateway counts what it metered itself on top of the
	// server's last report, so the very next call is refused; calls run
	// one after another, so at most one more can have been in flight.
	allowed := 0
	var refused answer
	for range 12 {
		refused = call(g, http.MethodPost, "/v1/chat/completions", key, chatBody("spend some tokens", false))
		if refused.status != http.StatusOK {
			break
		}
		allowed++
	}
	g.Expect(refused.status).To(Equal(http.StatusTooManyRequests))
	g.Expect(allowed).To(BeNumerically(">=", 7))
	g.Expect(allowed).To(BeNumerically("<=", 8), "refused by the call after the one that crossed the cap")
	g.Expect(refused.errorMessage()).To(ContainSubstring("spending cap"))
	next := time.Date(testClock.Now().UTC().Year(), testClock.Now().UTC().Month()+1, 1, 0, 0, 0, 0, time.UTC)
	g.Expect(refused.errorMessage()).To(ContainSubstring("resets at " + next.Format(time.RFC3339)))
	g.Expect(refused.errorCode()).To(Equal("insufficient_quota"))
	g.Expect(refused.header.Get("Retry-After")).To(BeEmpty())

	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(capObj), capObj)).To(Succeed())
		g.Expect(capObj.Status.State).To(Equal(hubv1.CapExceeded))
		g.Expect(capObj.Status.Percent).To(BeNumerically(">=", 100))
		g.Expect(meta.IsStatusConditionTrue(capObj.Status.Conditions, hubv1.CapReachedCondition)).To(BeTrue())
		p := &hubv1.Project{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "gw-cap"}, p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(hubv1.ProjectCapReached))
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeySuspended))
	}, 10*time.Second).Should(Succeed())

	// Raise the cap: traffic resumes, and so do the project and the key.
	patch := client.MergeFrom(capObj.DeepCopy())
	capObj.Spec.TokenLimit = ptr.To[int64](1_000_000)
	g.Expect(env.Client.Patch(ctx, capObj, patch)).To(Succeed())
	g.Eventually(func() int {
		return call(g, http.MethodPost, "/v1/chat/completions", key, chatBody("back again", false)).status
	}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyActive))
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(capObj), capObj)).To(Succeed())
		g.Expect(capObj.Status.State).To(Equal(hubv1.CapOK))
	}, 10*time.Second).Should(Succeed())
}

// TestGroupCapStopsItsMembersKeys: a Hard group cap stops the keys owned by
// the group's members, in every project, and no one else's. The server
// learns who owns each key from the APIKeys.
func TestGroupCapStopsItsMembersKeys(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	hub := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubv1.DefaultHubNamespace}}
	if err := env.Client.Create(ctx, hub); err != nil {
		g.Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "%v", err)
	}
	member := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "gw-grp-ann"},
		Spec: hubv1.MemberSpec{Email: "ann.grp@example.com", Role: hubv1.RoleDeveloper, Groups: []string{"gw-team"}}}
	g.Expect(env.Client.Create(ctx, member)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, member) })
	_, annKey := issueKey(g, "gw-grp", func(k *hubv1.APIKey) { k.Spec.Owner = "Ann.Grp@Example.com" }) // the same person
	bob, bobKey := issueKeyIn(g, "gw-grp", "bob", func(k *hubv1.APIKey) { k.Spec.Owner = "bob.grp@example.com" })
	capObj := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: hubv1.DefaultHubNamespace, Name: "gw-team"},
		Spec: hubv1.SpendingCapSpec{Group: "gw-team", TokenLimit: ptr.To[int64](100), Enforcement: hubv1.CapHard}}
	g.Expect(env.Client.Create(ctx, capObj)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, capObj) })

	var refused answer
	g.Eventually(func() int {
		refused = call(g, http.MethodPost, "/v1/chat/completions", annKey, chatBody("spend some tokens", false))
		return refused.status
	}, 20*time.Second, 20*time.Millisecond).Should(Equal(http.StatusTooManyRequests))
	g.Expect(refused.errorMessage()).To(ContainSubstring("belongs to a group that has reached its spending cap"))
	g.Expect(call(g, http.MethodPost, "/v1/chat/completions", bobKey, chatBody("not in the group", false)).status).
		To(Equal(http.StatusOK), "a key of %s, outside the group, is not stopped", bob.Spec.Owner)
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(capObj), capObj)).To(Succeed())
	g.Expect(capObj.Status.Scope).To(Equal(hubv1.CapScopeGroup))
	g.Expect(capObj.Status.Tokens).To(BeNumerically(">=", 100))
}
