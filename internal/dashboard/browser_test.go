package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	"github.com/pquerna/otp/totp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// chromium starts a headless Chromium (Debian's, which make test-deps
// installs) and returns a browser context. Root in a container runs it
// without its sandbox.
func chromium(t *testing.T, g Gomega) context.Context {
	path, err := exec.LookPath("chromium")
	g.Expect(err).NotTo(HaveOccurred(), "Chromium is needed: run hack/install-test-deps.sh (make test does)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// withCapAndKey gives the overview something to show: a project with a
// key (issued by the manager's controller) and a cap at 83% (the status
// the usage server would write).
func withCapAndKey(t *testing.T, g Gomega) {
	ctx := context.Background()
	project := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "chatbot"}, Spec: hubv1.ProjectSpec{DisplayName: "Support chatbot"}}
	g.Expect(env.Client.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), project) })
	g.Eventually(func() string {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(project), project)
		return project.Status.Namespace
	}, 20*time.Second, 100*time.Millisecond).ShouldNot(BeEmpty())
	key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "chatbot", Name: "support-bot"},
		Spec: hubv1.APIKeySpec{Label: "Support assistant (production)", Scope: hubv1.ScopeStandard, Owner: "browser@example.com"}}
	g.Expect(env.Client.Create(ctx, key)).To(Succeed())
	limit := hubv1.Amount("100.00")
	cap := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "chatbot", Name: "monthly-budget"},
		Spec: hubv1.SpendingCapSpec{Limit: &limit, Enforcement: hubv1.CapAlertOnly}}
	g.Expect(env.Client.Create(ctx, cap)).To(Succeed())
	cap.Status = hubv1.SpendingCapStatus{Spent: "83.20", Percent: 83, State: hubv1.CapWarning}
	g.Expect(env.Client.Status().Update(ctx, cap)).To(Succeed())
	g.Eventually(func() hubv1.APIKeyPhase {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(key), key)
		return key.Status.Phase
	}, 20*time.Second, 100*time.Millisecond).Should(Equal(hubv1.KeyActive))
}

// viewports are the sizes pages must fit: desktop, tablet, phone.
var viewports = []struct {
	name          string
	width, height int64
}{{"desktop", 1280, 800}, {"tablet", 820, 1180}, {"phone", 390, 844}}

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
	withCapAndKey(t, g)
	ctx := chromium(t, g)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		g.Expect(err).NotTo(HaveOccurred(), sel)
		return strings.TrimSpace(v)
	}
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

	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	for _, v := range viewports {
		g.Expect(chromedp.Do(ctx, chromedp.EmulateViewport(v.width, v.height), chromedp.Reload(),
			chromedp.WaitVisible(css("nav.sidebar")))).To(Succeed())
		g.Expect(fits()).To(BeTrue(), "%s: the overview scrolls sideways", v.name)
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(shot)).To(BeNumerically(">", 1000))
		if dir != "" {
			g.Expect(os.WriteFile(filepath.Join(dir, fmt.Sprintf("dashboard-overview-%s.png", v.name)), shot, 0o644)).To(Succeed())
		}
	}

	// Signing out in the browser; the sign-in page fits a phone too.
	g.Expect(chromedp.Do(ctx, chromedp.Click(css(`nav.sidebar button[type="submit"]`)), chromedp.WaitVisible(css("#password")))).To(Succeed())
	g.Expect(text("h1")).To(Equal("Sign in to Platform Hub"))
	g.Expect(fits()).To(BeTrue())
}
