package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
)

// faultInjector wraps a manager's client to fail writes on purpose, or to
// "crash" the manager right after a write: the manager is stopped and every
// later write of it fails, as if the process had died there.
type faultInjector struct {
	mu      sync.Mutex
	crash   context.CancelFunc
	crashed bool

	// before, when set, may fail a write before it reaches the API server.
	before func(obj client.Object, op string) error
	// after, when set, sees every successful write; returning true crashes
	// the manager.
	after func(obj client.Object, op string) bool
}

var errCrashed = errors.New("injected crash: the manager is gone")

func (f *faultInjector) newClient(cfg *rest.Config, opts client.Options) (client.Client, error) {
	c, err := client.NewWithWatch(cfg, opts)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return f.write(obj, "create", func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return f.write(obj, "update", func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			return f.write(obj, "patch", func() error { return c.Patch(ctx, obj, p, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return f.write(obj, "delete", func() error { return c.Delete(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			return f.write(obj, sub, func() error { return c.SubResource(sub).Patch(ctx, obj, p, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return f.write(obj, sub, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			return f.write(appliedObject(c, obj), sub, func() error { return c.SubResource(sub).Apply(ctx, obj, opts...) })
		},
	}), nil
}

// appliedObject is the typed object an apply configuration (built from an
// unstructured object, as package statusapply does) is for: its kind, name
// and namespace, for the injector to tell writes apart.
func appliedObject(c client.Client, ac runtime.ApplyConfiguration) client.Object {
	u, ok := ac.(interface {
		GetObjectKind() schema.ObjectKind
		GetName() string
		GetNamespace() string
	})
	if !ok {
		return &unstructured.Unstructured{}
	}
	obj, err := c.Scheme().New(u.GetObjectKind().GroupVersionKind())
	typed, isObject := obj.(client.Object)
	if err != nil || !isObject {
		return &unstructured.Unstructured{}
	}
	typed.SetName(u.GetName())
	typed.SetNamespace(u.GetNamespace())
	return typed
}

func (f *faultInjector) write(obj client.Object, op string, do func() error) error {
	f.mu.Lock()
	crashed, before, after := f.crashed, f.before, f.after
	f.mu.Unlock()
	if crashed {
		return errCrashed
	}
	if before != nil {
		if err := before(obj, op); err != nil {
			return err
		}
	}
	if err := do(); err != nil {
		return err
	}
	if after != nil && after(obj, op) {
		f.mu.Lock()
		f.crashed = true
		f.mu.Unlock()
		f.crash()
		return errCrashed
	}
	return nil
}

func (f *faultInjector) hasCrashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// withFaultyManager replaces the suite's manager with one whose writes go
// through faults, and puts a healthy one back when the test ends.
func withFaultyManager(t *testing.T, g Gomega, faults *faultInjector) {
	t.Helper()
	stopSuiteManager()
	g.Expect(startSuiteManager(faults)).To(Succeed())
	t.Cleanup(func() {
		stopSuiteManager()
		if err := startSuiteManager(nil); err != nil {
			t.Fatalf("restarting the suite's manager: %v", err)
		}
	})
}

// restartHealthy stops the (crashed) manager and starts a healthy one.
func restartHealthy(g Gomega) {
	stopSuiteManager()
	g.Expect(startSuiteManager(nil)).To(Succeed())
}

func isKeySecretIn(obj client.Object, namespace string) bool {
	_, ok := obj.(*corev1.Secret)
	return ok && obj.GetNamespace() == namespace
}

// TestAPIKeyCrashBetweenSecretAndStatus stops the manager right after it
// wrote a key into the Secret and before it wrote status, first on issuance
// and then on rotation. The restarted manager adopts the written key: exactly
// one key per revision, and status matches the Secret.
func TestAPIKeyCrashBetweenSecretAndStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "keys-crash"
	activeProject(t, ns)

	faults := &faultInjector{after: func(obj client.Object, op string) bool {
		return isKeySecretIn(obj, ns) && (op == "create" || op == "update")
	}}
	withFaultyManager(t, g, faults)
	apiKey := newAPIKey(ns, "crashy")
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "1"}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	g.Eventually(faults.hasCrashed).Should(BeTrue())

	written := secretKey(g, ns, "crashy", hubv1.SecretKeyCurrent)
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(apiKey), apiKey)).To(Succeed())
	g.Expect(apiKey.Status.KeyID).To(BeEmpty(), "the crash came before status was written")

	restartHealthy(g)
	issued := waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(issued.Reveal()).To(Equal(written.Reveal()), "the written key is adopted, not replaced")
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(1))

	// The same on rotation.
	faults = &faultInjector{after: func(obj client.Object, op string) bool {
		return isKeySecretIn(obj, ns) && op == "update"
	}}
	stopSuiteManager()
	g.Expect(startSuiteManager(faults)).To(Succeed())
	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation.Trigger = "2"
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	g.Eventually(faults.hasCrashed).Should(BeTrue())
	rotated := secretKey(g, ns, "crashy", hubv1.SecretKeyCurrent)
	g.Expect(rotated.ID()).NotTo(Equal(issued.ID()))

	restartHealthy(g)
	current := waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(current.Reveal()).To(Equal(rotated.Reveal()), "the key written before the crash is the new key")
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(issued.ID()))
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2), "no third key")
	g.Expect(secretKey(g, ns, "crashy", hubv1.SecretKeyPrevious).Reveal()).To(Equal(issued.Reveal()))
}

// TestAPIKeyConflictsConverge answers the first writes of a key's Secret and
// status with 409 Conflict; the controller converges to one key per revision.
func TestAPIKeyConflictsConverge(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "keys-409"
	activeProject(t, ns)

	var mu sync.Mutex
	conflicts := map[string]int{}
	minted := map[string]bool{}
	faults := &faultInjector{
		before: func(obj client.Object, op string) error {
			if obj.GetNamespace() != ns {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			what := fmt.Sprintf("%s/%T", op, obj)
			if conflicts[what] < 3 {
				conflicts[what]++
				return apierrors.NewConflict(hubv1.GroupVersion.WithResource("apikeys").GroupResource(), obj.GetName(),
					errors.New("injected conflict"))
			}
			return nil
		},
		after: func(obj client.Object, _ string) bool {
			if s, ok := obj.(*corev1.Secret); ok && s.Namespace == ns {
				mu.Lock()
				minted[string(s.Data[hubv1.SecretKeyCurrent])] = true
				mu.Unlock()
			}
			return false
		},
	}
	withFaultyManager(t, g, faults)

	apiKey := newAPIKey(ns, "contended")
	apiKey.Spec.Rotation = &hubv1.RotationSpec{Trigger: "1"}
	g.Expect(k8sClient.Create(ctx, apiKey)).To(Succeed())
	first := waitForKeyPhase(g, apiKey, hubv1.KeyActive)
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(1))

	patch := client.MergeFrom(apiKey.DeepCopy())
	apiKey.Spec.Rotation.Trigger = "2"
	g.Expect(k8sClient.Patch(ctx, apiKey, patch)).To(Succeed())
	second := waitForKeyPhase(g, apiKey, hubv1.KeyRotating)
	g.Expect(apiKey.Status.Revision).To(BeEquivalentTo(2))
	g.Expect(apiKey.Status.PreviousKey.KeyID).To(Equal(first.ID()))

	mu.Lock()
	defer mu.Unlock()
	g.Expect(conflicts).To(HaveKeyWithValue("status/*v1alpha1.APIKey", 3), "status writes met conflicts")
	g.Expect(conflicts).To(HaveKeyWithValue("create/*v1.Secret", 3), "Secret creation met conflicts")
	g.Expect(conflicts).To(HaveKeyWithValue("update/*v1.Secret", 3), "Secret updates met conflicts")
	g.Expect(minted).To(HaveLen(2), "exactly two keys ever reached the Secret")
	g.Expect(minted).To(HaveKey(first.Reveal()))
	g.Expect(minted).To(HaveKey(second.Reveal()))
}

// secretKey reads and parses one data key of a key Secret.
func secretKey(g Gomega, namespace, name, dataKey string) keys.Key {
	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, secret)).To(Succeed())
	k, err := keys.Parse(string(secret.Data[dataKey]))
	g.Expect(err).NotTo(HaveOccurred())
	return k
}
