package controllers_test

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// TestMultiFactorFromTheIdentityProvider: people sign in through the suite's
// OIDC identity provider, and the API server passes the ID token's amr claim
// on as the user extra the hub reads (the configuration in
// docs/api/member.md). A member whose sign-in used a second factor is marked
// mfaEnrolled; one with a password alone is not. Only an Owner may change the
// MFA policy, and not to one that covers themselves without a second factor
// in that request. Under the policy, a covered member's changes without a
// second factor are refused with a message that says what to do, and go
// through with one; members it does not cover and cluster administrators are
// not bound.
func TestMultiFactorFromTheIdentityProvider(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	admin := newMember("mfa-admin", "mfa-admin@example.com", hubv1.RoleAdmin)
	owner := newMember("mfa-owner", "mfa-owner@example.com", hubv1.RoleOwner)
	for _, m := range []*hubv1.Member{admin, owner} {
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		// The Owner stays behind if it is the last one, which the hub keeps.
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, m) })
	}
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	if err := k8sClient.Create(ctx, org); err == nil {
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	}
	t.Cleanup(func() { setMFAPolicy(g, nil) })

	adminPassword := signedIn(g, admin.Spec.Email, "pwd")
	adminOTP := signedIn(g, admin.Spec.Email, "pwd", "otp")
	adminNoMethods := signedIn(g, admin.Spec.Email)
	ownerPassword := signedIn(g, owner.Spec.Email, "pwd")
	groups := 0
	group := func() *hubv1.Group {
		groups++
		name := fmt.Sprintf("mfa-%d", groups)
		g := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.GroupSpec{DisplayName: name}}
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, g) })
		return g
	}
	// refusal makes changes until one is refused (the webhook's cache sees
	// a new policy a moment after it is written), and returns the message.
	refusal := func(c client.Client) func() string {
		return func() string {
			if err := c.Create(ctx, group()); err != nil {
				return err.Error()
			}
			return ""
		}
	}

	// Signed in with a password alone: active, no second factor. (The first
	// tries wait for the API server to fetch the provider's keys and for the
	// member's RBAC binding.)
	g.Eventually(func() error { return adminPassword.Create(ctx, group()) }).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(admin), admin)).To(Succeed())
		g.Expect(admin.Status.LastActiveAt).NotTo(BeNil())
	}).Should(Succeed())
	g.Expect(admin.Status.MFAEnrolled).To(BeFalse(), "a password alone is not a second factor")

	// With a one-time code, within the minute: enrolled.
	g.Expect(adminOTP.Create(ctx, group())).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(admin), admin)).To(Succeed())
		g.Expect(admin.Status.MFAEnrolled).To(BeTrue())
	}).Should(Succeed())
	// The activity controller owns these two fields, and only them.
	found := false
	for _, f := range admin.ManagedFields {
		if f.Manager == statusapply.OwnerMemberActivity {
			found = true
			g.Expect(f.FieldsV1.GetRawString()).To(And(ContainSubstring(`"f:lastActiveAt"`), ContainSubstring(`"f:mfaEnrolled"`),
				Not(ContainSubstring(`"f:phase"`)), Not(ContainSubstring(`"f:conditions"`))))
		} else if f.Subresource == "status" {
			g.Expect(f.FieldsV1.GetRawString()).NotTo(Or(ContainSubstring(`"f:lastActiveAt"`), ContainSubstring(`"f:mfaEnrolled"`)), f.Manager)
		}
	}
	g.Expect(found).To(BeTrue(), "the activity controller's field manager")

	// The policy is the Owners'. An Owner signed in with a password may
	// require MFA of Admins, but not of Owners: the hub would not know that
	// it can see an Owner's second factor.
	adminOnly := &hubv1.MFAPolicy{Enforcement: hubv1.MFARoles, Roles: []hubv1.Role{hubv1.RoleAdmin}}
	refusedWith(g, patchMFAPolicy(adminOTP, adminOnly), "spec.security.mfa: Forbidden: changing the MFA policy needs the Owner role")
	g.Eventually(func() error { return patchMFAPolicy(ownerPassword, adminOnly) }).Should(Succeed())
	refusedWith(g, patchMFAPolicy(ownerPassword, &hubv1.MFAPolicy{Enforcement: hubv1.MFAAllMembers}),
		"setting an MFA policy that covers your own role (Owner) needs a sign-in with a second factor, "+
			"so that the hub knows it can see one, and mfa-owner@example.com signed in with pwd only")

	// Now an Admin's password alone is refused, saying what to do; so is a
	// sign-in whose methods the API server does not pass on, which is for a
	// cluster administrator to fix. A second factor goes through; the Owner,
	// whom the policy does not cover, and a cluster administrator too.
	g.Eventually(refusal(adminPassword)).Should(ContainSubstring(
		"the organization requires multi-factor authentication for the Admin role " +
			"(Organization default, spec.security.mfa), and mfa-admin@example.com signed in with pwd only: " +
			"sign in again with a second factor"))
	kept := group()
	g.Expect(adminOTP.Create(ctx, kept)).To(Succeed(), "a second factor goes through")
	refusedWith(g, adminPassword.Delete(ctx, kept), "requires multi-factor authentication for the Admin role")
	g.Expect(refusal(adminNoMethods)()).To(ContainSubstring("the API server passed on no sign-in methods for " +
		"mfa-admin@example.com: ask a cluster administrator to map the identity provider's amr claim to the user " +
		"extra hub.minimax.io/amr"))
	g.Expect(ownerPassword.Create(ctx, group())).To(Succeed())
	g.Expect(k8sClient.Create(ctx, group())).To(Succeed())

	// AllMembers binds the Owner too; None lifts the policy.
	setMFAPolicy(g, &hubv1.MFAPolicy{Enforcement: hubv1.MFAAllMembers})
	g.Eventually(refusal(ownerPassword)).Should(ContainSubstring("multi-factor authentication for the Owner role"))
	setMFAPolicy(g, &hubv1.MFAPolicy{Enforcement: hubv1.MFANone})
	g.Eventually(func() error { return adminPassword.Create(ctx, group()) }).Should(Succeed())
}

// signedIn is a client for the person, signed in to the suite's identity
// provider with the methods.
func signedIn(g Gomega, email string, methods ...string) client.Client {
	cfg, err := issuer.signIn(email, methods...)
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

func patchMFAPolicy(c client.Client, policy *hubv1.MFAPolicy) error {
	org := &hubv1.Organization{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		return err
	}
	patch := client.MergeFrom(org.DeepCopy())
	org.Spec.Security.MFA = policy
	return c.Patch(context.Background(), org, patch)
}

// setMFAPolicy sets the policy as a cluster administrator, whom it does not
// bind.
func setMFAPolicy(g Gomega, policy *hubv1.MFAPolicy) {
	g.Expect(patchMFAPolicy(k8sClient, policy)).To(Succeed())
}
