package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestReconcileNamespaceNeverAdopts covers the race that admission cannot:
// a namespace with the project's name that appears between admission and
// reconciliation. The envtest suite covers the paths the API server can reach.
func TestReconcileNamespaceNeverAdopts(t *testing.T) {
	project := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "race", UID: "project-uid", Generation: 1}}
	isController := true
	tests := []struct {
		name       string
		namespace  *corev1.Namespace
		wantReason string
		wantStall  bool
	}{
		{
			name:       "someone else's namespace",
			namespace:  &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "race"}},
			wantReason: hubv1.NamespaceConflictReason,
			wantStall:  true,
		},
		{
			name: "labelled like ours but owned by an earlier project of the same name",
			namespace: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name:   "race",
				Labels: map[string]string{hubv1.ProjectLabel: "race"},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: hubv1.GroupVersion.String(), Kind: "Project", Name: "race",
					UID: types.UID("earlier-project-uid"), Controller: &isController,
				}},
			}},
			wantReason: hubv1.NamespaceConflictReason,
			wantStall:  true,
		},
		{
			name: "an earlier project's namespace still terminating",
			namespace: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name:              "race",
				Labels:            map[string]string{hubv1.ProjectLabel: "race"},
				DeletionTimestamp: &metav1.Time{Time: time.Now()},
				Finalizers:        []string{"kubernetes"},
			}},
			wantReason: hubv1.NamespaceTerminatingReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			c := fake.NewClientBuilder().WithScheme(testScheme(g)).WithObjects(tt.namespace).Build()
			r := &ProjectReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10)}
			s := &projectScope{project: project.DeepCopy()}

			g.Expect(r.reconcileNamespace(context.Background(), s)).To(Succeed())
			computeProjectStatus(s)

			g.Expect(s.namespace).To(BeNil(), "the namespace must not be taken as the project's")
			g.Expect(s.project.Status.Phase).To(Equal(hubv1.ProjectPending))
			nsReady := meta.FindStatusCondition(s.project.Status.Conditions, hubv1.NamespaceReadyCondition)
			g.Expect(nsReady.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(nsReady.Reason).To(Equal(tt.wantReason))
			g.Expect(meta.IsStatusConditionTrue(s.project.Status.Conditions, hubv1.StalledCondition)).To(Equal(tt.wantStall))
			g.Expect(s.project.Status.Conditions[0].Type).To(Equal(hubv1.ReadyCondition))

			// The namespace is left exactly as it was.
			got := &corev1.Namespace{}
			g.Expect(c.Get(context.Background(), types.NamespacedName{Name: "race"}, got)).To(Succeed())
			g.Expect(got.OwnerReferences).To(Equal(tt.namespace.OwnerReferences))
			g.Expect(got.Labels).To(Equal(tt.namespace.Labels))
		})
	}
}

func testScheme(g Gomega) *runtime.Scheme {
	s := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(s)).To(Succeed())
	g.Expect(hubv1.AddToScheme(s)).To(Succeed())
	return s
}
