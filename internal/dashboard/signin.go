package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/identity"
	"github.com/minimax/platform-hub/internal/perclient"
)

// signInForm is what the sign-in page shows.
type signInForm struct {
	Email, Next, Error string
	// SSO offers single sign-on.
	SSO bool
}

// SSOLink is the page's link to single sign-on, keeping next.
func (f signInForm) SSOLink() string { return ssoLink(f.Next) }

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	if v, err := s.current(r); err == nil {
		http.Redirect(w, r, stagePath(v.Session.Stage), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", nil, signInForm{Next: localPath(r.URL.Query().Get("next")), SSO: s.ssoEnabled(r.Context())})
}

// wrongPassword is the one answer to a wrong email, a wrong password, an
// account without a password and a disabled member alike: the page tells
// no one which emails have accounts.
const wrongPassword = "The email or the password is not right."

// signIn checks an email and a password. A member with a second factor is
// then asked for a code; one the MFA policy covers, without a second
// factor, must set one up first; anyone else is signed in.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	form := signInForm{Email: r.PostFormValue("email"), Next: localPath(r.PostFormValue("next")), SSO: s.ssoEnabled(r.Context())}
	email, password := hubv1.EmailKey(form.Email), r.PostFormValue("password")
	ctx := r.Context()
	accountKey, addressKey := "account:"+email, "address:"+s.clientAddress(r)
	wait, err := s.attempt(ctx, accountKey, addressKey)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		form.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %s.", roundUp(wait))
		s.render(w, r, http.StatusTooManyRequests, "signin", nil, form)
		return
	}
	ok, err := s.o.Accounts.CheckPassword(ctx, email, password)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	m, err := s.memberByEmail(ctx, email)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if !ok || m == nil || m.Spec.Disabled || m.Status.AcceptedAt == nil {
		if err := s.o.Accounts.RecordFailure(ctx, addressKey, failureWindow); err != nil {
			s.unavailable(w, r, err)
			return
		}
		form.Error = wrongPassword
		s.render(w, r, http.StatusUnauthorized, "signin", nil, form)
		return
	}
	account, _, err := s.o.Accounts.Account(ctx, email)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	stage := ""
	switch {
	case account.HasSecondFactor():
		stage = accounts.StageSecondFactor
	case s.mfaRequired(ctx, m.Spec.Role):
		stage = accounts.StageEnrol
	}
	// The account's attempts are forgiven only once sign-in is done: a
	// right password must not reset the count of wrong codes.
	if stage == "" {
		if err := s.o.Accounts.ClearFailures(ctx, accountKey); err != nil {
			s.unavailable(w, r, err)
			return
		}
	}
	s.startSession(w, r, m, passwordMethods(), stage, form.Next)
}

// attempt counts a sign-in attempt (a password, or a code) against the
// account, before it is checked, in one statement, so that attempts sent
// at once cannot all pass under the limit; and checks the address's
// failures. It returns the longer wait of the two.
func (s *Server) attempt(ctx context.Context, accountKey, addressKey string) (time.Duration, error) {
	address, err := s.o.Accounts.Throttled(ctx, addressKey, addressFailures, failureWindow)
	if err != nil || address > 0 {
		return address, err
	}
	return s.o.Accounts.Attempt(ctx, accountKey, accountFailures, failureWindow)
}

// The methods of a sign-in, as RFC 8176 names them: a password ("pwd") or
// single sign-on ("fed") alone, or with a one-time code: two factors,
// which "mfa" says to the MFA policy's admission check.
func passwordMethods() []string { return []string{"pwd"} }

// withSecondFactor adds the hub's second factor, as its RFC 8176 method
// ("otp" for a code, "hwk" or "swk" for a passkey), to a first factor's
// methods.
func withSecondFactor(first []string, method string) []string {
	out := slices.DeleteFunc(slices.Clone(first), func(m string) bool { return m == "otp" || m == "hwk" || m == "swk" || m == "mfa" })
	return append(out, method, "mfa")
}

// multiFactor says whether methods prove two factors, as the MFA policy's
// admission check reads them.
func multiFactor(methods []string) bool {
	return identity.MultiFactor(map[string]authenticationv1.ExtraValue{identity.AMRExtra: methods})
}

// startSession begins a session (after ending the request's, if any: a
// new token at every step of sign-in, so a token seen before it proves
// nothing after) and goes on to the stage's page, or to next.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, m *hubv1.Member, methods []string, stage, next string) {
	if old := s.token(r); old != "" {
		if err := s.o.Accounts.EndSession(r.Context(), old); err != nil {
			s.unavailable(w, r, err)
			return
		}
	}
	token, err := s.o.Accounts.CreateSession(r.Context(), accounts.Session{Email: m.Spec.Email, Methods: methods,
		Role: string(m.Spec.Role), Stage: stage})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.setSession(w, token)
	target := localPath(next)
	if stage != "" {
		target = withNext(stagePath(stage), target) // the page asked for comes after the last step
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// codeForm is what the second-factor page shows.
type codeForm struct {
	Error, Next string
	// TOTP says the account has an authenticator app (else the code field
	// takes recovery codes only).
	TOTP bool
	// Passkey is the passkey ceremony's options, JSON, when the account
	// has passkeys (static/passkey.js reads them).
	Passkey string
}

func (s *Server) codePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	s.renderCode(w, r, v, http.StatusOK, codeForm{Next: localPath(r.URL.Query().Get("next"))})
}

// renderCode shows the second-factor page: the code field, and the
// account's passkeys, with a new challenge, when it has some.
func (s *Server) renderCode(w http.ResponseWriter, r *http.Request, v *viewer, status int, form codeForm) {
	account, _, err := s.o.Accounts.Account(r.Context(), v.Session.Email)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	form.TOTP = !account.TOTPConfirmed.IsZero()
	if account.Passkeys > 0 {
		form.Passkey = s.offerPasskey(w, r, v, false)
	}
	s.render(w, r, status, "code", nil, form)
}

// secondFactorAttempt counts a second factor's attempt (secondFactor's
// throttling, as for a password), and answers when the account or the
// address must wait; it says whether to go on.
func (s *Server) secondFactorAttempt(w http.ResponseWriter, r *http.Request, v *viewer, key, addressKey, next string) bool {
	wait, err := s.attempt(r.Context(), key, addressKey)
	if err != nil {
		s.unavailable(w, r, err)
		return false
	}
	if wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		s.renderCode(w, r, v, http.StatusTooManyRequests, codeForm{Next: next,
			Error: fmt.Sprintf("Too many failed attempts. Try again in %s.", roundUp(wait))})
		return false
	}
	return true
}

// secondFactorFailed counts a wrong second factor against the address (the
// account's attempt is counted already) and asks again, saying why.
func (s *Server) secondFactorFailed(w http.ResponseWriter, r *http.Request, v *viewer, addressKey, next, message string) {
	if err := s.o.Accounts.RecordFailure(r.Context(), addressKey, failureWindow); err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.renderCode(w, r, v, http.StatusUnauthorized, codeForm{Error: message, Next: next})
}

// code checks a second-factor code (TOTP, or a recovery code), counted
// against the account's failures like a password.
func (s *Server) code(w http.ResponseWriter, r *http.Request, v *viewer) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	ctx := r.Context()
	next := localPath(r.PostFormValue("next"))
	key, addressKey := "account:"+v.Session.Email, "address:"+s.clientAddress(r)
	if !s.secondFactorAttempt(w, r, v, key, addressKey, next) {
		return
	}
	err := s.o.Accounts.CheckSecondFactor(ctx, v.Session.Email, r.PostFormValue("code"))
	if errors.Is(err, accounts.ErrWrongCode) {
		s.secondFactorFailed(w, r, v, addressKey, next, accounts.ErrWrongCode.Error())
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := s.o.Accounts.ClearFailures(ctx, key); err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.startSession(w, r, v.Member, withSecondFactor(v.Session.Methods, "otp"), "", next)
}

// signOut ends the session.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if token := s.token(r); token != "" {
		if err := s.o.Accounts.EndSession(r.Context(), token); err != nil {
			s.unavailable(w, r, err)
			return
		}
	}
	s.clearSession(w)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// clientAddress is the request's client address, for throttling: the
// connection's peer, or behind one proxy that appends it, the last
// X-Forwarded-For entry (Options.TrustForwardedFor).
func (s *Server) clientAddress(r *http.Request) string {
	return perclient.Address(r, s.o.TrustForwardedFor).String()
}

// roundUp says a wait in whole minutes (or seconds, under a minute).
func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d seconds", int(d.Seconds())+1)
	}
	m := int((d + time.Minute - 1) / time.Minute)
	if m == 1 {
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", m)
}
