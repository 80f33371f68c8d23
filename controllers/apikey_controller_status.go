package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
)

// computeAPIKeyStatus derives the phase and conditions from what the phases
// of this reconcile found and did.
func computeAPIKeyStatus(s *apiKeyScope) {
	status := &s.key.Status
	reportLifetimePolicy(s)
	reportRenewal(s)
	ready := func(st metav1.ConditionStatus, reason, msg string) {
		setCondition(&status.Conditions, s.key.Generation, hubv1.ReadyCondition, st, reason, msg)
	}
	// Revoked and Expired come first: they hold whatever else is wrong.
	switch {
	case s.key.Spec.Revoked:
		status.Phase = hubv1.KeyRevoked
		ready(metav1.ConditionFalse, hubv1.KeyRevokedReason,
			fmt.Sprintf("key %s was revoked at %s; its Secret is deleted", status.KeyID, formatTime(status.RevokedAt)))
	case s.expired():
		status.Phase = hubv1.KeyExpired
		ready(metav1.ConditionFalse, hubv1.KeyExpiredReason,
			fmt.Sprintf("key %s expired at %s; its Secret is deleted. Change spec.rotation.trigger to issue a new key",
				status.KeyID, formatTime(status.ExpiresAt)))
	case s.stalledReason != "":
		status.Phase = hubv1.KeyPending
		ready(metav1.ConditionFalse, s.stalledReason, s.stalledMessage)
	case status.Revision == 0:
		status.Phase = hubv1.KeyPending
		if s.issuanceError != nil {
			ready(metav1.ConditionFalse, hubv1.IssuanceFailedReason, s.issuanceError.Error())
		} else {
			ready(metav1.ConditionFalse, hubv1.ProgressingReason, "issuing the key")
		}
	case s.project.Spec.Archived:
		status.Phase = hubv1.KeySuspended
		ready(metav1.ConditionFalse, hubv1.ProjectArchivedReason,
			fmt.Sprintf("project %q is archived; the key works again when it is unarchived", s.project.Name))
	case s.project.Status.Phase == hubv1.ProjectCapReached:
		status.Phase = hubv1.KeySuspended
		ready(metav1.ConditionFalse, hubv1.CapReachedReason,
			fmt.Sprintf("project %q reached a hard spending cap; the key works again when the cap is raised or the next billing cycle starts", s.project.Name))
	case status.PreviousKey != nil:
		status.Phase = hubv1.KeyRotating
		ready(metav1.ConditionTrue, hubv1.KeyRotatedReason,
			fmt.Sprintf("key %s is current; the previous key %s stays valid until %s",
				status.KeyID, status.PreviousKey.KeyID, formatTime(&status.PreviousKey.ValidUntil)))
	default:
		status.Phase = hubv1.KeyActive
		ready(metav1.ConditionTrue, hubv1.ReconciledReason, fmt.Sprintf("key %s is active", status.KeyID))
	}

	if s.issuanceError != nil && status.Revision > 0 {
		setCondition(&status.Conditions, s.key.Generation, hubv1.IssuingCondition, metav1.ConditionTrue,
			hubv1.IssuanceFailedReason, fmt.Sprintf("could not issue the next key (attempt %d, retrying with backoff): %v",
				status.FailedIssuanceAttempts, s.issuanceError))
	} else if s.awaitingKey != "" {
		setCondition(&status.Conditions, s.key.Generation, hubv1.IssuingCondition, metav1.ConditionTrue,
			hubv1.AwaitingKeyRequestReason, s.awaitingKey)
	} else if s.issuanceError == nil {
		meta.RemoveStatusCondition(&status.Conditions, hubv1.IssuingCondition)
	}
	if s.stalledReason != "" {
		setCondition(&status.Conditions, s.key.Generation, hubv1.StalledCondition, metav1.ConditionTrue, s.stalledReason, s.stalledMessage)
	} else {
		meta.RemoveStatusCondition(&status.Conditions, hubv1.StalledCondition)
	}
}

// reportRenewal sets RenewBeforeAdjusted while spec.rotation.renewBefore
// cannot be honoured (see renewBefore), and removes it otherwise.
func reportRenewal(s *apiKeyScope) {
	status := &s.key.Status
	before, adjusted, ok := s.renewBefore()
	if !ok || !adjusted || s.key.Spec.Revoked || s.expired() {
		meta.RemoveStatusCondition(&status.Conditions, hubv1.RenewBeforeAdjustedCondition)
		return
	}
	setCondition(&status.Conditions, s.key.Generation, hubv1.RenewBeforeAdjustedCondition, metav1.ConditionTrue,
		hubv1.RenewBeforeTooLongReason, fmt.Sprintf("spec.rotation.renewBefore (%s) would renew key %s less than a third of "+
			"its lifetime, or less than its overlap (%s), after it was issued; it renews when a third of its lifetime is left, "+
			"%s before expiry, at %s. Choose a renewBefore of at most %s", s.key.Spec.Rotation.RenewBefore.Duration, status.KeyID,
			s.overlap(), before.Round(time.Second), formatTime(ptrTime(status.ExpiresAt.Add(-before))),
			maxRenewBefore(status.ExpiresAt.Sub(status.CreatedAt.Time), s.overlap()).Round(time.Second)))
}

// reportLifetimePolicy sets BeyondLifetimePolicy while the current key
// outlives the organization's maximum lifetime, and removes it otherwise.
func reportLifetimePolicy(s *apiKeyScope) {
	status := &s.key.Status
	if status.Revision == 0 || s.key.Spec.Revoked || s.expired() || !s.policy.BeyondPolicy(status.Lifetime) {
		meta.RemoveStatusCondition(&status.Conditions, hubv1.BeyondLifetimePolicyCondition)
		return
	}
	expires := "never expires"
	if status.ExpiresAt != nil {
		expires = "expires at " + formatTime(status.ExpiresAt)
	}
	setCondition(&status.Conditions, s.key.Generation, hubv1.BeyondLifetimePolicyCondition, metav1.ConditionTrue,
		hubv1.LifetimeBeyondPolicyReason, fmt.Sprintf("key %s (lifetime %s) %s, beyond the organization's maximum of %d days: "+
			"it was issued before that maximum; change spec.rotation.trigger to issue a key within it",
			status.KeyID, status.Lifetime, expires, *s.policy.MaxLifetimeDays))
}

// recordTransition emits events for what changed, with the condition reason as
// the event reason. Messages name keys by their public ID only.
func (r *APIKeyReconciler) recordTransition(s *apiKeyScope) {
	status, before := &s.key.Status, &s.statusBefore
	event := func(eventType, reason, action, note string, args ...any) {
		// Notes name keys by ID; Redact holds should an error quote more.
		r.Recorder.Eventf(s.key, nil, eventType, reason, action, "%s", keys.Redact(fmt.Sprintf(note, args...)))
	}
	// The first key gets no event: status says it all, and keys created by
	// the thousand through GitOps would double the API server's writes for
	// nothing more. Every later key is a rotation, which is worth telling.
	if s.issuedReason != "" && status.Revision > 1 {
		event(corev1.EventTypeNormal, hubv1.KeyRotatedReason, "RotateKey", "Issued key %s (revision %d): %s",
			status.KeyID, status.Revision, s.issuedReason)
	}
	if s.retiredKeyID != "" {
		event(corev1.EventTypeNormal, hubv1.PreviousKeyRetiredReason, "RetireKey", "Previous key %s no longer works", s.retiredKeyID)
	}
	if status.Phase == before.Phase {
		if s.issuanceError != nil && status.FailedIssuanceAttempts == 1 {
			event(corev1.EventTypeWarning, hubv1.IssuanceFailedReason, "IssueKey", "Could not issue a key: %v", s.issuanceError)
		}
		return
	}
	ready := meta.FindStatusCondition(status.Conditions, hubv1.ReadyCondition)
	switch status.Phase {
	case hubv1.KeyExpired, hubv1.KeySuspended:
		event(corev1.EventTypeWarning, ready.Reason, "UpdatePhase", "%s", ready.Message)
	case hubv1.KeyRevoked:
		event(corev1.EventTypeNormal, ready.Reason, "RevokeKey", "%s", ready.Message)
	case hubv1.KeyActive, hubv1.KeyRotating:
		if before.Phase == hubv1.KeySuspended {
			event(corev1.EventTypeNormal, "Resumed", "UpdatePhase", "Key %s works again", status.KeyID)
		}
	case hubv1.KeyPending:
		if s.stalledReason != "" {
			event(corev1.EventTypeWarning, s.stalledReason, "IssueKey", "%s", s.stalledMessage)
		}
	}
}

func formatTime(t *metav1.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
