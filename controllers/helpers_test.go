package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

func init() {
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
}

func newProject(name string) *hubv1.Project {
	return &hubv1.Project{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       hubv1.ProjectSpec{DisplayName: "Test project " + name, CostCenter: "CC-1"},
	}
}

// deleteProject confirms and deletes a project, and waits until it and its
// namespace are gone.
func deleteProject(t *testing.T, project *hubv1.Project) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	key := client.ObjectKeyFromObject(project)
	current := &hubv1.Project{}
	if err := k8sClient.Get(ctx, key, current); apierrors.IsNotFound(err) {
		return
	}
	patch := client.MergeFrom(current.DeepCopy())
	metav1.SetMetaDataAnnotation(&current.ObjectMeta, hubv1.ConfirmDeleteAnnotation, project.Name)
	g.Expect(k8sClient.Patch(ctx, current, patch)).To(Succeed())
	g.Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, current))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, key, &hubv1.Project{})) &&
			apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: project.Name}, &corev1.Namespace{}))
	}).Should(BeTrue(), "project %s and its namespace should be deleted", project.Name)
}

// poke changes an annotation so that the object's controller reconciles it
// now, as any edit by a user would.
func poke(t *testing.T, obj client.Object) {
	t.Helper()
	g := NewWithT(t)
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations["test.hub.minimax.io/poke"] = time.Now().Format(time.RFC3339Nano)
	obj.SetAnnotations(annotations)
	g.Expect(k8sClient.Patch(context.Background(), obj, patch)).To(Succeed())
}

// mayOnSecrets asks the API server's authorizer whether sa may verb
// Secrets in namespace ("" for across the cluster).
func mayOnSecrets(g Gomega, sa types.NamespacedName, verb, namespace string) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Resource: "secrets"}}}
	g.Expect(k8sClient.Create(context.Background(), sar)).To(Succeed())
	return sar.Status.Allowed
}
