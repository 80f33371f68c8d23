package dashboard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	"github.com/pquerna/otp/totp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/testbrowser"
)

// withCapAndKey gives the overview something to show: a project of the
// name with a key, support-bot (issued by the manager's controller), and a
// cap at 83% (the status the usage server would write). A project's name
// is used once per run: its namespace outlives it.
func withCapAndKey(t *testing.T, g Gomega, name string) {
	ctx := context.Background()
	newProject(t, g, name, hubv1.ProjectSpec{DisplayName: "Support chatbot"})
	key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "support-bot"},
		Spec: hubv1.APIKeySpec{Label: "Support assistant (production)", Scope: hubv1.ScopeStandard, Owner: "browser@example.com"}}
	g.Expect(env.Client.Create(ctx, key)).To(Succeed())
	limit := hubv1.Amount("100.00")
	cap := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "monthly-budget"},
		Spec: hubv1.SpendingCapSpec{Limit: &limit, Enforcement: hubv1.CapAlertOnly}}
	g.Expect(env.Client.Create(ctx, cap)).To(Succeed())
	cap.Status = hubv1.SpendingCapStatus{Spent: "83.20", Percent: 83, State: hubv1.CapWarning}
	g.Expect(env.Client.Status().Update(ctx, cap)).To(Succeed())
	g.Eventually(func() hubv1.APIKeyPhase {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(key), key)
		return key.Status.Phase
	}, 20*time.Second, 100*time.Millisecond).Should(Equal(hubv1.KeyActive))
}

// newProject creates a project of the name and waits for its namespace
// (the manager's), which it returns. A project's name is used once per
// run: its namespace outlives it.
func newProject(t *testing.T, g Gomega, name string, spec hubv1.ProjectSpec) string {
	ctx := context.Background()
	project := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	g.Expect(env.Client.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), project) })
	g.Eventually(func() string {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(project), project)
		return project.Status.Namespace
	}, 20*time.Second, 100*time.Millisecond).ShouldNot(BeEmpty())
	return project.Status.Namespace
}

// textOf is the trimmed text of the first element a CSS selector finds.
func textOf(ctx context.Context, g Gomega, sel string) string {
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	g.Expect(err).NotTo(HaveOccurred(), sel)
	return strings.TrimSpace(v)
}

// TestInABrowser: in headless Chromium, an invited Admin creates their
// account, sets up the second factor the policy asks for, and reaches the
// overview, which fits desktop, tablet and phone screens without
// horizontal scrolling. Screenshots go to $DASHBOARD_SCREENSHOTS when set
// (docs/images/ keeps a few).
func TestInABrowser(t *testing.T) {
	g := NewWithT(t)
	requireMFA(t, g)
	s := newSite(t, g)
	link := invite(t, g, "browser", hubv1.RoleAdmin)
	withCapAndKey(t, g, "chatbot")
	ctx := testbrowser.Start(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string { return textOf(ctx, g, sel) }
	fits := func() bool {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}

	g.Expect(chromedp.Do(ctx, chromedp.Navigate(s.url+link))).To(Succeed())
	g.Expect(text("h1")).To(Equal("Join as Admin"))
	g.Expect(chromedp.Do(ctx,
		chromedp.SendKeys(css("#password"), "a browser's long passphrase"),
		chromedp.SendKeys(css("#confirm"), "a browser's long passphrase"),
		chromedp.Submit(css("#confirm")),
		chromedp.WaitVisible(css("code.secret")),
	)).To(Succeed())
	code, err := totp.GenerateCode(text("code.secret"), clk.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chromedp.Do(ctx,
		chromedp.SendKeys(css("#code"), code),
		chromedp.Submit(css("#code")),
		chromedp.WaitVisible(css("ul.codes")),
	)).To(Succeed())
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("ul.codes code")).map(c => c.textContent)`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(codes).To(HaveLen(10))
	g.Expect(chromedp.Do(ctx, chromedp.Click(css("a.button")), chromedp.WaitVisible(css("nav.sidebar")))).To(Succeed())
	g.Expect(text("h1")).To(Equal("Overview"))
	g.Expect(text("ul.alerts")).To(ContainSubstring("Spending cap chatbot/monthly-budget is at 83% (Warning)."))
	g.Expect(text(`section[aria-labelledby="keys"] p.figure`)).NotTo(Equal("0"), "support-bot works, and the informer has it")

	testbrowser.CheckFits(t, ctx, s.url, "/", "overview", "nav.sidebar")

	// Signing out in the browser; the sign-in page fits a phone too.
	g.Expect(chromedp.Do(ctx, chromedp.Click(css(`nav.sidebar button[type="submit"]`)), chromedp.WaitVisible(css("#password")))).To(Succeed())
	g.Expect(text("h1")).To(Equal("Sign in to Platform Hub"))
	g.Expect(fits()).To(BeTrue())
}
