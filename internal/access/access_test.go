package access_test

import (
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
)

func member(name string, role hubv1.Role, groups ...string) hubv1.Member {
	return hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: hubv1.MemberSpec{Email: name + "@example.com", Role: role, Groups: groups}}
}

func project(name string, grants ...hubv1.ProjectAccess) hubv1.Project {
	return hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.ProjectSpec{Access: grants},
		Status: hubv1.ProjectStatus{Namespace: name}}
}

func users(subjects []rbacv1.Subject) []string {
	out := make([]string, 0, len(subjects))
	for _, s := range subjects {
		out = append(out, s.Name)
	}
	return out
}

func TestDesiredBindings(t *testing.T) {
	g := NewWithT(t)
	disabled := member("gone", hubv1.RoleOwner)
	disabled.Spec.Disabled = true
	team := access.Team{
		UsernamePrefix: "oidc:",
		Members: []hubv1.Member{member("ann", hubv1.RoleOwner), member("bob", hubv1.RoleAdmin), member("cy", hubv1.RoleDeveloper, "ml"),
			member("di", hubv1.RoleViewer), disabled},
		Groups: []hubv1.Group{{ObjectMeta: metav1.ObjectMeta{Name: "ml"},
			Spec: hubv1.GroupSpec{ProjectAccess: []hubv1.ProjectRole{{Project: "p1", Role: hubv1.RoleViewer}}}}},
		Projects: []hubv1.Project{
			project("p1", hubv1.ProjectAccess{Kind: hubv1.SubjectMember, Name: "cy", Role: hubv1.RoleDeveloper},
				hubv1.ProjectAccess{Kind: hubv1.SubjectMember, Name: "bob", Role: hubv1.RoleDeveloper}),
			project("p2", hubv1.ProjectAccess{Kind: hubv1.SubjectGroup, Name: "ml", Role: hubv1.RoleAdmin},
				hubv1.ProjectAccess{Kind: hubv1.SubjectMember, Name: "di", Role: hubv1.RoleDeveloper}),
			project("p3"),
		},
	}
	b := team.Desired()
	cluster := map[string][]string{}
	for _, c := range b.Cluster {
		g.Expect(c.RoleRef.Name).To(Equal(c.Name))
		cluster[c.Name] = users(c.Subjects)
	}
	g.Expect(cluster).To(Equal(map[string][]string{
		"platform-hub:owner":  {"oidc:ann@example.com"},
		"platform-hub:admin":  {"oidc:bob@example.com"},
		"platform-hub:viewer": {"oidc:cy@example.com", "oidc:di@example.com"},
		access.Provisioner:    {access.Provisioner},
	}), "a disabled member gets nothing; a Developer reads the overview everywhere; the provisioner is always bound")
	namespaced := map[string][]string{}
	for _, r := range b.Namespaced {
		namespaced[r.Namespace+" "+r.Name] = users(r.Subjects)
	}
	g.Expect(namespaced).To(Equal(map[string][]string{
		"p1 platform-hub:developer": {"oidc:cy@example.com"}, // Developer beats the group's Viewer
		"p2 platform-hub:admin":     {"oidc:cy@example.com"}, // through the group
		"p2 platform-hub:developer": {"oidc:di@example.com"}, // a Viewer raised in one project
	}), "an Admin needs no project bindings")
	g.Expect(b.ProjectRoles["cy"]).To(Equal([]hubv1.ProjectRole{{Project: "p1", Role: hubv1.RoleDeveloper}, {Project: "p2", Role: hubv1.RoleAdmin}}))
}

func TestNoRoleReadsSecrets(t *testing.T) {
	g := NewWithT(t)
	for _, r := range access.ClusterRoles() {
		for _, rule := range r.Rules {
			for _, group := range rule.APIGroups {
				if group != "" {
					continue
				}
				g.Expect(rule.Resources).NotTo(ContainElement("secrets"), r.Name)
				g.Expect(rule.Resources).NotTo(ContainElement("*"), r.Name)
			}
		}
	}
	g.Expect(access.AtLeast(hubv1.RoleOwner, hubv1.RoleAdmin)).To(BeTrue())
	g.Expect(access.AtLeast(hubv1.RoleDeveloper, hubv1.RoleAdmin)).To(BeFalse())
	g.Expect(access.Higher(hubv1.RoleViewer, hubv1.RoleDeveloper)).To(Equal(hubv1.RoleDeveloper))
}

func TestLeastRole(t *testing.T) {
	for _, c := range []struct {
		group, resource, verb string
		want                  hubv1.Role
		ok                    bool
	}{
		{"management.hub.minimax.io", "usagereports", "create", hubv1.RoleViewer, true},
		{"management.hub.minimax.io", "keyrequests", "create", hubv1.RoleViewer, true},
		{"hub.minimax.io", "apikeys", "create", hubv1.RoleDeveloper, true},
		{"hub.minimax.io", "members", "update", hubv1.RoleAdmin, true},
		{"hub.minimax.io", "organizations", "delete", hubv1.RoleOwner, true},
		{"management.hub.minimax.io", "keyrequests", "delete", "", false},
		{"", "secrets", "get", "", false},
	} {
		got, ok := access.LeastRole(c.group, c.resource, c.verb)
		if got != c.want || ok != c.ok {
			t.Errorf("LeastRole(%s, %s, %s) = %q, %v; want %q, %v", c.group, c.resource, c.verb, got, ok, c.want, c.ok)
		}
	}
}

func TestProvisionerCreatesMembersOnly(t *testing.T) {
	g := NewWithT(t)
	var found bool
	for _, r := range access.ClusterRoles() {
		if r.Name == access.Provisioner {
			found = true
			g.Expect(r.Rules).To(Equal([]rbacv1.PolicyRule{{APIGroups: []string{"hub.minimax.io"}, Resources: []string{"members"},
				Verbs: []string{"create"}}}))
		}
	}
	g.Expect(found).To(BeTrue())
}
