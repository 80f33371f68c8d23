package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/usage"
)

// statusFixture creates projects (with their namespaces, as the manager
// would) holding keys whose status carries a key ID, and one chat event per
// key in a fresh store.
func statusFixture(t *testing.T, g Gomega, prefix string, projects, keysPer int, model string) usage.Store {
	ctx := context.Background()
	store, err := usage.OpenSQLite(ctx, filepath.Join(t.TempDir(), "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = store.Close() })
	events := make([]usage.Event, 0, projects*keysPer)
	now := time.Now().UTC()
	for p := range projects {
		project := fmt.Sprintf("%s-%02d", prefix, p)
		g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: project}})).To(Succeed())
		g.Expect(k8sClient.Create(ctx, &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: project}})).To(Succeed())
		for k := range keysPer {
			keyID := fmt.Sprintf("%-5.5s%02d%03d", prefix, p, k)
			key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: project, Name: fmt.Sprintf("k%d", k)},
				Spec: hubv1.APIKeySpec{Owner: "dev@example.com"}}
			g.Expect(k8sClient.Create(ctx, key)).To(Succeed())
			key.Status.KeyID = keyID
			g.Expect(k8sClient.Status().Update(ctx, key)).To(Succeed())
			events = append(events, usage.Event{ID: keyID, Time: now, Project: project, KeyID: keyID, Service: pricing.Chat,
				Endpoint: "/v1/chat/completions", Model: model, InputTokens: 10, StatusCode: 200})
		}
	}
	_, err = store.Insert(ctx, events)
	g.Expect(err).NotTo(HaveOccurred())
	return store
}

// countingClient counts status writes (patches and applies) sent to the
// API server.
func countingClient(writes *atomic.Int64) client.Client {
	c, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		panic(err)
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			writes.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			writes.Add(1)
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		}})
}

// TestStatusWriterBoundsItsWrites: with 20 projects of 10 used keys each
// (220 status writes to make) and 5 writes a second allowed, every 10-second
// round writes at most 50, and all usage reaches the API server within five
// rounds.
func TestStatusWriterBoundsItsWrites(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	store := statusFixture(t, g, "bound", 20, 10, "MiniMax-M2")
	var writes atomic.Int64
	clk := clocktesting.NewFakeClock(time.Now())
	w := &server.StatusWriter{Client: countingClient(&writes), Store: store, Clock: clk, Log: ctrl.Log,
		Interval: 10 * time.Second, MaxWritesPerSecond: 5}
	for round := range 5 {
		before := writes.Load()
		g.Expect(w.Flush(ctx)).To(Succeed())
		g.Expect(writes.Load()-before).To(BeNumerically("<=", 50), "round %d", round)
		clk.Step(10 * time.Second)
	}
	g.Expect(writes.Load()).To(BeEquivalentTo(220), "every project and key written once")
	g.Expect(w.Pending()).To(BeZero())

	before := writes.Load()
	g.Expect(w.Flush(ctx)).To(Succeed())
	g.Expect(writes.Load()).To(Equal(before), "no new usage, no writes")

	for p := range 20 {
		keys := &hubv1.APIKeyList{}
		g.Expect(k8sClient.List(ctx, keys, client.InNamespace(fmt.Sprintf("bound-%02d", p)))).To(Succeed())
		g.Expect(keys.Items).To(HaveLen(10))
		for _, k := range keys.Items {
			g.Expect(k.Status.LastUsedAt).NotTo(BeNil(), k.Name)
			g.Expect(k.Status.Usage.InputTokens).To(BeEquivalentTo(10))
			g.Expect(k.Status.Usage.Calls).To(BeEquivalentTo(1))
		}
	}
	p := &hubv1.Project{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "bound-07"}, p)).To(Succeed())
	g.Expect(p.Status.Usage.Calls).To(BeEquivalentTo(10))
	g.Expect(p.Status.Usage.InputTokens).To(BeEquivalentTo(100))
}

// TestStatusWriterReplacesTheSummary: a summary written earlier (a cycle
// ago, say) leaves nothing behind: fields the new one does not have are
// removed, not kept by the merge.
func TestStatusWriterReplacesTheSummary(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	store := statusFixture(t, g, "swaps", 1, 1, "MiniMax-M2")
	prices, err := pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{
		Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "1.00", OutputPer1MTokens: "1.00"},
	}}}})
	g.Expect(err).NotTo(HaveOccurred())

	p := &hubv1.Project{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "swaps-00"}, p)).To(Succeed())
	p.Status.Usage = &hubv1.UsageSummary{Calls: 40, UnpricedCalls: 7, VideoSeconds: 12, Spend: "3.5",
		ByService: []hubv1.ServiceUsage{{Service: "video", Calls: 40, VideoSeconds: 12}}}
	g.Expect(k8sClient.Status().Update(ctx, p)).To(Succeed())

	var writes atomic.Int64
	w := &server.StatusWriter{Client: countingClient(&writes), Store: store, Clock: clocktesting.NewFakeClock(time.Now()), Log: ctrl.Log,
		Prices: func() *server.Prices { return &server.Prices{List: prices, Currency: "USD"} }}
	g.Expect(w.Flush(ctx)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "swaps-00"}, p)).To(Succeed())
	u := p.Status.Usage
	g.Expect(u).NotTo(BeNil())
	g.Expect(u.Calls).To(BeEquivalentTo(1))
	g.Expect(u.InputTokens).To(BeEquivalentTo(10))
	g.Expect(u.UnpricedCalls).To(BeZero())
	g.Expect(u.VideoSeconds).To(BeZero())
	g.Expect(u.Spend).To(BeEquivalentTo("0.00001"))
	g.Expect(u.ByService).To(Equal([]hubv1.ServiceUsage{{Service: "chat", Calls: 1, Tokens: 10, Spend: "0.00001"}}))
}
