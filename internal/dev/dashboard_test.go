package dev

import (
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	"github.com/pquerna/otp/totp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/testbrowser"
)

// browser is an HTTP client with cookies, following redirects.
type browser struct {
	g    Gomega
	base string
	c    *http.Client
}

func newBrowser(g Gomega, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{g: g, base: base, c: &http.Client{Jar: jar}}
}

func (b *browser) do(req *http.Request, err error) (int, string) {
	b.g.Expect(err).NotTo(HaveOccurred())
	resp, err := b.c.Do(req)
	b.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	b.g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

func (b *browser) get(path string) (int, string) {
	return b.do(http.NewRequest(http.MethodGet, b.base+path, nil))
}

func (b *browser) post(path string, form url.Values) (int, string) {
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if req != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return b.do(req, err)
}

// signUp follows an invitation link's path and creates the account; when
// the page then asks for a second factor, it sets one up, and returns the
// recovery codes.
func (b *browser) signUp(link, password string) []string {
	u, err := url.Parse(link)
	b.g.Expect(err).NotTo(HaveOccurred())
	status, body := b.post(invitations.AcceptPath, url.Values{"member": {u.Query().Get("member")}, "token": {u.Query().Get("token")},
		"password": {password}, "confirm": {password}})
	b.g.Expect(status).To(Equal(http.StatusOK), body)
	if secret := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(body); secret != nil {
		code, err := totp.GenerateCode(secret[1], time.Now())
		b.g.Expect(err).NotTo(HaveOccurred())
		status, body = b.post("/account/second-factor", url.Values{"code": {code}})
		b.g.Expect(status).To(Equal(http.StatusOK), body)
	}
	found := regexp.MustCompile(`<code>([a-z2-7]{5}-[a-z2-7]{5})</code>`).FindAllStringSubmatch(body, -1)
	codes := make([]string, 0, len(found))
	for _, m := range found {
		codes = append(codes, m[1])
	}
	return codes
}

var newKeyPattern = regexp.MustCompile(`id="new-key" value="(mhub_[^"]+)"`)

// TestDashboardKeys runs the whole hub and, as its first Owner, from the
// link hub dev prints: creates the account (with the second factor the
// sample policy asks Owners for), lists the sample key, generates a key and
// sees it once (the gateway takes it; the list never shows it; the same
// form again makes no second key), rotates it (the new key shown once, the
// old one working until retired), and revokes it (the gateway refuses it
// then). A Viewer has no API Keys entry, and its URL answers 403.
func TestDashboardKeys(t *testing.T) {
	setTestLogger()
	g := NewWithT(t)
	stateDir := t.TempDir()
	d := startDev(t, stateDir)
	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/v1/invitations/accept\?\S+`).FindString(d.out.String())
	g.Expect(link).NotTo(BeEmpty(), d.out.String())
	base := link[:strings.Index(link, invitations.AcceptPath)]
	owner := newBrowser(g, base)
	recovery := owner.signUp(link, "the first owner's passphrase")
	g.Expect(recovery).To(HaveLen(10))

	status, body := owner.get("/keys")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`<a href="/keys" aria-current="page">API Keys</a>`))
	g.Expect(body).To(ContainSubstring("support-bot"))

	form := url.Values{"label": {"CI pipeline"}, "project": {"chatbot"}, "scope": {"Standard"}, "expiresAfter": {"30d"},
		"idempotency": {"form-1"}}
	status, body = owner.post("/keys", form)
	g.Expect(status).To(Equal(http.StatusCreated), body)
	match := newKeyPattern.FindStringSubmatch(body)
	g.Expect(match).To(HaveLen(2), body)
	key := match[1]
	name := regexp.MustCompile(`Key (key-[a-z0-9]+) \(([^)]+)\)`).FindStringSubmatch(body)
	g.Expect(name).To(HaveLen(3), body)
	keyID := name[2]

	call := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.gatewayAddr+"/v1/chat/completions",
			strings.NewReader(`{"model":"MiniMax-M2","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Eventually(func() int { return call(key) }, 20*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK))
	for range 3 {
		g.Expect(call(key)).To(Equal(http.StatusOK))
	}

	// The key's call log: the four calls, on its page and as CSV, once
	// the gateway has shipped them.
	g.Eventually(func() int {
		_, csvBody := owner.get("/keys/chatbot/" + name[1] + "/calls.csv")
		rows, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
		g.Expect(err).NotTo(HaveOccurred(), csvBody)
		g.Expect(rows[0]).To(Equal(mgmtv1alpha1.UsageRecordCSVHeader))
		return len(rows) - 1
	}, 30*time.Second, 500*time.Millisecond).Should(Equal(4))
	status, body = owner.get("/keys/chatbot/" + name[1])
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(strings.Count(body, "<td data-label=\"Endpoint\">/v1/chat/completions</td>")).To(Equal(4))
	g.Expect(body).To(ContainSubstring("MiniMax-M2"))
	g.Expect(body).NotTo(ContainSubstring(key))

	// Usage by key this cycle: the same four calls, in the page, in its
	// CSV, and behind the row's drill-down link.
	const view = "/usage?range=cycle&granularity=Day&group=KeyID"
	status, body = owner.get(view)
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring(`<a href="/usage" aria-current="page">Usage</a>`))
	g.Expect(body).To(ContainSubstring(keyID))
	_, csvBody := owner.get("/usage.csv?range=cycle&granularity=Day&group=KeyID")
	rows, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	g.Expect(err).NotTo(HaveOccurred(), csvBody)
	column := map[string]int{}
	for i, c := range rows[0] {
		column[c] = i
	}
	calls := 0
	for _, row := range rows[1:] {
		if row[column["key_id"]] == keyID {
			n, err := strconv.Atoi(row[column["calls"]])
			g.Expect(err).NotTo(HaveOccurred())
			calls += n
		}
	}
	g.Expect(calls).To(Equal(4), csvBody)
	drill := regexp.MustCompile(`href="(/usage/calls\?[^"]*keyID=` + regexp.QuoteMeta(url.QueryEscape(keyID)) + `[^"]*)"`).FindStringSubmatch(body)
	g.Expect(drill).To(HaveLen(2), body)
	status, body = owner.get(strings.ReplaceAll(drill[1], "&amp;", "&"))
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(strings.Count(body, "<td data-label=\"Endpoint\">/v1/chat/completions</td>")).To(Equal(4))

	_, body = owner.get("/keys")
	g.Expect(body).To(ContainSubstring(name[1]))
	g.Expect(body).To(ContainSubstring("CI pipeline"))
	g.Expect(body).NotTo(ContainSubstring(key), "shown once")
	status, body = owner.post("/keys", form)
	g.Expect(status).To(Equal(http.StatusConflict))
	g.Expect(body).To(ContainSubstring("a key is shown once only"))
	g.Expect(body).NotTo(ContainSubstring(key))

	// Rotating: the new key is shown once; the old one works through the
	// overlap, until the owner retires it.
	status, body = owner.get("/keys/chatbot/" + name[1] + "/rotate")
	g.Expect(status).To(Equal(http.StatusOK))
	rotationID := regexp.MustCompile(`name="rotationID" value="([a-z0-9-]+)"`).FindStringSubmatch(body)
	g.Expect(rotationID).To(HaveLen(2), body)
	status, body = owner.post("/keys/chatbot/"+name[1]+"/rotate", url.Values{"rotationID": {rotationID[1]}})
	g.Expect(status).To(Equal(http.StatusCreated), body)
	g.Expect(body).To(ContainSubstring("keeps working until"))
	match = newKeyPattern.FindStringSubmatch(body)
	g.Expect(match).To(HaveLen(2), body)
	rotated := match[1]
	g.Expect(rotated).NotTo(Equal(key))
	g.Eventually(func() int { return call(rotated) }, 20*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(call(key)).To(Equal(http.StatusOK), "the previous key works through the overlap")
	status, body = owner.post("/keys/chatbot/"+name[1]+"/rotate", url.Values{"rotationID": {rotationID[1]}})
	g.Expect(status).To(Equal(http.StatusConflict), "the same rotation form again rotates nothing")
	g.Expect(body).NotTo(ContainSubstring(rotated))
	_, body = owner.get("/keys")
	g.Expect(body).To(ContainSubstring("Retire the previous key"))
	status, body = owner.post("/keys/chatbot/"+name[1]+"/retire", nil)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("only the new one works now"))
	g.Eventually(func() int { return call(key) }, 20*time.Second, 200*time.Millisecond).Should(Equal(http.StatusUnauthorized))
	g.Expect(call(rotated)).To(Equal(http.StatusOK))
	key = rotated

	status, body = owner.get("/keys/chatbot/" + name[1] + "/revoke")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Revoke key " + name[1] + "?"))
	status, body = owner.post("/keys/chatbot/"+name[1]+"/revoke", nil)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Key " + name[1] + " is revoked"))
	g.Eventually(func() int { return call(key) }, 20*time.Second, 200*time.Millisecond).Should(Equal(http.StatusUnauthorized))

	// The changes are the owner's, made through the dashboard.
	admin := clientFromKubeconfig(g, filepath.Join(stateDir, "kubeconfig"))
	made := &hubv1.APIKey{}
	g.Expect(admin.Get(context.Background(), client.ObjectKey{Namespace: "chatbot", Name: name[1]}, made)).To(Succeed())
	g.Expect(made.Spec.Owner).To(Equal("owner@example.com"))
	g.Expect(made.Spec.Revoked).To(BeTrue())
	// The audit log has the owner's writes: the key made through the
	// management API, its rotation, and its revocation through the
	// dashboard.
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(stateDir, "kubeconfig"))
	g.Expect(err).NotTo(HaveOccurred())
	withManagement := scheme.New()
	g.Expect(mgmtv1alpha1.AddToScheme(withManagement)).To(Succeed())
	history, err := client.New(cfg, client.Options{Scheme: withManagement})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() []string {
		var events mgmtv1alpha1.AuditEventList
		if err := history.List(context.Background(), &events, client.MatchingFields{"object.name": name[1]}); err != nil {
			return []string{err.Error()}
		}
		var seen []string
		for _, e := range events.Items {
			seen = append(seen, e.Action+" by "+e.Actor+" via "+e.Via)
		}
		return seen
	}, 30*time.Second, 500*time.Millisecond).Should(And(
		ContainElement("create by owner@example.com via management-api"),
		ContainElement("update by owner@example.com via dashboard")))

	// In headless Chromium, signed in with a recovery code: the overview,
	// the keys and usage fit desktop, tablet and phone screens.
	ctx := testbrowser.Start(t)
	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/signin"),
		chromedp.SendKeys(chromedp.CSS("#email"), "owner@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "the first owner's passphrase"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#code")),
		chromedp.SendKeys(chromedp.CSS("#code"), recovery[0]),
		chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("nav.sidebar")),
	)).To(Succeed())
	// The overview's chart of the last week draws the calls made above.
	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#usage-chart canvas")))).To(Succeed())
	recent, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`section[aria-labelledby="recent"] .figure`)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(recent).To(MatchRegexp(`^[1-9][0-9]*$`))
	testbrowser.CheckFits(t, ctx, base, "/", "overview", "nav.sidebar")
	testbrowser.CheckFits(t, ctx, base, "/keys", "keys", "nav.sidebar")
	testbrowser.CheckFits(t, ctx, base, "/usage?range=cycle&granularity=Day&group=KeyID", "usage", "#report")

	// Clicking a point of the usage chart opens the calls behind it.
	g.Expect(chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+view),
		chromedp.WaitVisible(chromedp.CSS("#usage-chart canvas")))).To(Succeed())
	point, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => {
		const el = document.getElementById("usage-chart"), u = el.usagePlot, chart = JSON.parse(el.dataset.chart);
		for (let k = 0; k < chart.series.length; k++) {
			for (let i = 0; i < chart.x.length; i++) {
				if (chart.series[k].links[i]) {
					const r = u.over.getBoundingClientRect();
					return {x: r.left + u.valToPos(chart.x[i], "x"), y: r.top + u.valToPos(chart.series[k].values[i], "y"),
						link: chart.series[k].links[i]};
				}
			}
		}
		return null;
	})()`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(point).NotTo(BeNil())
	x, y := point["x"].(float64), point["y"].(float64)
	// The pointer moves there first, as a person's does: the chart follows
	// it to know the point.
	g.Expect(chromedp.Do(ctx, chromedp.MouseEvent(chromedp.MouseMoved, x, y), chromedp.MouseClickXY(x, y),
		chromedp.WaitVisible(chromedp.CSS(`p a[href="/usage"]`)))).To(Succeed())
	location, err := chromedp.Run(ctx, chromedp.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(location).To(Equal(base + point["link"].(string)))
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(heading).To(Equal("Calls"))

	// A Viewer.
	viewer := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}, Spec: hubv1.MemberSpec{Email: "viewer@example.com",
		Role: hubv1.RoleViewer}}
	g.Expect(admin.Create(context.Background(), viewer)).To(Succeed())
	g.Expect(invitations.RecordSent(context.Background(), admin, admin, "viewer", "a-token-for-the-viewer-0123456789abcdef",
		time.Now(), time.Now().Add(time.Hour))).To(Succeed())
	v := newBrowser(g, base)
	v.signUp(invitations.Link(base, "viewer", "a-token-for-the-viewer-0123456789abcdef"), "the viewer's passphrase")
	_, body = v.get("/")
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
	g.Expect(body).NotTo(ContainSubstring("API Keys"))
	g.Expect(body).To(ContainSubstring(`<a href="/usage">Usage</a>`))
	status, body = v.get(view)
	g.Expect(status).To(Equal(http.StatusOK), "a Viewer reads usage")
	g.Expect(body).To(ContainSubstring(keyID))
	status, body = v.get("/keys")
	g.Expect(status).To(Equal(http.StatusForbidden))
	g.Expect(body).To(ContainSubstring("API Keys is for the Developer role and above, in the organization or in a project; your role is Viewer."))
	status, _ = v.post("/keys", form)
	g.Expect(status).To(Equal(http.StatusForbidden))
}
