package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// pushSecretGVK is External Secrets Operator's PushSecret. Its typed API
// package does not compile against this controller-runtime, so the hub writes
// it as unstructured; the tests validate it against ESO's real CRD.
var pushSecretGVK = schema.GroupVersionKind{Group: "external-secrets.io", Version: "v1alpha1", Kind: "PushSecret"}

// deliveryRetry is how soon a failed PushSecret write is tried again.
const deliveryRetry = 30 * time.Second

func newPushSecret() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(pushSecretGVK)
	return u
}

// servesPushSecrets reports whether the cluster serves the PushSecret API.
// When it does not, keys asking for delivery say so in a condition; install
// ESO and restart the manager to deliver them.
func servesPushSecrets(mgr ctrl.Manager) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(pushSecretGVK.GroupKind(), pushSecretGVK.Version)
	switch {
	case meta.IsNoMatchError(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering the PushSecret API: %w", err)
	}
	return true, nil
}

// reconcileDelivery keeps a PushSecret, named like the APIKey and owned by
// it, that pushes the current key to the external store. A key that no longer
// works (expired) has its PushSecret deleted, and with deletionPolicy Delete
// ESO removes it from the store too.
func (r *APIKeyReconciler) reconcileDelivery(ctx context.Context, s *apiKeyScope) error {
	var ext *hubv1.ExternalSecretDelivery
	if d := s.key.Spec.Delivery; d != nil {
		ext = d.ExternalSecret
	}
	if s.conflict() {
		return nil
	}
	if ext == nil || s.secret == nil {
		meta.RemoveStatusCondition(&s.key.Status.Conditions, hubv1.DeliveredCondition)
		return r.deletePushSecret(ctx, s)
	}
	if !r.pushSecrets {
		setCondition(&s.key.Status.Conditions, s.key.Generation, hubv1.DeliveredCondition, metav1.ConditionFalse,
			hubv1.ExternalSecretsNotInstalledReason, "the cluster does not serve external-secrets.io/v1alpha1 PushSecret; "+
				"install the External Secrets Operator and restart the hub manager")
		return nil
	}

	ps := newPushSecret()
	ps.SetName(s.key.Name)
	ps.SetNamespace(s.key.Namespace)
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, ps, func() error {
		want := desiredPushSecretSpec(s.key, ext)
		if !equality.Semantic.DeepEqual(ps.Object["spec"], want) {
			ps.Object["spec"] = want
		}
		return controllerutil.SetControllerReference(s.key, ps, r.Scheme())
	})
	if err != nil {
		// Reported, and retried soon, without failing the reconcile: a
		// returned error would delay the key's own deadlines (expiry, the
		// end of an overlap) to the rate limiter's backoff.
		setCondition(&s.key.Status.Conditions, s.key.Generation, hubv1.DeliveredCondition, metav1.ConditionFalse,
			hubv1.DeliveryFailedReason, fmt.Sprintf("writing PushSecret %q: %v", ps.GetName(), err))
		s.requeueIn(deliveryRetry)
		return nil
	}
	if op != controllerutil.OperationResultNone {
		ctrl.LoggerFrom(ctx).V(1).Info("Wrote PushSecret", "pushSecret", ps.GetName(), "operation", op)
	}
	setCondition(&s.key.Status.Conditions, s.key.Generation, hubv1.DeliveredCondition, metav1.ConditionTrue,
		hubv1.ReconciledReason, fmt.Sprintf("PushSecret %q pushes the key to %s %q as %q",
			ps.GetName(), ext.SecretStoreRef.Kind, ext.SecretStoreRef.Name, ext.RemoteKey))
	return nil
}

// desiredPushSecretSpec is the PushSecret spec for a key, as unstructured
// content (JSON types only).
func desiredPushSecretSpec(key *hubv1.APIKey, ext *hubv1.ExternalSecretDelivery) map[string]any {
	kind := ext.SecretStoreRef.Kind
	if kind == "" {
		kind = "SecretStore"
	}
	remoteRef := map[string]any{"remoteKey": ext.RemoteKey}
	if ext.Property != "" {
		remoteRef["property"] = ext.Property
	}
	return map[string]any{
		// Rotation must reach the store quickly; ESO also pushes when the
		// source Secret changes.
		"refreshInterval": "1m",
		"updatePolicy":    "Replace",
		"deletionPolicy":  "Delete",
		"secretStoreRefs": []any{map[string]any{"name": ext.SecretStoreRef.Name, "kind": kind}},
		"selector":        map[string]any{"secret": map[string]any{"name": secretName(key)}},
		"data": []any{map[string]any{
			"match": map[string]any{"secretKey": hubv1.SecretKeyCurrent, "remoteRef": remoteRef},
		}},
	}
}

// deletePushSecret deletes the key's PushSecret if the key owns one.
func (r *APIKeyReconciler) deletePushSecret(ctx context.Context, s *apiKeyScope) error {
	if !r.pushSecrets {
		return nil
	}
	ps := newPushSecret()
	err := r.Get(ctx, client.ObjectKey{Namespace: s.key.Namespace, Name: s.key.Name}, ps)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading PushSecret %q: %w", s.key.Name, err)
	case !metav1.IsControlledBy(ps, s.key):
		return nil
	}
	if err := r.Delete(ctx, ps); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting PushSecret %q: %w", ps.GetName(), err)
	}
	return nil
}
