package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
)

// sessionCookie names the session cookie. The __Host- prefix (RFC 6265bis
// section 4.1.3.2) makes browsers keep it only when it is Secure, for the
// whole origin and no other host; on loopback HTTP (hub dev) it cannot be
// Secure, and goes without the prefix.
const (
	sessionCookie         = "__Host-hub-session"
	insecureSessionCookie = "hub-session"
)

func (s *Server) cookieName() string {
	if s.o.Insecure {
		return insecureSessionCookie
	}
	return sessionCookie
}

// hostCookie is a cookie's name with the __Host- prefix when the dashboard
// is on HTTPS (the cookie is then Secure, for the whole origin, and set by
// no other host).
func (s *Server) hostCookie(name string) string {
	if s.o.Insecure {
		return name
	}
	return "__Host-" + name
}

// setSession sets the session cookie: HttpOnly (no script reads it),
// SameSite=Lax (sent on top-level navigation from a link in an email, not
// on other sites' requests), Secure, for the whole origin. It lasts as long
// as the browser: the store ends the session itself.
func (s *Server) setSession(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: token, Path: "/", HttpOnly: true, Secure: !s.o.Insecure,
		SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: !s.o.Insecure,
		SameSite: http.SameSiteLaxMode})
}

func (s *Server) token(r *http.Request) string {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return ""
	}
	return c.Value
}

// viewer is the signed-in member of a request.
type viewer struct {
	Member  *hubv1.Member
	Session accounts.Session
	// Zone is where the member reads times (account.go).
	Zone  *time.Location
	token string
}

// Role is the member's role.
func (v *viewer) Role() hubv1.Role { return v.Member.Spec.Role }

// errSignedOut: no valid session, or one whose member can no longer use it.
var errSignedOut = errors.New("signed out")

// current finds the request's session and its member. A session ends here
// when its member is gone, disabled, or has another role than when it
// began: a change of role must be followed by a fresh sign-in.
func (s *Server) current(r *http.Request) (*viewer, error) {
	token := s.token(r)
	if token == "" {
		return nil, errSignedOut
	}
	read := s.o.Accounts.Session
	if r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Trigger") == refreshingReport {
		read = s.o.Accounts.Peek // the page refreshing itself is not the member's activity
	}
	sess, err := read(r.Context(), token, s.idleTimeout(r.Context()))
	if errors.Is(err, accounts.ErrNoSession) {
		return nil, errSignedOut
	}
	if err != nil {
		return nil, err
	}
	m, err := s.memberByEmail(r.Context(), sess.Email)
	if err != nil {
		return nil, err
	}
	if m == nil || m.Spec.Disabled || string(m.Spec.Role) != sess.Role {
		if err := s.o.Accounts.EndSession(r.Context(), token); err != nil {
			return nil, err
		}
		return nil, errSignedOut
	}
	return &viewer{Member: m, Session: sess, Zone: s.zone(r.Context(), sess.TimeZone), token: token}, nil
}

// memberByEmail finds the Member of an email (nil when none).
func (s *Server) memberByEmail(ctx context.Context, email string) (*hubv1.Member, error) {
	var members hubv1.MemberList
	if err := s.o.Reader.List(ctx, &members, readOnly); err != nil {
		return nil, err
	}
	for i := range members.Items {
		if hubv1.SameEmail(members.Items[i].Spec.Email, email) {
			return members.Items[i].DeepCopy(), nil // the request's own copy
		}
	}
	return nil, nil
}

// readOnly lists the cache's own objects, not copies: for pages that only
// read what they list (the overview lists every key, cap and member on
// each request). Nothing listed with it may be changed.
var readOnly = client.UnsafeDisableDeepCopy

// guarded serves h to sessions at one of the stages (accounts.Stage…; ""
// for a finished sign-in). Others go where their stage is, or to sign in.
func (s *Server) guarded(h func(http.ResponseWriter, *http.Request, *viewer), stages ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := s.current(r)
		switch {
		case errors.Is(err, errSignedOut):
			s.toSignIn(w, r)
		case err != nil:
			s.unavailable(w, r, err)
		case !slices.Contains(stages, v.Session.Stage):
			http.Redirect(w, r, stagePath(v.Session.Stage), http.StatusSeeOther)
		default:
			h(w, r, v)
		}
	}
}

// stagePath is the page of a sign-in stage ("/" when it is done).
func stagePath(stage string) string {
	switch stage {
	case accounts.StageEnrol:
		return "/account/second-factor"
	case accounts.StageSecondFactor:
		return "/signin/code"
	}
	return "/"
}

// withNext is target with a next= page (one that is not the overview).
func withNext(target, next string) string {
	if next == "" || next == "/" {
		return target
	}
	return target + "?" + url.Values{"next": {next}}.Encode()
}

// toSignIn sends a browser to the sign-in page, to come back to the page
// it asked for.
func (s *Server) toSignIn(w http.ResponseWriter, r *http.Request) {
	s.clearSession(w)
	http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// refreshingReport is the id of the Usage page's report, whose own
// refreshes (htmx's HX-Trigger names it) do not count as activity.
const refreshingReport = "report"

// localPath keeps a next= target on this site: a path, never a URL to
// elsewhere (an open redirect). Browsers read a backslash as a slash, and
// http.Redirect cleans the path ("/./\\evil.com" becomes "/\\evil.com",
// that is "//evil.com"), so the path is cleaned here first, and any
// backslash or control character refuses it.
func localPath(next string) string {
	if next == "" || strings.ContainsAny(next, "\\\x00\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") ||
		strings.IndexFunc(u.Path, func(r rune) bool { return r == '\\' || unicode.IsControl(r) }) >= 0 {
		return "/" // the decoded path too: %5C is a backslash once a redirect decodes it
	}
	clean := path.Clean(u.Path)
	if strings.HasPrefix(clean, "//") {
		return "/"
	}
	// Escaped again, so that the result reads the same when it comes back
	// (a redirect, a form): localPath(localPath(x)) == localPath(x).
	out := (&url.URL{Path: clean}).EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}
