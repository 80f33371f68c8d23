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

// TestConditionsHaveTheirOwners: on a Project and on the Organization,
// the controller's conditions and the cap evaluation's CapReached live side
// by side; clearing CapReached leaves the controller's, and the
// controller's writes (which leave CapReached out) leave it.
func TestConditionsHaveTheirOwners(t *testing.T) {
	for _, tc := range []struct {
		obj        client.Object
		conditions func(client.Object) *[]metav1.Condition
		owner      string
	}{
		{&hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "converge-project"}},
			func(o client.Object) *[]metav1.Condition { return &o.(*hubv1.Project).Status.Conditions },
			statusapply.OwnerProjectController},
		{&hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}},
			func(o client.Object) *[]metav1.Condition { return &o.(*hubv1.Organization).Status.Conditions },
			statusapply.OwnerOrganizationController},
	} {
		t.Run(tc.owner, func(t *testing.T) { conditionsHaveTheirOwners(t, tc.obj, tc.conditions, tc.owner) })
	}
}

func conditionsHaveTheirOwners(t *testing.T, obj client.Object, conditionsOf func(client.Object) *[]metav1.Condition, owner string) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	read := func() client.Object {
		cur := obj.DeepCopyObject().(client.Object)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), cur)).To(Succeed())
		return cur
	}
	controllerWrites := func(message string) {
		retryOnConflict(g, func() error {
			cur := read()
			meta.SetStatusCondition(conditionsOf(cur), metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
				Reason: hubv1.ReconciledReason, Message: message})
			fields, err := statusapply.Select(map[string]any{"conditions": *conditionsOf(cur)}, "conditions")
			if err != nil {
				return err
			}
			statusapply.DropConditions(fields, hubv1.CapReachedCondition)
			return statusapply.ApplyIfUnchanged(ctx, k8sClient, cur, fields, owner)
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
		g.Expect(statusapply.Apply(ctx, k8sClient, obj.DeepCopyObject().(client.Object), map[string]any{"conditions": conds}, statusapply.OwnerCaps)).To(Succeed())
	}
	conditions := func() map[string]string {
		out := map[string]string{}
		for _, c := range *conditionsOf(read()) {
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

// TestMemberWritersConverge: the access controller (phase, username, keys
// and Ready), the invitations (the invitation fields and InvitationSent) and
// the activity writer (lastActiveAt, mfaEnrolled) apply one Member's status
// at once, each locked on the version it read, many times over. All three
// converge on their last write, and no writer's apply removes another's
// fields or conditions.
func TestMemberWritersConverge(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	member := &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "converge-member"},
		Spec: hubv1.MemberSpec{Email: "converge@example.com", Role: hubv1.RoleDeveloper}}
	g.Expect(k8sClient.Create(ctx, member)).To(Succeed())
	ref := client.ObjectKeyFromObject(member)
	at := func(i int) metav1.Time { return metav1.NewTime(time.Date(2026, 11, 30, 12, 0, i, 0, time.UTC)) }

	// write reads the Member, lets change fill the writer's fields, and
	// applies only those, as the writers in controllers/ and
	// internal/invitations do.
	write := func(owner string, fields []string, condition string, change func(*hubv1.MemberStatus)) {
		retryOnConflict(g, func() error {
			m := &hubv1.Member{}
			if err := k8sClient.Get(ctx, ref, m); err != nil {
				return err
			}
			change(&m.Status)
			owned, err := statusapply.Select(m.Status, fields...)
			if err != nil {
				return err
			}
			if condition != "" {
				statusapply.KeepConditions(owned, condition)
			}
			return statusapply.ApplyIfUnchanged(ctx, k8sClient, m, owned, owner)
		})
	}
	access := func(i int) {
		write(statusapply.OwnerAccessController, []string{"phase", "username", "keysOwned", "observedGeneration", "conditions"},
			hubv1.ReadyCondition, func(s *hubv1.MemberStatus) {
				s.Phase, s.Username, s.KeysOwned = hubv1.MemberActive, "oidc:converge@example.com", int32(i+1)
				meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
					Reason: hubv1.ReconciledReason, Message: fmt.Sprintf("round %d", i)})
			})
	}
	invite := func(i int) {
		write(statusapply.OwnerInvitations, []string{"invitationDigest", "invitationSentAt", "acceptedAt", "conditions"},
			hubv1.InvitationSentCondition, func(s *hubv1.MemberStatus) {
				sent := at(i)
				s.InvitationDigest, s.InvitationSentAt = fmt.Sprintf("digest-%d", i), &sent
				meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.InvitationSentCondition, Status: metav1.ConditionTrue,
					Reason: "Sent", Message: fmt.Sprintf("invitation %d", i)})
			})
	}
	activity := func(i int) {
		write(statusapply.OwnerMemberActivity, []string{"lastActiveAt", "mfaEnrolled"}, "", func(s *hubv1.MemberStatus) {
			seen := at(i)
			s.LastActiveAt, s.MFAEnrolled = &seen, true
		})
	}
	const rounds = 30
	var wg sync.WaitGroup
	for _, writer := range []func(int){access, invite, activity} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds - 1 {
				writer(i)
			}
		}()
	}
	wg.Wait()
	// A last round in turn, so that each writer's final apply comes after
	// the others' fields are set, whatever the interleaving above was.
	for _, writer := range []func(int){activity, invite, access} {
		writer(rounds - 1)
	}

	got := &hubv1.Member{}
	g.Expect(k8sClient.Get(ctx, ref, got)).To(Succeed())
	g.Expect(got.Status.Phase).To(Equal(hubv1.MemberActive))
	g.Expect(got.Status.KeysOwned).To(BeEquivalentTo(rounds), "the access controller's last write")
	g.Expect(got.Status.InvitationDigest).To(Equal(fmt.Sprintf("digest-%d", rounds-1)), "the invitations' last write")
	g.Expect(got.Status.LastActiveAt.Time).To(BeTemporally("==", at(rounds-1).Time), "the activity writer's last write")
	g.Expect(got.Status.MFAEnrolled).To(BeTrue())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hubv1.ReadyCondition).Message).To(Equal(fmt.Sprintf("round %d", rounds-1)))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, hubv1.InvitationSentCondition).Message).To(Equal(fmt.Sprintf("invitation %d", rounds-1)))

	owned := map[string]string{}
	for _, f := range got.ManagedFields {
		if f.Subresource == "status" && f.FieldsV1 != nil {
			owned[f.Manager] = f.FieldsV1.GetRawString()
		}
	}
	g.Expect(owned).To(HaveLen(3))
	g.Expect(owned[statusapply.OwnerAccessController]).To(And(ContainSubstring(`"f:keysOwned"`), ContainSubstring(`"k:{\"type\":\"Ready\"}"`)))
	g.Expect(owned[statusapply.OwnerAccessController]).NotTo(Or(ContainSubstring(`"f:lastActiveAt"`), ContainSubstring(`"f:invitationDigest"`),
		ContainSubstring(`InvitationSent`)))
	g.Expect(owned[statusapply.OwnerInvitations]).To(And(ContainSubstring(`"f:invitationDigest"`), ContainSubstring(`InvitationSent`)))
	g.Expect(owned[statusapply.OwnerInvitations]).NotTo(Or(ContainSubstring(`"f:keysOwned"`), ContainSubstring(`"f:lastActiveAt"`),
		ContainSubstring(`"k:{\"type\":\"Ready\"}"`)))
	g.Expect(owned[statusapply.OwnerMemberActivity]).To(And(ContainSubstring(`"f:lastActiveAt"`), ContainSubstring(`"f:mfaEnrolled"`)))
	g.Expect(owned[statusapply.OwnerMemberActivity]).NotTo(Or(ContainSubstring(`"f:keysOwned"`), ContainSubstring(`"f:conditions"`)))
}
