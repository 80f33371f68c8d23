package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/testbrowser"
)

// TestPasskeysInABrowser: in headless Chromium with a virtual
// authenticator (DevTools' WebAuthn domain), an invited member whom the MFA
// policy covers sets up a passkey in place of an authenticator app, gets
// recovery codes, and later signs in with the password and the passkey. A
// made-up answer in place of the authenticator's is refused.
func TestPasskeysInABrowser(t *testing.T) {
	g := NewWithT(t)
	requireMFA(t, g)
	s := newSite(t, g)
	// Browsers offer passkeys on a domain name only: localhost, not
	// 127.0.0.1.
	base := strings.Replace(s.url, "127.0.0.1", "localhost", 1)
	link := invite(t, g, "keyholder", hubv1.RoleDeveloper)
	ctx := testbrowser.Start(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string { return textOf(ctx, g, sel) }

	g.Expect(chromedp.Do(ctx, chromedp.Navigate(base+link))).To(Succeed())
	_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
			AutomaticPresenceSimulation: true}})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(chromedp.Do(ctx,
		chromedp.SendKeys(css("#password"), "a passkey holder's passphrase"),
		chromedp.SendKeys(css("#confirm"), "a passkey holder's passphrase"),
		chromedp.Submit(css("#confirm")),
		chromedp.WaitVisible(css(`form[action="/account/passkeys"] button`)),
		chromedp.Click(css(`form[action="/account/passkeys"] button`)),
		chromedp.WaitVisible(css("ul.codes")),
	)).To(Succeed())
	g.Expect(text("h1")).To(Equal("Your second factor is set up"))
	keys, err := s.store.Passkeys(context.Background(), "keyholder@example.com")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(HaveLen(1))
	g.Expect(keys[0].LastUsed.IsZero()).To(BeTrue())
	g.Expect(chromedp.Do(ctx, chromedp.Click(css("a.button")), chromedp.WaitVisible(css("nav.sidebar")))).To(Succeed())
	g.Expect(text("h1")).To(Equal("Overview"))

	// Signing in again: the password, then the passkey.
	g.Expect(chromedp.Do(ctx,
		chromedp.Click(css(`nav.sidebar button[type="submit"]`)),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#email"), "keyholder@example.com"),
		chromedp.SendKeys(css("#password"), "a passkey holder's passphrase"),
		chromedp.Submit(css("#password")),
		chromedp.WaitVisible(css(`form[action="/signin/passkey"] button`)),
	)).To(Succeed())
	g.Expect(text(`label[for="code"]`)).To(Equal("A recovery code"), "no authenticator app")
	g.Expect(chromedp.Do(ctx, chromedp.Click(css(`form[action="/signin/passkey"] button`)), chromedp.WaitVisible(css("nav.sidebar")))).
		To(Succeed())
	g.Expect(text("h1")).To(Equal("Overview"))
	keys, err = s.store.Passkeys(context.Background(), "keyholder@example.com")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys[0].LastUsed.IsZero()).To(BeFalse(), "the sign-in recorded its use")

	// Outside the browser: a made-up answer signs no one in.
	s.url = base
	_, body := s.post(g, "/signin", url.Values{"email": {"keyholder@example.com"}, "password": {"a passkey holder's passphrase"}})
	g.Expect(body).To(ContainSubstring(`action="/signin/passkey"`))
	status, body := s.post(g, "/signin/passkey", url.Values{"credential": {`{"id":"AAAA","rawId":"AAAA","type":"public-key",` +
		`"response":{"clientDataJSON":"e30","authenticatorData":"AAAA","signature":"AAAA"}}`}})
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	g.Expect(body).To(ContainSubstring("The passkey did not sign you in."))
	_, body = s.get(g, "/")
	g.Expect(body).To(ContainSubstring("Enter your code"), "still at the second step")
}
