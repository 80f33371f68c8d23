package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/minimax/platform-hub/internal/accounts"
)

// Passkeys (W3C Web Authentication, Level 3) as a second factor, next to
// TOTP: set up in place of an authenticator app, and asked for at sign-in
// after the password or single sign-on. go-webauthn checks the ceremonies.
//
// A page that offers a passkey carries the ceremony's options in its form
// (data-passkey), and its challenge, sealed, in a cookie; static/passkey.js
// asks the browser's authenticator and posts its answer in the form. The
// relying party is the dashboard's host name (a domain: browsers refuse
// passkeys on an IP address, so hub dev's are at http://localhost:8088).

const (
	// passkeyCookie carries the sealed state of the passkey ceremony the
	// last page offered.
	passkeyCookie      = "hub-webauthn"
	passkeySealContext = "dashboard webauthn ceremony"
	passkeyTimeout     = 5 * time.Minute
)

// passkeyUser is an account as go-webauthn sees it. Its user handle is a
// digest of the email, so that an authenticator learns no address from it.
type passkeyUser struct {
	email string
	creds []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte {
	sum := sha256.Sum256([]byte("platform-hub account " + u.email))
	return sum[:]
}
func (u passkeyUser) WebAuthnName() string                       { return u.email }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.email }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// errNoPasskeys: the dashboard is reached at an address where browsers
// offer no passkeys (an IP address, or plain HTTP off loopback).
var errNoPasskeys = errors.New("passkeys need the dashboard at a domain name, over HTTPS or on localhost")

// relyingParty is the WebAuthn relying party of the dashboard as the
// request reached it.
func (s *Server) relyingParty(r *http.Request) (*webauthn.WebAuthn, error) {
	base := s.baseURL(r)
	if s.o.Insecure {
		// Loopback HTTP (hub dev): the host the browser used, so that
		// http://localhost:8088 has passkeys though the hub's URL names
		// 127.0.0.1.
		base = "http://" + r.Host
	}
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" || isIP(u.Hostname()) {
		return nil, errNoPasskeys
	}
	return webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: s.o.Issuer, RPOrigins: []string{base},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyTimeout, TimeoutUVD: passkeyTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyTimeout, TimeoutUVD: passkeyTimeout},
		}})
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// passkeyUserOf reads an account's passkeys.
func (s *Server) passkeyUserOf(ctx context.Context, email string) (passkeyUser, map[string]accounts.Passkey, error) {
	stored, err := s.o.Accounts.Passkeys(ctx, email)
	if err != nil {
		return passkeyUser{}, nil, err
	}
	u := passkeyUser{email: email}
	byID := map[string]accounts.Passkey{}
	for _, p := range stored {
		var c webauthn.Credential
		if err := json.Unmarshal(p.Credential, &c); err != nil {
			return passkeyUser{}, nil, fmt.Errorf("reading passkey %s of %s: %w", p.ID, email, err)
		}
		u.creds = append(u.creds, c)
		byID[p.ID] = p
	}
	return u, byID, nil
}

// offerPasskey begins a ceremony (registration when register, else a
// sign-in) for the page about to be shown to v: it returns the options for
// the page's form, JSON, and seals the ceremony's state into the cookie,
// bound to v's session (ceremonySealContext). An empty result offers no
// passkey.
func (s *Server) offerPasskey(w http.ResponseWriter, r *http.Request, v *viewer, register bool) string {
	email := v.Session.Email
	rp, err := s.relyingParty(r)
	if err != nil {
		return ""
	}
	u, _, err := s.passkeyUserOf(r.Context(), email)
	if err != nil {
		s.o.Log.Error(err, "Offering a passkey")
		return ""
	}
	var options any
	var session *webauthn.SessionData
	if register {
		options, session, err = rp.BeginRegistration(u,
			webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
			webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	} else {
		if len(u.creds) == 0 {
			return ""
		}
		options, session, err = rp.BeginLogin(u)
	}
	if err != nil {
		s.o.Log.Error(err, "Beginning a passkey ceremony")
		return ""
	}
	state, err := json.Marshal(session)
	if err == nil {
		var sealed string
		if sealed, err = s.sealer.Seal(ceremonySealContext(v, register), string(state)); err == nil {
			http.SetCookie(w, &http.Cookie{Name: s.hostCookie(passkeyCookie), Value: sealed, Path: "/", MaxAge: int(passkeyTimeout.Seconds()),
				HttpOnly: true, Secure: !s.o.Insecure, SameSite: http.SameSiteLaxMode})
		}
	}
	raw, err2 := json.Marshal(options)
	if err = errors.Join(err, err2); err != nil {
		s.o.Log.Error(err, "Offering a passkey")
		return ""
	}
	return string(raw)
}

// ceremonySealContext binds a ceremony's sealed state to its kind and to
// the session that began it: an answer captured with its cookie does not
// work in another session, even of the same account.
func ceremonySealContext(v *viewer, register bool) string {
	sum := sha256.Sum256([]byte(v.token))
	return fmt.Sprintf("%s register=%t %s %x", passkeySealContext, register, v.Session.Email, sum[:16])
}

// passkeySession opens the ceremony state the page's cookie carries, if it
// was sealed for v's session and this kind of ceremony.
func (s *Server) passkeySession(r *http.Request, v *viewer, register bool) (webauthn.SessionData, bool) {
	c, err := r.Cookie(s.hostCookie(passkeyCookie))
	if err != nil {
		return webauthn.SessionData{}, false
	}
	raw, err := s.sealer.Open(ceremonySealContext(v, register), c.Value)
	if err != nil {
		return webauthn.SessionData{}, false
	}
	var session webauthn.SessionData
	return session, json.Unmarshal([]byte(raw), &session) == nil
}

func (s *Server) endPasskeyCeremony(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: s.hostCookie(passkeyCookie), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: !s.o.Insecure,
		SameSite: http.SameSiteLaxMode})
}

// passkeyMethod is the RFC 8176 method of a passkey: "hwk" for a key that
// stays in its hardware, "swk" for one the authenticator may copy (synced
// passkeys, whose backup flag is set).
func passkeyMethod(c *webauthn.Credential) string {
	if c.Flags.BackupEligible {
		return "swk"
	}
	return "hwk"
}

// addPasskey finishes a passkey's registration as the account's second
// factor (the first: mayEnrol refuses to add one beside another), and goes
// on as a confirmed TOTP would: the recovery codes, once, and a sign-in
// that waited for it done.
func (s *Server) addPasskey(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.mayEnrol(w, r, v) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := localPath(r.PostFormValue("next"))
	refuse := func(message string) {
		s.render(w, r, http.StatusBadRequest, "enrol-failed", s.pageOf(v, ""), enrolForm{Error: message, Next: next,
			Required: v.Session.Stage == accounts.StageEnrol})
	}
	rp, err := s.relyingParty(r)
	if err != nil {
		refuse("Passkeys cannot be used at this address: " + err.Error() + ".")
		return
	}
	session, ok := s.passkeySession(r, v, true)
	s.endPasskeyCeremony(w)
	if !ok {
		refuse("This passkey setup took too long, or began in another tab. Try again.")
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		refuse("Your browser's answer was not a passkey. Try again, or use an authenticator app.")
		return
	}
	u, _, err := s.passkeyUserOf(r.Context(), v.Session.Email)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	credential, err := rp.CreateCredential(u, session, parsed)
	if err != nil {
		s.o.Log.Info("A passkey registration did not verify", "error", err.Error())
		refuse("The passkey could not be verified. Try again, or use an authenticator app.")
		return
	}
	record, err := json.Marshal(credential)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	codes, err := s.o.Accounts.AddPasskey(r.Context(), v.Session.Email, accounts.Passkey{
		ID: base64.RawURLEncoding.EncodeToString(credential.ID), Name: "Passkey added " + v.date(s.o.Clock.Now()), Credential: record})
	if errors.Is(err, accounts.ErrHasSecondFactor) {
		refuse("Your second factor is set up already.")
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.enrolled(w, r, v, withSecondFactor(v.Session.Methods, passkeyMethod(credential)), codes, next)
}

// verifyAssertion checks a sign-in's passkey answer (the form's
// credential) against the ceremony and v's passkeys, and returns the
// passkey as it is after the sign-in, and v's passkeys by ID.
func (s *Server) verifyAssertion(r *http.Request, v *viewer, session webauthn.SessionData) (*webauthn.Credential,
	map[string]accounts.Passkey, error) {
	rp, err := s.relyingParty(r)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		return nil, nil, err
	}
	u, byID, err := s.passkeyUserOf(r.Context(), v.Session.Email)
	if err != nil {
		return nil, nil, err
	}
	credential, err := rp.ValidateLogin(u, session, parsed)
	if err == nil && credential.Authenticator.CloneWarning {
		// The signature counter went back: two copies of the key exist
		// (W3C Web Authentication, section 6.1.1).
		err = errors.New("the passkey's signature counter went back: it may have been copied")
	}
	return credential, byID, err
}

// passkeySignIn checks the passkey a sign-in's second step answered with,
// counted against the account's failures like a code.
func (s *Server) passkeySignIn(w http.ResponseWriter, r *http.Request, v *viewer) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ctx := r.Context()
	next := localPath(r.PostFormValue("next"))
	key, addressKey := "account:"+v.Session.Email, "address:"+s.clientAddress(r)
	if !s.secondFactorAttempt(w, r, v, key, addressKey, next) {
		return
	}
	session, ok := s.passkeySession(r, v, false)
	s.endPasskeyCeremony(w)
	credential, byID, err := s.verifyAssertion(r, v, session)
	if !ok || err != nil {
		if err != nil {
			s.o.Log.Info("A passkey sign-in did not verify", "error", err.Error())
		}
		s.secondFactorFailed(w, r, v, addressKey, next, "The passkey did not sign you in. Try it again, or enter a code.")
		return
	}
	id := base64.RawURLEncoding.EncodeToString(credential.ID)
	record, err := json.Marshal(credential)
	if err == nil && byID[id].ID != "" {
		err = s.o.Accounts.PasskeyUsed(ctx, v.Session.Email, id, record)
	}
	if err == nil {
		err = s.o.Accounts.ClearFailures(ctx, key)
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.startSession(w, r, v.Member, withSecondFactor(v.Session.Methods, passkeyMethod(credential)), "", next)
}
