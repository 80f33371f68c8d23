package gateway_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestHardCapStopsAndResumes: calls through the gateway exhaust a Hard token
// cap; the next call gets 429 with Retry-After, the project turns CapReached
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
	retry, err := strconv.Atoi(refused.header.Get("Retry-After"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(retry).To(BeNumerically(">", 0))

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
