package server_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/egress"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/server/reconcilers"
	"github.com/minimax/platform-hub/internal/usage"
)

// webhookChannel creates a webhook channel to r, with its signing Secret.
// receiversOnLoopback lets the tests' receivers (on 127.0.0.1) be reached,
// as an operator's --webhook-allow would an internal receiver.
var receiversOnLoopback = &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

func webhookChannel(g Gomega, namespace, name string, r *webhookReceiver) *hubv1.NotificationChannel {
	ctx := context.Background()
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-signing"},
		StringData: map[string]string{"secret": r.secret}})).To(Succeed())
	ch := &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: hubv1.NotificationChannelSpec{Webhook: &hubv1.WebhookChannel{URL: r.URL + "/alerts",
			SigningSecretRef: hubv1.SecretKeyRef{Name: name + "-signing", Key: "secret"}}}}
	g.Expect(k8sClient.Create(ctx, ch)).To(Succeed())
	return ch
}

// capData decodes a webhook body of a threshold alert.
func capData(g Gomega, body []byte) (notify.Envelope, notify.CapThreshold) {
	var env notify.Envelope
	g.Expect(json.Unmarshal(body, &env)).To(Succeed())
	var d notify.CapThreshold
	g.Expect(json.Unmarshal(env.Data, &d)).To(Succeed())
	return env, d
}

func acceptedThresholds(g Gomega, r *webhookReceiver) []int32 {
	accepted, _, _, _ := r.snapshot()
	out := make([]int32, 0, len(accepted))
	for _, w := range accepted {
		_, d := capData(g, w.Body)
		out = append(out, d.Threshold)
	}
	return out
}

func firedThresholds(c *hubv1.SpendingCap) []int32 {
	out := make([]int32, 0, len(c.Status.AlertsFired))
	for _, a := range c.Status.AlertsFired {
		out = append(out, a.Threshold)
	}
	return out
}

func getChannel(g Gomega, ch *hubv1.NotificationChannel) *hubv1.NotificationChannel {
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ch), ch)).To(Succeed())
	return ch
}

// TestThresholdAlertsFireOnceInOrderAcrossRestarts: each threshold fires
// once, in order, to a receiver that verifies signatures, while the manager
// stops after delivering one alert and again after recording one but before
// delivering it: none is lost and none comes twice.
func TestThresholdAlertsFireOnceInOrderAcrossRestarts(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newCapsEnv(t, g, "alerts-hub-a")
	projectWithNamespace(g, "alerts-order")
	rcv := newWebhookReceiver(t)
	webhookChannel(g, "alerts-order", "oncall", rcv)
	sender := &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client()}
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-order", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Enforcement: hubv1.CapHard, Channels: []string{"oncall"}}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())

	e.start(g, &alerting{sender: sender})
	e.spend(g, "alerts-order", 6, 1_000_000) // 60%
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50})) }, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(firedThresholds(getCap(g, c))).To(Equal([]int32{50})) }, 10*time.Second).Should(Succeed())

	accepted, _, _, _ := rcv.snapshot()
	env, d := capData(g, accepted[0].Body)
	g.Expect(accepted[0].ID).To(Equal(reconcilers.SpendingCapAlertID(string(c.UID), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), 50)),
		"webhook-id is the idempotency key: cap UID, cycle and threshold")
	g.Expect(env.Type).To(Equal(alertlog.KindCapThreshold))
	g.Expect(d.Percent).To(BeEquivalentTo(60))
	g.Expect(d.Spent).To(Equal("6"))
	g.Expect(d.Limit).To(Equal("10"))
	g.Expect(d.ProjectedExhaustion).NotTo(BeNil(), "the projected time to 100%% is in the payload")
	g.Expect(d.DashboardURL).To(Equal("https://hub.example.com/projects/alerts-order/usage"))
	g.Expect(d.Cap.UID).To(Equal(string(c.UID)))

	// Stopped after delivering; started again, it records the next
	// threshold but stops before delivering it.
	e.stop()
	e.start(g, &alerting{sender: sender, noDispatch: true})
	e.spend(g, "alerts-order", 3, 1_000_000) // 90%
	g.Eventually(func(g Gomega) { g.Expect(firedThresholds(getCap(g, c))).To(Equal([]int32{50, 80})) }, 10*time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50})) }, time.Second).Should(Succeed())

	// Started again with delivery: the recorded alert goes out, once.
	e.stop()
	e.start(g, &alerting{sender: sender})
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50, 80})) }, 10*time.Second).Should(Succeed())
	e.spend(g, "alerts-order", 1, 1_000_000) // 100%
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50, 80, 100})) }, 10*time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50, 80, 100}))
		_, _, duplicates, rejected := rcv.snapshot()
		g.Expect(duplicates).To(BeZero())
		g.Expect(rejected).To(BeEmpty())
	}, time.Second).Should(Succeed())

	history, err := e.alerts.Alerts(ctx, alertlog.Filter{Project: "alerts-order"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(history).To(HaveLen(3))
	for _, a := range history {
		g.Expect(a.Deliveries).To(HaveLen(1))
		g.Expect(a.Deliveries[0].State).To(Equal(alertlog.DeliveryDelivered))
		g.Expect(a.Deliveries[0].Channel).To(Equal("alerts-order/oncall"))
	}
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-order", Name: "oncall"}})
		g.Expect(ch.Status.LastDeliveryTime).NotTo(BeNil())
		g.Expect(meta.IsStatusConditionTrue(ch.Status.Conditions, hubv1.ReadyCondition)).To(BeTrue())
	}, 10*time.Second).Should(Succeed())
}

// TestUnreachableReceivers: a receiver down for a while gets exactly one
// logical alert once it recovers, later alerts wait their turn behind it; a
// receiver down for good is given up after the retry period (a dead letter
// and a condition); a receiver answering 410 disables its channel.
func TestUnreachableReceivers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newCapsEnv(t, g, "alerts-hub-b")
	projectWithNamespace(g, "alerts-down")
	flaky, down, gone := newWebhookReceiver(t), newWebhookReceiver(t), newWebhookReceiver(t)
	flaky.setAnswer(http.StatusServiceUnavailable)
	down.setAnswer(http.StatusInternalServerError)
	gone.setAnswer(http.StatusGone)
	flakyCh := webhookChannel(g, "alerts-down", "flaky", flaky)
	downCh := webhookChannel(g, "alerts-down", "down", down)
	goneCh := webhookChannel(g, "alerts-down", "gone", gone)
	// A channel at a cluster IP, as a webhook stored before admission
	// checked destinations would be: refused when connecting, and its
	// status names the class of failure, not the address.
	internalCh := webhookChannel(g, "alerts-down", "internal", gone)
	internalCh.Spec.Webhook.URL = "https://10.96.0.1:6443/"
	g.Expect(k8sClient.Update(ctx, internalCh)).To(Succeed())
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-down", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Thresholds: []int32{50, 80},
			Channels: []string{"flaky", "down", "gone", "internal"}}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.start(g, &alerting{sender: &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: flaky.Client()}})

	e.spend(g, "alerts-down", 6, 1_000_000) // 60%: the 50% alert
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, flakyCh)
		g.Expect(ch.Status.Failures).To(BeEquivalentTo(1))
		g.Expect(ch.Status.LastFailure).To(ContainSubstring("503"))
		ready := meta.FindStatusCondition(ch.Status.Conditions, hubv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(hubv1.AlertDeliveryFailingReason))
	}, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, goneCh)
		g.Expect(meta.IsStatusConditionTrue(ch.Status.Conditions, hubv1.DisabledCondition)).To(BeTrue())
	}, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, internalCh)
		g.Expect(ch.Status.LastFailure).To(HavePrefix("the destination is not allowed"))
		ready := meta.FindStatusCondition(ch.Status.Conditions, hubv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		for _, text := range []string{ch.Status.LastFailure, ready.Message} {
			g.Expect(text).NotTo(Or(ContainSubstring("10.96"), ContainSubstring("6443")), "no address or port in status")
		}
	}, 10*time.Second).Should(Succeed())

	// Retries back off: nothing more before the first wait (about a
	// minute) has passed on the clock.
	g.Consistently(func() int { _, attempts, _, _ := flaky.snapshot(); return attempts }, 500*time.Millisecond).Should(Equal(1))
	for range 3 {
		e.clock.Step(5 * time.Minute)
		time.Sleep(300 * time.Millisecond)
	}
	_, attempts, _, _ := flaky.snapshot()
	g.Expect(attempts).To(BeNumerically(">=", 3))

	// The 80% alert fires while the 50% one waits: it queues behind it.
	e.spend(g, "alerts-down", 3, 1_000_000) // 90%
	g.Eventually(func(g Gomega) { g.Expect(firedThresholds(getCap(g, c))).To(Equal([]int32{50, 80})) }, 10*time.Second).Should(Succeed())

	flaky.setAnswer(0) // recovered
	e.clock.Step(2 * time.Hour)
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, flaky)).To(Equal([]int32{50, 80})) }, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, flakyCh)
		g.Expect(meta.IsStatusConditionTrue(ch.Status.Conditions, hubv1.ReadyCondition)).To(BeTrue())
		g.Expect(ch.Status.LastDeliveryTime).NotTo(BeNil())
	}, 10*time.Second).Should(Succeed())

	// The receiver that stays down is given up a day after the alert fired.
	_, before, _, _ := down.snapshot()
	e.clock.Step(21 * time.Hour) // 23h15m since the alert fired
	time.Sleep(300 * time.Millisecond)
	g.Expect(meta.IsStatusConditionTrue(getChannel(g, downCh).Status.Conditions, hubv1.DeadLetteredCondition)).To(BeFalse(),
		"retried for 24 hours")
	e.clock.Step(2 * time.Hour)
	g.Eventually(func(g Gomega) {
		ch := getChannel(g, downCh)
		dead := meta.FindStatusCondition(ch.Status.Conditions, hubv1.DeadLetteredCondition)
		g.Expect(dead).NotTo(BeNil())
		g.Expect(dead.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(dead.Message).To(ContainSubstring("500"))
	}, 10*time.Second).Should(Succeed())
	_, after, _, _ := down.snapshot()
	g.Expect(after).To(BeNumerically(">", before))

	// The disabled channel was tried once, for the first alert only.
	_, goneAttempts, _, _ := gone.snapshot()
	g.Expect(goneAttempts).To(Equal(1))

	history, err := e.alerts.Alerts(ctx, alertlog.Filter{Project: "alerts-down"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(history).To(HaveLen(2))
	states := map[string]alertlog.DeliveryState{}
	for _, d := range history[0].Deliveries {
		states[d.Channel] = d.State
	}
	g.Expect(states).To(Equal(map[string]alertlog.DeliveryState{"alerts-down/flaky": alertlog.DeliveryDelivered,
		"alerts-down/down": alertlog.DeliveryDead, "alerts-down/gone": alertlog.DeliveryDead,
		"alerts-down/internal": alertlog.DeliveryDead}))
}

// send delivers one message with s, as the dispatcher's first attempt does.
func send(s *notify.Sender, ch *hubv1.NotificationChannel, m notify.Message) error {
	_, err := s.Send(context.Background(), ch, m, nil)
	return err
}

// TestWebhookSignatures: what the hub sends passes the reference
// verification; the same request sent again is recognised by its
// webhook-id, and a stale or re-stamped one is refused.
func TestWebhookSignatures(t *testing.T) {
	g := NewWithT(t)
	projectWithNamespace(g, "alerts-sign")
	rcv := newWebhookReceiver(t)
	ch := webhookChannel(g, "alerts-sign", "hook", rcv)
	a, err := notify.NewAlert(alertlog.KindCapThreshold, "cap_test_1", time.Now(), notify.CapThreshold{Threshold: 50, Percent: 51})
	g.Expect(err).NotTo(HaveOccurred())
	msg, err := notify.Render(a)
	g.Expect(err).NotTo(HaveOccurred())

	sender := &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client()}
	g.Expect(send(sender, ch, msg)).To(Succeed())
	accepted, _, _, _ := rcv.snapshot()
	g.Expect(accepted).To(HaveLen(1))
	g.Expect(accepted[0].Body).To(Equal(msg.Body))
	g.Expect(accepted[0].Header.Get("webhook-signature")).To(HavePrefix("v1,"))

	// The captured request replayed as is: verified, recognised, not acted on.
	replay := func(mutate func(http.Header)) int {
		req, err := http.NewRequest(http.MethodPost, rcv.URL+"/alerts", strings.NewReader(string(accepted[0].Body)))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header = accepted[0].Header.Clone()
		mutate(req.Header)
		resp, err := rcv.Client().Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Expect(replay(func(http.Header) {})).To(Equal(http.StatusOK))
	_, _, duplicates, _ := rcv.snapshot()
	g.Expect(duplicates).To(Equal(1))
	// Re-stamped to look fresh: the signature no longer matches.
	g.Expect(replay(func(h http.Header) { h.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()+60)) })).To(Equal(http.StatusBadRequest))
	// Signed ten minutes ago: stale.
	stale := &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client(), Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
	err = send(stale, ch, notify.Message{ID: "cap_test_2", Body: msg.Body})
	g.Expect(err).To(MatchError(ContainSubstring("400")))
	_, _, _, rejected := rcv.snapshot()
	g.Expect(rejected).To(HaveLen(2))
	g.Expect(rejected[0]).To(ContainSubstring("no matching signature"))
	g.Expect(rejected[1]).To(ContainSubstring("too old"))

	// Redirects: to the same host they are followed; elsewhere, refused.
	other := newWebhookReceiver(t)
	redirecting := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/elsewhere":
			http.Redirect(w, r, other.URL+"/alerts", http.StatusTemporaryRedirect)
		case "/start":
			http.Redirect(w, r, "/moved", http.StatusPermanentRedirect)
		case "/moved":
			if r.Method != http.MethodPost || r.Header.Get("webhook-id") == "" {
				http.Error(w, "expected the signed POST", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer redirecting.Close()
	redirect := ch.DeepCopy()
	redirect.Spec.Webhook.URL = redirecting.URL + "/start"
	g.Expect(send(sender, redirect, msg)).To(Succeed(), "a same-host 308 keeps the POST and is followed")
	redirect.Spec.Webhook.URL = redirecting.URL + "/elsewhere"
	g.Expect(send(sender, redirect, msg)).To(MatchError(ContainSubstring("refused a redirect to another host")))
	_, otherAttempts, _, _ := other.snapshot()
	g.Expect(otherAttempts).To(BeZero())

	// 410 Gone is its own error: the dispatcher disables the channel.
	rcv.setAnswer(http.StatusGone)
	g.Expect(send(sender, ch, msg)).To(MatchError(notify.ErrGone))
}

// TestEmailAndSMSAlerts: an organization default email channel and a
// project SMS channel get a threshold alert through the SMTP server (STARTTLS
// and authentication) and the SMS provider of the configuration Secret.
func TestEmailAndSMSAlerts(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	hub := "alerts-hub-c"
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hub}})).To(Succeed())
	e := newCapsEnv(t, g, hub)
	projectWithNamespace(g, "alerts-mail")
	mailServer, sms := newSMTPServer(t), newSMSProvider(t)
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hub, Name: notify.ConfigSecretName},
		StringData: map[string]string{
			notify.KeySMTPHost: "127.0.0.1", notify.KeySMTPPort: strings.TrimPrefix(mailServer.addr.String(), "127.0.0.1:"),
			notify.KeySMTPUsername: mailServer.user, notify.KeySMTPPassword: mailServer.pass,
			notify.KeySMTPFrom: "alerts@hub.example.com", notify.KeySMTPCA: string(mailServer.caPEM),
			notify.KeySMSURL: sms.URL, notify.KeySMSAccountSID: "AC0123", notify.KeySMSAuthToken: "sms-token",
			notify.KeySMSFrom: "+15005550006",
		}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: hub, Name: "finance"},
		Spec: hubv1.NotificationChannelSpec{Default: true, Email: &hubv1.EmailChannel{To: []string{"finance@example.com", "cto@example.com"}}}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-mail", Name: "phones"},
		Spec: hubv1.NotificationChannelSpec{SMS: &hubv1.SMSChannel{To: []string{"+8613800138000", "+8613900139000"}}}})).To(Succeed())
	// The provider refuses the second number at first, with a 410 at that:
	// an SMS channel is not disabled by it, and the retry texts only the
	// number that did not get the alert.
	sms.refuse("+8613900139000", http.StatusGone)
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-mail", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Thresholds: []int32{50}, Channels: []string{"phones"}}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.start(g, &alerting{sender: &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: sms.Client(),
		ConfigSecret: client.ObjectKey{Namespace: hub, Name: notify.ConfigSecretName}}})

	e.spend(g, "alerts-mail", 7, 1_000_000) // 70%
	g.Eventually(mailServer.received, 10*time.Second).Should(HaveLen(1))
	m := mailServer.received()[0]
	g.Expect(m.TLS).To(BeTrue(), "STARTTLS is mandatory")
	g.Expect(m.User).To(Equal(mailServer.user))
	g.Expect(m.From).To(Equal("alerts@hub.example.com"))
	g.Expect(m.To).To(ConsistOf("finance@example.com", "cto@example.com"))
	g.Expect(m.Message.Header.Get("Subject")).To(Equal("[Platform Hub] Project alerts-mail reached 50% of spending cap budget"))
	g.Expect(m.Message.Header.Get("Message-Id")).To(ContainSubstring(reconcilers.SpendingCapAlertID(string(c.UID), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), 50)))
	g.Expect(m.Body).To(ContainSubstring("has used 70% of its spending cap alerts-mail/budget (7 of 10)"))
	g.Expect(m.Body).To(ContainSubstring("reaches 100% at"))
	g.Expect(m.Body).To(ContainSubstring("https://hub.example.com/projects/alerts-mail/usage"))

	g.Eventually(func() int { return len(sms.received()) }, 10*time.Second).Should(Equal(1))
	first := sms.received()[0]
	g.Expect(first.path).To(Equal("POST /2010-04-01/Accounts/AC0123/Messages.json"))
	g.Expect(first.auth).To(Equal("AC0123:sms-token"))
	g.Expect(first.form.Get("To")).To(Equal("+8613800138000"))
	g.Expect(first.form.Get("From")).To(Equal("+15005550006"))
	g.Expect(first.form.Get("Body")).To(ContainSubstring("Project alerts-mail at 70% of spending cap budget (7 of 10)"))
	phones := &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-mail", Name: "phones"}}
	g.Eventually(func() string { return getChannel(g, phones).Status.LastFailure }, 10*time.Second).Should(ContainSubstring("410"))
	g.Expect(meta.FindStatusCondition(getChannel(g, phones).Status.Conditions, hubv1.DisabledCondition)).To(BeNil())

	sms.refuse("+8613900139000", 0)
	e.clock.Step(5 * time.Minute)
	g.Eventually(func() int { return len(sms.received()) }, 10*time.Second).Should(Equal(2))
	g.Consistently(func() int { return len(sms.received()) }, 500*time.Millisecond).Should(Equal(2))
	g.Expect(sms.received()[1].form.Get("To")).To(Equal("+8613900139000"))
}

// TestCycleBoundaryInOrganizationTimeZone: thresholds reset when a cycle
// starts at midnight in the Organization's time zone (Asia/Shanghai, eight
// hours before midnight UTC), and fire again in the new cycle.
func TestCycleBoundaryInOrganizationTimeZone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName},
		Spec: hubv1.OrganizationSpec{DisplayName: "Example", Plan: hubv1.PlanStandard,
			Billing: hubv1.BillingSpec{CycleStartDay: 1, TimeZone: "Asia/Shanghai", Currency: "CNY"}}}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	e := newCapsEnv(t, g, "alerts-hub-d")
	e.clock.SetTime(time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)) // 23:00 in Shanghai
	projectWithNamespace(g, "alerts-cycle")
	rcv := newWebhookReceiver(t)
	webhookChannel(g, "alerts-cycle", "hook", rcv)
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-cycle", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Thresholds: []int32{50}, Channels: []string{"hook"}}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.start(g, &alerting{sender: &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client()}})

	novemberShanghai := time.Date(2026, 10, 31, 16, 0, 0, 0, time.UTC)
	decemberShanghai := time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC)
	e.spend(g, "alerts-cycle", 6, 1_000_000)
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.CycleStart).NotTo(BeNil())
		g.Expect(s.CycleStart.Time).To(BeTemporally("==", novemberShanghai))
		g.Expect(firedThresholds(getCap(g, c))).To(Equal([]int32{50}))
	}, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50})) }, 10*time.Second).Should(Succeed())

	e.clock.SetTime(decemberShanghai.Add(-time.Second))
	g.Consistently(func(g Gomega) { g.Expect(firedThresholds(getCap(g, c))).To(Equal([]int32{50})) }, 500*time.Millisecond).Should(Succeed())
	e.clock.SetTime(decemberShanghai.Add(time.Second)) // 1 December in Shanghai, still 30 November in UTC
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.CycleStart.Time).To(BeTemporally("==", decemberShanghai))
		g.Expect(s.Spent).To(BeEquivalentTo("0"))
		g.Expect(s.AlertsFired).To(BeEmpty())
	}, 10*time.Second).Should(Succeed())

	e.spend(g, "alerts-cycle", 5, 1_000_000)
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50, 50})) }, 10*time.Second).Should(Succeed())
	accepted, _, _, _ := rcv.snapshot()
	g.Expect(accepted[1].ID).To(Equal(reconcilers.SpendingCapAlertID(string(c.UID), decemberShanghai, 50)))
	_, d := capData(g, accepted[1].Body)
	g.Expect(d.Currency).To(Equal("CNY"))
	g.Expect(d.CycleStart).To(BeTemporally("==", decemberShanghai))
}

// TestKeyExpiryWarnings: 7, 3 and 1 days before a key expires, its project's
// channels hear of it, once each; a key first seen 2 days from expiry gets
// the 3-day warning only, then the 1-day one.
func TestKeyExpiryWarnings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newCapsEnv(t, g, "alerts-hub-e")
	projectWithNamespace(g, "alerts-keys")
	rcv := newWebhookReceiver(t)
	webhookChannel(g, "alerts-keys", "hook", rcv)
	now := e.clock.Now()
	newKey := func(name string, expires time.Time) {
		k := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-keys", Name: name},
			Spec: hubv1.APIKeySpec{Owner: "dev@example.com"}}
		g.Expect(k8sClient.Create(ctx, k)).To(Succeed())
		k.Status = hubv1.APIKeyStatus{Phase: hubv1.KeyActive, KeyID: "Key" + name, ExpiresAt: &metav1.Time{Time: expires}}
		g.Expect(k8sClient.Status().Update(ctx, k)).To(Succeed())
	}
	newKey("long", now.Add(8*24*time.Hour))
	newKey("short", now.Add(2*24*time.Hour))
	e.start(g, &alerting{sender: &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client()}})

	warnings := func(g Gomega) []string {
		accepted, _, _, _ := rcv.snapshot()
		out := make([]string, 0, len(accepted))
		for _, w := range accepted {
			var env notify.Envelope
			g.Expect(json.Unmarshal(w.Body, &env)).To(Succeed())
			g.Expect(env.Type).To(Equal(alertlog.KindKeyExpiring))
			var d notify.KeyExpiring
			g.Expect(json.Unmarshal(env.Data, &d)).To(Succeed())
			out = append(out, fmt.Sprintf("%s:%d", d.Key.Name, d.DaysLeft))
		}
		return out
	}
	g.Eventually(warnings, 10*time.Second).Should(Equal([]string{"short:3"}))
	g.Consistently(warnings, 500*time.Millisecond).Should(Equal([]string{"short:3"}))

	e.clock.Step(24*time.Hour + time.Minute) // long: 7 days less a minute; short: 1 day less a minute
	g.Eventually(warnings, 10*time.Second).Should(ConsistOf("short:3", "long:7", "short:1"))
	e.clock.Step(4 * 24 * time.Hour) // long: 3 days left
	g.Eventually(warnings, 10*time.Second).Should(HaveLen(4))
	e.clock.Step(2 * 24 * time.Hour) // long: 1 day left; short: expired
	g.Eventually(warnings, 10*time.Second).Should(HaveLen(5))
	g.Consistently(warnings, time.Second).Should(ConsistOf("short:3", "long:7", "short:1", "long:3", "long:1"))
	_, _, duplicates, _ := rcv.snapshot()
	g.Expect(duplicates).To(BeZero())
}

func getJSON(g Gomega, url, token string, out any) int {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(resp.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(json.NewDecoder(resp.Body).Decode(out)).To(Succeed())
	return resp.StatusCode
}

// TestAlertHistoryListing: GET /v1/alerts lists the history with each
// delivery's state, filtered, for callers RBAC allows to list alerts.
func TestAlertHistoryListing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := startServer(t, g)
	fired := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	alerts := make([]alertlog.Alert, 0, 3)
	for i, project := range []string{"chatbot", "video", "chatbot"} {
		a, err := notify.NewAlert(alertlog.KindCapThreshold, fmt.Sprintf("cap_u%d_1_50", i), fired.Add(time.Duration(i)*time.Hour),
			notify.CapThreshold{Project: project, Threshold: 50, Percent: 55})
		g.Expect(err).NotTo(HaveOccurred())
		a.Project, a.Namespace, a.Name, a.SourceUID, a.Threshold = project, project, "budget", fmt.Sprintf("u%d", i), 50
		a.Deliveries = []alertlog.Delivery{{Channel: project + "/hook"}}
		alerts = append(alerts, a)
	}
	_, err := srv.stores.Alerts.RecordAlerts(ctx, alerts)
	g.Expect(err).NotTo(HaveOccurred())

	reader := serviceAccountTokenWith(g, "alert-reader", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"alerts"}, Verbs: []string{"list"}})
	var list server.AlertsResponse
	g.Expect(getJSON(g, srv.url+server.AlertsPath+"?project=chatbot", reader, &list)).To(Equal(http.StatusOK))
	g.Expect(list.Alerts).To(HaveLen(2))
	g.Expect(list.Alerts[0].ID).To(Equal("cap_u0_1_50"))
	g.Expect(list.Alerts[0].Deliveries).To(HaveLen(1))
	g.Expect(list.Alerts[0].Deliveries[0].State).To(Equal(alertlog.DeliveryPending))
	_, d := capData(g, list.Alerts[0].Payload)
	g.Expect(d.Percent).To(BeEquivalentTo(55))

	g.Expect(getJSON(g, srv.url+server.AlertsPath+"?from=2026-11-10T09:00:00Z&limit=1", reader, &list)).To(Equal(http.StatusOK))
	g.Expect(list.Alerts).To(HaveLen(1))
	g.Expect(list.Alerts[0].ID).To(Equal("cap_u2_1_50"), "the newest under the limit")

	var refusal map[string]map[string]any
	g.Expect(getJSON(g, srv.url+server.AlertsPath+"?from=yesterday", reader, &refusal)).To(Equal(http.StatusBadRequest))
	g.Expect(refusal["error"]["message"]).To(ContainSubstring("from must be an RFC 3339 time"))
	g.Expect(getJSON(g, srv.url+server.AlertsPath+"?limit=5000", reader, &refusal)).To(Equal(http.StatusBadRequest))
	g.Expect(refusal["error"]["message"]).To(ContainSubstring("limit must be a number from 1 to 1000"))

	ingester := serviceAccountToken(g, "not-a-reader", true)
	g.Expect(getJSON(g, srv.url+server.AlertsPath, ingester, &refusal)).To(Equal(http.StatusForbidden))
	g.Expect(refusal["error"]["message"]).To(ContainSubstring("may not list alerts.hub.minimax.io"))
}

// TestAuditAPI: the manager posts audit entries; callers allowed to list
// auditevents read them back, filtered, as JSON or CSV.
func TestAuditAPI(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, g)
	writer := serviceAccountTokenWith(g, "audit-writer", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"auditevents"}, Verbs: []string{"create"}})
	reader := serviceAccountTokenWith(g, "audit-reader", rbacv1.PolicyRule{APIGroups: []string{hubv1.GroupVersion.Group},
		Resources: []string{"auditevents"}, Verbs: []string{"list"}})
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	entries := server.AuditRequest{Entries: []auditlog.Entry{
		{ID: "a1", Time: at, Actor: "adm@example.com", Groups: []string{"system:authenticated"}, Action: "update", Kind: "Member",
			Name: "alice", ResourceVersion: "4711", Changes: []auditlog.FieldChange{{Field: "spec.role", Old: "Developer", New: "Admin"}}},
		{ID: "a2", Time: at.Add(time.Minute), Actor: "dev@example.com", Action: "create", Kind: "APIKey", Namespace: "chatbot", Name: "ci"},
	}}
	postAudit := func(token string, body any) (int, map[string]any) {
		raw, err := json.Marshal(body)
		g.Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequest(http.MethodPost, srv.url+server.AuditPath, strings.NewReader(string(raw)))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		g.Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
		return resp.StatusCode, out
	}
	code, _ := postAudit(writer, entries)
	g.Expect(code).To(Equal(http.StatusOK))
	code, out := postAudit(writer, server.AuditRequest{Entries: []auditlog.Entry{{ID: "bad", Time: at, Actor: "x", Kind: "Member", Name: "y", Action: "patch"}}})
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(fmt.Sprint(out)).To(ContainSubstring("an action of create, update or delete"))
	code, _ = postAudit(reader, entries)
	g.Expect(code).To(Equal(http.StatusForbidden), "listing does not allow writing")

	var list server.AuditResponse
	g.Expect(getJSON(g, srv.url+server.AuditPath+"?actor=adm@example.com", reader, &list)).To(Equal(http.StatusOK))
	g.Expect(list.Entries).To(HaveLen(1))
	g.Expect(list.Entries[0].Changes).To(Equal(entries.Entries[0].Changes))
	g.Expect(list.Entries[0].ResourceVersion).To(Equal("4711"))

	// A page at a time, in time order.
	g.Expect(getJSON(g, srv.url+server.AuditPath+"?paging=true&limit=1", reader, &list)).To(Equal(http.StatusOK))
	g.Expect(list.Entries).To(HaveLen(1))
	g.Expect(list.Entries[0].ID).To(Equal("a1"))
	g.Expect(list.Continue).NotTo(BeEmpty())
	next := list.Continue
	list = server.AuditResponse{}
	g.Expect(getJSON(g, srv.url+server.AuditPath+"?limit=1&continue="+next, reader, &list)).To(Equal(http.StatusOK))
	g.Expect(list.Entries).To(HaveLen(1))
	g.Expect(list.Entries[0].ID).To(Equal("a2"))
	g.Expect(list.Continue).To(BeEmpty(), "the last page")
	g.Expect(getJSON(g, srv.url+server.AuditPath+"?continue=nonsense", reader, &list)).To(Equal(http.StatusBadRequest))

	req, err := http.NewRequest(http.MethodGet, srv.url+server.AuditPath+"?format=csv&from=2026-11-20T00:00:00Z", nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(resp.Header.Get("Content-Type")).To(HavePrefix("text/csv"))
	rows, err := csv.NewReader(resp.Body).ReadAll()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(HaveLen(3))
	g.Expect(rows[0]).To(Equal([]string{"time", "actor", "groups", "action", "kind", "namespace", "name", "uid", "changes", "id", "resource_version", "via", "key_id"}))
	g.Expect(rows[1][10]).To(Equal("4711"))
	g.Expect(rows[1][1]).To(Equal("adm@example.com"))
	g.Expect(rows[1][8]).To(Equal("spec.role: Developer -> Admin"))
	g.Expect(rows[2][4:7]).To(Equal([]string{"APIKey", "chatbot", "ci"}))
}

// TestCapCycleOffTheHourAndUnpricedCalls: in Asia/Kolkata (+05:30) a cycle
// starts at 18:30 UTC, inside an hour. A call at 23:45 local time on the
// cycle's last day counts in that cycle only, and one at 00:15 in the next
// only. Calls of a model without a price are counted in status and named in
// the alert, never added to the spend as free.
func TestCapCycleOffTheHourAndUnpricedCalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName},
		Spec: hubv1.OrganizationSpec{DisplayName: "Example", Plan: hubv1.PlanStandard,
			Billing: hubv1.BillingSpec{CycleStartDay: 1, TimeZone: "Asia/Kolkata", Currency: "INR"}}}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	e := newCapsEnv(t, g, "alerts-hub-k")
	var err error
	e.prices, err = pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{
		Name: "m", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "1.00", OutputPer1MTokens: "1.00"}}}}})
	g.Expect(err).NotTo(HaveOccurred())
	boundary := time.Date(2026, 11, 30, 18, 30, 0, 0, time.UTC) // 1 December, 00:00 in Kolkata
	e.clock.SetTime(boundary.Add(-15 * time.Minute))            // 23:45 on 30 November there
	projectWithNamespace(g, "alerts-kolkata")
	rcv := newWebhookReceiver(t)
	webhookChannel(g, "alerts-kolkata", "hook", rcv)
	c := &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "alerts-kolkata", Name: "budget"},
		Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10")), Thresholds: []int32{50}, Channels: []string{"hook"}}}
	g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
	e.start(g, &alerting{sender: &notify.Sender{Reader: k8sClient, Egress: receiversOnLoopback, HTTP: rcv.Client()}})

	e.spend(g, "alerts-kolkata", 6, 1_000_000) // 6 of 10: crosses 50%
	unpriced := make([]usage.Event, 0, 3)
	for i := range 3 {
		unpriced = append(unpriced, usage.Event{ID: fmt.Sprintf("unpriced-%d", i), Time: e.clock.Now(), Project: "alerts-kolkata",
			KeyID: "AbCdEf0123", Service: pricing.Chat, Endpoint: "/v1/chat/completions", Model: "brand-new-model",
			InputTokens: 1_000_000, StatusCode: 200})
	}
	_, err = e.store.Insert(ctx, unpriced)
	g.Expect(err).NotTo(HaveOccurred())
	e.caps.Ingested([]string{"alerts-kolkata"})
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.CycleEnd).NotTo(BeNil())
		g.Expect(s.CycleEnd.Time).To(BeTemporally("==", boundary))
		g.Expect(s.Spent).To(BeEquivalentTo("6"))
		g.Expect(s.UnpricedCalls).To(BeEquivalentTo(3))
		g.Expect(s.Tokens).To(BeEquivalentTo(9_000_000))
	}, 10*time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(acceptedThresholds(g, rcv)).To(Equal([]int32{50})) }, 10*time.Second).Should(Succeed())
	accepted, _, _, _ := rcv.snapshot()
	_, d := capData(g, accepted[0].Body)
	g.Expect(d.UnpricedCalls).To(BeEquivalentTo(3))
	msg, err := notify.Render(alertlog.Alert{ID: accepted[0].ID, Payload: accepted[0].Body})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(msg.Text).To(ContainSubstring("3 calls of this cycle used models with no price"))

	// 00:15 on 1 December in Kolkata, the same UTC hour: a new cycle that
	// holds only what came after its start.
	e.clock.SetTime(boundary.Add(15 * time.Minute))
	e.spend(g, "alerts-kolkata", 1, 1_000_000)
	g.Eventually(func(g Gomega) {
		s := getCap(g, c).Status
		g.Expect(s.CycleStart).NotTo(BeNil())
		g.Expect(s.CycleStart.Time).To(BeTemporally("==", boundary))
		g.Expect(s.Spent).To(BeEquivalentTo("1"))
		g.Expect(s.UnpricedCalls).To(BeZero())
	}, 10*time.Second).Should(Succeed())
}
