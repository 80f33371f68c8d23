package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestNotificationChannelValidation: bad channels are refused at admission
// with the field and what to change; SMS needs the Enterprise plan.
func TestNotificationChannelValidation(t *testing.T) {
	ctx := context.Background()
	project := newProject("channels-validation")
	g := NewWithT(t)
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	g.Eventually(func() string {
		_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(project), project)
		return project.Status.Namespace
	}).Should(Equal("channels-validation"))

	email := func() *hubv1.NotificationChannel {
		return &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "channels-validation", Name: "ops"},
			Spec: hubv1.NotificationChannelSpec{Email: &hubv1.EmailChannel{To: []string{"ops@example.com"}}}}
	}
	webhook := func(url string) *hubv1.NotificationChannel {
		c := email()
		c.Spec.Email = nil
		c.Spec.Webhook = &hubv1.WebhookChannel{URL: url, SigningSecretRef: hubv1.SecretKeyRef{Name: "hook", Key: "secret"}}
		return c
	}
	sms := func() *hubv1.NotificationChannel {
		c := email()
		c.Spec.Email = nil
		c.Spec.SMS = &hubv1.SMSChannel{To: []string{"+8613800138000"}}
		return c
	}
	refused := func(g Gomega, c *hubv1.NotificationChannel, field, words string) {
		err := k8sClient.Create(ctx, c, client.DryRunAll)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		g.Expect(err.Error()).To(ContainSubstring(field))
		g.Expect(err.Error()).To(ContainSubstring(words))
	}

	t.Run("valid email and https webhook", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8sClient.Create(ctx, email(), client.DryRunAll)).To(Succeed())
		g.Expect(k8sClient.Create(ctx, webhook("https://hooks.example.com/hub"), client.DryRunAll)).To(Succeed())
	})
	for _, tt := range []struct {
		name         string
		channel      func() *hubv1.NotificationChannel
		field, words string
	}{
		{"no destination", func() *hubv1.NotificationChannel { c := email(); c.Spec.Email = nil; return c },
			"spec", "set exactly one of email, webhook or sms"},
		{"two destinations", func() *hubv1.NotificationChannel {
			c := email()
			c.Spec.SMS = &hubv1.SMSChannel{To: []string{"+8613800138000"}}
			return c
		}, "spec", "set exactly one of email, webhook or sms"},
		{"a bad address", func() *hubv1.NotificationChannel { c := email(); c.Spec.Email.To = []string{"ops"}; return c },
			"spec.email.to[0]", "should match"},
		{"a plain http webhook", func() *hubv1.NotificationChannel { return webhook("http://hooks.example.com/hub") },
			"spec.webhook.url", "must be an https:// URL"},
		{"a relative webhook URL", func() *hubv1.NotificationChannel { return webhook("/hub") },
			"spec.webhook.url", "must be an absolute https:// URL"},
		// Server-side request forgery: nothing inside the cluster or the
		// node, whatever the form of the address.
		{"a cluster IP", func() *hubv1.NotificationChannel { return webhook("https://10.96.0.1/") },
			"spec.webhook.url", "10.96.0.1 is private"},
		{"a service name", func() *hubv1.NotificationChannel { return webhook("https://svc.ns.svc:8443/") },
			"spec.webhook.url", "is a cluster or site-local name"},
		{"a single-label name", func() *hubv1.NotificationChannel { return webhook("https://kubernetes/") },
			"spec.webhook.url", "is a single label"},
		{"loopback as IPv4 in IPv6", func() *hubv1.NotificationChannel { return webhook("https://[::ffff:127.0.0.1]/") },
			"spec.webhook.url", "is loopback"},
		{"the metadata service", func() *hubv1.NotificationChannel { return webhook("https://169.254.169.254/") },
			"spec.webhook.url", "is link-local"},
		{"an address as a decimal number", func() *hubv1.NotificationChannel { return webhook("https://2130706433/") },
			"spec.webhook.url", "ends in a number"},
		{"a phone number without country code", func() *hubv1.NotificationChannel {
			c := sms()
			c.Spec.SMS.To = []string{"13800138000"}
			return c
		}, "spec.sms.to[0]", "should match"},
		{"a default channel in a project", func() *hubv1.NotificationChannel { c := email(); c.Spec.Default = true; return c },
			"spec.default", "only channels in the hub's namespace"},
		{"outside any project", func() *hubv1.NotificationChannel { c := email(); c.Namespace = "default"; return c },
			"metadata.namespace", "neither"},
	} {
		t.Run(tt.name, func(t *testing.T) { refused(NewWithT(t), tt.channel(), tt.field, tt.words) })
	}

	t.Run("SMS needs the Enterprise plan", func(t *testing.T) {
		g := NewWithT(t)
		org := validOrganization()
		g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
		t.Cleanup(func() {
			_ = k8sClient.Delete(ctx, org)
			g.Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), &hubv1.Organization{}))
			}).Should(BeTrue())
		})
		refused(g, sms(), "spec.sms", "SMS channels need the Enterprise plan, and the organization is on Standard")

		patch := client.MergeFrom(org.DeepCopy())
		org.Spec.Plan = hubv1.PlanEnterprise
		g.Expect(k8sClient.Patch(ctx, org, patch)).To(Succeed())
		g.Eventually(func() error { return k8sClient.Create(ctx, sms(), client.DryRunAll) }).Should(Succeed())
	})
}
