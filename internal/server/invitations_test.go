package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/controllers"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/perclient"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server/reconcilers"
	"github.com/minimax/platform-hub/internal/statusapply"
)

var linkPattern = regexp.MustCompile(`https?://\S+`)

// TestInvitations: creating a Member sends an invitation through a real SMTP
// server; only the token's digest is in the Member's status. Opening the
// link changes nothing; accepting activates the member; the link then
// works no more. An expired link and a link replaced by a resend are
// refused, each with what to do.
func TestInvitations(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const hub = "invite-hub"
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hub}})).To(Succeed())
	mail := newSMTPServer(t)
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hub, Name: notify.ConfigSecretName},
		StringData: map[string]string{
			notify.KeySMTPHost: "127.0.0.1", notify.KeySMTPPort: strings.TrimPrefix(mail.addr.String(), "127.0.0.1:"),
			notify.KeySMTPUsername: mail.user, notify.KeySMTPPassword: mail.pass, notify.KeySMTPFrom: "hub@example.com",
			notify.KeySMTPCA: string(mail.caPEM),
		}})).To(Succeed())

	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
	handler := &invitations.Handler{Reader: k8sClient, Client: k8sClient, Clock: clk}
	site := httptest.NewServer(handler)
	defer site.Close()
	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{Scheme: scheme.New(),
		Metrics: metricsserver.Options{BindAddress: "0"}, Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&reconcilers.InvitationReconciler{Client: mgr.GetClient(), Clock: clk, PublicURL: site.URL,
		Sender: &notify.Sender{Reader: k8sClient, ConfigSecret: client.ObjectKey{Namespace: hub, Name: notify.ConfigSecretName}},
	}).SetupWithManager(mgr)).To(Succeed())
	// The manager's access controller makes an accepted member Active.
	g.Expect((&controllers.AccessReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	invite := func(name string) {
		m := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: hubv1.MemberSpec{Email: name + "@example.com", Role: hubv1.RoleDeveloper}}
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), m) })
	}
	// linkTo waits for the n-th invitation email to the member, and returns
	// its link.
	linkTo := func(name string, n int) string {
		var link string
		g.Eventually(func(g Gomega) {
			var found []string
			for _, m := range mail.received() {
				if len(m.To) == 1 && m.To[0] == name+"@example.com" {
					found = append(found, linkPattern.FindString(m.Body))
				}
			}
			g.Expect(found).To(HaveLen(n))
			link = found[n-1]
		}, 10*time.Second).Should(Succeed())
		return link
	}
	accept := func(link string) (int, string) {
		u, err := url.Parse(link)
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := http.PostForm(site.URL+invitations.AcceptPath, u.Query())
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		g.Expect(resp.Header.Get("Content-Type")).To(Equal("application/json"))
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	member := func(name string) *hubv1.Member {
		m := &hubv1.Member{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, m)).To(Succeed())
		return m
	}

	// The invitation arrives; status holds the digest, never the token.
	invite("ivy")
	link := linkTo("ivy", 1)
	g.Expect(link).To(HavePrefix(site.URL + invitations.AcceptPath + "?"))
	token := mustQuery(g, link, "token")
	g.Eventually(func(g Gomega) {
		s := member("ivy").Status
		g.Expect(s.InvitationSentAt).NotTo(BeNil())
		g.Expect(s.InvitationExpiresAt.Time).To(BeTemporally("==", clk.Now().Add(7*24*time.Hour)))
		g.Expect(s.InvitationDigest).To(Equal(invitations.Digest(token)))
	}, 10*time.Second).Should(Succeed())
	raw, err := json.Marshal(member("ivy"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(raw)).NotTo(ContainSubstring(token))
	g.Expect(mail.received()[0].Message.Header.Get("Subject")).To(ContainSubstring("You are invited"))

	// Opening the link shows a page and accepts nothing.
	resp, err := http.Get(link)
	g.Expect(err).NotTo(HaveOccurred())
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(string(page)).To(ContainSubstring("Accept the invitation"))
	g.Expect(member("ivy").Status.AcceptedAt).To(BeNil())

	code, body := accept(link)
	g.Expect(code).To(Equal(http.StatusOK), body)
	s := member("ivy").Status
	g.Expect(s.AcceptedAt).NotTo(BeNil())
	g.Expect(s.InvitationDigest).To(BeEmpty())
	g.Eventually(func() hubv1.MemberPhase { return member("ivy").Status.Phase }, 10*time.Second).Should(Equal(hubv1.MemberActive))
	// Two writers of the status, running together: each owns its fields.
	owned := map[string]string{}
	for _, f := range member("ivy").ManagedFields {
		if f.Subresource == "status" && f.FieldsV1 != nil {
			owned[f.Manager] = f.FieldsV1.GetRawString()
		}
	}
	g.Expect(owned).To(HaveKeyWithValue(statusapply.OwnerInvitations, And(ContainSubstring(`"f:acceptedAt"`),
		ContainSubstring(`"f:invitationSentAt"`), ContainSubstring(`"k:{\"type\":\"InvitationSent\"}"`), Not(ContainSubstring(`"f:phase"`)))))
	g.Expect(owned).To(HaveKeyWithValue(statusapply.OwnerAccessController, And(ContainSubstring(`"f:phase"`),
		ContainSubstring(`"k:{\"type\":\"Ready\"}"`), Not(ContainSubstring(`"f:acceptedAt"`)), Not(ContainSubstring("InvitationSent")))))
	code, body = accept(link)
	g.Expect(code).To(Equal(http.StatusConflict))
	g.Expect(body).To(ContainSubstring("already accepted"))

	// A resend replaces the link.
	invite("rex")
	first := linkTo("rex", 1)
	g.Eventually(func() *metav1.Time { return member("rex").Status.InvitationSentAt }, 10*time.Second).ShouldNot(BeNil())
	m := member("rex")
	patch := client.MergeFrom(m.DeepCopy())
	m.Spec.ResendInvitation = "2026-11-21"
	g.Expect(k8sClient.Patch(ctx, m, patch)).To(Succeed())
	second := linkTo("rex", 2)
	g.Expect(second).NotTo(Equal(first))
	g.Eventually(func() string { return member("rex").Status.InvitationDigest }, 10*time.Second).
		Should(Equal(invitations.Digest(mustQuery(g, second, "token"))))
	code, body = accept(first)
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(body).To(ContainSubstring("a newer invitation replaced it"))
	code, _ = accept(second)
	g.Expect(code).To(Equal(http.StatusOK))

	// An expired link.
	invite("old")
	late := linkTo("old", 1)
	g.Eventually(func() *metav1.Time { return member("old").Status.InvitationSentAt }, 10*time.Second).ShouldNot(BeNil())
	clk.Step(7*24*time.Hour + time.Second)
	code, body = accept(late)
	g.Expect(code).To(Equal(http.StatusGone))
	g.Expect(body).To(ContainSubstring("expired at 2026-11-27T12:00:00Z; ask an Admin to send it again"))
	code, body = accept("http://x/?member=old")
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body).To(ContainSubstring("the link is incomplete"))

	// A flood is cut short before it reaches the API server.
	limited := httptest.NewServer(&invitations.Handler{Reader: k8sClient, Client: k8sClient, Clock: clk,
		Limiter: flowcontrol.NewTokenBucketRateLimiter(1, 2)})
	defer limited.Close()
	codes := map[int]int{}
	for range 5 {
		resp, err := http.PostForm(limited.URL+invitations.AcceptPath, url.Values{"member": {"old"}, "token": {"x"}})
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		codes[resp.StatusCode]++
	}
	g.Expect(codes[http.StatusTooManyRequests]).To(BeNumerically(">=", 2))

	// Limits are per client: one client's flood does not starve another.
	perClient := httptest.NewServer(&invitations.Handler{Reader: k8sClient, Client: k8sClient, Clock: clk,
		PerClient: perclient.NewLimiter(0.001, 2, 0, true)})
	defer perClient.Close()
	post := func(from string) int {
		req, _ := http.NewRequest(http.MethodPost, perClient.URL+invitations.AcceptPath,
			strings.NewReader(url.Values{"member": {"old"}, "token": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	flood := map[int]int{}
	for range 5 {
		flood[post("198.51.100.66")]++
	}
	g.Expect(flood[http.StatusTooManyRequests]).To(Equal(3), "the flooding client gets its burst, then 429")
	g.Expect(post("203.0.113.5")).To(Equal(http.StatusForbidden), "another client is still answered (the token is wrong)")
}

func mustQuery(g Gomega, link, key string) string {
	u, err := url.Parse(link)
	g.Expect(err).NotTo(HaveOccurred())
	v := u.Query().Get(key)
	g.Expect(v).NotTo(BeEmpty())
	return v
}

// TestInvitationFailureBacksOff: while invitations cannot be sent (no
// configuration Secret: no mail settings), each failed attempt writes the
// Member's status, and the next attempt waits for the failure's backoff
// rather than following that write at once. Waking on its own status
// writes, the controller retried hundreds of times a second (found in
// hub dev).
func TestInvitationFailureBacksOff(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{Scheme: scheme.New(),
		Metrics: metricsserver.Options{BindAddress: "0"}, Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&reconcilers.InvitationReconciler{Client: mgr.GetClient(), PublicURL: "https://hub.example.com",
		Sender: &notify.Sender{Reader: k8sClient, ConfigSecret: client.ObjectKey{Namespace: "no-such-namespace", Name: notify.ConfigSecretName}},
	}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	m := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "unsendable"},
		Spec: hubv1.MemberSpec{Email: "unsendable@example.com", Role: hubv1.RoleViewer}}
	g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), m) })
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		g.Expect(meta.FindStatusCondition(m.Status.Conditions, hubv1.InvitationSentCondition)).NotTo(BeNil())
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	first, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	g.Expect(err).NotTo(HaveOccurred())
	digests := map[string]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		digests[m.Status.InvitationDigest] = true
		time.Sleep(20 * time.Millisecond)
	}
	// Exponential backoff from 5 ms: about ten attempts in three seconds,
	// two status writes each.
	g.Expect(len(digests)).To(BeNumerically("<=", 15), "attempts seen in 3 s")
	last, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(last).To(BeNumerically(">", first), "it does retry")
	cond := meta.FindStatusCondition(m.Status.Conditions, hubv1.InvitationSentCondition)
	g.Expect(cond.Reason).To(Equal(hubv1.InvitationFailedReason))
}
