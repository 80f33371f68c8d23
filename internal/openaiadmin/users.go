package openaiadmin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// OpenAI's organization roles are owner and reader. The hub's Owner is
// owner; its Admin, Developer and Viewer are reader, and hub_role says
// which. A role asked for may be OpenAI's or the hub's own.
func openAIRole(r hubv1.Role) string {
	if r == hubv1.RoleOwner {
		return "owner"
	}
	return "reader"
}

// hubRole reads a role asked for: owner, reader (a Viewer), or one of the
// hub's roles in any case.
func hubRole(s string) (hubv1.Role, bool) {
	switch strings.ToLower(s) {
	case "owner":
		return hubv1.RoleOwner, true
	case "reader", "viewer":
		return hubv1.RoleViewer, true
	case "admin":
		return hubv1.RoleAdmin, true
	case "developer":
		return hubv1.RoleDeveloper, true
	}
	return "", false
}

// user is OpenAI's organization.user: a Member who accepted, its ID the
// Member's name.
type user struct {
	Object  string `json:"object"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Role    string `json:"role"`
	HubRole string `json:"hub_role"`
	AddedAt int64  `json:"added_at"`
}

func userOf(m *hubv1.Member) user {
	added := m.CreationTimestamp.Time
	if m.Status.AcceptedAt != nil {
		added = m.Status.AcceptedAt.Time
	}
	return user{Object: "organization.user", ID: m.Name, Name: m.Name, Email: m.Spec.Email, Role: openAIRole(m.Spec.Role),
		HubRole: string(m.Spec.Role), AddedAt: added.Unix()}
}

// members lists the Members as the caller, by name, keeping those keep
// says.
func (h *Handler) members(w http.ResponseWriter, r *http.Request, keep func(*hubv1.Member) bool) ([]hubv1.Member, bool) {
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return nil, false
	}
	list := &hubv1.MemberList{}
	if err := as.List(r.Context(), list); err != nil {
		fail(w, err)
		return nil, false
	}
	out := list.Items[:0]
	for i := range list.Items {
		if keep(&list.Items[i]) {
			out = append(out, list.Items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, true
}

func invited(m *hubv1.Member) bool {
	return m.Status.Phase == hubv1.MemberInvited || m.Status.Phase == ""
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 20, 100)
	if !ok {
		return
	}
	emails := values(r, "emails")
	list, ok := h.members(w, r, func(m *hubv1.Member) bool {
		if invited(m) {
			return false
		}
		if len(emails) == 0 {
			return true
		}
		for _, e := range emails {
			if hubv1.SameEmail(e, m.Spec.Email) {
				return true
			}
		}
		return false
	})
	if !ok {
		return
	}
	items := make([]user, 0, len(list))
	for i := range list {
		items = append(items, userOf(&list[i]))
	}
	writeJSON(w, http.StatusOK, page(items, func(u user) string { return u.ID }, r.URL.Query().Get("after"), limit))
}

// readMember reads the Member the path names (param) as the caller.
func (h *Handler) readMember(w http.ResponseWriter, r *http.Request, param string) (client.Client, *hubv1.Member, bool) {
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return nil, nil, false
	}
	m := &hubv1.Member{}
	if err := as.Get(r.Context(), client.ObjectKey{Name: r.PathValue(param)}, m); err != nil {
		fail(w, err)
		return nil, nil, false
	}
	return as, m, true
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) {
	if _, m, ok := h.readMember(w, r, "user"); ok {
		writeJSON(w, http.StatusOK, userOf(m))
	}
}

// updateUser changes a member's role, as the caller: admission refuses a
// role above the caller's own, and taking the last Owner's.
func (h *Handler) updateUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role string `json:"role"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	role, ok := hubRole(body.Role)
	if !ok {
		invalid(w, "role", fmt.Sprintf("role must be owner or reader (or a hub role: Admin, Developer, Viewer), not %q", body.Role))
		return
	}
	var m *hubv1.Member
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		as, read, ok := h.readMember(w, r, "user")
		if !ok {
			return errAnswered
		}
		m = read
		before := m.DeepCopy()
		m.Spec.Role = role
		return as.Patch(r.Context(), m, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	switch {
	case errors.Is(err, errAnswered):
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusOK, userOf(m))
	}
}

// deleteUser removes a member, as the caller: their access ends.
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	h.deleteMember(w, r, "user", "organization.user.deleted", func(*hubv1.Member) string { return "" })
}

func (h *Handler) deleteMember(w http.ResponseWriter, r *http.Request, param, object string, refuse func(*hubv1.Member) string) {
	as, m, ok := h.readMember(w, r, param)
	if !ok {
		return
	}
	if why := refuse(m); why != "" {
		invalid(w, "", why)
		return
	}
	if err := as.Delete(r.Context(), m); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted{Object: object, ID: m.Name, Deleted: true})
}

// invite is OpenAI's organization.invite: a Member not yet accepted (or
// accepted: status accepted), its ID the Member's name.
type invite struct {
	Object     string          `json:"object"`
	ID         string          `json:"id"`
	Email      string          `json:"email"`
	Role       string          `json:"role"`
	HubRole    string          `json:"hub_role"`
	Status     string          `json:"status"`
	CreatedAt  int64           `json:"created_at"`
	ExpiresAt  *int64          `json:"expires_at"`
	AcceptedAt *int64          `json:"accepted_at"`
	Projects   []inviteProject `json:"projects"`
}

type inviteProject struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

func inviteOf(m *hubv1.Member, now metav1.Time) invite {
	out := invite{Object: "organization.invite", ID: m.Name, Email: m.Spec.Email, Role: openAIRole(m.Spec.Role),
		HubRole: string(m.Spec.Role), Status: "pending", CreatedAt: m.CreationTimestamp.Unix(), Projects: []inviteProject{}}
	if m.Status.InvitationSentAt != nil {
		out.CreatedAt = m.Status.InvitationSentAt.Unix()
	}
	if m.Status.InvitationExpiresAt != nil {
		out.ExpiresAt = unix(m.Status.InvitationExpiresAt.Time)
		if m.Status.InvitationExpiresAt.Before(&now) {
			out.Status = "expired"
		}
	}
	if m.Status.AcceptedAt != nil {
		out.Status, out.AcceptedAt = "accepted", unix(m.Status.AcceptedAt.Time)
	}
	return out
}

func (h *Handler) listInvites(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, 20, 100)
	if !ok {
		return
	}
	list, ok := h.members(w, r, invited)
	if !ok {
		return
	}
	now := metav1.NewTime(h.now())
	items := make([]invite, 0, len(list))
	for i := range list {
		items = append(items, inviteOf(&list[i], now))
	}
	writeJSON(w, http.StatusOK, page(items, func(i invite) string { return i.ID }, r.URL.Query().Get("after"), limit))
}

func (h *Handler) getInvite(w http.ResponseWriter, r *http.Request) {
	if _, m, ok := h.readMember(w, r, "invite"); ok {
		writeJSON(w, http.StatusOK, inviteOf(m, metav1.NewTime(h.now())))
	}
}

// createInvite creates a Member as the caller; the hub mails the
// invitation. Its name comes from the email: the local part, and a
// digest of the whole address, so two people with the same local part
// differ.
func (h *Handler) createInvite(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	local, _, found := strings.Cut(body.Email, "@")
	if !found || local == "" {
		invalid(w, "email", "email must be an email address, such as carol@example.com")
		return
	}
	role, ok := hubRole(body.Role)
	if !ok {
		invalid(w, "role", fmt.Sprintf("role must be owner or reader (or a hub role: Admin, Developer, Viewer), not %q", body.Role))
		return
	}
	sum := sha256.Sum256([]byte(hubv1.EmailKey(body.Email)))
	name := dnsLabel(local)
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name+"-"+hex.EncodeToString(sum[:])[:6], "-")
	as, err := h.ActAs(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	m := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.MemberSpec{Email: body.Email, Role: role}}
	if err := as.Create(r.Context(), m); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inviteOf(m, metav1.NewTime(h.now())))
}

// deleteInvite withdraws an invitation that is not accepted yet.
func (h *Handler) deleteInvite(w http.ResponseWriter, r *http.Request) {
	h.deleteMember(w, r, "invite", "organization.invite.deleted", func(m *hubv1.Member) string {
		if !invited(m) {
			return fmt.Sprintf("The invitation of %s was accepted; remove the user instead (DELETE /v1/organization/users/%s)", m.Spec.Email, m.Name)
		}
		return ""
	})
}
