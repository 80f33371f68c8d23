package gateway_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/usage"
)

// TestBudgetsCountWhatTheServerHasNotReported: a Hard cap is used up by the
// server's last report plus what the gateway metered since; an event stops
// being pending once acknowledged, once only; an organization cap counts
// every project; money caps are priced by the Organization's list; a report
// of another cycle does not count.
func TestBudgetsCountWhatTheServerHasNotReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Projects, so that admission takes caps in their namespaces; the
	// Budgets under test take budget-hub for the hub's namespace (the
	// suite's hub does not, so its caps stop nothing else).
	for _, p := range []string{"budget-a", "budget-b", "budget-hub"} {
		issueKey(g, p, nil)
	}
	// The Budgets keep the Hard caps from a real informer cache.
	informers, err := cache.New(env.Cluster.Config, cache.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	cacheCtx, stop := context.WithCancel(ctx)
	defer stop()
	b := &gateway.Budgets{HubNamespace: "budget-hub"}
	g.Expect(b.Watch(cacheCtx, informers)).To(Succeed())
	go func() { _ = informers.Start(cacheCtx) }()
	g.Expect(informers.WaitForCacheSync(cacheCtx)).To(BeTrue())
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName, ResourceVersion: "1"},
		Spec: hubv1.OrganizationSpec{Billing: hubv1.BillingSpec{CycleStartDay: 1, TimeZone: "UTC"},
			Pricing: &hubv1.PriceList{Chat: &hubv1.TokenPricing{Default: &hubv1.TokenPrice{InputPer1MTokens: "1000000", OutputPer1MTokens: "0"}}}}}
	cycle := billing.OrganizationCycle(1, "UTC", now).Start
	orgFn := func() *hubv1.Organization { return org }
	tokens := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "budget-a", Name: "tokens"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](100), Enforcement: hubv1.CapHard}}
	g.Expect(env.Client.Create(ctx, tokens)).To(Succeed())
	exhausted := func(project string) func() bool {
		return func() bool { return b.Exhausted(project, org, now) }
	}
	ev := func(id, project string, in int64) usage.Event {
		return usage.Event{ID: id, Time: now, Project: project, Service: pricing.Chat, Model: "m", InputTokens: in, StatusCode: 200}
	}

	e1, e2 := ev("e1", "budget-a", 50), ev("e2", "budget-a", 49)
	b.Metered(&e1, orgFn)
	b.Metered(&e2, orgFn)
	e3 := ev("e3", "budget-a", 1)
	g.Consistently(exhausted("budget-a"), 300*time.Millisecond).Should(BeFalse(), "99 of 100")
	b.Metered(&e3, orgFn)
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeTrue(), "100 of 100, none reported yet")

	// The server stored e1 and e2: they move from pending to its report.
	b.Acknowledged([]usage.Event{e1, e2}, []usage.CapTotals{{UID: string(tokens.UID), CycleStart: cycle, Tokens: 99}})
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeTrue(), "99 reported + 1 pending")
	b.Acknowledged([]usage.Event{e1, e2}, nil) // a repeat changes nothing
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeTrue())
	b.Acknowledged([]usage.Event{e3}, []usage.CapTotals{{UID: string(tokens.UID), CycleStart: cycle, Tokens: 100}})
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeTrue(), "100 reported")
	g.Expect(b.Exhausted("budget-b", org, now)).To(BeFalse(), "another project has no cap")

	// Raising the cap lets calls through at once.
	patch := client.MergeFrom(tokens.DeepCopy())
	tokens.Spec.TokenLimit = ptr.To[int64](200)
	g.Expect(env.Client.Patch(ctx, tokens, patch)).To(Succeed())
	g.Eventually(exhausted("budget-a"), 5*time.Second).Should(BeFalse())

	// A report of the previous cycle counts nothing in this one, and
	// neither does usage still pending from it.
	b.Acknowledged(nil, []usage.CapTotals{{UID: string(tokens.UID), CycleStart: cycle.AddDate(0, -1, 0), Tokens: 500}})
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeFalse())
	old := ev("old", "budget-a", 150)
	old.Time = cycle.Add(-time.Second)
	b.Metered(&old, orgFn)
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeFalse(), "last cycle's usage")

	// An organization money cap counts every project's pending usage,
	// priced (1.00 per input token here).
	money := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "budget-hub", Name: "org"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10.5")), Enforcement: hubv1.CapHard}}
	g.Expect(env.Client.Create(ctx, money)).To(Succeed())
	// The money cap is known before the calls are metered, so they are
	// priced.
	g.Eventually(func() bool {
		probe := ev("probe", "budget-b", 11)
		b.Metered(&probe, orgFn)
		defer b.Acknowledged([]usage.Event{probe}, nil)
		return b.Exhausted("budget-b", org, now)
	}, 5*time.Second).Should(BeTrue())
	f1, f2 := ev("f1", "budget-a", 6), ev("f2", "budget-b", 4)
	b.Metered(&f1, orgFn)
	b.Metered(&f2, orgFn)
	g.Expect(b.Exhausted("budget-b", org, now)).To(BeFalse(), "10.00 of 10.50")
	f3 := ev("f3", "budget-b", 1)
	b.Metered(&f3, orgFn)
	g.Expect(b.Exhausted("budget-b", org, now)).To(BeTrue(), "11.00 of 10.50")
	g.Expect(b.Exhausted("budget-a", org, now)).To(BeTrue(), "the organization's cap stops every project")

	// An AlertOnly cap stops nothing.
	patch = client.MergeFrom(money.DeepCopy())
	money.Spec.Enforcement = hubv1.CapAlertOnly
	g.Expect(env.Client.Patch(ctx, money, patch)).To(Succeed())
	g.Eventually(exhausted("budget-b"), 5*time.Second).Should(BeFalse())
}
