package controllers_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/operator"
)

// TestMultiFactorFromTheIdentityProvider: people sign in through the suite's
// OIDC identity provider, and the API server passes the ID token's amr claim
// on as the user extra the hub reads (the configuration in docs/team.md).
// A member whose sign-in used a second factor is marked mfaEnrolled; one
// with a password alone is not. Under an MFA policy that covers their role,
// a member's changes without a second factor are refused with a message
// that says what to do, and go through with one; cluster administrators are
// not bound by it. A member who sets a policy that covers themselves while
// signed in without a second factor is warned.
func TestMultiFactorFromTheIdentityProvider(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const email = "mfa-admin@example.com"
	admin := newMember("mfa-admin", email, hubv1.RoleAdmin)
	g.Expect(k8sClient.Create(ctx, admin)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, admin) })
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	if err := k8sClient.Create(ctx, org); err == nil {
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	}
	t.Cleanup(func() { setMFAPolicy(g, nil) })

	var warnings warningRecorder
	password := signedIn(g, email, &warnings, "pwd")
	withOTP := signedIn(g, email, nil, "pwd", "otp")
	group := func(name string) *hubv1.Group {
		g := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.GroupSpec{DisplayName: name}}
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, g) })
		return g
	}

	// Signed in with a password alone: active, no second factor. (The first
	// tries wait for the API server to fetch the provider's keys and for the
	// member's RBAC binding.)
	g.Eventually(func() error { return password.Create(ctx, group("mfa-first")) }).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(admin), admin)).To(Succeed())
		g.Expect(admin.Status.LastActiveAt).NotTo(BeNil())
	}).Should(Succeed())
	g.Expect(admin.Status.MFAEnrolled).To(BeFalse(), "a password alone is not a second factor")

	// With a one-time code, within the minute: enrolled.
	g.Expect(withOTP.Create(ctx, group("mfa-second"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(admin), admin)).To(Succeed())
		g.Expect(admin.Status.MFAEnrolled).To(BeTrue())
	}).Should(Succeed())

	// The Admin, signed in with a password, requires MFA of Admins: allowed
	// (the policy was not in force yet), with a warning.
	g.Eventually(func() error {
		return patchMFAPolicy(password, &hubv1.MFAPolicy{Enforcement: hubv1.MFARoles, Roles: []hubv1.Role{hubv1.RoleAdmin}})
	}).Should(Succeed())
	g.Expect(warnings.all()).To(ContainElement(ContainSubstring(
		"mfa-admin@example.com signed in without a second factor; with this MFA policy the hub refuses their next change")))

	// Now a password alone is refused, with what to do; a second factor
	// goes through; a cluster administrator is not bound.
	g.Eventually(func() string {
		err := password.Create(ctx, group("mfa-refused"))
		if err == nil {
			return ""
		}
		return err.Error()
	}).Should(ContainSubstring("the organization requires multi-factor authentication for Admins " +
		"(Organization default, spec.security.mfa), and mfa-admin@example.com signed in without a second factor: " +
		"sign in again with one"))
	forbidden(g, password.Delete(ctx, group("mfa-first")))
	g.Expect(withOTP.Create(ctx, group("mfa-with-otp"))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, group("mfa-by-cluster-admin"))).To(Succeed())

	// AllMembers binds every role; None lifts it.
	setMFAPolicy(g, &hubv1.MFAPolicy{Enforcement: hubv1.MFAAllMembers})
	g.Eventually(func() string {
		err := password.Create(ctx, group("mfa-refused"))
		if err == nil {
			return ""
		}
		return err.Error()
	}).Should(ContainSubstring("requires multi-factor authentication for every member"))
	setMFAPolicy(g, &hubv1.MFAPolicy{Enforcement: hubv1.MFANone})
	g.Eventually(func() error { return password.Create(ctx, group("mfa-refused")) }).Should(Succeed())
}

// signedIn is a client for the person, signed in to the suite's identity
// provider with the methods; warnings, when set, records the API server's
// warnings.
func signedIn(g Gomega, email string, warnings rest.WarningHandler, methods ...string) client.Client {
	cfg, err := issuer.signIn(email, methods...)
	g.Expect(err).NotTo(HaveOccurred())
	if warnings != nil {
		cfg.WarningHandler = warnings
	}
	c, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
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

// warningRecorder keeps the API server's warnings.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}
