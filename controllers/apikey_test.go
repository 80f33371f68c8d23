package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/identity"
	"github.com/minimax/platform-hub/internal/keys"
)

func newAPIKey(namespace, name string) *hubv1.APIKey {
	return &hubv1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: hubv1.APIKeySpec{
			Label: "test key " + name,
			Owner: "alice@example.com",
		},
	}
}

func TestAPIKeyIssuedIntoSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-issue")

	apiKey := newAPIKey("keys-issue", "backend")
	apiKey.Spec.SecretTemplate = &hubv1.SecretTemplate{
		Labels:  map[string]string{"authorino.kuadrant.io/managed-by": "authorino"},
		Aliases: []string{"api_key"},
	}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())

	key := waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	status := apiKey.Status
	g.Expect(status.Revision).To(BeEquivalentTo(1))
	g.Expect(status.Lifetime).To(Equal(hubv1.DefaultKeyLifetime))
	g.Expect(status.ExpiresAt.Time).To(BeTemporally("==", status.CreatedAt.Add(90*24*time.Hour)))
	g.Expect(status.Conditions[0].Type).To(Equal(hubv1.ReadyCondition))
	g.Expect(status.Conditions[0].ObservedGeneration).To(Equal(apiKey.Generation))

	secret := keySecret(g, apiKey)
	g.Expect(secret.Data).To(HaveKeyWithValue("api_key", []byte(key.Reveal())), "the alias holds the key too")
	g.Expect(secret.Labels).To(HaveKeyWithValue("authorino.kuadrant.io/managed-by", "authorino"))
	g.Expect(secret.Labels).To(HaveKeyWithValue(hubv1.ProjectLabel, "keys-issue"))
	g.Expect(secret.Labels).To(HaveKeyWithValue(hubv1.KeyIDLabel, status.KeyID))
	g.Expect(secret.Labels).To(HaveKeyWithValue(hubv1.ScopeLabel, "Standard"))
	g.Expect(metav1.IsControlledBy(secret, apiKey)).To(BeTrue())
	g.Expect(secret.ManagedFields).To(ContainElement(HaveField("Manager", "platform-hub")))

	// Deleting the APIKey garbage-collects its Secret.
	g.Expect(k8sClient.Delete(ctx, apiKey)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}))
	}).Should(BeTrue(), "the Secret should be garbage-collected with its APIKey")
}

func TestAPIKeyExpiry(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-expiry")
	restoreClock(t)

	apiKey := newAPIKey("keys-expiry", "short")
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime30Days)
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	expiresAt := apiKey.Status.ExpiresAt.Time
	g.Expect(expiresAt).To(BeTemporally("==", apiKey.Status.CreatedAt.Add(30*24*time.Hour)))

	// One second before expiry the key still works.
	testClock.SetTime(expiresAt.Add(-time.Second))
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyActive))
	}, time.Second).Should(Succeed())

	// At expiresAt exactly it stops, and its Secret goes.
	testClock.SetTime(expiresAt)
	waitForKeyPhase(g, apiKey, hubv1.KeyExpired)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-expiry", Name: "short"}, &corev1.Secret{}))
	}).Should(BeTrue())
	g.Expect(apiKey.Status.KeyID).NotTo(BeEmpty(), "the key ID stays for audit")
	g.Eventually(func() []eventsv1.Event { return eventsFor(g, apiKey, hubv1.KeyExpiredReason) }).ShouldNot(BeEmpty())

	// Bumping the rotation trigger issues a fresh key.
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "after-expiry"}
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
	g.Expect(apiKey.Status.PreviousKey).To(BeNil(), "an expired key is not kept as the previous key")
	g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", expiresAt.Add(30*24*time.Hour)))
}

func TestAPIKeyRotation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-rotation")
	restoreClock(t)

	apiKey := newAPIKey("keys-rotation", "rotating")
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "1", Overlap: &metav1.Duration{Duration: time.Hour}}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	first := waitForKeyPhase(g, apiKey, hubv1.KeyActive)

	// A commit bumps the trigger: a new key, and the old one still valid.
	rotate := func(trigger string) {
		patch := client.MergeFrom(apiKey.DeepCopy())
		apiKey.Spec.Rotation.Trigger = trigger
		g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	}
	rotate("2")
	second := waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(second.ID()).NotTo(Equal(first.ID()))
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(first.ID()))
	g.Expect(apiKey.Status.PreviousKey.Digest).To(Equal(first.Digest()))
	g.Expect(apiKey.Status.PreviousKey.ValidUntil.Time).To(BeTemporally("==", apiKey.Status.CreatedAt.Add(time.Hour)))
	g.Expect(apiKey.Status.PreviousKey.RotationTrigger).To(Equal("1"), "the trigger that issued it")
	secret := keySecret(g, apiKey)
	g.Expect(secret.Data).To(HaveKeyWithValue(hubv1.SecretKeyPrevious, []byte(first.Reveal())))

	// At the end of the overlap the previous key goes, to the retired keys.
	overlapEnd := apiKey.Status.PreviousKey.ValidUntil
	testClock.SetTime(overlapEnd.Time)
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(apiKey.Status.PreviousKey).To(BeNil())
	g.Expect(keySecret(g, apiKey).Data).NotTo(HaveKey(hubv1.SecretKeyPrevious))
	g.Expect(apiKey.Status.RetiredKeys).To(Equal([]hubv1.RetiredKey{{KeyID: first.ID(), Digest: first.Digest(), RetiredAt: overlapEnd,
		RotationTrigger: "1"}}))

	// Rotating again and retiring the previous key by its ID ends the
	// overlap at once.
	rotate("3")
	third := waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(second.ID()))
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation.RetirePreviousKeyID = second.ID()
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Expect(waitForKeyPhase(g, apiKey, hubv1.KeyActive).ID()).To(Equal(third.ID()))
	g.Expect(keySecret(g, apiKey).Data).NotTo(HaveKey(hubv1.SecretKeyPrevious))
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(3))
	g.Expect(apiKey.Status.RetiredKeys).To(HaveLen(2))
	g.Expect(apiKey.Status.RetiredKeys[0].KeyID).To(Equal(second.ID()), "newest first")
	g.Expect(apiKey.Status.RetiredKeys[0].RotationTrigger).To(Equal("2"))

	// The list keeps the last five.
	for trigger := 4; trigger <= 9; trigger++ {
		rotate(fmt.Sprint(trigger))
		g.Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
			g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(trigger))
		}, 10*time.Second).Should(Succeed())
	}
	g.Expect(apiKey.Status.RetiredKeys).To(HaveLen(hubv1.RetiredKeysLimit))
}

func TestAPIKeyAutomaticRotation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-renew")
	restoreClock(t)

	apiKey := newAPIKey("keys-renew", "renewing")
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime30Days)
	apiKey.Spec.Rotation = &hubv1.RotationSpec{RenewBefore: &metav1.Duration{Duration: 7 * 24 * time.Hour}}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	first := waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	firstExpiry := apiKey.Status.ExpiresAt.Time

	testClock.SetTime(firstExpiry.Add(-7 * 24 * time.Hour))
	waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(first.ID()))
	g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", testClock.Now().Add(30*24*time.Hour)))
}

func TestAPIKeyRevocation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-revoke")

	apiKey := newAPIKey("keys-revoke", "leaked")
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	key := waitForKeyPhase(g, apiKey, hubv1.KeyActive)

	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Revoked = true
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyRevoked))
	}).Should(Succeed())
	g.Expect(apiErrNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), &corev1.Secret{}))).To(BeTrue())
	g.Expect(apiKey.Status.KeyID).To(Equal(key.ID()), "the key ID stays for audit")
	g.Expect(apiKey.Status.Digest).To(Equal(key.Digest()), "the digest stays for audit")
	g.Expect(apiKey.Status.RevokedAt).NotTo(BeNil())

	// Revocation is terminal.
	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Revoked = false
	err := k8sClient.Patch(ctx, apiKey, patch)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("a revoked key stays revoked"))
}

func TestAPIKeySuspendedWhileProjectArchived(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	project := activeProject(t, "keys-archive")

	apiKey := newAPIKey("keys-archive", "suspendable")
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	key := waitForKeyPhase(g, apiKey, hubv1.KeyActive)

	setArchived(g, project, true)
	waitForKeyPhase(g, apiKey, hubv1.KeySuspended)
	g.Expect(meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.ReadyCondition).Reason).To(Equal(hubv1.ProjectArchivedReason))
	g.Expect(keySecret(g, apiKey).Data).To(HaveKeyWithValue(hubv1.SecretKeyCurrent, []byte(key.Reveal())), "the Secret stays")

	// No new keys in an archived project.
	err := k8sClient.Create(ctx, newAPIKey("keys-archive", "another"))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring(`project "keys-archive" is archived`))

	setArchived(g, project, false)
	g.Expect(waitForKeyPhase(g, apiKey, hubv1.KeyActive).ID()).To(Equal(key.ID()), "the same key works again")
}

func TestAPIKeyAdmission(t *testing.T) {
	ctx := context.Background()
	activeProject(t, "keys-admission")
	g := NewWithT(t)

	// An organization whose policy caps key lifetimes at 90 days.
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Security.APIKeys = &hubv1.APIKeyPolicy{MaxLifetimeDays: ptr.To[int32](90), DefaultExpiresAfter: hubv1.KeyLifetime30Days}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-a-project"}})).To(Succeed())

	tests := []struct {
		name        string
		key         func() *hubv1.APIKey
		wantField   string
		wantMessage string
	}{
		{
			name: "lifetime over the policy",
			key: func() *hubv1.APIKey {
				k := newAPIKey("keys-admission", "too-long")
				k.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime180Days)
				return k
			},
			wantField:   "spec.expiresAfter",
			wantMessage: "longer than the 90 days the organization's policy allows",
		},
		{
			name: "never expiring where the policy forbids it",
			key: func() *hubv1.APIKey {
				k := newAPIKey("keys-admission", "forever")
				k.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetimeNever)
				return k
			},
			wantField:   "spec.expiresAfter",
			wantMessage: "requires keys to expire within 90 days",
		},
		{
			name:        "a namespace that is not a project's",
			key:         func() *hubv1.APIKey { return newAPIKey("not-a-project", "stray") },
			wantField:   "metadata.namespace",
			wantMessage: "API keys live in the namespace of a Project",
		},
		{
			name: "owner that is not an email address",
			key: func() *hubv1.APIKey {
				k := newAPIKey("keys-admission", "no-owner")
				k.Spec.Owner = "alice"
				return k
			},
			wantField:   "spec.owner",
			wantMessage: "must be an email address",
		},
		{
			name: "alias that shadows the key",
			key: func() *hubv1.APIKey {
				k := newAPIKey("keys-admission", "shadow")
				k.Spec.SecretTemplate = &hubv1.SecretTemplate{Aliases: []string{"api-key-previous"}}
				return k
			},
			wantField:   "spec.secretTemplate.aliases",
			wantMessage: "always present",
		},
		{
			name: "overlap beyond a week",
			key: func() *hubv1.APIKey {
				k := newAPIKey("keys-admission", "long-overlap")
				k.Spec.Rotation = &hubv1.RotationSpec{Overlap: &metav1.Duration{Duration: 200 * time.Hour}}
				return k
			},
			wantField:   "spec.rotation.overlap",
			wantMessage: "between 5m and 168h",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(ctx, tt.key(), client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.wantField))
			g.Expect(err.Error()).To(ContainSubstring(tt.wantMessage))
		})
	}

	t.Run("default lifetime from the policy", func(t *testing.T) {
		g := NewWithT(t)
		apiKey := newAPIKey("keys-admission", "defaulted")
		g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
		waitForKeyPhase(g, apiKey, hubv1.KeyActive)
		g.Expect(apiKey.Spec.ExpiresAfter).To(BeNil(), "the controller never writes spec")
		g.Expect(apiKey.Status.Lifetime).To(Equal(hubv1.KeyLifetime30Days))
		g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", apiKey.Status.CreatedAt.Add(30*24*time.Hour)))
	})

	t.Run("Secret name cannot change", func(t *testing.T) {
		g := NewWithT(t)
		apiKey := newAPIKey("keys-admission", "named")
		g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
		patch := client.MergeFrom(apiKey.DeepCopy())
		apiKey.Spec.SecretTemplate = &hubv1.SecretTemplate{Name: "renamed"}
		err := k8sClient.Patch(ctx, apiKey, patch)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("secretTemplate.name cannot change"))
	})

	t.Run("scope cannot change", func(t *testing.T) {
		g := NewWithT(t)
		apiKey := newAPIKey("keys-admission", "scoped")
		apiKey.Spec.Scope = hubv1.ScopeRead
		g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
		patch := client.MergeFrom(apiKey.DeepCopy())
		apiKey.Spec.Scope = hubv1.ScopeAdmin
		err := k8sClient.Patch(ctx, apiKey, patch)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("spec.scope"))
		g.Expect(err.Error()).To(ContainSubstring("scope cannot change"))
	})
}

func TestAPIKeyNeverOverwritesForeignSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-conflict")
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "keys-conflict", Name: "taken"},
		StringData: map[string]string{"password": "hunter2"},
	}
	g.Expect(k8sClient.Create(ctx, foreign)).To(Succeed())

	apiKey := newAPIKey("keys-conflict", "taken")
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(apiKey.Status.Conditions, hubv1.StalledCondition)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.ReadyCondition).Reason).To(Equal(hubv1.SecretConflictReason))
	}).Should(Succeed())
	g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyPending))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
	g.Expect(foreign.Data).To(Equal(map[string][]byte{"password": []byte("hunter2")}), "the foreign Secret is untouched")

	// Once the name is free, the key is issued (the controller looks again
	// every minute; the poke saves the wait).
	g.Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
	poke(t, apiKey)
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.StalledCondition)).To(BeNil())
}

func TestAPIKeyDeliveredThroughPushSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-eso")

	apiKey := newAPIKey("keys-eso", "vaulted")
	apiKey.Spec.SecretTemplate = &hubv1.SecretTemplate{Name: "vaulted-key"}
	apiKey.Spec.Delivery = &hubv1.KeyDelivery{ExternalSecret: &hubv1.ExternalSecretDelivery{
		SecretStoreRef: hubv1.SecretStoreRef{Name: "vault", Kind: "ClusterSecretStore"},
		RemoteKey:      "platform/keys/vaulted",
		Property:       "api-key",
	}}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)

	// The PushSecret was accepted by ESO's real CRD schema.
	ps := &unstructured.Unstructured{}
	ps.SetAPIVersion("external-secrets.io/v1alpha1")
	ps.SetKind("PushSecret")
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-eso", Name: "vaulted"}, ps)
	}).Should(Succeed())
	g.Expect(metav1.IsControlledBy(ps, apiKey)).To(BeTrue())
	g.Expect(nestedString(ps.Object, "spec", "selector", "secret", "name")).To(Equal("vaulted-key"))
	g.Expect(nestedString(ps.Object, "spec", "deletionPolicy")).To(Equal("Delete"))
	data, _, _ := unstructured.NestedSlice(ps.Object, "spec", "data")
	g.Expect(data).To(HaveLen(1))
	g.Expect(nestedString(data[0].(map[string]any), "match", "remoteRef", "remoteKey")).To(Equal("platform/keys/vaulted"))
	g.Expect(meta.IsStatusConditionTrue(apiKey.Status.Conditions, hubv1.DeliveredCondition)).To(BeTrue())

	// Revoking the key removes the PushSecret (and ESO the remote copy).
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Revoked = true
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func() bool {
		return apiErrNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-eso", Name: "vaulted"}, ps))
	}).Should(BeTrue())
}

// activeProject creates a project, waits until it is Active, and deletes it
// when the test ends.
func activeProject(t *testing.T, name string) *hubv1.Project {
	t.Helper()
	g := NewWithT(t)
	project := newProject(name)
	g.Expect(k8sClient.Create(context.Background(), project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	waitForPhase(g, project, hubv1.ProjectActive)
	return project
}

// waitForKeyPhase waits for the phase, checks that status and Secret agree,
// and returns the current key read from the Secret.
func waitForKeyPhase(g Gomega, apiKey *hubv1.APIKey, phase hubv1.APIKeyPhase) keys.Key {
	var key keys.Key
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.ObservedGeneration).To(Equal(apiKey.Generation))
		g.Expect(apiKey.Status.Phase).To(Equal(phase))
		if phase == hubv1.KeyExpired || phase == hubv1.KeyRevoked {
			return
		}
		secret := keySecret(g, apiKey)
		var err error
		key, err = keys.Parse(string(secret.Data[hubv1.SecretKeyCurrent]))
		g.Expect(err).NotTo(HaveOccurred(), "the Secret holds a well-formed key")
		keysSeenByTests.Add(1)
		g.Expect(key.Digest()).To(Equal(apiKey.Status.Digest), "status describes the key in the Secret")
		g.Expect(key.ID()).To(Equal(apiKey.Status.KeyID))
		g.Expect(secret.Annotations).To(HaveKeyWithValue(hubv1.RevisionAnnotation, strconv.FormatInt(apiKey.Status.Revision, 10)))
	}).Should(Succeed())
	return key
}

func keySecret(g Gomega, apiKey *hubv1.APIKey) *corev1.Secret {
	name := apiKey.Name
	if apiKey.Spec.SecretTemplate != nil && apiKey.Spec.SecretTemplate.Name != "" {
		name = apiKey.Spec.SecretTemplate.Name
	}
	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: apiKey.Namespace, Name: name}, secret)).To(Succeed())
	return secret
}

// eventsFor lists the events about an object with the given reason.
func eventsFor(g Gomega, obj client.Object, reason string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(obj.GetNamespace()))).To(Succeed())
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == obj.GetUID() && e.Reason == reason {
			found = append(found, e)
		}
	}
	return found
}

// restoreClock puts the suite's clock back when the test ends.
func restoreClock(t *testing.T) {
	saved := testClock.Now()
	t.Cleanup(func() { testClock.SetTime(saved) })
}

func apiErrNotFound(err error) bool { return apierrors.IsNotFound(err) }

func nestedString(obj map[string]any, fields ...string) string {
	s, _, _ := unstructured.NestedString(obj, fields...)
	return s
}

// TestManagerSecretsOnlyInProjectNamespaces: the manager's ClusterRole, as
// generated (config/rbac/role.yaml), grants no Secret access; the manager
// binds the key Secrets' role to itself in each project namespace it
// creates, and issues keys there through per-namespace caches, which hold
// only the Secrets the hub labelled.
func TestManagerSecretsOnlyInProjectNamespaces(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// The manager's roles, as installed.
	for _, file := range []string{"../config/rbac/role.yaml", "../config/rbac/manager_secrets_role.yaml"} {
		raw, err := os.ReadFile(file)
		g.Expect(err).NotTo(HaveOccurred())
		role := &rbacv1.ClusterRole{}
		g.Expect(yaml.Unmarshal(raw, role)).To(Succeed())
		if role.Name == "manager-role" {
			role.Name = "test-manager-role"
			binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: suiteManagerAccess.ServiceAccount.Namespace,
					Name: suiteManagerAccess.ServiceAccount.Name}}}
			g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, binding))).To(Succeed())
		} else {
			role.Name = suiteManagerAccess.ClusterRole
		}
		g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, role))).To(Succeed())
	}
	activeProject(t, "keys-cache")
	apiKey := newAPIKey("keys-cache", "cached")
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)

	may := func(verb, namespace string) bool {
		return mayOnSecrets(g, suiteManagerAccess.ServiceAccount, verb, namespace)
	}
	for _, verb := range []string{"get", "list", "watch", "create", "update", "delete"} {
		g.Eventually(func() bool { return may(verb, "keys-cache") }).Should(BeTrue(), "%s in a project namespace", verb)
		g.Expect(may(verb, "kube-system")).To(BeFalse(), "%s outside project namespaces", verb)
		g.Expect(may(verb, "")).To(BeFalse(), "%s across the cluster", verb)
	}

	// The key's Secret is watched through its namespace's cache: deleted,
	// it is issued again.
	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-cache", Name: "cached"}, secret)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		again := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-cache", Name: "cached"}, again)).To(Succeed())
		g.Expect(again.UID).NotTo(Equal(secret.UID))
	}).Should(Succeed())
}

// TestAPIKeyRenewBeforeLongerThanLifetime: a renewBefore as long as the
// lifetime would rotate forever; such a key renews when a third is left.
func TestAPIKeyRenewBeforeLongerThanLifetime(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-renew-long")
	restoreClock(t)

	// 20 s short of the lifetime: due 20 s after issuance, and after each
	// renewal again, each cutting the last overlap short, if honoured.
	apiKey := newAPIKey("keys-renew-long", "eager")
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime30Days)
	apiKey.Spec.Rotation = &hubv1.RotationSpec{RenewBefore: &metav1.Duration{Duration: 720*time.Hour - 20*time.Second}}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	created := apiKey.Status.CreatedAt.Time
	adjusted := meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.RenewBeforeAdjustedCondition)
	g.Expect(adjusted).NotTo(BeNil())
	g.Expect(adjusted.Message).To(ContainSubstring("it renews when a third of its lifetime is left"))
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(1))
	}, 2*time.Second).Should(Succeed(), "the key must not rotate at once, over and over")

	testClock.SetTime(created.Add(20*24*time.Hour - time.Second))
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(1))
	}, time.Second).Should(Succeed())
	// Due at two thirds of the lifetime: the clock alone wakes it.
	testClock.SetTime(created.Add(20 * 24 * time.Hour))
	waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
	g.Expect(apiKey.Status.PreviousKey.ValidUntil.Time).To(BeTemporally("==", testClock.Now().Add(24*time.Hour)),
		"the previous key keeps its whole overlap")
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
		g.Expect(apiKey.Status.PreviousKey).NotTo(BeNil())
	}, 2*time.Second).Should(Succeed(), "no renewal loop")
}

// TestAPIKeyLifetimeChangeMovesExpiry: shortening expiresAfter moves the
// current key's expiry; the key is not reissued.
func TestAPIKeyLifetimeChangeMovesExpiry(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-lifetime")

	apiKey := newAPIKey("keys-lifetime", "shortened")
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime180Days)
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	key := waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	created := apiKey.Status.CreatedAt.Time

	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetime30Days)
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Lifetime).To(Equal(hubv1.KeyLifetime30Days))
		g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", created.Add(30*24*time.Hour)))
	}).Should(Succeed())
	g.Expect(waitForKeyPhase(g, apiKey, hubv1.KeyActive).ID()).To(Equal(key.ID()), "the same key, with a new expiry")

	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetimeNever)
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.ExpiresAt).To(BeNil())
	}).Should(Succeed())
}

// TestKeyLifetimePolicyAtIssuance: a key created before the organization
// capped lifetimes, asking never to expire, is reported (on itself and on
// the Organization) but not cut short; its next rotation issues a key
// within the policy, and the reports clear.
func TestKeyLifetimePolicyAtIssuance(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-policy")
	apiKey := newAPIKey("keys-policy", "forever")
	apiKey.Spec.ExpiresAfter = ptr.To(hubv1.KeyLifetimeNever)
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(apiKey.Status.ExpiresAt).To(BeNil())

	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}}
	org.Spec.Security.APIKeys = &hubv1.APIKeyPolicy{MaxLifetimeDays: ptr.To[int32](100)}
	g.Expect(k8sClient.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, org) })

	beyond := func(conds []metav1.Condition) *metav1.Condition {
		return meta.FindStatusCondition(conds, hubv1.BeyondLifetimePolicyCondition)
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		c := beyond(apiKey.Status.Conditions)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Message).To(ContainSubstring("never expires, beyond the organization's maximum of 100 days"))
		g.Expect(apiKey.Status.ExpiresAt).To(BeNil(), "reported, not cut short")
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		c = beyond(org.Status.Conditions)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Message).To(ContainSubstring("keys-policy/forever"))
	}).Should(Succeed())

	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "within-policy"}
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
		g.Expect(apiKey.Status.Lifetime).To(Equal(hubv1.KeyLifetime90Days), "the longest lifetime within 100 days")
		g.Expect(apiKey.Status.ExpiresAt).NotTo(BeNil())
		g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", apiKey.Status.CreatedAt.Add(90*24*time.Hour)))
		g.Expect(beyond(apiKey.Status.Conditions)).To(BeNil())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(beyond(org.Status.Conditions)).To(BeNil())
	}).Should(Succeed())

	// A stricter policy does not cut the current key short (it could stop
	// at once): it is reported, and its expiry stays.
	expires := apiKey.Status.ExpiresAt.Time
	orgPatch := client.MergeFrom(org.DeepCopy())
	org.Spec.Security.APIKeys.MaxLifetimeDays = ptr.To[int32](30)
	g.Expect(k8sClient.Patch(ctx, org, orgPatch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(beyond(apiKey.Status.Conditions)).NotTo(BeNil())
	}).Should(Succeed())
	g.Expect(apiKey.Status.ExpiresAt.Time).To(BeTemporally("==", expires))
	g.Expect(apiKey.Status.Lifetime).To(Equal(hubv1.KeyLifetime90Days))
}

// asManagementAPI is a client that writes as the management API does: as
// a person, by impersonation, with the extra that admission trusts for
// keys minted elsewhere.
func asManagementAPI(g Gomega, user string) client.Client {
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"},
		Extra: map[string][]string{identity.ViaExtra: {identity.ViaManagementAPI}}}
	c, err := client.New(cfg, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// TestAPIKeyOfModeNone: a key of delivery mode None takes the key the
// management API minted from its annotation, and has no Secret; a trigger
// changed by hand leaves the key working and waiting for a rotation
// request; the rotation request's key, for that trigger, rotates it.
func TestAPIKeyOfModeNone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	activeProject(t, "keys-none")
	first, err := keys.New()
	g.Expect(err).NotTo(HaveOccurred())
	apiKey := newAPIKey("keys-none", "shown-once")
	apiKey.Spec.Delivery = &hubv1.KeyDelivery{Mode: hubv1.DeliveryNone}
	apiKey.Annotations = map[string]string{hubv1.IssuedKeyAnnotation: hubv1.IssuedKey{KeyID: first.ID(), Digest: first.Digest()}.String()}
	mgmt := asManagementAPI(g, "admin@example.com")
	g.Expect(mgmt.Create(ctx, apiKey)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyActive))
	}).Should(Succeed())
	g.Expect(apiKey.Status.KeyID).To(Equal(first.ID()))
	g.Expect(apiKey.Status.Digest).To(Equal(first.Digest()))
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(1))
	g.Expect(apiKey.Status.ExpiresAt).NotTo(BeNil())
	err = k8sClient.Get(ctx, client.ObjectKey{Namespace: "keys-none", Name: "shown-once"}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Secret for a key of mode None")

	// A trigger changed by hand: no new key, the current one works on.
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "by-hand"}
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		issuing := meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.IssuingCondition)
		g.Expect(issuing).NotTo(BeNil())
		g.Expect(issuing.Reason).To(Equal(hubv1.AwaitingKeyRequestReason))
		g.Expect(issuing.Message).To(ContainSubstring("create one for this key"))
	}).Should(Succeed())
	g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyActive))
	g.Expect(apiKey.Status.KeyID).To(Equal(first.ID()))

	// The rotation request's write: the trigger and its key together.
	second, err := keys.New()
	g.Expect(err).NotTo(HaveOccurred())
	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation.Trigger = "r2"
	apiKey.Annotations[hubv1.IssuedKeyAnnotation] = hubv1.IssuedKey{KeyID: second.ID(), Digest: second.Digest(), Trigger: "r2"}.String()
	g.Expect(mgmt.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
		g.Expect(apiKey.Status.KeyID).To(Equal(second.ID()))
	}).Should(Succeed())
	g.Expect(apiKey.Status.Phase).To(Equal(hubv1.KeyRotating))
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(first.ID()))
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
	g.Expect(meta.FindStatusCondition(apiKey.Status.Conditions, hubv1.IssuingCondition)).To(BeNil())

	// Anyone else changing the annotation, or the mode, is refused.
	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Annotations[hubv1.IssuedKeyAnnotation] = hubv1.IssuedKey{KeyID: first.ID(), Digest: first.Digest(), Trigger: "r2"}.String()
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(MatchError(ContainSubstring("set only by the management API")))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
	patch = client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Delivery = nil
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(MatchError(ContainSubstring("delivery.mode cannot change")))
}
