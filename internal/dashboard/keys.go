package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
)

// keysData is what the API Keys page shows.
type keysData struct {
	Keys []keyRow
	// Projects are those the member may make keys in (the form's
	// choices and the filter's).
	Projects []string
	// Filter is the page's filters, from the URL: a view can be shared.
	Filter struct{ Project, Status string }
	// Statuses are the filter's choices.
	Statuses []string
	Generate generateForm
	// Notice says what the last action did; Error why it failed.
	Notice, Error string
}

type keyRow struct {
	Namespace, Name, Label, Project, Scope, Status string
	Created, LastUsed, Expires, Remaining          string
	// Revocable is set while revoking (and rotating) means something;
	// Retirable while a previous key still works.
	Revocable, Retirable bool
}

// generateForm is the Generate Key form: what it asks, and an idempotency
// key that makes a form sent twice (a double click, a retry) one key.
type generateForm struct {
	Label, Project, Scope, ExpiresAfter, Idempotency string
}

// never is what a time that has not come, or will not, shows.
const never = "never"

// keyStatuses are the phases shown, in lifecycle order.
var keyStatuses = []hubv1.APIKeyPhase{hubv1.KeyPending, hubv1.KeyActive, hubv1.KeyRotating, hubv1.KeySuspended, hubv1.KeyExpired,
	hubv1.KeyRevoked}

// keyProjects are the projects whose keys v's member may see and make: all
// for Admins and Owners, those that grant the Developer role or more for
// others (the member's status.projects, which the access controller
// keeps).
func (s *Server) keyProjects(r *http.Request, v *viewer) (map[string]string, error) {
	var projects hubv1.ProjectList
	if err := s.o.Reader.List(r.Context(), &projects, readOnly); err != nil {
		return nil, err
	}
	granted := map[string]bool{}
	for _, p := range v.Member.Status.Projects {
		if access.AtLeast(p.Role, hubv1.RoleDeveloper) {
			granted[p.Project] = true
		}
	}
	out := map[string]string{} // project → namespace
	for _, p := range projects.Items {
		if p.Status.Namespace != "" && (access.AtLeast(v.Role(), hubv1.RoleAdmin) || granted[p.Name]) {
			out[p.Name] = p.Status.Namespace
		}
	}
	return out, nil
}

// keysPage lists the keys the member may see, filtered as the URL says,
// with the Generate Key form.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	data, err := s.keys(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if name := r.URL.Query().Get("revoked"); name != "" {
		data.Notice = "Key " + name + " is revoked: it stops working within a second."
	}
	if name := r.URL.Query().Get("retired"); name != "" {
		data.Notice = "The previous key of " + name + " is retired: only the new one works now."
	}
	s.render(w, r, http.StatusOK, "keys", s.pageOf(v, "/keys"), data)
}

func (s *Server) keys(r *http.Request, v *viewer) (*keysData, error) {
	projects, err := s.keyProjects(r, v)
	if err != nil {
		return nil, err
	}
	data := &keysData{Generate: generateForm{Scope: string(hubv1.ScopeStandard), Idempotency: newIdempotencyKey()}}
	data.Filter.Project, data.Filter.Status = r.URL.Query().Get("project"), r.URL.Query().Get("status")
	for _, st := range keyStatuses {
		data.Statuses = append(data.Statuses, string(st))
	}
	now := s.o.Clock.Now()
	for project, ns := range projects {
		data.Projects = append(data.Projects, project)
		if data.Filter.Project != "" && data.Filter.Project != project {
			continue
		}
		var keys hubv1.APIKeyList
		if err := s.o.Reader.List(r.Context(), &keys, client.InNamespace(ns), readOnly); err != nil {
			return nil, err
		}
		for _, k := range keys.Items {
			row := rowOf(v, &k, project, now)
			if data.Filter.Status != "" && row.Status != data.Filter.Status {
				continue
			}
			data.Keys = append(data.Keys, row)
		}
	}
	slices.Sort(data.Projects)
	slices.SortFunc(data.Keys, func(a, b keyRow) int { return strings.Compare(a.Project+"/"+a.Name, b.Project+"/"+b.Name) })
	return data, nil
}

// rowOf is a key's row in the list, its times in v's zone.
func rowOf(v *viewer, k *hubv1.APIKey, project string, now time.Time) keyRow {
	row := keyRow{Namespace: k.Namespace, Name: k.Name, Label: k.Spec.Label, Project: project, Scope: string(k.Spec.Scope),
		Status: string(k.Status.Phase), Created: "—", LastUsed: never, Expires: never, Remaining: "—"}
	if row.Scope == "" {
		row.Scope = string(hubv1.ScopeStandard)
	}
	if row.Status == "" {
		row.Status = string(hubv1.KeyPending)
	}
	if t := k.Status.CreatedAt; t != nil {
		row.Created = v.date(t.Time)
	}
	if t := k.Status.LastUsedAt; t != nil {
		row.LastUsed = v.moment(t.Time)
	}
	if t := k.Status.ExpiresAt; t != nil {
		row.Expires = v.date(t.Time)
		row.Remaining = remaining(t.Sub(now))
	}
	row.Revocable = !k.Spec.Revoked
	row.Retirable = k.Status.PreviousKey != nil && !k.Spec.Revoked
	return row
}

// remaining says how long is left, in days (hours on the last day).
func remaining(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d < 24*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours())+1)
	case d < 48*time.Hour:
		return "1 day"
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func newIdempotencyKey() string {
	raw := make([]byte, 18)
	_, _ = rand.Read(raw)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// newRotationID names a rotation made from the dashboard.
func newRotationID() string {
	raw := make([]byte, 10)
	_, _ = rand.Read(raw)
	return "dashboard-" + hex.EncodeToString(raw)
}

// newKeyData is what the show-once page shows.
type newKeyData struct {
	Key, KeyID, Name, Project string
	Expires                   string
	// PreviousKeyID works until PreviousUntil, after a rotation.
	PreviousKeyID, PreviousUntil string
}

// generateKey makes a key through the management API, as the member: a key
// request with delivery None, so the key is stored nowhere and this answer
// is the one place it is ever shown.
func (s *Server) generateKey(w http.ResponseWriter, r *http.Request, v *viewer) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	form := generateForm{Label: strings.TrimSpace(r.PostFormValue("label")), Project: r.PostFormValue("project"),
		Scope: r.PostFormValue("scope"), ExpiresAfter: r.PostFormValue("expiresAfter"), Idempotency: r.PostFormValue("idempotency")}
	fail := func(code int, message string) {
		data, err := s.keys(r, v)
		if err != nil {
			s.unavailable(w, r, err)
			return
		}
		data.Generate, data.Error = form, message
		s.render(w, r, code, "keys", s.pageOf(v, "/keys"), data)
	}
	projects, err := s.keyProjects(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	ns, ok := projects[form.Project]
	if !ok {
		fail(http.StatusUnprocessableEntity, "Choose a project you work in.")
		return
	}
	as, err := s.asMember(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	req := &mgmtv1alpha1.KeyRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "key-"},
		Spec: mgmtv1alpha1.KeyRequestSpec{IdempotencyKey: form.Idempotency, Label: form.Label, Scope: form.Scope,
			ExpiresAfter: form.ExpiresAfter}}
	if err := as.Create(r.Context(), req); err != nil {
		code, message := refusal(err)
		fail(code, message)
		return
	}
	if req.Status.Key == "" {
		// The same form sent again: the key was shown the first time.
		fail(http.StatusConflict, fmt.Sprintf("This form made key %s already, and a key is shown once only. "+
			"Revoke it if its secret was not kept, and generate a new one.", req.Status.APIKeyName))
		return
	}
	data := newKeyData{Key: req.Status.Key, KeyID: req.Status.KeyID, Name: req.Status.APIKeyName, Project: form.Project, Expires: never}
	if t := req.Status.ExpiresAt; t != nil {
		data.Expires = v.moment(t.Time)
	}
	s.render(w, r, http.StatusCreated, "key-created", s.pageOf(v, "/keys"), data)
}

// confirmData is what a confirmation page (revoke, rotate) shows.
type confirmData struct {
	Namespace, Name, Label, Project string
	// RotationID makes the rotation form safe to send twice.
	RotationID string
}

// revokePage asks to confirm a revocation.
func (s *Server) revokePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	key, project, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "key-revoke", s.pageOf(v, "/keys"), confirmData{Namespace: key.Namespace, Name: key.Name,
		Label: key.Spec.Label, Project: project})
}

// rotatePage asks to confirm a rotation, saying what happens to the key
// in use.
func (s *Server) rotatePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	key, project, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "key-rotate", s.pageOf(v, "/keys"), confirmData{Namespace: key.Namespace, Name: key.Name,
		Label: key.Spec.Label, Project: project, RotationID: newRotationID()})
}

// rotate rotates a key through the management API, as the member, and
// shows the new key once; the previous one works through the overlap.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, v *viewer) {
	key, project, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	as, err := s.asMember(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	req := &mgmtv1alpha1.RotationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, GenerateName: "rotate-"},
		Spec: mgmtv1alpha1.RotationRequestSpec{APIKeyName: key.Name, RotationID: r.PostFormValue("rotationID")}}
	if err := as.Create(r.Context(), req); err != nil {
		code, message := refusal(err)
		s.fail(w, r, code, message)
		return
	}
	if req.Status.Key == "" {
		s.fail(w, r, http.StatusConflict, fmt.Sprintf("This form rotated key %s already (to %s), and a key is shown once only. "+
			"Rotate again if the new key was not kept.", key.Name, req.Status.KeyID))
		return
	}
	data := newKeyData{Key: req.Status.Key, KeyID: req.Status.KeyID, Name: key.Name, Project: project, Expires: never,
		PreviousKeyID: req.Status.PreviousKeyID}
	if t := req.Status.ExpiresAt; t != nil {
		data.Expires = v.moment(t.Time)
	}
	if t := req.Status.PreviousKeyValidUntil; t != nil {
		data.PreviousUntil = v.moment(t.Time)
	}
	s.render(w, r, http.StatusCreated, "key-created", s.pageOf(v, "/keys"), data)
}

// retire ends a rotation's overlap now: the previous key stops working
// (spec.rotation.retirePreviousKeyID, as the member).
func (s *Server) retire(w http.ResponseWriter, r *http.Request, v *viewer) {
	s.changeKey(w, r, v, "retired", func(key *hubv1.APIKey) bool {
		prev := key.Status.PreviousKey
		if prev == nil {
			return false
		}
		if key.Spec.Rotation == nil {
			key.Spec.Rotation = &hubv1.RotationSpec{}
		}
		key.Spec.Rotation.RetirePreviousKeyID = prev.KeyID
		return true
	})
}

// revoke revokes a key, as the member (spec.revoked, for good).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request, v *viewer) {
	s.changeKey(w, r, v, "revoked", func(key *hubv1.APIKey) bool {
		key.Spec.Revoked = true
		return true
	})
}

// changeKey applies change to the spec of the key the URL names (one the
// member may see), as the member, by a merge patch, and goes back to the
// keys with the notice named by done; a change that reports nothing to do
// goes back without one.
func (s *Server) changeKey(w http.ResponseWriter, r *http.Request, v *viewer, done string, change func(*hubv1.APIKey) bool) {
	key, _, ok := s.visibleKey(w, r, v)
	if !ok {
		return
	}
	patch := client.MergeFrom(key.DeepCopy())
	if !change(key) {
		http.Redirect(w, r, "/keys", http.StatusSeeOther)
		return
	}
	as, err := s.asMember(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := as.Patch(r.Context(), key, patch); err != nil {
		code, message := refusal(err)
		s.fail(w, r, code, message)
		return
	}
	http.Redirect(w, r, "/keys?"+done+"="+url.QueryEscape(key.Name), http.StatusSeeOther)
}

// visibleKey reads the key the URL names, when the member may see it; it
// answers 404 otherwise (a key the member may not see does not exist for
// them).
func (s *Server) visibleKey(w http.ResponseWriter, r *http.Request, v *viewer) (*hubv1.APIKey, string, bool) {
	projects, err := s.keyProjects(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return nil, "", false
	}
	ns := r.PathValue("namespace")
	for project, pns := range projects {
		if pns != ns {
			continue
		}
		key := &hubv1.APIKey{}
		err := s.o.Reader.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: r.PathValue("name")}, key)
		if err == nil {
			return key, project, true
		}
		if !apierrors.IsNotFound(err) {
			s.unavailable(w, r, err)
			return nil, "", false
		}
	}
	s.fail(w, r, http.StatusNotFound, "There is no such key among those you may see.")
	return nil, "", false
}

// asMember is a client acting as v's member.
func (s *Server) asMember(r *http.Request, v *viewer) (client.Client, error) {
	prefix := ""
	if org := s.organization(r.Context()); org != nil {
		prefix = org.Spec.Security.UsernamePrefix
	}
	return s.actAs.client(v, prefix)
}

// refusal turns an API server's refusal into a status and a message for
// the page: its own message, which names the field or the role needed.
func refusal(err error) (int, string) {
	var status apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
	}
	if status == nil {
		return http.StatusServiceUnavailable, "The hub cannot answer right now. Try again in a moment."
	}
	code := int(status.Status().Code)
	if code < 400 || code >= 500 {
		return http.StatusServiceUnavailable, "The hub cannot answer right now. Try again in a moment."
	}
	return code, status.Status().Message
}
