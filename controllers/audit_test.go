package controllers_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/server"
)

// The suite's usage server, in process: it keeps the audit log the
// manager's webhooks send.
var (
	auditStores *server.Stores
	auditOpts   operator.AuditOptions
)

// startAuditServer serves the audit API on loopback with a real store, and
// gives the manager a ServiceAccount token that RBAC lets write to it.
func startAuditServer(ctx context.Context) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "hub-audit-")
	if err != nil {
		return nil, err
	}
	if auditStores, err = server.OpenStores(ctx, "sqlite:"+filepath.Join(dir, "usage.db")); err != nil {
		return nil, err
	}
	srv := &server.Server{Store: auditStores.Usage, Audit: auditStores.Audit, Auth: &server.Authorizer{Client: k8sClient, Clock: clock.RealClock{}}, Log: ctrl.Log}
	hs := httptest.NewServer(srv.Handler())
	stop = func() {
		hs.Close()
		_ = auditStores.Close()
		_ = os.RemoveAll(dir)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hub-audit"}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "manager"}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-audit-writer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{hubv1.GroupVersion.Group}, Resources: []string{"auditevents"}, Verbs: []string{"create"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-audit-writer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: sa.Name}}}
	for _, o := range []client.Object{ns, sa, role, binding} {
		if err := k8sClient.Create(ctx, o); err != nil {
			stop()
			return nil, err
		}
	}
	tr, err := kubernetes.NewForConfigOrDie(restCfg).CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		stop()
		return nil, err
	}
	auditOpts = operator.AuditOptions{ServerURL: hs.URL, Token: func() (string, error) { return tr.Status.Token, nil },
		SpoolDir: filepath.Join(dir, "spool")}
	return stop, nil
}

func auditEntries(g Gomega, f auditlog.Filter) []auditlog.Entry {
	entries, err := auditStores.Audit.AuditEntries(context.Background(), f)
	g.Expect(err).NotTo(HaveOccurred())
	return entries
}

// TestAuditLog: changes to hub resources are recorded with the real actor
// (the user the API server authenticated) and, for roles and membership,
// the old and new values; a dry run and a change the hub refuses are not.
func TestAuditLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	owner := newMember("audit-owner", "auditowner@example.com", hubv1.RoleOwner)
	alice := newMember("audit-alice", "alice.audit@example.com", hubv1.RoleDeveloper)
	admin := newMember("audit-admin", "auditadmin@example.com", hubv1.RoleAdmin)
	for _, m := range []*hubv1.Member{owner, admin} {
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	}
	a := as(g, "auditadmin@example.com")
	g.Eventually(func() error { return a.Create(ctx, alice) }).Should(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, alice) })

	// A role change by the Admin: who, and the old and new role.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(alice), alice)).To(Succeed())
	patch := client.MergeFrom(alice.DeepCopy())
	alice.Spec.Role = hubv1.RoleAdmin
	g.Expect(a.Patch(ctx, alice, patch)).To(Succeed())
	// A dry run, and a change the hub refuses, leave no entry.
	dry := client.MergeFrom(alice.DeepCopy())
	alice.Spec.Role = hubv1.RoleViewer
	g.Expect(a.Patch(ctx, alice, dry, client.DryRunAll)).To(Succeed())
	refused := client.MergeFrom(alice.DeepCopy())
	alice.Spec.Role = hubv1.RoleOwner
	g.Expect(a.Patch(ctx, alice, refused)).NotTo(Succeed())

	g.Eventually(func(g Gomega) {
		entries := auditEntries(g, auditlog.Filter{Kind: "Member", Name: "audit-alice"})
		g.Expect(entries).To(HaveLen(2), "create and one update; the dry run and the refused change are not there")
		created, changed := entries[0], entries[1]
		g.Expect(created.Action).To(Equal("create"))
		g.Expect(created.Actor).To(Equal("auditadmin@example.com"))
		g.Expect(created.Changes).To(ContainElement(auditlog.FieldChange{Field: "spec.role", Old: "", New: "Developer"}))
		g.Expect(changed.Action).To(Equal("update"))
		g.Expect(changed.Actor).To(Equal("auditadmin@example.com"))
		g.Expect(changed.Groups).To(ContainElement("system:authenticated"))
		g.Expect(changed.Changes).To(Equal([]auditlog.FieldChange{{Field: "spec.role", Old: "Developer", New: "Admin"}}))
		g.Expect(changed.UID).To(Equal(string(alice.UID)))
	}, 15*time.Second).Should(Succeed())

	// A member who changes things is active.
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(admin), admin)).To(Succeed())
		g.Expect(admin.Status.LastActiveAt).NotTo(BeNil())
	}, 15*time.Second).Should(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(owner), owner)).To(Succeed())
	g.Expect(owner.Status.LastActiveAt).To(BeNil(), "the owner changed nothing")

	// Listing by actor finds the Admin's changes.
	g.Eventually(func() int { return len(auditEntries(g, auditlog.Filter{Actor: "auditadmin@example.com"})) }, 15*time.Second).
		Should(BeNumerically(">=", 2))
}
