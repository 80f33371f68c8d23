package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

func TestProjectCreatesItsNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	project := newProject("payments")
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })

	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(project), project)).To(Succeed())
		g.Expect(project.Status.Phase).To(Equal(hubv1.ProjectActive))
		g.Expect(project.Status.Namespace).To(Equal("payments"))
		g.Expect(project.Status.ObservedGeneration).To(Equal(project.Generation))
		g.Expect(project.Status.Conditions[0].Type).To(Equal(hubv1.ReadyCondition))
		g.Expect(project.Status.Conditions[0].Status).To(Equal(metav1.ConditionTrue))
		g.Expect(project.Status.Conditions[0].ObservedGeneration).To(Equal(project.Generation))
		g.Expect(meta.IsStatusConditionTrue(project.Status.Conditions, hubv1.NamespaceReadyCondition)).To(BeTrue())
	}).Should(Succeed())
	g.Expect(project.Finalizers).To(ContainElement(hubv1.ProjectFinalizer))

	ns := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "payments"}, ns)).To(Succeed())
	g.Expect(ns.Labels).To(HaveKeyWithValue(hubv1.ProjectLabel, "payments"))
	g.Expect(metav1.IsControlledBy(ns, project)).To(BeTrue(), "the namespace should be controlled by the project")
}

func TestProjectArchive(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	project := newProject("archive-me")
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	waitForPhase(g, project, hubv1.ProjectActive)

	setArchived(g, project, true)
	waitForPhase(g, project, hubv1.ProjectArchived)
	ready := meta.FindStatusCondition(project.Status.Conditions, hubv1.ReadyCondition)
	g.Expect(ready.Reason).To(Equal(hubv1.ArchivedReason))
	g.Expect(ready.ObservedGeneration).To(Equal(project.Generation))

	setArchived(g, project, false)
	waitForPhase(g, project, hubv1.ProjectActive)
}

func TestProjectNameValidation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		wantMessage string
	}{
		{name: "kube-system", wantMessage: "belong to Kubernetes system namespaces"},
		{name: "default", wantMessage: "belong to Kubernetes system namespaces"},
		{name: "kube-public", wantMessage: "belong to Kubernetes system namespaces"},
		{name: "Has.Dots", wantMessage: "a lowercase RFC 1123 subdomain"}, // the API server's own check
		{name: "has.dots", wantMessage: "becomes its namespace's name"},
		// Namespaces that add-ons create, perhaps after the hub.
		{name: "istio-system", wantMessage: `names matching "*-system" are reserved`},
		{name: "cert-manager", wantMessage: `names matching "cert-manager" are reserved`},
		{name: "openshift-monitoring", wantMessage: `names matching "openshift-*" are reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(ctx, newProject(tt.name))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.wantMessage))
			g.Expect(err.Error()).To(ContainSubstring("metadata.name"), "the field path, not <nil>")
			g.Expect(err.Error()).NotTo(ContainSubstring("<nil>"))
		})
	}
}

func TestProjectNeverAdoptsAnExistingNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-legacy"}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())

	err := k8sClient.Create(ctx, newProject("team-legacy"))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("metadata.name"))
	g.Expect(err.Error()).To(ContainSubstring(`namespace "team-legacy" already exists`))

	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), ns)).To(Succeed())
	g.Expect(ns.Labels).NotTo(HaveKey(hubv1.ProjectLabel), "the namespace must be left untouched")
}

func TestProjectDeletion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	project := newProject("short-lived")
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	waitForPhase(g, project, hubv1.ProjectActive)

	// Something in the namespace, to be deleted with it.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "short-lived"}}
	g.Expect(k8sClient.Create(ctx, cm)).To(Succeed())

	// Without confirmation, deletion is refused and nothing changes.
	err := k8sClient.Delete(ctx, project)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("kubectl annotate project short-lived hub.minimax.io/confirm-delete=short-lived"))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(project), project)).To(Succeed())
	g.Expect(project.DeletionTimestamp).To(BeNil())

	// A confirmation naming another project does not count.
	patch := client.MergeFrom(project.DeepCopy())
	metav1.SetMetaDataAnnotation(&project.ObjectMeta, hubv1.ConfirmDeleteAnnotation, "payments")
	g.Expect(k8sClient.Patch(ctx, project, patch)).To(Succeed())
	g.Expect(apierrors.IsForbidden(k8sClient.Delete(ctx, project))).To(BeTrue())

	// Confirmed, the project goes and takes its namespace along.
	deleteProject(t, project)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm))).To(BeTrue())
}

func waitForPhase(g Gomega, project *hubv1.Project, phase hubv1.ProjectPhase) {
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(project), project)).To(Succeed())
		g.Expect(project.Status.ObservedGeneration).To(Equal(project.Generation))
		g.Expect(project.Status.Phase).To(Equal(phase))
	}).Should(Succeed())
}

func setArchived(g Gomega, project *hubv1.Project, archived bool) {
	patch := client.MergeFrom(project.DeepCopy())
	project.Spec.Archived = archived
	g.Expect(k8sClient.Patch(context.Background(), project, patch)).To(Succeed())
}

// TestServerReadsSecretsOnlyInProjects: the usage server holds no Secret
// permission of its own; each project namespace grants it get on Secrets
// there, and nowhere else, with a RoleBinding the manager makes with the
// namespace.
func TestServerReadsSecretsOnlyInProjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: suiteServerAccess.ClusterRole},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	if err := k8sClient.Create(ctx, reader); err != nil {
		g.Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "%v", err)
	}
	project := newProject("server-secrets")
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	waitForPhase(g, project, hubv1.ProjectActive)

	may := func(verb, namespace string) bool {
		return mayOnSecrets(g, suiteServerAccess.ServiceAccount, verb, namespace)
	}
	g.Eventually(func() bool { return may("get", "server-secrets") }).Should(BeTrue(), "get in the project's namespace")
	g.Expect(may("list", "server-secrets")).To(BeFalse(), "get only: no list")
	g.Expect(may("get", "kube-system")).To(BeFalse(), "nothing outside project namespaces")
	g.Expect(may("get", "default")).To(BeFalse())
}

// TestProjectNamespaceDeletedOutsideTheHub: a project's namespace deleted
// directly (not through its Project) is created again, empty; the Project
// says so with events and its NamespaceReady condition, and what was in
// the namespace (here an API key) is not restored.
func TestProjectNamespaceDeletedOutsideTheHub(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	project := newProject("ns-deleted")
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	waitForPhase(g, project, hubv1.ProjectActive)
	key := newAPIKey("ns-deleted", "lost")
	g.Expect(k8sClient.Create(ctx, key)).To(Succeed())
	waitForKeyPhase(g, key, hubv1.KeyActive)

	ns := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ns-deleted"}, ns)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, ns)).To(Succeed())
	g.Eventually(func(g Gomega) {
		again := &corev1.Namespace{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ns-deleted"}, again)).To(Succeed())
		g.Expect(again.UID).NotTo(Equal(ns.UID))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(project), project)).To(Succeed())
		ready := meta.FindStatusCondition(project.Status.Conditions, hubv1.NamespaceReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(hubv1.NamespaceRecreatedReason))
		g.Expect(ready.Message).To(ContainSubstring("are not restored"))
	}, 60*time.Second).Should(Succeed())
	g.Expect(project.Status.Phase).To(Equal(hubv1.ProjectActive))
	g.Expect(eventsFor(g, project, hubv1.NamespaceRecreatedReason)).NotTo(BeEmpty())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), &hubv1.APIKey{}))).To(BeTrue(),
		"the key went with the namespace, and is not restored")
}
