package dashboard

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
)

// Single sign-on with OpenID Connect (OpenID Connect Core 1.0): the
// authorization code flow with PKCE (RFC 7636, S256), a state bound to the
// browser (RFC 6749 section 10.12) and a nonce bound to the ID token. The
// state, nonce and PKCE verifier travel in a cookie sealed with the
// dashboard's sealing key, so that any replica can finish a sign-in another
// began, and no table of pending sign-ins grows.
//
// The provider is the Organization's spec.security.sso.oidc; its client
// secret is read from the named Secret in the hub's namespace when a
// sign-in finishes (never cached), so a rotated secret takes effect at
// once.

// ssoPath and ssoCallbackPath are where single sign-on starts and where
// the provider sends the browser back (the redirect URI to register with
// the provider: the dashboard's URL and /signin/sso/callback).
const (
	ssoPath         = "/signin/sso"
	ssoCallbackPath = "/signin/sso/callback"
	// ssoCookie carries the sealed state of a sign-in under way (the
	// __Host- prefix where the dashboard is on HTTPS: no sibling host can
	// set it).
	ssoCookie = "hub-sso"
	// ssoTimeout is how long a person has at the provider.
	ssoTimeout = 10 * time.Minute
	// providerTTL is how long a provider's discovery document is kept.
	providerTTL = time.Hour
)

// ssoState is what the sealed cookie holds.
type ssoState struct {
	State    string    `json:"state"`
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"`
	Next     string    `json:"next"`
	Expires  time.Time `json:"expires"`
}

// ssoSealContext binds sealed states to their use: a value sealed for
// anything else does not open as one.
const ssoSealContext = "dashboard sso state"

// oidcSettings is the Organization's OIDC provider, or nil.
func (s *Server) oidcSettings(ctx context.Context) (*hubv1.SSOPolicy, *hubv1.OIDCProvider) {
	org := s.organization(ctx)
	if org == nil || org.Spec.Security.SSO == nil || org.Spec.Security.SSO.OIDC == nil {
		return nil, nil
	}
	return org.Spec.Security.SSO, org.Spec.Security.SSO.OIDC
}

// providers caches discovery documents (and, inside each, the provider's
// signing keys) by issuer.
type providers struct {
	mu    sync.Mutex
	byURL map[string]cachedProvider
}

type cachedProvider struct {
	p       *oidc.Provider
	fetched time.Time
}

// provider discovers the issuer's endpoints and keys, once an hour.
func (s *Server) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	s.providers.mu.Lock()
	defer s.providers.mu.Unlock()
	now := s.o.Clock.Now()
	if c, ok := s.providers.byURL[issuer]; ok && now.Sub(c.fetched) < providerTTL {
		return c.p, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.ssoClient()), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering the identity provider %s: %w", issuer, err)
	}
	if s.providers.byURL == nil {
		s.providers.byURL = map[string]cachedProvider{}
	}
	s.providers.byURL[issuer] = cachedProvider{p: p, fetched: now}
	return p, nil
}

func (s *Server) ssoClient() *http.Client {
	if s.o.SSOClient != nil {
		return s.o.SSOClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// oauth2Config is the client's configuration with a provider; the secret
// is left empty when not asked for.
func (s *Server) oauth2Config(r *http.Request, p *oidc.Provider, settings *hubv1.OIDCProvider, secret string) *oauth2.Config {
	return &oauth2.Config{ClientID: settings.ClientID, ClientSecret: secret, Endpoint: p.Endpoint(),
		RedirectURL: s.baseURL(r) + ssoCallbackPath, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}

// baseURL is where people reach the dashboard: Options.URL, or else the
// request's own host.
func (s *Server) baseURL(r *http.Request) string {
	if s.o.URL != "" {
		return strings.TrimSuffix(s.o.URL, "/")
	}
	scheme := "https"
	if s.o.Insecure {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// startSSO sends the browser to the provider, with a fresh state, nonce and
// PKCE verifier sealed into a cookie for the callback.
func (s *Server) startSSO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, settings := s.oidcSettings(ctx)
	if settings == nil {
		s.render(w, r, http.StatusNotFound, "signin", nil, signInForm{Error: "Single sign-on is not set up for this organization. " +
			"Sign in with your email and password, or ask an Admin to set spec.security.sso.oidc on the Organization."})
		return
	}
	p, err := s.provider(ctx, settings.IssuerURL)
	if err != nil {
		s.ssoFailed(w, r, err)
		return
	}
	st := ssoState{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier(),
		Next: localPath(r.URL.Query().Get("next")), Expires: s.o.Clock.Now().Add(ssoTimeout)}
	raw, err := json.Marshal(st)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	sealed, err := s.sealer.Seal(ssoSealContext, string(raw))
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	// SameSite=Lax: the provider's redirect back is a top-level GET from
	// another site, which Lax lets through and Strict would not.
	http.SetCookie(w, &http.Cookie{Name: s.hostCookie(ssoCookie), Value: sealed, Path: "/", MaxAge: int(ssoTimeout.Seconds()),
		HttpOnly: true, Secure: !s.o.Insecure, SameSite: http.SameSiteLaxMode})
	target := s.oauth2Config(r, p, settings, "").AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	http.Redirect(w, r, target, http.StatusFound)
}

// ssoCallback finishes single sign-on: the state must match the browser's
// cookie, the code is exchanged with the PKCE verifier and the client
// secret, and the ID token is verified (signature by the provider's keys,
// issuer, audience, expiry, nonce). The email it names, when the provider
// has verified it, is the member's. A person with no Member gets one when
// just-in-time provisioning is on.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	http.SetCookie(w, &http.Cookie{Name: s.hostCookie(ssoCookie), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: !s.o.Insecure, SameSite: http.SameSiteLaxMode})
	st, ok := s.openSSOState(r)
	if !ok {
		s.ssoRefused(w, r, http.StatusBadRequest, "This sign-in took too long, or began in another browser. Sign in again.")
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		s.ssoRefused(w, r, http.StatusBadRequest, "This sign-in answer does not belong to this browser's sign-in. Sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		// The provider's own description goes to the log: the page shows
		// no text a link could put there.
		s.o.Log.Info("The identity provider did not sign a person in", "error", e, "description", q.Get("error_description"))
		s.ssoRefused(w, r, http.StatusUnauthorized, fmt.Sprintf("Your identity provider did not sign you in (%s).", oauthErrorCode(e)))
		return
	}
	policy, settings := s.oidcSettings(ctx)
	if settings == nil {
		s.ssoRefused(w, r, http.StatusNotFound, "Single sign-on is no longer set up for this organization.")
		return
	}
	claims, err := s.exchange(r, settings, q.Get("code"), st)
	var refused *ssoRefusal
	if errors.As(err, &refused) {
		s.ssoRefused(w, r, http.StatusUnauthorized, refused.message)
		return
	}
	if err != nil {
		s.ssoFailed(w, r, err)
		return
	}
	m, err := s.memberOfSSO(ctx, policy, claims)
	if errors.As(err, &refused) {
		s.ssoRefused(w, r, http.StatusForbidden, refused.message)
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.finishSSO(w, r, m, claims, st.Next)
}

// finishSSO starts the member's session. A provider that reports a second
// factor (amr "mfa") satisfies the MFA policy; otherwise a member with the
// hub's second factor is asked for it, and one the policy covers without
// it sets one up.
func (s *Server) finishSSO(w http.ResponseWriter, r *http.Request, m *hubv1.Member, claims *ssoClaims, next string) {
	ctx := r.Context()
	methods := []string{"fed"}
	if slices.Contains(claims.AMR, "mfa") {
		methods = append(methods, "mfa")
	}
	account, _, err := s.o.Accounts.Account(ctx, m.Spec.Email)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	stage := ""
	switch {
	case multiFactor(methods):
	case account.HasSecondFactor():
		stage = accounts.StageSecondFactor
	case s.mfaRequired(ctx, m.Spec.Role):
		stage = accounts.StageEnrol
	}
	s.startSession(w, r, m, methods, stage, next)
}

// openSSOState opens the callback's cookie; ok is false when it is
// missing, forged, sealed with another key, or expired.
func (s *Server) openSSOState(r *http.Request) (ssoState, bool) {
	c, err := r.Cookie(s.hostCookie(ssoCookie))
	if err != nil {
		return ssoState{}, false
	}
	raw, err := s.sealer.Open(ssoSealContext, c.Value)
	if err != nil {
		return ssoState{}, false
	}
	var st ssoState
	if err := json.Unmarshal([]byte(raw), &st); err != nil || !s.o.Clock.Now().Before(st.Expires) || st.State == "" {
		return ssoState{}, false
	}
	return st, true
}

// ssoClaims are what the hub reads of a verified ID token.
type ssoClaims struct {
	Subject string
	Email   string
	Groups  []string
	// AMR are the provider's authentication methods (RFC 8176).
	AMR []string
}

// ssoRefusal is a sign-in the provider or the person's claims do not
// allow; its message is for the person.
type ssoRefusal struct{ message string }

func (e *ssoRefusal) Error() string { return e.message }

// exchange trades the code for tokens and verifies the ID token.
func (s *Server) exchange(r *http.Request, settings *hubv1.OIDCProvider, code string, st ssoState) (*ssoClaims, error) {
	ctx := oidc.ClientContext(r.Context(), s.ssoClient())
	p, err := s.provider(ctx, settings.IssuerURL)
	if err != nil {
		return nil, err
	}
	secret, err := s.clientSecret(ctx, settings.ClientSecretRef)
	if err != nil {
		return nil, err
	}
	token, err := s.oauth2Config(r, p, settings, secret).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	var retrieve *oauth2.RetrieveError
	if errors.As(err, &retrieve) && retrieve.Response != nil && retrieve.Response.StatusCode < 500 {
		// The provider refused the code (used, expired, or a PKCE or client
		// mismatch); its own words go to the log, not the page.
		s.o.Log.Info("The identity provider refused a sign-in code", "issuer", settings.IssuerURL, "error", retrieve.ErrorCode,
			"description", retrieve.ErrorDescription)
		return nil, &ssoRefusal{"Your identity provider did not accept this sign-in. Sign in again."}
	}
	if err != nil {
		return nil, fmt.Errorf("redeeming a sign-in code at %s: %w", settings.IssuerURL, err)
	}
	raw, _ := token.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("the identity provider %s answered without an ID token", settings.IssuerURL)
	}
	idToken, err := p.Verifier(&oidc.Config{ClientID: settings.ClientID, Now: s.o.Clock.Now}).Verify(ctx, raw)
	if err != nil {
		s.o.Log.Info("An ID token did not verify", "issuer", settings.IssuerURL, "error", err.Error())
		return nil, &ssoRefusal{"Your identity provider's answer could not be verified. Sign in again."}
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(st.Nonce)) != 1 {
		return nil, &ssoRefusal{"Your identity provider's answer was not for this sign-in. Sign in again."}
	}
	return readClaims(idToken, settings.Claims)
}

// readClaims reads the email (which the provider must not report as
// unverified), the groups and the methods of an ID token, under the claim
// names the Organization maps.
func readClaims(idToken *oidc.IDToken, names hubv1.OIDCClaims) (*ssoClaims, error) {
	var all map[string]json.RawMessage
	if err := idToken.Claims(&all); err != nil {
		return nil, err
	}
	emailClaim, groupsClaim := cmp.Or(names.Email, "email"), cmp.Or(names.Groups, "groups")
	out := &ssoClaims{Subject: idToken.Subject}
	if err := json.Unmarshal(all[emailClaim], &out.Email); err != nil || out.Email == "" {
		return nil, &ssoRefusal{fmt.Sprintf("Your identity provider did not say your email address (claim %q). "+
			"Ask an Admin to check the Organization's spec.security.sso.oidc.claims.email.", emailClaim)}
	}
	// A provider that says anything but true of email_verified has not
	// vouched for the address. One that leaves the claim out (Microsoft
	// Entra ID does) vouches by sending it: the Owners chose the provider.
	if v, ok := all["email_verified"]; ok && !vouched(v) {
		return nil, &ssoRefusal{"Your identity provider has not verified your email address, so the hub cannot " +
			"tell it is yours. Verify it with your provider, then sign in again."}
	}
	if v, ok := all[groupsClaim]; ok {
		_ = json.Unmarshal(v, &out.Groups) // a claim of another shape names no groups
	}
	if v, ok := all["amr"]; ok {
		_ = json.Unmarshal(v, &out.AMR)
	}
	return out, nil
}

// vouched says whether an email_verified claim is true: the JSON boolean,
// or the string some providers send.
func vouched(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, strconv.FormatBool(true))
}

// clientSecret reads the OIDC client secret from the hub's namespace.
func (s *Server) clientSecret(ctx context.Context, ref hubv1.SecretKeyRef) (string, error) {
	if s.o.Secrets == nil {
		return "", errors.New("the dashboard cannot read the OIDC client secret (Options.Secrets)")
	}
	secret := &corev1.Secret{}
	if err := s.o.Secrets.Get(ctx, client.ObjectKey{Namespace: s.o.HubNamespace, Name: ref.Name}, secret); err != nil {
		return "", fmt.Errorf("reading the OIDC client secret %s/%s: %w", s.o.HubNamespace, ref.Name, err)
	}
	// The provider receives the secret: only a Secret the cluster's
	// operators marked for it may go there, not any Secret of the hub's
	// namespace an Organization names.
	if secret.Labels[hubv1.OIDCClientSecretLabel] != "true" {
		return "", fmt.Errorf("the Secret %s/%s is not labelled %s=true, which marks a Secret the dashboard may send "+
			"to the identity provider as its client secret", s.o.HubNamespace, ref.Name, hubv1.OIDCClientSecretLabel)
	}
	v, ok := secret.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", fmt.Errorf("the Secret %s/%s has no key %q for the OIDC client secret", s.o.HubNamespace, ref.Name, ref.Key)
	}
	return string(v), nil
}

// memberOfSSO finds the member of a verified email: an invited one accepts
// their invitation by signing in; a person with no Member gets one, with
// the Organization's default role, when just-in-time provisioning is on.
func (s *Server) memberOfSSO(ctx context.Context, policy *hubv1.SSOPolicy, claims *ssoClaims) (*hubv1.Member, error) {
	m, err := s.memberByEmail(ctx, claims.Email)
	if err != nil {
		return nil, err
	}
	if m == nil && policy.JITProvisioning == nil {
		return nil, &ssoRefusal{fmt.Sprintf("%s is not a member of this organization. Ask an Admin to invite you.", claims.Email)}
	}
	if m == nil {
		if m, err = s.provision(ctx, policy.JITProvisioning.DefaultRole, claims); err != nil {
			return nil, err
		}
	}
	if m.Spec.Disabled {
		return nil, &ssoRefusal{"Your membership of this organization is disabled. Ask an Admin if that is a mistake."}
	}
	if m.Status.AcceptedAt == nil {
		if err := s.o.Invitations.AcceptSignedIn(ctx, m.Name); err != nil {
			return nil, fmt.Errorf("accepting the invitation of %s at sign-in: %w", m.Name, err)
		}
	}
	return m, nil
}

// provision creates the Member of a person's first sign-in, as
// access.Provisioner, which may create Members and nothing else: the
// audit log names it, and admission checks it like anyone. The groups the
// provider names that are hub Groups come along. The Member is marked as
// provisioned so that no invitation is sent; the sign-in accepts it.
func (s *Server) provision(ctx context.Context, role hubv1.Role, claims *ssoClaims) (*hubv1.Member, error) {
	as, err := s.actAs.provisioner()
	if err != nil {
		return nil, err
	}
	m := &hubv1.Member{
		// The kind is named: the management API serves a Member too.
		TypeMeta: metav1.TypeMeta{APIVersion: hubv1.GroupVersion.String(), Kind: "Member"},
		ObjectMeta: metav1.ObjectMeta{Name: memberName(claims.Email),
			Annotations: map[string]string{hubv1.ProvisionedByAnnotation: hubv1.ProvisionedBySSO}},
		Spec: hubv1.MemberSpec{Email: claims.Email, Role: role, Groups: s.knownGroups(ctx, claims.Groups)},
	}
	err = as.Create(ctx, m)
	if apierrors.IsAlreadyExists(err) {
		// A sign-in at the same moment made it; or another Member has the
		// name, and a longer digest makes another.
		if other := (&hubv1.Member{}); s.o.Reader.Get(ctx, client.ObjectKey{Name: m.Name}, other) == nil && !hubv1.SameEmail(other.Spec.Email, claims.Email) {
			m.Name, m.ResourceVersion = memberNameOfLength(claims.Email, 8), ""
			err = as.Create(ctx, m)
		}
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating the member of %s by just-in-time provisioning: %w", claims.Email, err)
	}
	s.o.Log.Info("Created a member at their first single sign-on", "member", m.Name, "role", role)
	// The session reads members from the cache: wait until it has this one.
	var found *hubv1.Member
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		found, err = s.memberByEmail(ctx, claims.Email)
		return found != nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the new member %s: %w", m.Name, err)
	}
	return found, nil
}

// knownGroups keeps the names that are hub Groups (at most the 32 a Member
// may list).
func (s *Server) knownGroups(ctx context.Context, names []string) []string {
	var out []string
	for _, n := range names {
		if len(out) == 32 {
			break
		}
		g := &hubv1.Group{}
		if validation.IsDNS1123Subdomain(n) == nil && s.o.Reader.Get(ctx, client.ObjectKey{Name: n}, g) == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// memberName is the Member name of a provisioned email: its local part,
// made a DNS label, and a digest of the whole address, so that two emails
// alike in their local part get two names, and one email always the same.
func memberName(email string) string { return memberNameOfLength(email, 3) }

// memberNameOfLength is memberName with a digest of n bytes.
func memberNameOfLength(email string, n int) string {
	email = hubv1.EmailKey(email)
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, c := range local {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	sum := sha256.Sum256([]byte(email))
	if name == "" {
		return "sso-" + hex.EncodeToString(sum[:n+1])
	}
	return name + "-" + hex.EncodeToString(sum[:n])
}

// oauthErrorCode keeps an OAuth 2.0 error code (RFC 6749 section 4.1.2.1:
// printable ASCII, no quote or backslash) short; anything else is "error".
func oauthErrorCode(e string) string {
	if len(e) > 64 || strings.IndexFunc(e, func(r rune) bool { return r < 0x20 || r > 0x7e || r == '"' || r == '\\' }) >= 0 {
		return "error"
	}
	return e
}

// ssoRefused shows the sign-in page with why single sign-on did not sign
// the person in.
func (s *Server) ssoRefused(w http.ResponseWriter, r *http.Request, code int, message string) {
	s.render(w, r, code, "signin", nil, signInForm{Error: message, SSO: s.ssoEnabled(r.Context())})
}

// ssoFailed answers a failure to reach or use the provider: logged, and
// the person told to try again.
func (s *Server) ssoFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.o.Log.Error(err, "Single sign-on failed")
	w.Header().Set("Retry-After", "30")
	s.render(w, r, http.StatusBadGateway, "signin", nil, signInForm{SSO: s.ssoEnabled(r.Context()),
		Error: "The hub could not reach your identity provider. Try again in a moment, or sign in with your password."})
}

// ssoEnabled says whether the sign-in page offers single sign-on.
func (s *Server) ssoEnabled(ctx context.Context) bool {
	_, settings := s.oidcSettings(ctx)
	return settings != nil
}

// ssoLink is the sign-in page's link to single sign-on, keeping next.
func ssoLink(next string) string {
	if next == "" || next == "/" {
		return ssoPath
	}
	return ssoPath + "?" + url.Values{"next": {next}}.Encode()
}
