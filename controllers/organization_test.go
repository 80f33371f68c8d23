package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// validOrganization returns an Organization that passes every check.
func validOrganization() *hubv1.Organization {
	return &hubv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName},
		Spec: hubv1.OrganizationSpec{
			DisplayName: "Example AI Labs",
			Plan:        hubv1.PlanStandard,
			Billing:     hubv1.BillingSpec{CycleStartDay: 1, TimeZone: "Asia/Shanghai", Currency: "USD"},
			Pricing: &hubv1.PriceList{
				Chat: &hubv1.TokenPricing{
					Default: &hubv1.TokenPrice{InputPer1MTokens: "1", OutputPer1MTokens: "4.00"},
					Models: []hubv1.ModelTokenPrice{{
						Name:       "MiniMax-M2",
						TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"},
					}},
				},
				Video:      &hubv1.VideoPricing{DefaultPerMinute: ptr.To(hubv1.Amount("0.60"))},
				FineTuning: &hubv1.FineTuningPricing{DefaultPer1MTokens: ptr.To(hubv1.Amount("3"))},
				Storage:    &hubv1.StoragePricing{PerGBMonth: "0.02"},
			},
			Security: hubv1.SecurityPolicy{
				SessionTimeout: &metav1.Duration{Duration: 4 * time.Hour},
				MFA:            &hubv1.MFAPolicy{Enforcement: hubv1.MFARoles, Roles: []hubv1.Role{hubv1.RoleOwner}},
				APIKeys:        &hubv1.APIKeyPolicy{MaxLifetimeDays: ptr.To[int32](180), DefaultExpiresAfter: hubv1.KeyLifetime90Days},
				IPAllowlist:    []hubv1.CIDR{"10.0.0.0/8", "2001:db8::/32"},
				SSO: &hubv1.SSOPolicy{
					OIDC: &hubv1.OIDCProvider{
						IssuerURL:       "https://login.example.com",
						ClientID:        "hub",
						ClientSecretRef: hubv1.SecretKeyRef{Name: "oidc", Key: "client-secret"},
					},
					JITProvisioning: &hubv1.JITProvisioning{DefaultRole: hubv1.RoleDeveloper},
				},
			},
		},
	}
}

func TestOrganizationValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*hubv1.Organization)
		// wantField and wantMessage must both appear in the API server's error.
		wantField, wantMessage string
	}{
		{
			name:        "session timeout below 15m",
			mutate:      func(o *hubv1.Organization) { o.Spec.Security.SessionTimeout.Duration = 10 * time.Minute },
			wantField:   "spec.security.sessionTimeout",
			wantMessage: "between 15m and 8h",
		},
		{
			name:        "session timeout above 8h",
			mutate:      func(o *hubv1.Organization) { o.Spec.Security.SessionTimeout.Duration = 9 * time.Hour },
			wantField:   "spec.security.sessionTimeout",
			wantMessage: "between 15m and 8h",
		},
		{
			name:        "billing cycle day 31",
			mutate:      func(o *hubv1.Organization) { o.Spec.Billing.CycleStartDay = 31 },
			wantField:   "spec.billing.cycleStartDay",
			wantMessage: "less than or equal to 28",
		},
		{
			name:        "billing cycle day below 1",
			mutate:      func(o *hubv1.Organization) { o.Spec.Billing.CycleStartDay = -1 },
			wantField:   "spec.billing.cycleStartDay",
			wantMessage: "greater than or equal to 1",
		},
		{
			name:        "unknown time zone",
			mutate:      func(o *hubv1.Organization) { o.Spec.Billing.TimeZone = "Mars/Olympus_Mons" },
			wantField:   "spec.billing.timeZone",
			wantMessage: "IANA time zone",
		},
		{
			name:        "lower-case currency",
			mutate:      func(o *hubv1.Organization) { o.Spec.Billing.Currency = "usd" },
			wantField:   "spec.billing.currency",
			wantMessage: "ISO 4217",
		},
		{
			name:        "malformed CIDR",
			mutate:      func(o *hubv1.Organization) { o.Spec.Security.IPAllowlist = []hubv1.CIDR{"10.0.0.0/33"} },
			wantField:   "spec.security.ipAllowlist[0]",
			wantMessage: "must be a CIDR",
		},
		{
			name: "CIDR with host bits",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Security.IPAllowlist = []hubv1.CIDR{"10.0.0.0/8", "192.168.1.7/24"}
			},
			wantField:   "spec.security.ipAllowlist[1]",
			wantMessage: "host bits zero",
		},
		{
			name: "negative model price",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Pricing.Chat.Models[0].InputPer1MTokens = "-0.30"
			},
			wantField:   "spec.pricing.chat.models[0].inputPer1MTokens",
			wantMessage: "non-negative decimal",
		},
		{
			name:        "negative storage price",
			mutate:      func(o *hubv1.Organization) { o.Spec.Pricing.Storage.PerGBMonth = "-1" },
			wantField:   "spec.pricing.storage.perGBMonth",
			wantMessage: "non-negative decimal",
		},
		{
			name:        "price in exponent notation",
			mutate:      func(o *hubv1.Organization) { o.Spec.Pricing.Video.DefaultPerMinute = ptr.To(hubv1.Amount("1e3")) },
			wantField:   "spec.pricing.video.defaultPerMinute",
			wantMessage: "no sign or exponent",
		},
		{
			name:        "MFA by roles without roles",
			mutate:      func(o *hubv1.Organization) { o.Spec.Security.MFA.Roles = nil },
			wantField:   "spec.security.mfa",
			wantMessage: "roles must list at least one role",
		},
		{
			name: "default key lifetime beyond the maximum",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Security.APIKeys.MaxLifetimeDays = ptr.To[int32](30)
			},
			wantField:   "spec.security.apiKeys",
			wantMessage: "must not exceed maxLifetimeDays",
		},
		{
			name: "keys that never expire as default under a maximum",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Security.APIKeys.DefaultExpiresAfter = hubv1.KeyLifetimeNever
			},
			wantField:   "spec.security.apiKeys",
			wantMessage: "cannot be Never",
		},
		{
			name:        "plain-http OIDC issuer",
			mutate:      func(o *hubv1.Organization) { o.Spec.Security.SSO.OIDC.IssuerURL = "http://login.example.com" },
			wantField:   "spec.security.sso.oidc.issuerURL",
			wantMessage: "https URL",
		},
		{
			name: "both OIDC and SAML",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Security.SSO.SAML = &hubv1.SAMLProvider{MetadataURL: "https://idp.example.com/metadata"}
			},
			wantField:   "spec.security.sso",
			wantMessage: "exactly one of oidc or saml",
		},
		{
			name: "Owner by just-in-time provisioning",
			mutate: func(o *hubv1.Organization) {
				o.Spec.Security.SSO.JITProvisioning.DefaultRole = hubv1.RoleOwner
			},
			wantField:   "spec.security.sso.jitProvisioning.defaultRole",
			wantMessage: "Owner cannot be granted",
		},
		{
			name:        "a second organization",
			mutate:      func(o *hubv1.Organization) { o.Name = "acme" },
			wantMessage: "must be named 'default'",
		},
	}

	ctx := context.Background()
	t.Run("valid", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8sClient.Create(ctx, validOrganization(), client.DryRunAll)).To(Succeed())
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			org := validOrganization()
			tt.mutate(org)
			err := k8sClient.Create(ctx, org, client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.wantField))
			g.Expect(err.Error()).To(ContainSubstring(tt.wantMessage))
		})
	}
}

func TestOrganizationDefaults(t *testing.T) {
	g := NewWithT(t)
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	g.Expect(k8sClient.Create(context.Background(), org, client.DryRunAll)).To(Succeed())
	g.Expect(org.Spec.Plan).To(Equal(hubv1.PlanFree))
	g.Expect(org.Spec.Billing).To(Equal(hubv1.BillingSpec{CycleStartDay: 1, TimeZone: "UTC", Currency: "USD"}))
	g.Expect(org.Spec.Security.SessionTimeout).To(Equal(&metav1.Duration{Duration: 8 * time.Hour}))
}

func TestOrganizationStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	org := validOrganization()
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })

	shanghai, err := time.LoadLocation("Asia/Shanghai")
	g.Expect(err).NotTo(HaveOccurred())

	// The suite's clock stands at 2026-11-27 12:00 UTC: in Shanghai the cycle
	// runs from 1 November to 1 December, local midnight.
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
		g.Expect(org.Status.Conditions).NotTo(BeEmpty())
		g.Expect(org.Status.Conditions[0].Type).To(Equal(hubv1.ReadyCondition))
		g.Expect(org.Status.Conditions[0].Status).To(Equal(metav1.ConditionTrue))
		g.Expect(org.Status.CurrentCycle).NotTo(BeNil())
		g.Expect(org.Status.CurrentCycle.Start.Time).To(BeTemporally("==", time.Date(2026, 11, 1, 0, 0, 0, 0, shanghai)))
		g.Expect(org.Status.CurrentCycle.End.Time).To(BeTemporally("==", time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai)))
	}).Should(Succeed())

	// The sample price list has defaults for chat, video and fine-tuning;
	// storage has one price. Nothing is incomplete.
	g.Expect(meta.FindStatusCondition(org.Status.Conditions, hubv1.PricingIncompleteCondition)).To(BeNil())
	patch := client.MergeFrom(org.DeepCopy())
	org.Spec.Pricing.Video.DefaultPerMinute = nil
	g.Expect(k8sClient.Patch(ctx, org, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		cond := meta.FindStatusCondition(org.Status.Conditions, hubv1.PricingIncompleteCondition)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(hubv1.NoDefaultPriceReason))
		g.Expect(cond.Message).To(ContainSubstring("no default price for video"))
	}).Should(Succeed())

	// Counts follow the projects.
	project := newProject("org-counts")
	project.Spec.Archived = true
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.Counts.Projects).To(BeNumerically(">=", 1))
		g.Expect(org.Status.Counts.ArchivedProjects).To(BeNumerically(">=", 1))
	}).Should(Succeed())

	// Moving the cycle start day moves the window.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	org.Spec.Billing.CycleStartDay = 28
	g.Expect(k8sClient.Update(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
		g.Expect(org.Status.CurrentCycle.Start.Time).To(BeTemporally("==", time.Date(2026, 10, 28, 0, 0, 0, 0, shanghai)))
		g.Expect(org.Status.CurrentCycle.End.Time).To(BeTemporally("==", time.Date(2026, 11, 28, 0, 0, 0, 0, shanghai)))
		ready := meta.FindStatusCondition(org.Status.Conditions, hubv1.ReadyCondition)
		g.Expect(ready.ObservedGeneration).To(Equal(org.Generation))
	}).Should(Succeed())

	// At the boundary, in Shanghai time, the next cycle begins.
	saved := testClock.Now()
	t.Cleanup(func() { testClock.SetTime(saved) })
	testClock.SetTime(time.Date(2026, 11, 28, 0, 0, 0, 0, shanghai))
	poke(t, org)
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.CurrentCycle.Start.Time).To(BeTemporally("==", time.Date(2026, 11, 28, 0, 0, 0, 0, shanghai)))
		g.Expect(org.Status.CurrentCycle.End.Time).To(BeTemporally("==", time.Date(2026, 12, 28, 0, 0, 0, 0, shanghai)))
	}).Should(Succeed())
}
