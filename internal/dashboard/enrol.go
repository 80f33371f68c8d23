package dashboard

import (
	"bytes"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"

	"github.com/minimax/platform-hub/internal/accounts"
)

// enrolForm is what the second-factor setup page shows: the secret as a
// QR code and as text, for an authenticator app.
type enrolForm struct {
	Required bool
	Secret   string
	QR       template.URL
	Error    string
	// RecoveryCodes are shown once, after the code is confirmed.
	RecoveryCodes []string
	// Next is the page to go on to.
	Next string
	// Passkey is the options of a passkey's registration, JSON, when the
	// dashboard's address allows passkeys (static/passkey.js reads them).
	Passkey string
}

// Retry is the link to a new secret, keeping next.
func (f enrolForm) Retry() string { return withNext("/account/second-factor", f.Next) }

// enrolPage gives the account a new TOTP secret (each visit a new one, so
// a secret shown before is worth nothing until confirmed).
func (s *Server) enrolPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.mayEnrol(w, r, v) {
		return
	}
	key, err := s.o.Accounts.StartTOTP(r.Context(), v.Session.Email, s.o.Issuer)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	img, err := key.Image(240, 240)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		s.unavailable(w, r, err)
		return
	}
	form := enrolForm{Required: v.Session.Stage == accounts.StageEnrol, Secret: key.Secret(), Next: localPath(r.URL.Query().Get("next")),
		Passkey: s.offerPasskey(w, r, v, true),
		QR:      template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "enrol", s.pageOf(v, ""), form)
}

// mayEnrol refuses to replace a second factor that is set up: a session
// alone (a cookie someone took) must not bind another authenticator.
// Replacing one, with the current code, comes with the Settings module.
func (s *Server) mayEnrol(w http.ResponseWriter, r *http.Request, v *viewer) bool {
	account, _, err := s.o.Accounts.Account(r.Context(), v.Session.Email)
	if err != nil {
		s.unavailable(w, r, err)
		return false
	}
	if account.HasSecondFactor() {
		s.render(w, r, http.StatusConflict, "problem", s.pageOf(v, ""), problem{Code: http.StatusConflict,
			Message: "Your second factor is set up already. If you lost it, sign in with a recovery code."})
		return false
	}
	return true
}

// enrol confirms the secret with a code, shows the recovery codes once,
// and finishes a sign-in that waited for it.
func (s *Server) enrol(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.mayEnrol(w, r, v) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	codes, err := s.o.Accounts.ConfirmTOTP(r.Context(), v.Session.Email, r.PostFormValue("code"))
	if errors.Is(err, accounts.ErrWrongCode) {
		s.render(w, r, http.StatusUnauthorized, "enrol-failed", s.pageOf(v, ""), enrolForm{Error: err.Error(), Next: localPath(r.PostFormValue("next")),
			Required: v.Session.Stage == accounts.StageEnrol})
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.enrolled(w, r, v, withSecondFactor(v.Session.Methods, "otp"), codes, localPath(r.PostFormValue("next")))
}

// enrolled finishes setting up a second factor: a new session says the
// sign-in has it now (methods), and the recovery codes show, once.
func (s *Server) enrolled(w http.ResponseWriter, r *http.Request, v *viewer, methods, codes []string, next string) {
	token, err := s.o.Accounts.CreateSession(r.Context(), accounts.Session{Email: v.Session.Email, Methods: methods,
		Role: v.Session.Role})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := s.o.Accounts.EndSession(r.Context(), v.token); err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.setSession(w, token)
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "recovery-codes", s.pageOf(v, ""), enrolForm{RecoveryCodes: codes, Next: next})
}
