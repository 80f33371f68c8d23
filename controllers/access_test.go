package controllers_test

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/scheme"
)

// as is a client that the API server authenticates as user: every request
// is checked by real RBAC and real admission.
func as(g Gomega, user string) client.Client {
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

func newMember(name, email string, role hubv1.Role) *hubv1.Member {
	return &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: hubv1.MemberSpec{Email: email, Role: role}}
}

func forbidden(g Gomega, err error) {
	g.ExpectWithOffset(1, apierrors.IsForbidden(err)).To(BeTrue(), "want 403 Forbidden, got %v", err)
}

// TestRolesAreEnforcedByRBAC: Members, a Group and a project access list
// become RBAC that the API server enforces. A Viewer reads usage figures but
// no keys; a Developer manages keys in the project that grants them access
// (directly or through a group) and nowhere else, and reads no Secrets; an
// Admin manages members. Removing a member removes every binding naming them.
func TestRolesAreEnforcedByRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	mine, other := newProject("team-mine"), newProject("team-other")
	mine.Spec.Access = []hubv1.ProjectAccess{{Kind: hubv1.SubjectMember, Name: "dev", Role: hubv1.RoleDeveloper}}
	for _, p := range []*hubv1.Project{mine, other} {
		g.Expect(k8sClient.Create(ctx, p)).To(Succeed())
		t.Cleanup(func() { deleteProject(t, p) })
		waitForPhase(g, p, hubv1.ProjectActive)
	}
	group := &hubv1.Group{ObjectMeta: metav1.ObjectMeta{Name: "ml-team"},
		Spec: hubv1.GroupSpec{ProjectAccess: []hubv1.ProjectRole{{Project: "team-other", Role: hubv1.RoleDeveloper}}}}
	g.Expect(k8sClient.Create(ctx, group)).To(Succeed())
	viewer := newMember("view", "viewer@example.com", hubv1.RoleViewer)
	dev := newMember("dev", "dev@example.com", hubv1.RoleDeveloper)
	grouped := newMember("grouped", "grouped@example.com", hubv1.RoleDeveloper)
	grouped.Spec.Groups = []string{"ml-team"}
	admin := newMember("admin", "admin@example.com", hubv1.RoleAdmin)
	for _, m := range []*hubv1.Member{viewer, dev, grouped, admin} {
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, m) })
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
		g.Expect(dev.Status.Username).To(Equal("dev@example.com"))
		g.Expect(dev.Status.Phase).To(Equal(hubv1.MemberInvited))
		g.Expect(dev.Status.Projects).To(Equal([]hubv1.ProjectRole{{Project: "team-mine", Role: hubv1.RoleDeveloper}}))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(group), group)).To(Succeed())
		g.Expect(group.Status.Members).To(BeEquivalentTo(1))
	}).Should(Succeed())

	// The Viewer reads the overview, not keys.
	v := as(g, "viewer@example.com")
	g.Eventually(func() error { return v.Get(ctx, client.ObjectKeyFromObject(mine), &hubv1.Project{}) }).Should(Succeed())
	g.Expect(v.List(ctx, &hubv1.SpendingCapList{}, client.InNamespace("team-mine"))).To(Succeed())
	forbidden(g, v.List(ctx, &hubv1.APIKeyList{}, client.InNamespace("team-mine")))
	forbidden(g, v.Create(ctx, newAPIKey("team-mine", "from-viewer")))

	// The Developer manages keys in their project only, and reads no Secret,
	// not even their key's.
	d := as(g, "dev@example.com")
	devKey := newAPIKey("team-mine", "from-dev")
	devKey.Spec.Owner = "Dev@Example.com" // emails compare without case
	g.Eventually(func() error { return d.Create(ctx, devKey) }).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
		g.Expect(dev.Status.KeysOwned).To(BeEquivalentTo(1), "the member's keys are counted, whatever the capitals")
	}).Should(Succeed())
	forbidden(g, d.Create(ctx, newAPIKey("team-other", "from-dev")))
	forbidden(g, d.List(ctx, &corev1.SecretList{}, client.InNamespace("team-mine")))
	forbidden(g, d.Get(ctx, client.ObjectKey{Namespace: "team-mine", Name: "from-dev"}, &corev1.Secret{}))
	forbidden(g, d.Create(ctx, newMember("sneaky", "sneaky@example.com", hubv1.RoleOwner)))

	// Through the group, another Developer works in the other project.
	gd := as(g, "grouped@example.com")
	groupKey := newAPIKey("team-other", "from-group")
	groupKey.Spec.Owner = "grouped@example.com"
	g.Eventually(func() error { return gd.Create(ctx, groupKey) }).Should(Succeed())
	forbidden(g, gd.Create(ctx, newAPIKey("team-mine", "from-group")))

	// The Admin manages members.
	a := as(g, "admin@example.com")
	newcomer := newMember("newcomer", "new@example.com", hubv1.RoleViewer)
	g.Eventually(func() error { return a.Create(ctx, newcomer) }).Should(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, newcomer) })
	forbidden(g, a.List(ctx, &corev1.SecretList{}, client.InNamespace("team-mine")))

	// Removing the Developer removes every binding that names them.
	g.Expect(k8sClient.Delete(ctx, dev)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(bindingsNaming(g, "dev@example.com")).To(BeEmpty())
	}).Should(Succeed())
	g.Eventually(func() error { return d.Create(ctx, newAPIKey("team-mine", "after-removal")) }).Should(Satisfy(apierrors.IsForbidden))
}

// bindingsNaming lists the RBAC bindings with user as a subject.
func bindingsNaming(g Gomega, user string) []string {
	ctx := context.Background()
	var out []string
	crbs := &rbacv1.ClusterRoleBindingList{}
	g.Expect(k8sClient.List(ctx, crbs)).To(Succeed())
	for _, b := range crbs.Items {
		for _, s := range b.Subjects {
			if s.Name == user {
				out = append(out, "ClusterRoleBinding "+b.Name)
			}
		}
	}
	rbs := &rbacv1.RoleBindingList{}
	g.Expect(k8sClient.List(ctx, rbs)).To(Succeed())
	for _, b := range rbs.Items {
		for _, s := range b.Subjects {
			if s.Name == user {
				out = append(out, "RoleBinding "+b.Namespace+"/"+b.Name)
			}
		}
	}
	return out
}

// refusedWith expects an admission refusal (403 or 422) whose message
// contains want.
func refusedWith(g Gomega, err error, want string) {
	g.ExpectWithOffset(1, err).To(HaveOccurred())
	g.ExpectWithOffset(1, apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.ExpectWithOffset(1, err.Error()).To(ContainSubstring(want))
}

// TestAdmissionRulesByRole: what RBAC cannot express is refused at
// admission, from the requesting user's role, with the role needed: a
// Developer cannot mint an Admin-scope key; an Admin cannot grant Owner,
// change or remove an Owner, change the plan, or delete a project; the last
// Owner cannot be demoted or removed. Cluster administrators count as Owners.
func TestAdmissionRulesByRole(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	proj := newProject("rules-proj")
	proj.Spec.Access = []hubv1.ProjectAccess{{Kind: hubv1.SubjectMember, Name: "rules-dev", Role: hubv1.RoleDeveloper}}
	g.Expect(k8sClient.Create(ctx, proj)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, proj) })
	waitForPhase(g, proj, hubv1.ProjectActive)
	boss := newMember("rules-boss", "boss@example.com", hubv1.RoleOwner)
	adm := newMember("rules-admin", "adm@example.com", hubv1.RoleAdmin)
	dev := newMember("rules-dev", "rdev@example.com", hubv1.RoleDeveloper)
	for _, m := range []*hubv1.Member{boss, adm, dev} {
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, m := range []*hubv1.Member{dev, adm, boss} {
			_ = k8sClient.Delete(ctx, m)
		}
	})
	d, a, o := as(g, "rdev@example.com"), as(g, "adm@example.com"), as(g, "boss@example.com")

	// Keys: a Developer mints Standard keys, not Admin-scope ones; an Admin
	// may.
	adminKey := func(name string) *hubv1.APIKey {
		k := newAPIKey("rules-proj", name)
		k.Spec.Scope = hubv1.ScopeAdmin
		return k
	}
	devKey := newAPIKey("rules-proj", "dev-standard")
	devKey.Spec.Owner = "rdev@example.com"
	g.Eventually(func() error { return d.Create(ctx, devKey) }).Should(Succeed())

	// A Developer's keys are their own: a key for someone else, or a new
	// owner later, would move its spend out of the owner's group caps.
	refusedWith(g, d.Create(ctx, newAPIKey("rules-proj", "dev-for-alice")),
		"spec.owner: Forbidden: a key owned by someone else (alice@example.com, not rdev@example.com) needs the Admin or Owner role")
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(devKey), devKey)).To(Succeed())
	ownerPatch := client.MergeFrom(devKey.DeepCopy())
	devKey.Spec.Owner = "outside@example.com"
	refusedWith(g, d.Patch(ctx, devKey.DeepCopy(), ownerPatch), "spec.owner: Forbidden: changing a key's owner needs the Admin or Owner role")
	devKey.Spec.Owner = "RDev@Example.com"
	g.Expect(d.Patch(ctx, devKey.DeepCopy(), ownerPatch)).To(Succeed(), "other capitals are the same owner")
	g.Eventually(func() error {
		k := &hubv1.APIKey{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(devKey), k); err != nil {
			return err
		}
		p := client.MergeFrom(k.DeepCopy())
		k.Spec.Owner = "outside@example.com"
		return a.Patch(ctx, k, p)
	}).Should(Succeed(), "an Admin may give a key to someone else")
	refusedWith(g, d.Create(ctx, adminKey("dev-admin")),
		`spec.scope: Forbidden: an Admin-scope key in project "rules-proj" needs the Admin or Owner role; rdev@example.com is a Developer`)
	// An Admin-scope key signs in to the management API as its owner, so a
	// member makes only their own, whatever their role.
	// (The webhook's cache may not know adm as a member yet.)
	g.Eventually(func() error {
		k := adminKey("admin-for-alice")
		err := a.Create(ctx, k)
		if err == nil {
			_ = k8sClient.Delete(ctx, k)
			return errors.New("created before the webhook knew the member")
		}
		return err
	}).Should(MatchError(ContainSubstring("spec.owner: Forbidden: an Admin-scope key signs in to the management API as its owner, " +
		"so a member may only make their own: set spec.owner to adm@example.com, or ask alice@example.com to make the key")))
	ownKey := adminKey("admin-admin")
	ownKey.Spec.Owner = "adm@example.com"
	g.Eventually(func() error { return a.Create(ctx, ownKey) }).Should(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ownKey), ownKey)).To(Succeed())
	bossPatch := client.MergeFrom(ownKey.DeepCopy())
	ownKey.Spec.Owner = "boss@example.com"
	refusedWith(g, o.Patch(ctx, ownKey.DeepCopy(), bossPatch), "spec.owner: Forbidden: the owner of an Admin-scope key cannot change")

	// Nor may a Developer send a key elsewhere, label its Secret for tools
	// that copy Secrets, or change an Admin-scope key; revoking one is fine.
	delivered := newAPIKey("rules-proj", "dev-delivered")
	delivered.Spec.Delivery = &hubv1.KeyDelivery{ExternalSecret: &hubv1.ExternalSecretDelivery{
		SecretStoreRef: hubv1.SecretStoreRef{Name: "vault"}, RemoteKey: "stolen"}}
	refusedWith(g, d.Create(ctx, delivered), "spec.delivery: Forbidden: delivering a key to an external store needs the Admin or Owner role")
	labelled := newAPIKey("rules-proj", "dev-labelled")
	labelled.Spec.SecretTemplate = &hubv1.SecretTemplate{Annotations: map[string]string{"reflector.v1.k8s.emberstack.com/reflection-allowed": "true"}}
	refusedWith(g, d.Create(ctx, labelled), "labels or annotations on a key's Secret needs the Admin or Owner role")
	ak := &hubv1.APIKey{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "rules-proj", Name: "admin-admin"}, ak)).To(Succeed())
	keyPatch := client.MergeFrom(ak.DeepCopy())
	ak.Spec.Label = "taken over"
	refusedWith(g, d.Patch(ctx, ak.DeepCopy(), keyPatch), `changing an Admin-scope key in project "rules-proj" needs the Admin or Owner role`)
	ak.Spec.Label = ""
	ak.Spec.Revoked = true
	g.Expect(d.Patch(ctx, ak, client.MergeFrom(&hubv1.APIKey{ObjectMeta: ak.ObjectMeta, Spec: func() hubv1.APIKeySpec {
		s := ak.Spec
		s.Revoked = false
		return s
	}()}))).To(Succeed(), "a Developer may revoke any key")

	// One person is one Member.
	refusedWith(g, a.Create(ctx, newMember("rules-dup", "rdev@example.com", hubv1.RoleViewer)),
		"spec.email: Invalid value: \"rdev@example.com\": Member rules-dev already has this email")

	// Owners: an Admin cannot make, change or remove one.
	refusedWith(g, a.Create(ctx, newMember("rules-new-owner", "newowner@example.com", hubv1.RoleOwner)),
		"spec.role: Forbidden: making a member an Owner needs the Owner role; adm@example.com is an Admin")
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
	patch := client.MergeFrom(dev.DeepCopy())
	dev.Spec.Role = hubv1.RoleOwner
	refusedWith(g, a.Patch(ctx, dev, patch), "making a member an Owner needs the Owner role")
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(boss), boss)).To(Succeed())
	patch = client.MergeFrom(boss.DeepCopy())
	boss.Spec.Disabled = true
	refusedWith(g, a.Patch(ctx, boss, patch), "changing an Owner needs the Owner role")
	refusedWith(g, a.Delete(ctx, boss), "removing an Owner needs the Owner role; adm@example.com is an Admin")

	// The plan: Owners only. Other settings: Admins too.
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	if err := k8sClient.Create(ctx, org); err == nil {
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	planPatch := client.MergeFrom(org.DeepCopy())
	org.Spec.Plan = hubv1.PlanEnterprise
	refusedWith(g, a.Patch(ctx, org.DeepCopy(), planPatch), "spec.plan: Forbidden: changing the plan needs the Owner role")
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	prefixPatch := client.MergeFrom(org.DeepCopy())
	org.Spec.Security.UsernamePrefix = "oidc:"
	refusedWith(g, a.Patch(ctx, org.DeepCopy(), prefixPatch), "changing the username prefix needs the Owner role")
	// Single sign-on's provider vouches for every email, an Owner's too.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	ssoPatch := client.MergeFrom(org.DeepCopy())
	org.Spec.Security.SSO = &hubv1.SSOPolicy{OIDC: &hubv1.OIDCProvider{IssuerURL: "https://idp.example", ClientID: "hub",
		ClientSecretRef: hubv1.SecretKeyRef{Name: "oidc", Key: "secret"}}}
	refusedWith(g, a.Patch(ctx, org.DeepCopy(), ssoPatch), "spec.security.sso: Forbidden: changing single sign-on needs the Owner role")
	g.Eventually(func() error {
		o2 := &hubv1.Organization{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(org), o2); err != nil {
			return err
		}
		p := client.MergeFrom(o2.DeepCopy())
		o2.Spec.DisplayName = "Renamed by an Admin"
		return a.Patch(ctx, o2, p)
	}).Should(Succeed())

	// Deleting a project: Owners only.
	refusedWith(g, a.Delete(ctx, proj.DeepCopy()), "deleting a project needs the Owner role; adm@example.com is an Admin")

	// The last Owner stays: not demoted, not removed, until another is made.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(boss), boss)).To(Succeed())
	patch = client.MergeFrom(boss.DeepCopy())
	boss.Spec.Role = hubv1.RoleAdmin
	refusedWith(g, o.Patch(ctx, boss, patch), "rules-boss is the last Owner, and the organization must keep one")
	refusedWith(g, o.Delete(ctx, boss), "rules-boss is the last Owner")
	second := newMember("rules-second", "second@example.com", hubv1.RoleOwner)
	g.Expect(o.Create(ctx, second)).To(Succeed(), "an Owner makes another Owner")
	g.Eventually(func() error { return o.Patch(ctx, boss, patch) }).Should(Succeed())
	// rules-second stays behind: it is now the last Owner, which nobody,
	// not even a cluster administrator, may remove.
	refusedWith(g, k8sClient.Delete(ctx, second), "rules-second is the last Owner")
}
