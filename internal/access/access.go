// Package access turns the hub's team model (Members, Groups and project
// access lists) into Kubernetes RBAC: a ClusterRole per role, following the
// access table in ARCHITECTURE.md, and the bindings that grant them. RBAC then
// enforces the roles for kubectl, GitOps, the dashboard and the management API
// alike.
//
// The organization-wide roles are ClusterRoleBindings. A role in a project
// (from the project's access list or a group's) is a RoleBinding in the
// project's namespace, so a Developer gets keys and channels only where a
// project grants them. No role can read Secrets: key Secrets are for the
// workloads that mount them.
package access

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// ClusterRoleName is the name of the ClusterRole of a role, such as
// "platform-hub:developer". The organization-wide binding of a role has the
// same name, and so has its RoleBinding in a project's namespace.
func ClusterRoleName(r hubv1.Role) string {
	switch r {
	case hubv1.RoleOwner:
		return "platform-hub:owner"
	case hubv1.RoleAdmin:
		return "platform-hub:admin"
	case hubv1.RoleDeveloper:
		return "platform-hub:developer"
	}
	return "platform-hub:viewer"
}

// Verbs.
const (
	get    = "get"
	list   = "list"
	watch  = "watch"
	create = "create"
)

var (
	read  = []string{get, list, watch}
	write = []string{get, list, watch, create, "update", "patch", "delete"}
	usage = []string{get}
)

func hub(verbs []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: resources, Verbs: verbs}
}

// readUsage lets a role read the organization's usage, as every role may:
// the usage server's usage, and the management API's usage reports,
// project usage and usage records. It also lists CustomResourceDefinitions, which kubectl
// reads before it validates a create-only object (a UsageReport): finding
// no PATCH for the kind in the OpenAPI, it asks whether the kind is a CRD,
// and without this refuses the create. Definitions hold schemas, not data.
func readUsage() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		hub(usage, "usage"),
		{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"usagereports"}, Verbs: []string{create}},
		{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"projectusages"}, Verbs: []string{get, list}},
		{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"usagerecords"}, Verbs: []string{list}},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{get, list}},
	}
}

// requestKeys lets every role ask the management API for keys and
// rotations, which it then makes as the caller: a request succeeds exactly
// when the caller may write the APIKey (Developers in their projects,
// Admins, Owners), and a refusal then names the role needed, which a
// refusal of RBAC here could not.
func requestKeys() rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"keyrequests", "rotationrequests"},
		Verbs: []string{create}}
}

// Rules are what each role may do. The virtual resources (usage, alerts,
// auditevents) are checked by the usage server with SubjectAccessReviews.
func Rules(r hubv1.Role) []rbacv1.PolicyRule {
	// Overview and usage.
	viewer := append([]rbacv1.PolicyRule{
		hub(read, "organizations", "projects", "spendingcaps"),
		requestKeys(),
	}, readUsage()...)
	// Keys and notifications, in the projects a binding is in; caps and
	// usage to read.
	developer := append([]rbacv1.PolicyRule{
		hub(write, "apikeys", "notificationchannels"),
		requestKeys(),
		hub(read, "spendingcaps", "projects"),
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: read},
	}, readUsage()...)
	// Everything of the hub, including team, billing view, settings and
	// audit; plan changes are refused at admission.
	admin := append([]rbacv1.PolicyRule{
		hub([]string{get, list, watch, "update", "patch"}, "organizations"),
		hub(write, "projects", "apikeys", "notificationchannels", "spendingcaps", "members", "groups"),
		requestKeys(),
		{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"members"}, Verbs: write},
		{APIGroups: []string{mgmtv1alpha1.GroupName}, Resources: []string{"auditevents", "alerts"}, Verbs: []string{list}},
		hub([]string{list}, "alerts", "auditevents"),
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: read},
	}, readUsage()...)
	switch r {
	case hubv1.RoleOwner:
		return append(admin, hub([]string{create, "delete"}, "organizations"))
	case hubv1.RoleAdmin:
		return admin
	case hubv1.RoleDeveloper:
		return developer
	}
	return viewer
}

// Roles are the four roles, most privileged first.
var Roles = []hubv1.Role{hubv1.RoleOwner, hubv1.RoleAdmin, hubv1.RoleDeveloper, hubv1.RoleViewer}

// rank orders roles: a higher rank includes what a lower one may do.
func rank(r hubv1.Role) int {
	return len(Roles) - slices.Index(Roles, r)
}

// Higher returns the more privileged of two roles.
func Higher(a, b hubv1.Role) hubv1.Role {
	if rank(a) >= rank(b) {
		return a
	}
	return b
}

// AtLeast tells whether role r includes what role min may do.
func AtLeast(r, minimum hubv1.Role) bool { return rank(r) >= rank(minimum) }

// Provisioner is the Kubernetes username the dashboard acts as, by
// impersonation, to create the Member of a person's first single sign-on
// when the Organization's just-in-time provisioning is on. Its ClusterRole
// and binding, of the same name, let it create Members and nothing else;
// admission refuses it an Owner, as it refuses anyone who is not one. The
// audit log names it as the creator of each such Member.
const Provisioner = "platform-hub:provisioner"

// provisionerLabel is the AccessLabel value of the provisioner's role and
// binding.
const provisionerLabel = "provisioner"

// ClusterRoles are the four roles' ClusterRoles, and the provisioner's.
func ClusterRoles() []rbacv1.ClusterRole {
	out := make([]rbacv1.ClusterRole, 0, len(Roles)+1)
	for _, r := range Roles {
		out = append(out, rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: ClusterRoleName(r), Labels: map[string]string{hubv1.AccessLabel: string(r)}},
			Rules:      Rules(r),
		})
	}
	return append(out, rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: Provisioner, Labels: map[string]string{hubv1.AccessLabel: provisionerLabel}},
		Rules:      []rbacv1.PolicyRule{hub([]string{create}, "members")},
	})
}

// provisionerBinding grants the provisioner its ClusterRole.
func provisionerBinding() rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: Provisioner, Labels: map[string]string{hubv1.AccessLabel: provisionerLabel}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: Provisioner},
		Subjects:   subjects([]string{Provisioner}),
	}
}

// Team is what the bindings are computed from.
type Team struct {
	Members  []hubv1.Member
	Groups   []hubv1.Group
	Projects []hubv1.Project
	// UsernamePrefix comes from the Organization.
	UsernamePrefix string
}

// Username is a member's Kubernetes username.
func (t *Team) Username(m *hubv1.Member) string { return t.UsernamePrefix + m.Spec.Email }

// Bindings are the RBAC bindings a team needs.
type Bindings struct {
	Cluster []rbacv1.ClusterRoleBinding
	// Namespaced are RoleBindings in project namespaces.
	Namespaced []rbacv1.RoleBinding
	// ProjectRoles gives each member's role in each project they work in,
	// by member name, for their status.
	ProjectRoles map[string][]hubv1.ProjectRole
}

// Desired computes the bindings: the provisioner's, always; each enabled
// member gets their organization role everywhere; a Developer or Viewer also gets, in each
// project that grants them more (directly or through a group), that role in
// the project's namespace. Admins and Owners need no project bindings.
func (t *Team) Desired() Bindings {
	// Projects in name order, so that each member's project roles come out
	// the same every time (they go to status, which must not flap).
	slices.SortFunc(t.Projects, func(a, b hubv1.Project) int { return strings.Compare(a.Name, b.Name) })
	groups := map[string]*hubv1.Group{}
	for i := range t.Groups {
		groups[t.Groups[i].Name] = &t.Groups[i]
	}
	cluster := map[hubv1.Role][]string{}
	namespaced := map[[2]string][]string{} // {namespace, role} -> users
	out := Bindings{ProjectRoles: map[string][]hubv1.ProjectRole{}}
	for i := range t.Members {
		m := &t.Members[i]
		if m.Spec.Disabled || !m.DeletionTimestamp.IsZero() {
			continue
		}
		user := t.Username(m)
		orgRole := m.Spec.Role
		if orgRole == hubv1.RoleDeveloper {
			cluster[hubv1.RoleViewer] = append(cluster[hubv1.RoleViewer], user) // overview and usage
		} else {
			cluster[orgRole] = append(cluster[orgRole], user)
		}
		for _, p := range t.projectRoles(m, groups) {
			out.ProjectRoles[m.Name] = append(out.ProjectRoles[m.Name], hubv1.ProjectRole{Project: p.project.Name, Role: p.role})
			if AtLeast(orgRole, hubv1.RoleAdmin) || p.project.Status.Namespace == "" || !p.project.DeletionTimestamp.IsZero() {
				continue // granted everywhere already, or no namespace (yet, or any more)
			}
			role := p.role
			if role == hubv1.RoleOwner {
				role = hubv1.RoleAdmin // a project has no owner-only resources
			}
			key := [2]string{p.project.Status.Namespace, string(role)}
			namespaced[key] = append(namespaced[key], user)
		}
	}
	for _, r := range Roles {
		if users := cluster[r]; len(users) > 0 {
			out.Cluster = append(out.Cluster, rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: ClusterRoleName(r), Labels: map[string]string{hubv1.AccessLabel: string(r)}},
				RoleRef:    roleRef(r),
				Subjects:   subjects(users),
			})
		}
	}
	out.Cluster = append(out.Cluster, provisionerBinding())
	keys := make([][2]string, 0, len(namespaced))
	for k := range namespaced {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) })
	for _, k := range keys {
		r := hubv1.Role(k[1])
		out.Namespaced = append(out.Namespaced, rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: k[0], Name: ClusterRoleName(r), Labels: map[string]string{hubv1.AccessLabel: string(r)}},
			RoleRef:    roleRef(r),
			Subjects:   subjects(namespaced[k]),
		})
	}
	return out
}

type projectRole struct {
	project *hubv1.Project
	role    hubv1.Role
}

// projectRoles is a member's highest role in each project that grants one.
func (t *Team) projectRoles(m *hubv1.Member, groups map[string]*hubv1.Group) []projectRole {
	inGroup := map[string]bool{}
	for _, g := range m.Spec.Groups {
		if groups[g] != nil {
			inGroup[g] = true
		}
	}
	var out []projectRole
	for i := range t.Projects {
		p := &t.Projects[i]
		var role hubv1.Role
		grant := func(r hubv1.Role) {
			if role == "" {
				role = r
			} else {
				role = Higher(role, r)
			}
		}
		for _, a := range p.Spec.Access {
			if (a.Kind == hubv1.SubjectMember && a.Name == m.Name) || (a.Kind == hubv1.SubjectGroup && inGroup[a.Name]) {
				grant(a.Role)
			}
		}
		for g := range inGroup {
			for _, pa := range groups[g].Spec.ProjectAccess {
				if pa.Project == p.Name {
					grant(pa.Role)
				}
			}
		}
		if role != "" {
			out = append(out, projectRole{project: p, role: role})
		}
	}
	return out
}

func roleRef(r hubv1.Role) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName(r)}
}

func subjects(users []string) []rbacv1.Subject {
	slices.Sort(users)
	users = slices.Compact(users)
	out := make([]rbacv1.Subject, 0, len(users))
	for _, u := range users {
		out = append(out, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u})
	}
	return out
}

// LeastRole is the least privileged hub role whose rules allow verb on
// resource of group (resource may carry a /subresource), for refusals that
// name the role needed; ok is false when no hub role allows it. A role's
// rules hold where it is bound: a Developer's only in the projects whose
// access lists name them.
func LeastRole(group, resource, verb string) (role hubv1.Role, ok bool) {
	for i := len(Roles) - 1; i >= 0; i-- {
		for _, rule := range Rules(Roles[i]) {
			if matches(rule.APIGroups, group) && matches(rule.Resources, resource) && matches(rule.Verbs, verb) {
				return Roles[i], true
			}
		}
	}
	return "", false
}

func matches(values []string, v string) bool {
	return slices.Contains(values, v) || slices.Contains(values, rbacv1.ResourceAll)
}
