package openaiadmin

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
)

// project is OpenAI's organization.project: a hub Project, its ID the
// Project's name.
type project struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Name       string `json:"name"`
	CreatedAt  int64  `json:"created_at"`
	ArchivedAt *int64 `json:"archived_at"`
	Status     string `json:"status"`
}

func projectOf(p *hubv1.Project) project {
	out := project{ID: p.Name, Object: "organization.project", Name: p.Spec.DisplayName, CreatedAt: p.CreationTimestamp.Unix(),
		Status: "active"}
	if out.Name == "" {
		out.Name = p.Name
	}
	if p.Spec.Archived {
		out.Status = "archived"
		// When it was archived: the Ready condition's last change to
		// ProjectArchived, else creation.
		at := p.CreationTimestamp.Time
		if c := meta.FindStatusCondition(p.Status.Conditions, hubv1.ReadyCondition); c != nil && c.Reason == hubv1.ProjectArchivedReason {
			at = c.LastTransitionTime.Time
		}
		out.ArchivedAt = unix(at)
	}
	return out
}

func (h *Handler) listProjects(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 20, 100)
	if !ok {
		return
	}
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	projects := &hubv1.ProjectList{}
	if err := as.List(r.Context(), projects); err != nil {
		fail(w, err)
		return
	}
	archived := r.URL.Query().Get("include_archived") == "true"
	items := make([]project, 0, len(projects.Items))
	for i := range projects.Items {
		if p := &projects.Items[i]; archived || !p.Spec.Archived {
			items = append(items, projectOf(p))
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	writeJSON(w, http.StatusOK, page(items, func(p project) string { return p.ID }, r.URL.Query().Get("after"), limit))
}

// readProject reads the path's project as the caller; it answers the
// request itself when it cannot.
func (h *Handler) readProject(w http.ResponseWriter, r *http.Request) (client.Client, *hubv1.Project, bool) {
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return nil, nil, false
	}
	p := &hubv1.Project{}
	if err := as.Get(r.Context(), client.ObjectKey{Name: r.PathValue("project")}, p); err != nil {
		fail(w, err)
		return nil, nil, false
	}
	return as, p, true
}

func (h *Handler) getProject(w http.ResponseWriter, r *http.Request) {
	if _, p, ok := h.readProject(w, r); ok {
		writeJSON(w, http.StatusOK, projectOf(p))
	}
}

// createProject makes a Project named after the name asked for (lower
// case, dashes), with that name as its display name.
func (h *Handler) createProject(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	name := dnsLabel(body.Name)
	if name == "" {
		invalid(w, "name", "name is required: letters or digits, which name the project (lower case, with dashes)")
		return
	}
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	p := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.ProjectSpec{DisplayName: body.Name}}
	if err := as.Create(r.Context(), p); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, projectOf(p))
}

// updateProject changes a project's name (its display name).
func (h *Handler) updateProject(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		invalid(w, "name", "name is required")
		return
	}
	h.patchProject(w, r, func(p *hubv1.Project) { p.Spec.DisplayName = body.Name })
}

// archiveProject archives a project: its keys are suspended, and it takes
// no new keys.
func (h *Handler) archiveProject(w http.ResponseWriter, r *http.Request) {
	h.patchProject(w, r, func(p *hubv1.Project) { p.Spec.Archived = true })
}

// patchProject changes the path's project as the caller. The patch carries
// the version read; a project changed meanwhile (its controller writes it
// often) is read again and changed again.
func (h *Handler) patchProject(w http.ResponseWriter, r *http.Request, change func(*hubv1.Project)) {
	var p *hubv1.Project
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		as, read, ok := h.readProject(w, r)
		if !ok {
			return errAnswered
		}
		p = read
		before := p.DeepCopy()
		change(p)
		return as.Patch(r.Context(), p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	switch {
	case errors.Is(err, errAnswered):
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusOK, projectOf(p))
	}
}

// errAnswered stops a retry whose attempt already answered the request.
var errAnswered = errors.New("answered")

// projectKey is OpenAI's organization.project.api_key: a hub APIKey, its
// ID the current key's public ID.
type projectKey struct {
	Object        string   `json:"object"`
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	RedactedValue string   `json:"redacted_value"`
	CreatedAt     int64    `json:"created_at"`
	LastUsedAt    *int64   `json:"last_used_at"`
	ExpiresAt     *int64   `json:"expires_at"`
	Owner         keyOwner `json:"owner"`
}

// ownerUser is the type of a key owned by a person.
const ownerUser = "user"

type keyOwner struct {
	Type string     `json:"type"`
	User *keyHolder `json:"user,omitempty"`
}

type keyHolder struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

func keyOf(k *hubv1.APIKey) projectKey {
	out := projectKey{Object: "organization.project.api_key", ID: k.Status.KeyID, Name: k.Spec.Label,
		RedactedValue: keys.Prefix + k.Status.KeyID + "_…", CreatedAt: k.CreationTimestamp.Unix(),
		Owner: keyOwner{Type: ownerUser, User: &keyHolder{ID: k.Spec.Owner, Name: k.Spec.Owner, Email: k.Spec.Owner, Role: "member"}}}
	if out.Name == "" {
		out.Name = k.Name
	}
	if k.Status.CreatedAt != nil {
		out.CreatedAt = k.Status.CreatedAt.Unix()
	}
	if k.Status.LastUsedAt != nil {
		out.LastUsedAt = unix(k.Status.LastUsedAt.Time)
	}
	if k.Status.ExpiresAt != nil {
		out.ExpiresAt = unix(k.Status.ExpiresAt.Time)
	}
	return out
}

// projectKeys lists the path's project's issued keys as the caller, by key
// ID.
func (h *Handler) projectKeys(w http.ResponseWriter, r *http.Request) (client.Client, []hubv1.APIKey, bool) {
	as, p, ok := h.readProject(w, r)
	if !ok {
		return nil, nil, false
	}
	list := &hubv1.APIKeyList{}
	if err := as.List(r.Context(), list, client.InNamespace(p.Name)); err != nil {
		fail(w, err)
		return nil, nil, false
	}
	issued := list.Items[:0]
	for _, k := range list.Items {
		if k.Status.KeyID != "" {
			issued = append(issued, k)
		}
	}
	sort.Slice(issued, func(i, j int) bool { return issued[i].Status.KeyID < issued[j].Status.KeyID })
	return as, issued, true
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 20, 100)
	if !ok {
		return
	}
	_, list, ok := h.projectKeys(w, r)
	if !ok {
		return
	}
	items := make([]projectKey, 0, len(list))
	for i := range list {
		items = append(items, keyOf(&list[i]))
	}
	writeJSON(w, http.StatusOK, page(items, func(k projectKey) string { return k.ID }, r.URL.Query().Get("after"), limit))
}

// findKey is the project's APIKey whose current key has the path's ID.
func (h *Handler) findKey(w http.ResponseWriter, r *http.Request) (client.Client, *hubv1.APIKey, bool) {
	as, list, ok := h.projectKeys(w, r)
	if !ok {
		return nil, nil, false
	}
	id := r.PathValue("key")
	for i := range list {
		if list[i].Status.KeyID == id {
			return as, &list[i], true
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("No API key with ID %s in project %s", id, r.PathValue("project")),
		"invalid_request_error", "", "not_found")
	return nil, nil, false
}

func (h *Handler) getKey(w http.ResponseWriter, r *http.Request) {
	if _, k, ok := h.findKey(w, r); ok {
		writeJSON(w, http.StatusOK, keyOf(k))
	}
}

// deleteKey deletes the APIKey (and with it its Secret): the key stops
// working at once.
func (h *Handler) deleteKey(w http.ResponseWriter, r *http.Request) {
	as, k, ok := h.findKey(w, r)
	if !ok {
		return
	}
	if err := as.Delete(r.Context(), k); err != nil && !apierrors.IsNotFound(err) {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted{Object: "organization.project.api_key.deleted", ID: k.Status.KeyID, Deleted: true})
}

// deleted is OpenAI's answer to a delete.
type deleted struct {
	Object  string `json:"object"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}
