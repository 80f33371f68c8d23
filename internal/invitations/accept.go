package invitations

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/perclient"
)

// Handler serves invitation links. GET shows a page with an Accept button
// and changes nothing, since mail scanners open links before people do;
// POST accepts. No other authentication is needed: the token is the proof.
type Handler struct {
	// Reader reads Members, not from a cache: a link used twice in a row
	// must see the first use.
	Reader client.Reader
	// Client writes their status.
	Client client.Client
	Clock  clock.PassiveClock
	// PerClient bounds each client address's requests (the endpoint needs
	// no authentication), so that one client's traffic cannot starve
	// others' acceptances; nil means 1 a second in bursts of 10, by the
	// connection's address. Tokens are 256 bits: the bounds protect the
	// API server and other clients, not the tokens.
	PerClient *perclient.Limiter
	// Limiter bounds all requests together (each reads from the API
	// server); nil means 100 a second with bursts of 200.
	Limiter flowcontrol.RateLimiter

	once sync.Once
}

// AcceptResponse is the JSON answer to an accepted invitation.
type AcceptResponse struct {
	Member string            `json:"member"`
	Email  string            `json:"email"`
	Role   hubv1.Role        `json:"role"`
	Phase  hubv1.MemberPhase `json:"phase"`
}

// Refusal says why an invitation cannot be accepted, with the HTTP status
// that answers it.
type Refusal struct {
	Code    int
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Check finds the member an invitation link is for, and says why it cannot
// be accepted, if it cannot (the member comes with some refusals: a used
// or expired link).
func (h *Handler) Check(ctx context.Context, name, token string) (*hubv1.Member, *Refusal) {
	if name == "" || token == "" {
		return nil, &Refusal{http.StatusBadRequest, "the link is incomplete: it needs member and token; open the link from the invitation email as it is"}
	}
	// Nothing about a member is told to a caller without its token: an
	// unknown member and a wrong token get the same answer. A used link is
	// recognised by the digest kept as acceptedDigest.
	invalid := &Refusal{http.StatusForbidden, "this invitation link is not valid: a newer invitation replaced it, it was " +
		"already used, or it was changed; use the link of the latest invitation email"}
	m := &hubv1.Member{}
	if err := h.Reader.Get(ctx, client.ObjectKey{Name: name}, m); apierrors.IsNotFound(err) {
		return nil, invalid
	} else if err != nil {
		return nil, &Refusal{http.StatusServiceUnavailable, "the invitation cannot be checked right now; try again in a moment"}
	}
	s := &m.Status
	digest := Digest(token)
	switch {
	case s.AcceptedAt != nil && s.AcceptedDigest != "" && subtle.ConstantTimeCompare([]byte(digest), []byte(s.AcceptedDigest)) == 1:
		return m, &Refusal{http.StatusConflict, fmt.Sprintf("this invitation was already accepted at %s; an invitation link works once",
			s.AcceptedAt.UTC().Format(time.RFC3339))}
	case s.InvitationDigest == "" || subtle.ConstantTimeCompare([]byte(digest), []byte(s.InvitationDigest)) != 1:
		return m, invalid
	case m.Spec.Disabled:
		return m, &Refusal{http.StatusForbidden, "this member is disabled; ask an Admin"}
	case s.InvitationExpiresAt == nil || !h.Clock.Now().Before(s.InvitationExpiresAt.Time):
		return m, &Refusal{http.StatusGone, fmt.Sprintf("this invitation expired at %s; ask an Admin to send it again "+
			"(spec.resendInvitation of Member %s)", expiry(s.InvitationExpiresAt), m.Name)}
	}
	return m, nil
}

func expiry(t *metav1.Time) string {
	if t == nil {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

// Allow says whether r is within the bounds of invitation requests (its
// client's, and all clients' together). ServeHTTP checks it, and so must
// every other server of invitation links (the dashboard): they need no
// authentication, and each reads from the API server.
func (h *Handler) Allow(r *http.Request) bool {
	h.once.Do(func() {
		if h.PerClient == nil {
			h.PerClient = perclient.NewLimiter(1, 10, 0, false)
		}
		if h.Limiter == nil {
			h.Limiter = flowcontrol.NewTokenBucketRateLimiter(100, 200)
		}
	})
	return h.PerClient.Allow(r) && h.Limiter.TryAccept()
}

// ServeHTTP answers GET (the page) and POST (accept).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.Allow(r) {
		w.Header().Set("Retry-After", "1")
		writeRefusal(w, &Refusal{http.StatusTooManyRequests, "too many invitation requests; try again in a moment"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.page(w, r)
	case http.MethodPost:
		h.accept(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": map[string]string{"message": "use GET to see the invitation, POST to accept it"}})
	}
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Platform Hub invitation</title></head>
<body>
{{if .Refusal}}<h1>This invitation cannot be accepted</h1><p>{{.Refusal}}</p>
{{else}}<h1>Join as {{.Role}}</h1>
<p>Accept the invitation for {{.Email}}.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="member" value="{{.Member}}">
<input type="hidden" name="token" value="{{.Token}}"><button type="submit">Accept the invitation</button></form>
{{end}}</body></html>
`))

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	name, token := r.URL.Query().Get("member"), r.URL.Query().Get("token")
	m, ref := h.Check(r.Context(), name, token)
	data := map[string]string{"Member": name, "Token": token, "Action": AcceptPath}
	code := http.StatusOK
	if ref != nil {
		data["Refusal"], code = ref.Message, ref.Code
	} else {
		data["Role"], data["Email"] = string(m.Spec.Role), m.Spec.Email
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the token
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = pageTemplate.Execute(w, data)
}

func (h *Handler) accept(w http.ResponseWriter, r *http.Request) {
	var name, token string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Member string `json:"member"`
			Token  string `json:"token"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			writeRefusal(w, &Refusal{http.StatusBadRequest, `the body must be JSON of the form {"member": "...", "token": "..."}`})
			return
		}
		name, token = body.Member, body.Token
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		name, token = r.PostFormValue("member"), r.PostFormValue("token")
	}
	m, ref := h.Accept(r.Context(), name, token)
	if ref != nil {
		writeRefusal(w, ref)
		return
	}
	writeJSON(w, http.StatusOK, AcceptResponse{Member: m.Name, Email: m.Spec.Email, Role: m.Spec.Role, Phase: hubv1.MemberActive})
}

// Accept checks an invitation and marks it accepted; the link then works
// no more.
func (h *Handler) Accept(ctx context.Context, name, token string) (*hubv1.Member, *Refusal) {
	// Another writer of the member's status (the access controller, say)
	// can win the race for the resource version: the invitation is checked
	// again and the acceptance tried again, a few times, before the person
	// is asked to retry.
	for attempt := 1; ; attempt++ {
		m, ref := h.Check(ctx, name, token)
		if ref != nil {
			return m, ref
		}
		err := h.acceptMember(ctx, m)
		switch {
		case err == nil:
			return m, nil
		case apierrors.IsConflict(err) && attempt < 3:
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond) // for the cache to see the other write
			continue
		case apierrors.IsConflict(err):
			return m, &Refusal{http.StatusConflict, "the invitation changed while it was being accepted; open the link again"}
		}
		return m, &Refusal{http.StatusServiceUnavailable, "the invitation cannot be accepted right now; try again in a moment"}
	}
}

// AcceptSignedIn marks member name's invitation accepted without its link:
// the person signed in with single sign-on, whose provider vouched for
// the email. Any link out works no more. A conflict with another writer of
// the status reads the member again and writes again.
func (h *Handler) AcceptSignedIn(ctx context.Context, name string) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		m := &hubv1.Member{}
		if err := h.Reader.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
			return err
		}
		if m.Status.AcceptedAt != nil {
			return nil
		}
		return h.acceptMember(ctx, m)
	})
}

// acceptMember marks a checked invitation accepted: the digest goes, so the
// link works once (the accepted digest tells a second use it was used).
// The access controller then makes the member Active.
func (h *Handler) acceptMember(ctx context.Context, m *hubv1.Member) error {
	s := &m.Status
	s.AcceptedAt = &metav1.Time{Time: h.Clock.Now().Truncate(time.Second)}
	s.AcceptedDigest, s.InvitationDigest = s.InvitationDigest, ""
	return WriteStatus(ctx, h.Client, m)
}

func writeRefusal(w http.ResponseWriter, ref *Refusal) {
	writeJSON(w, ref.Code, map[string]any{"error": map[string]string{"message": ref.Message}})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
