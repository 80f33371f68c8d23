package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// projectWithKey makes a project of the name, granting access as listed,
// with a key named after it. A project's name is used once per run: its
// namespace outlives it.
func projectWithKey(t *testing.T, g Gomega, name string, grants ...hubv1.ProjectAccess) {
	ns := newProject(t, g, name, hubv1.ProjectSpec{DisplayName: name, Access: grants})
	key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-key"},
		Spec: hubv1.APIKeySpec{Label: "Key of " + name, Scope: hubv1.ScopeStandard, Owner: "lead@example.com"}}
	g.Expect(env.Client.Create(context.Background(), key)).To(Succeed())
}

// TestKeysOfAssignedProjects: a Developer sees the keys of the projects
// that grant them access, and no other's; a Viewer whom a project makes a
// Developer opens API Keys for that project; a Viewer with no such grant
// gets no API Keys entry and 403.
func TestKeysOfAssignedProjects(t *testing.T) {
	g := NewWithT(t)
	lead, dev, viewer := newSite(t, g), newSite(t, g), newSite(t, g)
	join(t, g, lead, "lead", hubv1.RoleAdmin)
	join(t, g, dev, "dev", hubv1.RoleDeveloper)
	join(t, g, viewer, "viewer", hubv1.RoleViewer)
	member := func(name string, role hubv1.Role) hubv1.ProjectAccess {
		return hubv1.ProjectAccess{Kind: hubv1.SubjectMember, Name: name, Role: role}
	}
	projectWithKey(t, g, "assigned", member("dev", hubv1.RoleDeveloper), member("viewer", hubv1.RoleDeveloper))
	projectWithKey(t, g, "elsewhere")

	keysOf := func(s *site) func() []string {
		return func() []string {
			status, body := s.get(g, "/keys")
			if status != http.StatusOK {
				return []string{http.StatusText(status)}
			}
			var out []string
			for _, k := range []string{"assigned-key", "elsewhere-key"} {
				if containsLink(body, "/keys/"+k[:len(k)-4]+"/"+k) {
					out = append(out, k)
				}
			}
			return out
		}
	}
	g.Eventually(keysOf(lead), 20*time.Second, 200*time.Millisecond).Should(Equal([]string{"assigned-key", "elsewhere-key"}),
		"an Admin sees every project's keys")
	g.Eventually(keysOf(dev), 20*time.Second, 200*time.Millisecond).Should(Equal([]string{"assigned-key"}))
	status, _ := dev.get(g, "/keys/elsewhere/elsewhere-key/rotate")
	g.Expect(status).To(Equal(http.StatusNotFound), "a key outside the member's projects is as if it did not exist")
	status, _ = dev.get(g, "/keys/assigned/assigned-key/rotate")
	g.Expect(status).To(Equal(http.StatusOK))

	// The Viewer's session began before the grant: the sidebar follows the
	// member's project roles as they change.
	g.Eventually(keysOf(viewer), 20*time.Second, 200*time.Millisecond).Should(Equal([]string{"assigned-key"}))
	_, body := viewer.get(g, "/")
	g.Expect(body).To(ContainSubstring(`<a href="/keys">API Keys</a>`))

	other := newSite(t, g)
	join(t, g, other, "onlyviewer", hubv1.RoleViewer)
	status, body = other.get(g, "/keys")
	g.Expect(status).To(Equal(http.StatusForbidden))
	g.Expect(body).To(ContainSubstring("API Keys is for the Developer role and above, in the organization or in a project; your role is Viewer."))
	_, body = other.get(g, "/")
	g.Expect(body).NotTo(ContainSubstring(`href="/keys"`))
}

func containsLink(body, href string) bool { return strings.Contains(body, `href="`+href+`"`) }
