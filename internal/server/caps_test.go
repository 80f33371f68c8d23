package server_test

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/server/reconcilers"
	"github.com/minimax/platform-hub/internal/usage"
)

// capsEnv runs the cap evaluation on the real API server, with a fake clock
// and a store the test writes to directly. It can be stopped and started
// again on the same store and clock, as a manager restarts.
type capsEnv struct {
	hubNamespace string
	clock        *clocktesting.FakeClock
	store        usage.Store
	alerts       alertlog.Store
	prices       *pricing.PriceList
	caps         *reconcilers.SpendingCapReconciler
	sent         int
	stop         func()
	// resync and statusInterval, when set, replace the test defaults
	// (200ms, and the reconciler's 10s).
	resync, statusInterval time.Duration
}

func startCaps(t *testing.T, g Gomega, hubNamespace string) *capsEnv {
	e := newCapsEnv(t, g, hubNamespace)
	e.start(g, nil)
	return e
}

func newCapsEnv(t *testing.T, g Gomega, hubNamespace string) *capsEnv {
	stores, err := server.OpenStores(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "usage.db"))
	g.Expect(err).NotTo(HaveOccurred())
	prices, err := pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Default: &hubv1.TokenPrice{
		InputPer1MTokens: "1.00", OutputPer1MTokens: "1.00"}}})
	g.Expect(err).NotTo(HaveOccurred())
	e := &capsEnv{hubNamespace: hubNamespace, store: stores.Usage, alerts: stores.Alerts, prices: prices,
		clock: clocktesting.NewFakeClock(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		_ = stores.Close()
	})
	return e
}

// alerting configures the alert side of a started env; nil runs none.
type alerting struct {
	sender *notify.Sender
	// noDispatch records alerts without delivering them, as a manager that
	// stops between the two.
	noDispatch bool
}

// start runs a manager with the cap evaluation and, when a is set, the
// alert outbox, its dispatcher and the key expiry warnings.
func (e *capsEnv) start(g Gomega, a *alerting) {
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{Scheme: scheme.New(),
		Metrics: metricsserver.Options{BindAddress: "0"}, Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	g.Expect(err).NotTo(HaveOccurred())
	e.caps = &reconcilers.SpendingCapReconciler{Client: mgr.GetClient(), Store: e.store, Clock: e.clock, HubNamespace: e.hubNamespace,
		Log: ctrl.Log, Resync: cmp.Or(e.resync, 200*time.Millisecond), StatusInterval: e.statusInterval, Prices: e}
	if a != nil {
		outbox := &notify.Outbox{Client: mgr.GetClient(), Store: e.alerts, HubNamespace: e.hubNamespace}
		if !a.noDispatch {
			d := &notify.Dispatcher{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: e.alerts, Sender: a.sender,
				Clock: e.clock, Log: ctrl.Log.WithName("alerts"), Poll: 50 * time.Millisecond, MinBackoff: time.Minute}
			g.Expect(mgr.Add(d)).To(Succeed())
			outbox.Wake = d.Wake
		}
		e.caps.Outbox, e.caps.DashboardURL = outbox, "https://hub.example.com"
		warner := &reconcilers.KeyExpiryReconciler{Client: mgr.GetClient(), Outbox: outbox, Clock: e.clock,
			DashboardURL: "https://hub.example.com"}
		g.Expect(warner.SetupWithManager(mgr)).To(Succeed())
	}
	g.Expect(e.caps.SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	e.stop = func() {
		cancel()
		<-done
		e.stop = nil
	}
}

// PriceList is the price list the test set last.
func (e *capsEnv) PriceList() *pricing.PriceList { return e.prices }

// spend stores calls of a project with the given tokens (1 money unit per
// million tokens) and tells the evaluation, as ingest does.
func (e *capsEnv) spend(g Gomega, project string, calls int, tokens int64) {
	events := make([]usage.Event, calls)
	for i := range events {
		e.sent++
		events[i] = usage.Event{ID: fmt.Sprintf("%s-%d", project, e.sent), Time: e.clock.Now(),
			Project: project, KeyID: "AbCdEf0123", Service: pricing.Chat, Endpoint: "/v1/chat/completions",
			Model: "m", InputTokens: tokens, StatusCode: 200}
	}
	_, err := e.store.Insert(context.Background(), events)
	g.Expect(err).NotTo(HaveOccurred())
	e.caps.Ingested([]string{project})
}

func projectWithNamespace(g Gomega, name string) {
	ctx := context.Background()
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

func projectCapReached(g Gomega, name string) bool {
	p := &hubv1.Project{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, p)).To(Succeed())
	return meta.IsStatusConditionTrue(p.Status.Conditions, hubv1.CapReachedCondition)
}

func getCap(g Gomega, c *hubv1.SpendingCap) *hubv1.SpendingCap {
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), c)).To(Succeed())
	return c
}

// TestMoneyCapStopsAndNewCycleResumes: a Hard money cap reaches Warning at
// its first threshold, then Exceeded at 100%, which marks the project
// CapReached; the next billing cycle lifts it without anyone acting.
func TestMoneyCapStopsAndNewCycleResumes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := startCaps(t, g, "caps-hub-a")
	projectWithNamespace(g, "caps-money")
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-money", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())

	e.spend(g, "caps-money", 6, 1_000_000) // 6.00 of 10: past the 50% threshold
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapWarning))
		g.Expect(s.Spent).To(BeEquivalentTo("6"))
		g.Expect(s.Percent).To(BeEquivalentTo(60))
		g.Expect(s.Scope).To(Equal(hubv1.CapScopeProject))
		g.Expect(s.CycleStart.Time).To(BeTemporally("==", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
		g.Expect(s.CycleEnd.Time).To(BeTemporally("==", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
		g.Expect(s.BurnRate).NotTo(BeNil())
		g.Expect(s.ProjectedExhaustion).NotTo(BeNil(), "at the rate of the last 12 hours, 10 is reached before December")
	}, 10*time.Second).Should(Succeed())
	g.Expect(projectCapReached(g, "caps-money")).To(BeFalse())

	e.spend(g, "caps-money", 4, 1_000_000) // 10.00 of 10
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapExceeded))
		g.Expect(meta.IsStatusConditionTrue(s.Conditions, hubv1.CapReachedCondition)).To(BeTrue())
		g.Expect(projectCapReached(g, "caps-money")).To(BeTrue())
	}, 10*time.Second).Should(Succeed())

	// The cycle ends (no Organization: the calendar month, UTC).
	e.clock.SetTime(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC))
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapOK))
		g.Expect(s.Spent).To(BeEquivalentTo("0"))
		g.Expect(s.CycleStart.Time).To(BeTemporally("==", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
		g.Expect(projectCapReached(g, "caps-money")).To(BeFalse())
	}, 10*time.Second).Should(Succeed())
}

// TestAlertOnlyCapNeverStops: an AlertOnly cap past 100% is Exceeded but
// stops nothing.
func TestAlertOnlyCapNeverStops(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := startCaps(t, g, "caps-hub-b")
	projectWithNamespace(g, "caps-alertonly")
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-alertonly", Name: "watch"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](1000)}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.spend(g, "caps-alertonly", 3, 500)
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapExceeded))
		g.Expect(s.Percent).To(BeEquivalentTo(150))
		g.Expect(s.Tokens).To(BeEquivalentTo(1500))
	}, 10*time.Second).Should(Succeed())
	g.Expect(meta.FindStatusCondition(getCap(g, c).Status.Conditions, hubv1.CapReachedCondition)).To(BeNil())
	g.Consistently(func() bool { return projectCapReached(g, "caps-alertonly") }, time.Second).Should(BeFalse())
}

// TestTokenCapStopsAndRaisedCapResumes: a Hard token cap stops its project
// at 100% of its tokens like a money cap, and raising it resumes traffic
// within the same cycle.
func TestTokenCapStopsAndRaisedCapResumes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := startCaps(t, g, "caps-hub-f")
	projectWithNamespace(g, "caps-tokens")
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-tokens", Name: "tokens"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](1000), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.spend(g, "caps-tokens", 9, 100) // 90%
	g.Eventually(func(g Gomega) { g.Expect(getCap(g, c).Status.State).To(Equal(hubv1.CapWarning)) }, 10*time.Second).Should(Succeed())
	g.Expect(projectCapReached(g, "caps-tokens")).To(BeFalse())
	e.spend(g, "caps-tokens", 1, 100) // 100%
	g.Eventually(func(g Gomega) {
		g.Expect(getCap(g, c).Status.State).To(Equal(hubv1.CapExceeded))
		g.Expect(projectCapReached(g, "caps-tokens")).To(BeTrue())
	}, 10*time.Second).Should(Succeed())

	getCap(g, c).Spec.TokenLimit = ptr.To[int64](2000)
	g.Expect(k8sClient.Update(ctx, c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.Percent).To(BeEquivalentTo(50))
		g.Expect(s.State).To(Equal(hubv1.CapWarning))
		g.Expect(projectCapReached(g, "caps-tokens")).To(BeFalse())
	}, 10*time.Second).Should(Succeed())
}

// TestOrganizationCapStopsEveryProject: a Hard cap in the hub's namespace
// counts every project's usage and marks the Organization.
func TestOrganizationCapStopsEveryProject(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const hubNS = "caps-hub-c"
	e := startCaps(t, g, hubNS)
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}})).To(Succeed())
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), org) })
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: "org"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](1000), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())

	e.spend(g, "caps-org-a", 1, 600)
	e.spend(g, "caps-org-b", 1, 400)
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.Scope).To(Equal(hubv1.CapScopeOrganization))
		g.Expect(s.Tokens).To(BeEquivalentTo(1000))
		g.Expect(s.State).To(Equal(hubv1.CapExceeded))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, hubv1.CapReachedCondition)).To(BeTrue())
	}, 10*time.Second).Should(Succeed())

	// Raising it lifts the stop.
	patch := client.MergeFrom(c.DeepCopy())
	c.Spec.TokenLimit = ptr.To[int64](5000)
	g.Expect(k8sClient.Patch(ctx, c, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.FindStatusCondition(org.Status.Conditions, hubv1.CapReachedCondition)).To(BeNil())
		g.Expect(getCap(g, c).Status.Percent).To(BeEquivalentTo(20))
	}, 10*time.Second).Should(Succeed())
}

// TestDeletedCapStopsNothing: deleting an exhausted Hard cap lifts the stop
// it put on its project.
func TestDeletedCapStopsNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := startCaps(t, g, "caps-hub-d")
	projectWithNamespace(g, "caps-deleted")
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-deleted", Name: "tiny"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](10), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.spend(g, "caps-deleted", 1, 20)
	g.Eventually(func() bool { return projectCapReached(g, "caps-deleted") }, 10*time.Second).Should(BeTrue())
	g.Expect(k8sClient.Delete(ctx, c)).To(Succeed())
	g.Eventually(func() bool { return projectCapReached(g, "caps-deleted") }, 10*time.Second).Should(BeFalse())
}

// TestHardCapTotals: the totals the server returns with each ingest answer
// cover the Hard caps of the batch's projects and of the organization, not
// AlertOnly caps or other projects' caps.
func TestHardCapTotals(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const hubNS = "caps-hub-g"
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}})).To(Succeed())
	e := startCaps(t, g, hubNS)
	projectWithNamespace(g, "caps-totals-a")
	projectWithNamespace(g, "caps-totals-b")
	hard := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-totals-a", Name: "hard"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("100")), Enforcement: hubv1.CapHard}}
	soft := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-totals-a", Name: "soft"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("100"))}}
	other := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-totals-b", Name: "hard"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("100")), Enforcement: hubv1.CapHard}}
	org := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: "org"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](1 << 40), Enforcement: hubv1.CapHard}}
	for _, c := range []*hubv1.SpendingCap{hard, soft, other, org} {
		g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	}
	e.spend(g, "caps-totals-a", 3, 1_000_000)
	e.spend(g, "caps-totals-b", 1, 1_000_000)
	g.Eventually(func(g Gomega) {
		totals, err := e.caps.HardCapTotals(ctx, []string{"caps-totals-a"})
		g.Expect(err).NotTo(HaveOccurred())
		byUID := map[string]usage.CapTotals{}
		for _, tt := range totals {
			byUID[tt.UID] = tt
		}
		g.Expect(byUID).To(HaveLen(2), "the project's Hard cap and the organization's")
		g.Expect(byUID[string(hard.UID)].Spent).To(Equal("3"))
		g.Expect(byUID[string(hard.UID)].Tokens).To(BeEquivalentTo(3_000_000))
		g.Expect(byUID[string(hard.UID)].CycleStart).To(BeTemporally("==", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
		g.Expect(byUID[string(org.UID)].Tokens).To(BeEquivalentTo(4_000_000), "every project counts")
	}, 10*time.Second).Should(Succeed())

	// Later batches are added to the running totals as they are stored,
	// not summed from the store again; a repeated event counts once.
	batch := []usage.Event{{ID: "late-1", Time: e.clock.Now(), Project: "caps-totals-a", KeyID: "AbCdEf0123",
		Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "m", InputTokens: 500_000, StatusCode: 200}}
	for range 2 {
		done := e.caps.BeginIngest()
		stored, err := e.store.Insert(ctx, batch)
		g.Expect(err).NotTo(HaveOccurred())
		done(stored)
	}
	totals, err := e.caps.HardCapTotals(ctx, []string{"caps-totals-a"})
	g.Expect(err).NotTo(HaveOccurred())
	for _, tt := range totals {
		switch tt.UID {
		case string(hard.UID):
			g.Expect(tt.Spent).To(Equal("3.5"))
		case string(org.UID):
			g.Expect(tt.Tokens).To(BeEquivalentTo(4_500_000))
		}
	}
}

// TestGroupCapCountsItsMembersKeys: a Hard group cap in the hub's namespace
// sums the usage of the keys its members own, in every project, and not the
// others'; at 100% it marks itself, not the organization.
func TestGroupCapCountsItsMembersKeys(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const hubNS = "caps-hub-grp"
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}})).To(Succeed())
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	e := startCaps(t, g, hubNS)
	projectWithNamespace(g, "caps-grp-a")
	projectWithNamespace(g, "caps-grp-b")
	for _, m := range []*hubv1.Member{
		{ObjectMeta: metav1.ObjectMeta{Name: "grp-ann"}, Spec: hubv1.MemberSpec{Email: "ann@example.com", Role: hubv1.RoleDeveloper, Groups: []string{"ml"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "grp-bob"}, Spec: hubv1.MemberSpec{Email: "bob@example.com", Role: hubv1.RoleDeveloper}},
	} {
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, m) })
	}
	// The server records who owns each key ID (from the APIKeys); here the
	// store is written directly, as that recorder would.
	g.Expect(e.store.RecordKeyOwners(ctx, []usage.KeyOwner{{KeyID: "AnnKeyA001", Project: "caps-grp-a", Owner: "ann@example.com"},
		{KeyID: "AnnKeyB001", Project: "caps-grp-b", Owner: "Ann@Example.COM" /* the same person */}, {KeyID: "BobKey0001", Project: "caps-grp-a", Owner: "bob@example.com"}})).To(Succeed())
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: "ml-budget"},
		Spec: hubv1.SpendingCapSpec{Group: "ml", TokenLimit: ptr.To[int64](1000), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	spendAs := func(project, key string, tokens int64) {
		e.sent++
		_, err := e.store.Insert(ctx, []usage.Event{{ID: fmt.Sprintf("grp-%d", e.sent), Time: e.clock.Now(), Project: project, KeyID: key,
			Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "m", InputTokens: tokens, StatusCode: 200}})
		g.Expect(err).NotTo(HaveOccurred())
		e.caps.Ingested([]string{project})
	}
	spendAs("caps-grp-a", "AnnKeyA001", 400)
	spendAs("caps-grp-b", "AnnKeyB001", 200)
	spendAs("caps-grp-a", "BobKey0001", 5000) // not in the group
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.Scope).To(Equal(hubv1.CapScopeGroup))
		g.Expect(s.Tokens).To(BeEquivalentTo(600))
		g.Expect(s.State).To(Equal(hubv1.CapWarning))
	}, 10*time.Second).Should(Succeed())

	spendAs("caps-grp-b", "AnnKeyB001", 400) // 1000 of 1000
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapExceeded))
		g.Expect(meta.IsStatusConditionTrue(s.Conditions, hubv1.CapReachedCondition)).To(BeTrue())
	}, 10*time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, hubv1.CapReachedCondition)).To(BeFalse(),
			"a group cap stops its members' keys, not the organization")
		g.Expect(projectCapReached(g, "caps-grp-a")).To(BeFalse())
	}, time.Second).Should(Succeed())
}

// TestCapEvaluatesAStoreOfExtremeValues: a store whose sums saturate (ten
// thousand storage events at the per-event ceiling, 10^19 byte-hours in
// all, beyond the largest bigint) is still evaluated: the cap is exceeded
// and its project stopped, rather than its evaluation failing and caps
// going unenforced for the cycle.
func TestCapEvaluatesAStoreOfExtremeValues(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newCapsEnv(t, g, "caps-hub-x")
	var err error
	e.prices, err = pricing.New(&hubv1.PriceList{Storage: &hubv1.StoragePricing{PerGBMonth: "0.02"}})
	g.Expect(err).NotTo(HaveOccurred())
	projectWithNamespace(g, "caps-extreme")
	for b := range 2 {
		batch := make([]usage.Event, 0, 5000)
		for i := range 5000 {
			batch = append(batch, usage.Event{ID: fmt.Sprintf("x%d-%d", b, i), Time: e.clock.Now(), Project: "caps-extreme", KeyID: "AbCdEf0123",
				Service: pricing.Storage, Endpoint: "/v1/files", StorageByteHours: usage.MaxStorageByteHoursPerEvent, StatusCode: 200})
		}
		_, err := e.store.Insert(ctx, batch)
		g.Expect(err).NotTo(HaveOccurred())
	}
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-extreme", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("100")), Enforcement: hubv1.CapHard}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.start(g, nil)
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.State).To(Equal(hubv1.CapExceeded))
		// 2^63-1 byte-hours at 0.02 per 730 * 10^9: the saturated sum, priced.
		g.Expect(string(s.Spent)).To(HavePrefix("252695."))
		g.Expect(projectCapReached(g, "caps-extreme")).To(BeTrue())
	}, 10*time.Second).Should(Succeed())
}

// TestCapFiguresHeldBackAreWritten: a cap with nothing spent shows 0%;
// figures that change soon after a write
// are held back for the status interval, then written without further
// ingest or resync, so a cap's status is never more than an interval behind.
func TestCapFiguresHeldBackAreWritten(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newCapsEnv(t, g, "caps-hub-i")
	e.resync, e.statusInterval = time.Hour, 2*time.Second
	e.start(g, nil)
	projectWithNamespace(g, "caps-fresh")
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-fresh", Name: "watch"},
		Spec: hubv1.SpendingCapSpec{TokenLimit: ptr.To[int64](1000)}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	// Nothing spent: percent is stored as 0, so kubectl prints 0%.
	g.Eventually(func(g Gomega) {
		raw := &unstructured.Unstructured{}
		raw.SetGroupVersionKind(hubv1.GroupVersion.WithKind("SpendingCap"))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), raw)).To(Succeed())
		percent, found, err := unstructured.NestedInt64(raw.Object, "status", "percent")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(found).To(BeTrue(), "status.percent is stored")
		g.Expect(percent).To(BeZero())
	}, 10*time.Second).Should(Succeed())
	e.spend(g, "caps-fresh", 1, 10)
	g.Eventually(func() int64 { return getCap(g, c).Status.Tokens }, 10*time.Second).Should(BeEquivalentTo(10))

	e.spend(g, "caps-fresh", 1, 20) // inside the interval: held back, then written
	g.Eventually(func() int64 { return getCap(g, c).Status.Tokens }, 10*time.Second).Should(BeEquivalentTo(30))
}
