package dashboard

import (
	"net/http"
	"strings"

	"github.com/minimax/platform-hub/internal/accounts"
)

// inviteForm is what the invitation page shows: whom it is for, and the
// password fields that create their account.
type inviteForm struct {
	Member, Token, Email, Role, Error string
	// Refused is set when the link cannot be used; Error says why.
	Refused bool
}

// invitationPage shows an invitation, with the form that accepts it by
// creating the account. It changes nothing: mail scanners open links
// before people do.
func (s *Server) invitationPage(w http.ResponseWriter, r *http.Request) {
	if !s.invitationAllowed(w, r) {
		return
	}
	form := inviteForm{Member: r.URL.Query().Get("member"), Token: r.URL.Query().Get("token")}
	m, ref := s.o.Invitations.Check(r.Context(), form.Member, form.Token)
	code := http.StatusOK
	if ref != nil {
		form.Refused, form.Error, code = true, ref.Message, ref.Code
	} else {
		form.Email, form.Role = m.Spec.Email, string(m.Spec.Role)
	}
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the token
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, code, "invitation", nil, form)
}

// invitationAllowed answers 429 to a request beyond the invitation links'
// bounds (per client and overall: the pages need no sign-in).
func (s *Server) invitationAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.o.Invitations.Allow(r) {
		return true
	}
	w.Header().Set("Retry-After", "1")
	s.fail(w, r, http.StatusTooManyRequests, "Too many invitation requests from your address. Try again in a moment.")
	return false
}

// acceptInvitation creates the account: the password is checked against
// the policy first, so that a refused password leaves the link usable; it
// is set before the invitation is marked accepted, so that an acceptance
// never leaves a member without a way in (a failed acceptance leaves the
// link usable, and using it again sets the password again).
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	if !s.invitationAllowed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	form := inviteForm{Member: r.PostFormValue("member"), Token: r.PostFormValue("token")}
	password := r.PostFormValue("password")
	m, ref := s.o.Invitations.Check(r.Context(), form.Member, form.Token)
	if ref != nil {
		form.Refused, form.Error = true, ref.Message
		s.render(w, r, ref.Code, "invitation", nil, form)
		return
	}
	form.Email, form.Role = m.Spec.Email, string(m.Spec.Role)
	switch err := accounts.CheckPasswordPolicy(password); {
	case password != r.PostFormValue("confirm"):
		form.Error = "The two passwords differ: type the same password twice."
	case err != nil:
		form.Error = "This password cannot be used: " + strings.TrimPrefix(err.Error(), accounts.ErrPasswordPolicy.Error()+": ") + "."
	}
	if form.Error != "" {
		s.render(w, r, http.StatusUnprocessableEntity, "invitation", nil, form)
		return
	}
	if err := s.o.Accounts.SetPassword(r.Context(), m.Spec.Email, password); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if m, ref = s.o.Invitations.Accept(r.Context(), form.Member, form.Token); ref != nil {
		form.Refused, form.Error = true, ref.Message
		s.render(w, r, ref.Code, "invitation", nil, form)
		return
	}
	stage := ""
	if s.mfaRequired(r.Context(), m.Spec.Role) {
		stage = accounts.StageEnrol
	}
	s.startSession(w, r, m, passwordMethods(), stage, "/")
}
