package dashboard_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-logr/logr/testr"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/dashboard"
	"github.com/minimax/platform-hub/internal/testbrowser"
)

// idp is an OpenID Connect provider running in the test (mockoidc: it
// signs ID tokens with its own key, checks the client's secret and the
// PKCE verifier), over HTTPS with a certificate of its own authority.
type idp struct {
	*mockoidc.MockOIDC
	// trusting is a client that trusts the provider's certificate.
	roots *x509.CertPool
}

func startIDP(t *testing.T, g Gomega) *idp {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	g.Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(certPEM)).To(BeTrue())
	m, err := mockoidc.NewServer(nil)
	g.Expect(err).NotTo(HaveOccurred())
	mockoidc.NowFunc = clk.Now // tokens issued at the dashboard's (fake) time
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	// mockoidc serves the listener as given (and the config makes its
	// issuer https), so the listener does TLS.
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	g.Expect(m.Start(tls.NewListener(ln, cfg), cfg)).To(Succeed())
	t.Cleanup(func() { _ = m.Shutdown() })
	return &idp{MockOIDC: m, roots: roots}
}

func (p *idp) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}}}
}

// person is who signs in at the provider.
type person struct {
	email    string
	verified bool
	// verifiedAs, when set, is the raw JSON of email_verified.
	verifiedAs string
	groups     []string
	// amr are the provider's authentication methods (RFC 8176).
	amr []string
}

func (u person) ID() string { return "sub-" + u.email }

func (u person) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": u.ID(), "email": u.email})
}

func (u person) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	verified := json.RawMessage("false")
	switch {
	case u.verifiedAs != "":
		verified = json.RawMessage(u.verifiedAs)
	case u.verified:
		verified = json.RawMessage("true")
	}
	return &personClaims{IDTokenClaims: base, Email: u.email, EmailVerified: verified, Groups: u.groups, AMR: u.amr}, nil
}

type personClaims struct {
	*mockoidc.IDTokenClaims
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"`
	Groups        []string        `json:"groups,omitempty"`
	AMR           []string        `json:"amr,omitempty"`
}

// ssoOrganization sets the Organization's single sign-on to the provider,
// with its client secret in the hub's namespace.
func ssoOrganization(t *testing.T, g Gomega, p *idp, jit *hubv1.JITProvisioning) *hubv1.Organization {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubv1.DefaultHubNamespace}}
	if err := env.Client.Create(ctx, ns); !apierrors.IsAlreadyExists(err) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hubv1.DefaultHubNamespace, Name: "hub-sso",
		Labels: map[string]string{hubv1.OIDCClientSecretLabel: "true"}},
		Data: map[string][]byte{"client-secret": []byte(p.ClientSecret)}}
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), secret) })
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Security.SSO = &hubv1.SSOPolicy{JITProvisioning: jit, OIDC: &hubv1.OIDCProvider{IssuerURL: p.Issuer(), ClientID: p.ClientID,
		ClientSecretRef: hubv1.SecretKeyRef{Name: "hub-sso", Key: "client-secret"}}}
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), org) })
	return org
}

func withSSO(t *testing.T, p *idp) func(*dashboard.Options) {
	return func(o *dashboard.Options) {
		o.Config, o.Secrets, o.HubNamespace, o.SSOClient = env.Cluster.Config, env.Client, hubv1.DefaultHubNamespace, p.client()
		o.Log = testr.New(t)
	}
}

// memberOf reads the Member of an email (nil when none).
func memberOf(g Gomega, email string) *hubv1.Member {
	members := &hubv1.MemberList{}
	g.Expect(env.Client.List(context.Background(), members)).To(Succeed())
	for i := range members.Items {
		if members.Items[i].Spec.Email == email {
			return &members.Items[i]
		}
	}
	return nil
}

func removeMember(t *testing.T, email string) {
	t.Cleanup(func() {
		if m := memberOf(NewWithT(t), email); m != nil {
			_ = env.Client.Delete(context.Background(), m)
		}
	})
}

// TestSingleSignOn: sign-in through the Organization's OpenID Connect
// provider, with just-in-time provisioning, and every way it refuses.
func TestSingleSignOn(t *testing.T) {
	g := NewWithT(t)
	p := startIDP(t, g)
	ctx := context.Background()
	platform := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: "platform"}}
	g.Expect(env.Client.Create(ctx, platform)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), platform) })
	org := ssoOrganization(t, g, p, &hubv1.JITProvisioning{DefaultRole: hubv1.RoleDeveloper})
	s := newSite(t, g, withSSO(t, p))
	s.client.Transport = p.client().Transport
	fresh := func() { s.client.Jar = browser().Jar }

	// The sign-in page offers single sign-on, keeping next.
	code, body := s.get(g, "/signin?next=/keys")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`href="/signin/sso?next=%2Fkeys"`))

	// A first sign-in creates the Member, with the default role and the
	// provider's groups that are hub Groups, and lands on the page asked for.
	removeMember(t, "jane.doe@example.com")
	p.QueueUser(person{email: "jane.doe@example.com", verified: true, groups: []string{"platform", "no-such-group", "Not A Name"}})
	code, body = s.get(g, "/signin/sso?next=/keys")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("<h1>API Keys</h1>"))
	m := memberOf(g, "jane.doe@example.com")
	g.Expect(m).NotTo(BeNil())
	g.Expect(m.Name).To(MatchRegexp(`^jane-doe-[0-9a-f]{6}$`))
	g.Expect(m.Spec.Role).To(Equal(hubv1.RoleDeveloper))
	g.Expect(m.Spec.Groups).To(Equal([]string{"platform"}))
	g.Expect(m.Annotations).To(HaveKeyWithValue(hubv1.ProvisionedByAnnotation, hubv1.ProvisionedBySSO))
	g.Expect(m.Status.AcceptedAt).NotTo(BeNil())

	// The second sign-in finds the same Member.
	fresh()
	p.QueueUser(person{email: "Jane.Doe@example.com", verified: true})
	code, body = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
	members := &hubv1.MemberList{}
	g.Expect(env.Client.List(ctx, members)).To(Succeed())
	n := 0
	for _, o := range members.Items {
		if strings.EqualFold(o.Spec.Email, "jane.doe@example.com") {
			n++
		}
	}
	g.Expect(n).To(Equal(1))

	// A callback without the browser's sealed state, or with another
	// state, signs no one in.
	fresh()
	code, body = s.get(g, "/signin/sso/callback?code=anything&state=anything")
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body).To(ContainSubstring("began in another browser"))
	// begin starts a sign-in and returns the provider's authorization
	// request, unanswered.
	begin := func() url.Values {
		noFollow := *s.client
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := noFollow.Get(s.url + "/signin/sso")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		authorize, err := url.Parse(resp.Header.Get("Location"))
		g.Expect(err).NotTo(HaveOccurred())
		return authorize.Query()
	}
	request := begin()
	g.Expect(request.Get("code_challenge_method")).To(Equal("S256"))
	g.Expect(request.Get("code_challenge")).NotTo(BeEmpty())
	g.Expect(request.Get("nonce")).NotTo(BeEmpty())
	g.Expect(request.Get("redirect_uri")).To(Equal(s.url + "/signin/sso/callback"))
	code, body = s.get(g, "/signin/sso/callback?code=anything&state=forged")
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body).To(ContainSubstring("does not belong to this browser"))

	// The provider's refusal comes back to the page.
	request = begin()
	code, body = s.get(g, "/signin/sso/callback?"+url.Values{"state": {request.Get("state")}, "error": {"access_denied"},
		"error_description": {"The user said no."}}.Encode())
	g.Expect(code).To(Equal(http.StatusUnauthorized), body)
	g.Expect(body).To(ContainSubstring("Your identity provider did not sign you in (access_denied)."))
	g.Expect(body).NotTo(ContainSubstring("The user said no."), "no text of a link's on the page")
	begin()
	code, body = s.get(g, "/signin/sso/callback?"+url.Values{"state": {"forged"}, "error": {"access_denied"}}.Encode())
	g.Expect(code).To(Equal(http.StatusBadRequest), "the state is checked first")
	g.Expect(body).To(ContainSubstring("does not belong to this browser"))

	// Only a Secret marked for it is sent to the provider.
	fresh()
	unmarked := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: hubv1.DefaultHubNamespace, Name: "hub-sso"}, unmarked)).To(Succeed())
	unmarked.Labels = nil
	g.Expect(env.Client.Update(ctx, unmarked)).To(Succeed())
	p.QueueUser(person{email: "jane.doe@example.com", verified: true})
	code, _ = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusBadGateway))
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(unmarked), unmarked)).To(Succeed())
	unmarked.Labels = map[string]string{hubv1.OIDCClientSecretLabel: "true"}
	g.Expect(env.Client.Update(ctx, unmarked)).To(Succeed())
	fresh()

	// A provider that has not verified the email is not believed.
	fresh()
	p.QueueUser(person{email: "mallory@example.com", verified: false})
	code, body = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(ContainSubstring("has not verified your email"))
	g.Expect(memberOf(g, "mallory@example.com")).To(BeNil())
	fresh()
	p.QueueUser(person{email: "mallory@example.com", verifiedAs: `"no"`})
	code, _ = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusUnauthorized), "anything but true is not verified")
	g.Expect(memberOf(g, "mallory@example.com")).To(BeNil())

	// Without just-in-time provisioning, only members sign in; an invited
	// one accepts the invitation by signing in.
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	org.Spec.Security.SSO.JITProvisioning = nil
	g.Expect(env.Client.Update(ctx, org)).To(Succeed())
	fresh()
	p.QueueUser(person{email: "bob@example.com", verified: true})
	code, body = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(body).To(ContainSubstring("bob@example.com is not a member of this organization. Ask an Admin to invite you."))
	g.Expect(memberOf(g, "bob@example.com")).To(BeNil())
	invite(t, g, "invitee", hubv1.RoleViewer)
	p.QueueUser(person{email: "invitee@example.com", verified: true})
	code, body = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
	g.Expect(memberOf(g, "invitee@example.com").Status.AcceptedAt).NotTo(BeNil())

	// A disabled member is refused.
	m = memberOf(g, "invitee@example.com")
	m.Spec.Disabled = true
	g.Expect(env.Client.Update(ctx, m)).To(Succeed())
	g.Eventually(func() bool {
		fresh()
		p.QueueUser(person{email: "invitee@example.com", verified: true})
		code, _ = s.get(g, "/signin/sso")
		return code == http.StatusForbidden
	}, 10*time.Second, 200*time.Millisecond).Should(BeTrue())

	// Under an MFA policy, a provider's second factor counts; without one,
	// the member sets up the hub's.
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	org.Spec.Security.MFA = &hubv1.MFAPolicy{Enforcement: hubv1.MFAAllMembers}
	g.Expect(env.Client.Update(ctx, org)).To(Succeed())
	g.Eventually(func() string {
		fresh()
		p.QueueUser(person{email: "jane.doe@example.com", verified: true})
		_, body = s.get(g, "/signin/sso")
		return body
	}, 10*time.Second, 200*time.Millisecond).Should(ContainSubstring("<h1>Set up a second factor</h1>"))
	fresh()
	p.QueueUser(person{email: "jane.doe@example.com", verified: true, amr: []string{"pwd", "otp", "mfa"}})
	code, body = s.get(g, "/signin/sso")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
}

// TestSingleSignOnInABrowser: in headless Chromium, a person new to the
// hub signs in with the organization's identity provider and lands on the
// overview as the Member just-in-time provisioning made.
func TestSingleSignOnInABrowser(t *testing.T) {
	g := NewWithT(t)
	p := startIDP(t, g)
	ssoOrganization(t, g, p, &hubv1.JITProvisioning{DefaultRole: hubv1.RoleViewer})
	s := newSite(t, g, withSSO(t, p))
	removeMember(t, "ada@example.com")
	p.QueueUser(person{email: "ada@example.com", verified: true})
	// The provider's certificate is of an authority only the test knows.
	ctx := testbrowser.Start(t, chromedp.Flag("ignore-certificate-errors", true))
	g.Expect(chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/signin"),
		chromedp.Click(chromedp.CSS(`a[href="/signin/sso"]`)),
		chromedp.WaitVisible(chromedp.CSS("nav.sidebar")),
	)).To(Succeed())
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h1).To(Equal("Overview"))
	m := memberOf(g, "ada@example.com")
	g.Expect(m).NotTo(BeNil())
	g.Expect(m.Spec.Role).To(Equal(hubv1.RoleViewer))
	location, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(location).To(Equal("/"))
}
