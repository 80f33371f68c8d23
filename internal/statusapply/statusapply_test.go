package statusapply_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/config"
	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/statusapply"
)

var k8sClient client.Client

func TestMain(m *testing.M) {
	crds, err := config.CRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster, err := devcluster.Start(devcluster.Options{Scheme: scheme.New(), CRDs: crds})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme.New()}); err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = cluster.Stop()
	os.Exit(code)
}

// retryOnConflict runs a locked write until it is not refused for a stale
// read, as a controller's requeue would.
func retryOnConflict(g Gomega, write func() error) {
	for range 100 {
		err := write()
		if !apierrors.IsConflict(err) {
			g.Expect(err).NotTo(HaveOccurred())
			return
		}
	}
	g.Expect(false).To(BeTrue(), "still conflicting after 100 tries")
}

// TestAPIKeyWritersConverge: the APIKey controller (an update of the status
// it read) and the usage server (usage and lastUsedAt) write
// one key's status at once, many times over. Both converge on their last
// write, and neither ever removes the other's fields.
func TestAPIKeyWritersConverge(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "converge-keys"}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	key := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "k"}, Spec: hubv1.APIKeySpec{Owner: "dev@example.com"}}
	g.Expect(k8sClient.Create(ctx, key)).To(Succeed())
	ref := client.ObjectKeyFromObject(key) // each writer decodes answers into objects of its own

	const rounds = 40
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the controller
		defer wg.Done()
		for i := range rounds {
			retryOnConflict(g, func() error {
				k := &hubv1.APIKey{}
				if err := k8sClient.Get(ctx, ref, k); err != nil {
					return err
				}
				k.Status.Phase, k.Status.KeyID, k.Status.Revision = hubv1.KeyActive, "AbCdEf0123", int64(i+1)
				meta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
					Reason: hubv1.ReconciledReason, Message: fmt.Sprintf("round %d", i)})
				// As the controller does: an update that sends usage back as read.
				return k8sClient.Status().Update(ctx, k, client.FieldOwner(statusapply.OwnerAPIKeyController))
			})
		}
	}()
	go func() { // the usage server, which reads nothing
		defer wg.Done()
		for i := range rounds {
			usage, err := statusapply.Fields(hubv1.UsageSummary{Calls: int64(i + 1), InputTokens: int64(10 * (i + 1))})
			g.Expect(err).NotTo(HaveOccurred())
			mine := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name}}
			g.Expect(statusapply.Merge(ctx, k8sClient, mine, map[string]any{"usage": usage,
				"lastUsedAt": metav1.NewTime(time.Date(2026, 11, 30, 12, 0, i, 0, time.UTC))}, statusapply.OwnerUsage)).To(Succeed())
		}
	}()
	wg.Wait()

	got := &hubv1.APIKey{}
	g.Expect(k8sClient.Get(ctx, ref, got)).To(Succeed())
	g.Expect(got.Status.Revision).To(BeEquivalentTo(rounds), "the controller's last write")
	g.Expect(got.Status.Phase).To(Equal(hubv1.KeyActive))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hubv1.ReadyCondition).Message).To(Equal(fmt.Sprintf("round %d", rounds-1)))
	g.Expect(got.Status.Usage).NotTo(BeNil())
	g.Expect(got.Status.Usage.Calls).To(BeEquivalentTo(rounds), "the usage server's last write")
	g.Expect(got.Status.LastUsedAt.Time).To(BeTemporally("==", time.Date(2026, 11, 30, 12, 0, rounds-1, 0, time.UTC)))
	owned := map[string]string{}
	for _, f := range got.ManagedFields {
		if f.Subresource == "status" && f.FieldsV1 != nil {
			owned[f.Manager] = f.FieldsV1.GetRawString()
		}
	}
	g.Expect(owned).To(HaveLen(2))
	g.Expect(owned).To(HaveKey(statusapply.OwnerUsage))
	g.Expect(owned[statusapply.OwnerUsage]).To(And(ContainSubstring(`"f:usage"`), ContainSubstring(`"f:lastUsedAt"`)))
	g.Expect(owned[statusapply.OwnerUsage]).NotTo(ContainSubstring(`"f:revision"`))
	g.Expect(owned).To(HaveKey(statusapply.OwnerAPIKeyController))
	g.Expect(owned[statusapply.OwnerAPIKeyController]).To(ContainSubstring(`"f:revision"`))
	g.Expect(owned[statusapply.OwnerAPIKeyController]).NotTo(Or(ContainSubstring(`"f:usage"`), ContainSubstring(`"f:lastUsedAt"`)),
		"sending usage back unchanged does not take it over")
}

// TestProjectConditionsHaveTheirOwners: the Project controller's conditions
// and the cap evaluation's CapReached live side by side; clearing
// CapReached leaves the controller's, and the controller's writes (which
// leave CapReached out) leave it.
func TestProjectConditionsHaveTheirOwners(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	p := &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "converge-project"}}
	g.Expect(k8sClient.Create(ctx, p)).To(Succeed())
	controllerWrites := func(message string) {
		retryOnConflict(g, func() error {
			cur := &hubv1.Project{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur); err != nil {
				return err
			}
			cur.Status.Phase = hubv1.ProjectActive
			meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
				Reason: hubv1.ReconciledReason, Message: message})
			fields, err := statusapply.Fields(cur.Status, "usage")
			if err != nil {
				return err
			}
			statusapply.DropConditions(fields, hubv1.CapReachedCondition)
			return statusapply.ApplyIfUnchanged(ctx, k8sClient, cur, fields, statusapply.OwnerProjectController)
		})
	}
	capsWrite := func(reached bool) {
		conds := []any{}
		if reached {
			c, err := statusapply.Fields(metav1.Condition{Type: hubv1.CapReachedCondition, Status: metav1.ConditionTrue,
				Reason: hubv1.CapReachedReason, Message: "stop", LastTransitionTime: metav1.Now()})
			g.Expect(err).NotTo(HaveOccurred())
			conds = append(conds, c)
		}
		g.Expect(statusapply.Apply(ctx, k8sClient, p, map[string]any{"conditions": conds}, statusapply.OwnerCaps)).To(Succeed())
	}
	conditions := func() map[string]string {
		cur := &hubv1.Project{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
		out := map[string]string{}
		for _, c := range cur.Status.Conditions {
			out[c.Type] = c.Message
		}
		return out
	}
	controllerWrites("first")
	capsWrite(true)
	g.Expect(conditions()).To(Equal(map[string]string{hubv1.ReadyCondition: "first", hubv1.CapReachedCondition: "stop"}))
	controllerWrites("second")
	g.Expect(conditions()).To(Equal(map[string]string{hubv1.ReadyCondition: "second", hubv1.CapReachedCondition: "stop"}),
		"the controller's write leaves CapReached")
	capsWrite(false)
	g.Expect(conditions()).To(Equal(map[string]string{hubv1.ReadyCondition: "second"}), "clearing CapReached leaves Ready")
}
