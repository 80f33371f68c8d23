package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/pquerna/otp/totp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/dashboard"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/perclient"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/testenv"
)

var (
	env *testenv.Env
	clk = clocktesting.NewFakeClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	var err error
	if env, err = testenv.Start(clk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

var sealingKey = []byte("0123456789abcdef0123456789abcdef")

// site is a dashboard on a real API server and a real accounts store, and
// a browser-like client of it (cookies; redirects followed).
type site struct {
	url    string
	client *http.Client
	store  accounts.Store
}

func newSite(t *testing.T, g Gomega, change ...func(*dashboard.Options)) *site {
	db, err := sqldb.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "hub.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = db.Close() })
	store, err := accounts.New(context.Background(), db, accounts.Options{SealingKey: sealingKey,
		Clock: clk, HashParams: accounts.HashParams{Time: 1, Memory: 8 * 1024, Threads: 1}})
	g.Expect(err).NotTo(HaveOccurred())
	o := dashboard.Options{Accounts: store, Reader: env.Client, Informers: env.Cache, Clock: clk, Insecure: true, SealingKey: sealingKey,
		Invitations: &invitations.Handler{Reader: env.Client, Client: env.Client, Clock: clk}}
	for _, c := range change {
		c(&o)
	}
	d, err := dashboard.New(o)
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return &site{url: srv.URL, client: browser(), store: store}
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

// get and post return the final status and body, after redirects.
func (s *site) get(g Gomega, path string) (int, string) {
	resp, err := s.client.Get(s.url + path)
	g.Expect(err).NotTo(HaveOccurred())
	return read(g, resp)
}

func (s *site) post(g Gomega, path string, form url.Values) (int, string) {
	resp, err := s.client.PostForm(s.url+path, form)
	g.Expect(err).NotTo(HaveOccurred())
	return read(g, resp)
}

func read(g Gomega, resp *http.Response) (int, string) {
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// invite creates a Member with an invitation out (what the server's
// invitation controller does, minus the email) and returns its link's path.
func invite(t *testing.T, g Gomega, name string, role hubv1.Role) string {
	ctx := context.Background()
	m := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.MemberSpec{Email: name + "@example.com", Role: role}}
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), m) })
	token := "token-of-" + name + "-0123456789abcdef0123456789abcdef"
	g.Expect(invitations.RecordSent(ctx, env.Client, env.Client, name, token, clk.Now(), clk.Now().Add(72*time.Hour))).To(Succeed())
	u, err := url.Parse(invitations.Link("http://hub.example", name, token))
	g.Expect(err).NotTo(HaveOccurred())
	return u.RequestURI()
}

var secretPattern = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

// code is the authenticator app's current code for a secret.
func code(g Gomega, secret string) string {
	c, err := totp.GenerateCode(secret, clk.Now())
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// requireMFA sets the Organization's policy: a second factor for everyone,
// sessions idle for 15 minutes at most.
func requireMFA(t *testing.T, g Gomega) {
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Security.MFA = &hubv1.MFAPolicy{Enforcement: hubv1.MFAAllMembers}
	org.Spec.Security.SessionTimeout = &metav1.Duration{Duration: 15 * time.Minute}
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), org) })
}

// TestInvitationToOverview: an invited Admin creates an account with a
// password; the MFA policy makes them set up a TOTP second factor before
// anything else, and the recovery codes are shown once. They sign out,
// sign in again with the password and a code, and land on the overview. A
// wrong code is refused; after the Organization's idle time the session is
// over; a change of role ends it too.
func TestInvitationToOverview(t *testing.T) {
	g := NewWithT(t)
	requireMFA(t, g)
	s := newSite(t, g)
	link := invite(t, g, "admin", hubv1.RoleAdmin)

	status, body := s.get(g, link)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Join as Admin"))
	form := url.Values{"member": {"admin"}, "token": {strings.TrimPrefix(regexp.MustCompile(`token=([^&]+)`).FindString(link), "token=")}}
	form.Set("password", "short")
	form.Set("confirm", "short")
	status, body = s.post(g, invitations.AcceptPath, form)
	g.Expect(status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body).To(ContainSubstring("This password cannot be used: use at least 12 characters"))
	form.Set("password", "correct horse battery staple")
	form.Set("confirm", "correct horse battery stapel")
	status, body = s.post(g, invitations.AcceptPath, form)
	g.Expect(status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body).To(ContainSubstring("The two passwords differ"))

	// The account is made; the policy asks for a second factor first.
	form.Set("confirm", "correct horse battery staple")
	status, body = s.post(g, invitations.AcceptPath, form)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("asks members of your role to sign in with a second factor"))
	status, _ = s.get(g, "/")
	g.Expect(status).To(Equal(http.StatusOK))
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Set up a second factor"), "nothing else before the second factor")
	secret := secretPattern.FindStringSubmatch(body)
	g.Expect(secret).To(HaveLen(2), body)
	status, body = s.post(g, "/account/second-factor", url.Values{"code": {"000000"}})
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(ContainSubstring("Show a new code to scan"))
	_, body = s.get(g, "/account/second-factor")
	secret = secretPattern.FindStringSubmatch(body)
	status, body = s.post(g, "/account/second-factor", url.Values{"code": {code(g, secret[1])}})
	g.Expect(status).To(Equal(http.StatusOK))
	recovery := regexp.MustCompile(`<code>([a-z2-7]{5}-[a-z2-7]{5})</code>`).FindAllStringSubmatch(body, -1)
	g.Expect(recovery).To(HaveLen(accounts.RecoveryCodes))

	status, body = s.get(g, "/")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
	g.Expect(body).To(ContainSubstring("admin@example.com"))
	g.Expect(body).To(ContainSubstring(`<a href="/" aria-current="page">Overview</a>`))

	// A session alone cannot replace the second factor.
	status, body = s.get(g, "/account/second-factor")
	g.Expect(status).To(Equal(http.StatusConflict))
	g.Expect(body).To(ContainSubstring("Your second factor is set up already"))

	// The link worked once.
	status, body = s.get(g, link)
	g.Expect(status).To(Equal(http.StatusConflict))
	g.Expect(body).To(ContainSubstring("already accepted"))

	// Signing out; signing in with the password and a code.
	status, body = s.post(g, "/signout", nil)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Sign in to Platform Hub"))
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Sign in to Platform Hub"), "signed out")
	signIn := func(password string) (int, string) {
		return s.post(g, "/signin", url.Values{"email": {"Admin@Example.com"}, "password": {password}, "next": {"/"}})
	}
	status, body = signIn("correct horse battery stapel")
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(ContainSubstring("The email or the password is not right."))
	status, body = signIn("correct horse battery staple")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Enter your code"))
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Enter your code"), "the overview waits for the code")
	status, body = s.post(g, "/signin/code", url.Values{"code": {"123456"}})
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(ContainSubstring("the code is not right"))
	clk.Step(30 * time.Second) // the code that confirmed the factor is spent
	status, body = s.post(g, "/signin/code", url.Values{"code": {code(g, secret[1])}})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))

	// Idle for longer than the Organization allows: signed out. The Usage
	// report refreshing itself meanwhile is not activity.
	clk.Step(14 * time.Minute)
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"), "within the idle time")
	clk.Step(14 * time.Minute)
	refresh, _ := http.NewRequest(http.MethodGet, s.url+"/usage", nil)
	refresh.Header.Set("HX-Request", "true")
	refresh.Header.Set("HX-Trigger", "report")
	resp, err := s.client.Do(refresh)
	g.Expect(err).NotTo(HaveOccurred())
	_, _ = read(g, resp)
	clk.Step(time.Minute + time.Second)
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Sign in to Platform Hub"), "idle for longer than 15 minutes")

	// A recovery code signs in once, to the page asked for before the
	// code; a change of role ends the session.
	_, body = s.post(g, "/signin", url.Values{"email": {"admin@example.com"}, "password": {"correct horse battery staple"}, "next": {"/keys"}})
	g.Expect(body).To(ContainSubstring(`<input type="hidden" name="next" value="/keys">`))
	_, body = s.post(g, "/signin/code", url.Values{"code": {recovery[0][1]}, "next": {"/keys"}})
	g.Expect(body).To(ContainSubstring("<h1>API Keys</h1>"))
	m := &hubv1.Member{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Name: "admin"}, m)).To(Succeed())
	m.Spec.Role = hubv1.RoleDeveloper
	g.Expect(env.Client.Update(context.Background(), m)).To(Succeed())
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Sign in to Platform Hub"), "a new role needs a new sign-in")
}

// TestSignInIsThrottled: after ten wrong passwords for an account, even the
// right one waits, with Retry-After; another account is not held up.
func TestSignInIsThrottled(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, g)
	link := invite(t, g, "viewer", hubv1.RoleViewer)
	token := strings.TrimPrefix(regexp.MustCompile(`token=([^&]+)`).FindString(link), "token=")
	status, body := s.post(g, invitations.AcceptPath, url.Values{"member": {"viewer"}, "token": {token},
		"password": {"a viewer's long passphrase"}, "confirm": {"a viewer's long passphrase"}})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"), "no policy: no second factor asked for")
	g.Expect(body).NotTo(ContainSubstring("Set up a second factor"))
	_, _ = s.post(g, "/signout", nil)
	for range 10 {
		status, _ = s.post(g, "/signin", url.Values{"email": {"viewer@example.com"}, "password": {"wrong"}})
		g.Expect(status).To(Equal(http.StatusUnauthorized))
	}
	resp, err := s.client.PostForm(s.url+"/signin", url.Values{"email": {"viewer@example.com"}, "password": {"a viewer's long passphrase"}})
	g.Expect(err).NotTo(HaveOccurred())
	status, body = read(g, resp)
	g.Expect(status).To(Equal(http.StatusTooManyRequests))
	g.Expect(resp.Header.Get("Retry-After")).NotTo(BeEmpty())
	g.Expect(body).To(ContainSubstring("Too many failed sign-ins. Try again in 15 minutes."))
	clk.Step(15 * time.Minute)
	status, body = s.post(g, "/signin", url.Values{"email": {"viewer@example.com"}, "password": {"a viewer's long passphrase"}})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
}

// TestHeadersAndCrossOriginWrites: every page carries a
// Content-Security-Policy without inline script and forbids framing; a
// POST from another site is refused, and sets nothing.
func TestHeadersAndCrossOriginWrites(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, g)
	resp, err := s.client.Get(s.url + "/signin")
	g.Expect(err).NotTo(HaveOccurred())
	_, body := read(g, resp)
	csp := resp.Header.Get("Content-Security-Policy")
	g.Expect(csp).To(ContainSubstring("script-src 'self';"))
	g.Expect(csp).To(ContainSubstring("frame-ancestors 'none'"))
	g.Expect(csp).NotTo(ContainSubstring("unsafe"))
	g.Expect(body).NotTo(MatchRegexp(`<script>|<script [^>]*>[^<]`), "no inline script")
	g.Expect(body).NotTo(ContainSubstring("style="), "no inline style")
	g.Expect(resp.Header.Get("X-Content-Type-Options")).To(Equal("nosniff"))
	g.Expect(resp.Header.Get("Cache-Control")).To(Equal("no-store"))

	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/signin", strings.NewReader("email=a%40b.c&password=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		status, body := read(g, resp)
		g.Expect(status).To(Equal(http.StatusForbidden), "%v", h)
		g.Expect(body).To(ContainSubstring("This request came from another site"))
	}
	wait, err := s.store.Throttled(context.Background(), "account:a@b.c", 1, time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(wait).To(BeZero(), "the refused requests reached nothing")

	// Static files: the vendored libraries, cacheable; no listings.
	status, _ := s.get(g, "/static/vendor/htmx.min.js")
	g.Expect(status).To(Equal(http.StatusOK))
	status, _ = s.get(g, "/static/vendor/")
	g.Expect(status).To(Equal(http.StatusNotFound))
}

// TestVendoredAssetsAreThePinnedOnes: the embedded front-end libraries are
// byte for byte what hack/vendor-web-assets.sh fetched and checked against
// the npm registry's integrity, as SHA256SUMS records.
func TestVendoredAssetsAreThePinnedOnes(t *testing.T) {
	g := NewWithT(t)
	vendor := os.DirFS("static/vendor")
	sums, err := fs.ReadFile(vendor, "SHA256SUMS")
	g.Expect(err).NotTo(HaveOccurred())
	listed := map[string]bool{"SHA256SUMS": true}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		want, name, ok := strings.Cut(line, "  ")
		g.Expect(ok).To(BeTrue(), line)
		b, err := fs.ReadFile(vendor, name)
		g.Expect(err).NotTo(HaveOccurred())
		got := sha256.Sum256(b)
		g.Expect(hex.EncodeToString(got[:])).To(Equal(want), name)
		listed[name] = true
	}
	entries, err := fs.ReadDir(vendor, ".")
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		g.Expect(listed).To(HaveKey(e.Name()), "every vendored file is listed")
	}
	versions, err := fs.ReadFile(vendor, "VERSIONS")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(versions)).To(ContainSubstring("htmx.org@2.0.11: sha512-"))
	g.Expect(string(versions)).To(ContainSubstring("uplot@1.6.32: sha512-"))
}

// TestInvitationLinksAreBounded: invitation pages need no sign-in and read
// from the API server, so each client's requests are bounded, as on the
// usage server's own invitation endpoint.
func TestInvitationLinksAreBounded(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, g, func(o *dashboard.Options) {
		o.Invitations.PerClient = perclient.NewLimiter(0.001, 2, 0, false)
	})
	link := invite(t, g, "bounded", hubv1.RoleViewer)
	for range 2 {
		status, _ := s.get(g, link)
		g.Expect(status).To(Equal(http.StatusOK))
	}
	resp, err := s.client.Get(s.url + link)
	g.Expect(err).NotTo(HaveOccurred())
	status, body := read(g, resp)
	g.Expect(status).To(Equal(http.StatusTooManyRequests))
	g.Expect(resp.Header.Get("Retry-After")).To(Equal("1"))
	g.Expect(body).To(ContainSubstring("Too many invitation requests"))
}

// TestCodesAreThrottledAcrossPasswords: the right password does not reset
// the count of wrong codes, so the second factor cannot be guessed by
// signing in again between guesses; attempts are counted before they are
// checked.
func TestCodesAreThrottledAcrossPasswords(t *testing.T) {
	g := NewWithT(t)
	requireMFA(t, g)
	s := newSite(t, g)
	link := invite(t, g, "guesser", hubv1.RoleDeveloper)
	token := strings.TrimPrefix(regexp.MustCompile(`token=([^&]+)`).FindString(link), "token=")
	_, body := s.post(g, invitations.AcceptPath, url.Values{"member": {"guesser"}, "token": {token},
		"password": {"a guessable passphrase"}, "confirm": {"a guessable passphrase"}})
	secret := secretPattern.FindStringSubmatch(body)
	g.Expect(secret).To(HaveLen(2), body)
	status, _ := s.post(g, "/account/second-factor", url.Values{"code": {code(g, secret[1])}})
	g.Expect(status).To(Equal(http.StatusOK))
	_, _ = s.post(g, "/signout", nil)
	for range 5 { // a password and a wrong code: two attempts each
		_, body = s.post(g, "/signin", url.Values{"email": {"guesser@example.com"}, "password": {"a guessable passphrase"}})
		g.Expect(body).To(ContainSubstring("Enter your code"))
		status, _ = s.post(g, "/signin/code", url.Values{"code": {"000000"}})
		g.Expect(status).To(Equal(http.StatusUnauthorized))
	}
	status, body = s.post(g, "/signin", url.Values{"email": {"guesser@example.com"}, "password": {"a guessable passphrase"}})
	g.Expect(status).To(Equal(http.StatusTooManyRequests), body)
}
