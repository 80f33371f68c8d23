package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/invitations"
)

// join invites a member of the role, who accepts with a password (no MFA
// policy in force) and is signed in on s.
func join(t *testing.T, g Gomega, s *site, name string, role hubv1.Role) {
	link := invite(t, g, name, role)
	token := strings.TrimPrefix(regexp.MustCompile(`token=([^&]+)`).FindString(link), "token=")
	status, body := s.post(g, invitations.AcceptPath, url.Values{"member": {name}, "token": {token},
		"password": {"a long enough passphrase"}, "confirm": {"a long enough passphrase"}})
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("<h1>Overview</h1>"))
}

// TestTimeZone: times show in the organization's billing time zone until a
// member chooses their own on their account page; a name that is not an
// IANA time zone is refused, saying what to write.
func TestTimeZone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Billing.TimeZone = "America/New_York"
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), org) })
	s := newSite(t, g)
	join(t, g, s, "browser", hubv1.RoleAdmin)
	withCapAndKey(t, g, "timezones")
	key := &hubv1.APIKey{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: "timezones", Name: "support-bot"}, key)).To(Succeed())
	patch := client.MergeFrom(key.DeepCopy())
	key.Status.LastUsedAt = &metav1.Time{Time: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	g.Expect(env.Client.Status().Patch(ctx, key, patch)).To(Succeed())
	lastUsed := func() string {
		_, body := s.get(g, "/keys")
		return regexp.MustCompile(`data-label="Last used">([^<]*)<`).FindStringSubmatch(body)[1]
	}
	g.Eventually(lastUsed, 10*time.Second, 100*time.Millisecond).Should(Equal("30 Nov 2026 04:00 EST"), "the organization's zone")

	status, body := s.get(g, "/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`placeholder="America/New_York"`))
	g.Expect(body).To(ContainSubstring(`<a href="/account" aria-current="page">Your account</a>`))
	status, body = s.post(g, "/account/time-zone", url.Values{"zone": {"Asia/Kolkata"}})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Times now show in Asia/Kolkata."))
	g.Expect(lastUsed()).To(Equal("30 Nov 2026 14:30 IST"))

	for _, bad := range []string{"Mars/Olympus_Mons", "Local", "../../etc/passwd"} {
		status, body = s.post(g, "/account/time-zone", url.Values{"zone": {bad}})
		g.Expect(status).To(Equal(http.StatusBadRequest), bad)
		g.Expect(body).To(ContainSubstring("is not a time zone. Use an IANA name such as Europe/Berlin"))
	}
	g.Expect(lastUsed()).To(Equal("30 Nov 2026 14:30 IST"), "a refused name changes nothing")

	_, _ = s.post(g, "/account/time-zone", url.Values{"zone": {""}})
	g.Expect(lastUsed()).To(Equal("30 Nov 2026 04:00 EST"), "empty: the organization's again")
}
