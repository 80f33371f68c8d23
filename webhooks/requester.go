package webhooks

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
)

// requester is who makes an admission request, in the hub's terms.
type requester struct {
	name string
	// role is the hub role: Owner for cluster administrators (the
	// system:masters group), the role of the Member the user is, or empty
	// for anyone else (a workload, a GitOps controller), whom RBAC alone
	// governs.
	role   hubv1.Role
	member *hubv1.Member
	// disabled is set when the user is a disabled Member: they may do
	// nothing the hub guards, even while their bindings are being removed.
	disabled bool
}

// masters is the group of cluster administrators; they count as Owners.
const masters = "system:masters"

// team reads who a requester is from the manager's cache.
type team struct {
	Reader client.Reader
	// APIReader reads from the API server where a cache a moment behind
	// would let two changes through that together break a rule (the last
	// Owner, unique emails).
	APIReader client.Reader
}

func (t team) requester(ctx context.Context) (requester, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return requester{}, err
	}
	r := requester{name: req.UserInfo.Username}
	if slices.Contains(req.UserInfo.Groups, masters) {
		r.role = hubv1.RoleOwner
		return r, nil
	}
	org := &hubv1.Organization{}
	if err := t.Reader.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); client.IgnoreNotFound(err) != nil {
		return r, err
	}
	members := &hubv1.MemberList{}
	if err := t.Reader.List(ctx, members); err != nil {
		return r, err
	}
	for i := range members.Items {
		m := &members.Items[i]
		if org.Spec.Security.UsernamePrefix+m.Spec.Email != r.name {
			continue
		}
		if m.Spec.Disabled || !m.DeletionTimestamp.IsZero() {
			r.disabled = true
			continue
		}
		// Emails are unique among Members (admission says so); the highest
		// role wins should two ever match.
		if r.member == nil || access.Higher(m.Spec.Role, r.role) == m.Spec.Role {
			r.role, r.member = m.Spec.Role, m
		}
	}
	if r.member != nil {
		r.disabled = false
	}
	return r, nil
}

// inProject is the requester's role in a project: their organization role,
// or more where the project (or a group) grants more.
func (t team) inProject(ctx context.Context, r requester, project *hubv1.Project) (hubv1.Role, error) {
	if r.member == nil || access.AtLeast(r.role, hubv1.RoleAdmin) {
		return r.role, nil
	}
	groups := &hubv1.GroupList{}
	if err := t.Reader.List(ctx, groups); err != nil {
		return r.role, err
	}
	tm := access.Team{Members: []hubv1.Member{*r.member}, Groups: groups.Items, Projects: []hubv1.Project{*project}}
	role := r.role
	for _, pr := range tm.Desired().ProjectRoles[r.member.Name] {
		role = access.Higher(role, pr.Role)
	}
	return role, nil
}

// needs refuses unless the requester (if the hub knows them) has at least
// role minimum; what says what they tried, for the message.
func (r requester) needs(minimum hubv1.Role, path *field.Path, what string) *field.Error {
	if r.disabled {
		return field.Forbidden(path, fmt.Sprintf("%s needs the %s role; %s is a disabled member", what, rolesFrom(minimum), r.name))
	}
	if r.role == "" || access.AtLeast(r.role, minimum) {
		return nil
	}
	return field.Forbidden(path, fmt.Sprintf("%s needs the %s role; %s is %s", what, rolesFrom(minimum), r.name, article(r.role)))
}

// rolesFrom names a role and those above it: "Admin or Owner".
func rolesFrom(minimum hubv1.Role) string {
	if minimum == hubv1.RoleOwner {
		return "Owner"
	}
	var names []string
	for _, r := range access.Roles {
		if access.AtLeast(r, minimum) {
			names = append(names, string(r))
		}
	}
	slices.Reverse(names)
	out := names[0]
	for i, n := range names[1:] {
		if i == len(names)-2 {
			out += " or " + n
		} else {
			out += ", " + n
		}
	}
	return out
}

func article(r hubv1.Role) string {
	if r == hubv1.RoleOwner || r == hubv1.RoleAdmin {
		return "an " + string(r)
	}
	return "a " + string(r)
}
