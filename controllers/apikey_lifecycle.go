package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// reconcileOverlap ends a rotation's overlap: when the previous key's window
// has passed, or spec.rotation.retirePreviousKeyID names it, the previous key
// leaves the Secret and then the status. Otherwise it comes back at the end
// of the window.
func (r *APIKeyReconciler) reconcileOverlap(ctx context.Context, s *apiKeyScope) error {
	prev := s.key.Status.PreviousKey
	if prev != nil {
		retire := !s.now.Before(prev.ValidUntil.Time) || s.expired() ||
			(s.key.Spec.Rotation != nil && s.key.Spec.Rotation.RetirePreviousKeyID == prev.KeyID)
		if !retire {
			s.requeueAtTime(prev.ValidUntil.Time)
			return nil
		}
	}
	// The Secret first: a crash in between leaves a status that still lists a
	// key the Secret no longer holds, which the next reconcile clears.
	if s.secret != nil && s.secret.Annotations[hubv1.RevisionAnnotation] == strconv.FormatInt(s.key.Status.Revision, 10) {
		if _, ok := s.secret.Data[hubv1.SecretKeyPrevious]; ok {
			secret := s.secret.DeepCopy()
			delete(secret.Data, hubv1.SecretKeyPrevious)
			if err := r.Update(ctx, secret, client.FieldOwner(fieldOwner)); err != nil {
				return fmt.Errorf("removing the previous key from Secret %q: %w", secret.Name, err)
			}
			s.secret = secret
		}
	}
	if prev != nil {
		// At the end of the window, or now when retired sooner.
		at := prev.ValidUntil.Time
		if s.now.Before(at) {
			at = s.now
		}
		s.retire(at)
	}
	return nil
}

// retire ends the previous key at the given time: it leaves status for the
// list of retired keys, newest first, bounded by RetiredKeysLimit.
func (s *apiKeyScope) retire(at time.Time) {
	status := &s.key.Status
	prev := status.PreviousKey
	if prev == nil {
		return
	}
	retired := hubv1.RetiredKey{KeyID: prev.KeyID, Digest: prev.Digest, RetiredAt: metav1.NewTime(at), RotationTrigger: prev.RotationTrigger}
	status.RetiredKeys = append([]hubv1.RetiredKey{retired}, status.RetiredKeys...)
	status.RetiredKeys = status.RetiredKeys[:min(len(status.RetiredKeys), hubv1.RetiredKeysLimit)]
	status.PreviousKey = nil
	s.retiredKeyID = prev.KeyID
}

// reconcileExpiry stops the key at status.expiresAt exactly: it comes back at
// that moment and deletes the Secret.
func (r *APIKeyReconciler) reconcileExpiry(ctx context.Context, s *apiKeyScope) error {
	expiresAt := s.key.Status.ExpiresAt
	if expiresAt == nil {
		return nil
	}
	if !s.expired() {
		s.requeueAtTime(expiresAt.Time)
		return nil
	}
	return r.deleteSecret(ctx, s)
}

// reconcileRevoked deletes the key's Secret and PushSecret for good. The key
// ID and digest stay in status for audit.
func (r *APIKeyReconciler) reconcileRevoked(ctx context.Context, s *apiKeyScope) error {
	if s.key.Status.RevokedAt == nil {
		s.key.Status.RevokedAt = ptrTime(s.now)
	}
	s.retire(s.key.Status.RevokedAt.Time)
	if err := r.readSecret(ctx, s); err != nil {
		return err
	}
	// Someone else's Secret under the name is not ours to delete, and no
	// reason to hold the revocation.
	s.stalledReason, s.stalledMessage = "", ""
	if err := r.deleteSecret(ctx, s); err != nil {
		return err
	}
	return r.deletePushSecret(ctx, s)
}

// deleteSecret deletes the key's Secret if the key owns it.
func (r *APIKeyReconciler) deleteSecret(ctx context.Context, s *apiKeyScope) error {
	if s.secret == nil {
		return nil
	}
	// The preconditions make sure the Secret deleted is the one read: a key
	// written meanwhile (a newer revision) is not thrown away unseen.
	err := r.Delete(ctx, s.secret, client.Preconditions{UID: &s.secret.UID, ResourceVersion: &s.secret.ResourceVersion})
	if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting Secret %q: %w", s.secret.Name, err)
	}
	s.secret = nil
	return nil
}

// expired reports whether the current key has passed its expiry.
func (s *apiKeyScope) expired() bool {
	return s.key.Status.ExpiresAt != nil && !s.now.Before(s.key.Status.ExpiresAt.Time)
}

// conflict reports whether the reconcile must stop for a person to act.
func (s *apiKeyScope) conflict() bool { return s.stalledReason != "" }

func (s *apiKeyScope) setStalled(reason, message string) {
	s.stalledReason, s.stalledMessage = reason, message
}

// requeueAtTime asks to be called again at t, if t is the earliest moment due.
func (s *apiKeyScope) requeueAtTime(t time.Time) {
	if s.requeueAt.IsZero() || t.Before(s.requeueAt) {
		s.requeueAt = t
	}
}

func (s *apiKeyScope) requeueIn(d time.Duration) { s.requeueAtTime(s.now.Add(d)) }

// result turns the earliest due moment into a RequeueAfter. A moment already
// passed (a clock that moved on) is retried promptly.
func (s *apiKeyScope) result() ctrl.Result {
	if s.requeueAt.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(s.requeueAt.Sub(s.now), time.Second)}
}
