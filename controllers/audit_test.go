package controllers_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// laterWebhook is another validating webhook of the cluster, called beside
// the hub's: it refuses Members labelled refuse, and holds a request of a
// Member labelled hold while a gate is set, so that a test can write the
// Member meanwhile and make the held request meet a conflict.
type laterWebhook struct {
	gates   chan chan struct{} // a gate a held request waits on
	arrived chan struct{}      // a request took a gate
}

const laterWebhookLabel = "audit-test.hub.minimax.io/later-webhook"

func (h *laterWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	raw := review.Request.Object.Raw
	if review.Request.Operation == admissionv1.Delete {
		raw = review.Request.OldObject.Raw
	}
	var m hubv1.Member
	_ = json.Unmarshal(raw, &m)
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	switch m.Labels[laterWebhookLabel] {
	case "refuse":
		resp.Allowed, resp.Result = false, &metav1.Status{Message: "refused by the later webhook"}
	case "hold":
		select {
		case gate := <-h.gates:
			h.arrived <- struct{}{}
			select {
			case <-gate:
			case <-time.After(8 * time.Second):
			}
		default:
		}
	}
	review.Response = resp
	_ = json.NewEncoder(w).Encode(review)
}

// installLaterWebhook serves a laterWebhook on loopback and registers it
// for Members that carry its label.
func installLaterWebhook(t *testing.T, g Gomega) *laterWebhook {
	h := &laterWebhook{gates: make(chan chan struct{}, 1), arrived: make(chan struct{}, 1)}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "audit-test-later-webhook"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "later.audit-test.hub.minimax.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL + "/validate"), CABundle: caBundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}, Rule: admissionregistrationv1.Rule{APIGroups: []string{hubv1.GroupVersion.Group}, APIVersions: []string{"*"}, Resources: []string{"members"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: laterWebhookLabel, Operator: metav1.LabelSelectorOpExists}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](15),
		}},
	}
	g.Expect(k8sClient.Create(context.Background(), cfg)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cfg) })
	return h
}

// TestAuditRecordsOnlyStoredChanges: a change that the hub's admission
// allows but another admission webhook refuses, and one that loses an
// update conflict after admission, leave no audit entry; a change stored
// after the API server asked admission twice (a patch retried after a
// concurrent write) leaves exactly one, with the version it produced.
func TestAuditRecordsOnlyStoredChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	later := installLaterWebhook(t, g)
	admin := newMember("stored-admin", "stored.admin@example.com", hubv1.RoleAdmin)
	g.Expect(k8sClient.Create(ctx, admin)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, admin) })
	a := as(g, admin.Spec.Email)
	const name = "stored-bob"
	entries := func(g Gomega) []auditlog.Entry { return auditEntries(g, auditlog.Filter{Kind: "Member", Name: name}) }

	// A create the later webhook refuses: never stored, never recorded.
	refused := newMember(name, "bob.stored@example.com", hubv1.RoleDeveloper)
	refused.Labels = map[string]string{laterWebhookLabel: "refuse"}
	g.Eventually(func() error { return a.Create(ctx, refused) }).Should(MatchError(ContainSubstring("refused by the later webhook")))

	// The create that is stored: one entry.
	bob := newMember(name, "bob.stored@example.com", hubv1.RoleDeveloper)
	bob.Labels = map[string]string{laterWebhookLabel: "hold"}
	g.Expect(a.Create(ctx, bob)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, bob) })

	// An update the later webhook refuses. (The access controller writes
	// bob's status meanwhile: an update that meets it before admission is
	// tried again.)
	get := func() *hubv1.Member {
		cur := &hubv1.Member{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(bob), cur)).To(Succeed())
		return cur
	}
	g.Eventually(func() error {
		change := get()
		change.Spec.Role, change.Labels[laterWebhookLabel] = hubv1.RoleViewer, "refuse"
		return a.Update(ctx, change)
	}).Should(MatchError(ContainSubstring("refused by the later webhook")))

	// writeWhileHeld runs write on a fresh read of bob, holds it in the
	// later webhook (after the hub's admission allowed it), and writes
	// bob's status meanwhile, so that its resource version moves on. A
	// write that meets a conflict before it reaches admission is tried
	// again.
	writeWhileHeld := func(write func(cur *hubv1.Member) error) error {
		for range 20 {
			gate := make(chan struct{})
			later.gates <- gate
			result := make(chan error, 1)
			cur := get()
			go func() { result <- write(cur) }()
			select {
			case err := <-result:
				<-later.gates // not taken
				if apierrors.IsConflict(err) {
					continue
				}
				return fmt.Errorf("the write did not reach the later webhook: %w", err)
			case <-later.arrived:
			}
			other := get()
			patch := client.MergeFrom(other.DeepCopy())
			other.Status.KeysOwned++
			g.Expect(k8sClient.Status().Patch(ctx, other, patch)).To(Succeed())
			close(gate)
			return <-result
		}
		return fmt.Errorf("every try met a conflict before admission")
	}

	// An update locked on the version it read loses to the status write:
	// the API server answers 409 after admission allowed it.
	err := writeWhileHeld(func(cur *hubv1.Member) error {
		cur.Spec.Role = hubv1.RoleViewer
		return a.Update(ctx, cur)
	})
	g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "want 409 Conflict, got %v", err)

	// A patch without a version is tried again by the API server after the
	// conflict, asking admission a second time; it is stored once.
	var patched *hubv1.Member
	g.Expect(writeWhileHeld(func(cur *hubv1.Member) error {
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Role, patched = hubv1.RoleAdmin, cur
		return a.Patch(ctx, cur, patch)
	})).To(Succeed())

	// Exactly the two stored changes, each once.
	g.Eventually(func(g Gomega) {
		got := entries(g)
		g.Expect(got).To(HaveLen(2))
		g.Expect(got[0].Action).To(Equal("create"))
		g.Expect(got[0].Changes).To(ContainElement(auditlog.FieldChange{Field: "spec.role", Old: "", New: "Developer"}))
		g.Expect(got[1].Action).To(Equal("update"))
		g.Expect(got[1].Actor).To(Equal(admin.Spec.Email))
		g.Expect(got[1].Changes).To(Equal([]auditlog.FieldChange{{Field: "spec.role", Old: "Developer", New: "Admin"}}))
		g.Expect(got[1].ResourceVersion).To(Equal(patched.ResourceVersion), "the version the stored patch produced")
	}, 15*time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) []auditlog.Entry { return entries(g) }, 3*time.Second, 500*time.Millisecond).Should(HaveLen(2),
		"the refused create and update and the conflicting update leave nothing, even later")
}
