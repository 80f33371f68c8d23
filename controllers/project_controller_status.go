package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// computeProjectStatus derives the phase and the Ready condition from what
// reconcileNamespace found and from the spec.
func computeProjectStatus(s *projectScope) {
	status := &s.project.Status
	nsReady := meta.FindStatusCondition(status.Conditions, hubv1.NamespaceReadyCondition)

	switch {
	case s.namespace == nil:
		status.Phase = hubv1.ProjectPending
		status.Namespace = ""
		reason, message := hubv1.ProgressingReason, "waiting for the project's namespace"
		if nsReady != nil {
			reason, message = nsReady.Reason, nsReady.Message
		}
		s.setCondition(hubv1.ReadyCondition, metav1.ConditionFalse, reason, message)
	case s.project.Spec.Archived:
		status.Phase = hubv1.ProjectArchived
		status.Namespace = s.namespace.Name
		s.setCondition(hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.ArchivedReason,
			"the project is archived: its API keys are suspended and no new keys can be created")
	case s.capReached != nil:
		// The usage server marks the project (or the organization) when a
		// Hard cap is exhausted; the phase follows, and the keys with it.
		status.Phase = hubv1.ProjectCapReached
		status.Namespace = s.namespace.Name
		s.setCondition(hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.CapReachedReason, s.capReached.Message)
	default:
		status.Phase = hubv1.ProjectActive
		status.Namespace = s.namespace.Name
		s.setCondition(hubv1.ReadyCondition, metav1.ConditionTrue, hubv1.ReconciledReason,
			fmt.Sprintf("the project is active in namespace %q", s.namespace.Name))
	}
	if nsReady == nil || nsReady.Reason != hubv1.NamespaceConflictReason {
		meta.RemoveStatusCondition(&status.Conditions, hubv1.StalledCondition)
	}
}

func (s *projectScope) setCondition(typ string, status metav1.ConditionStatus, reason, message string) {
	setCondition(&s.project.Status.Conditions, s.project.Generation, typ, status, reason, message)
}

// setNamespaceConflict records a namespace the hub will not adopt. Only a
// person can resolve it, so the Project is Stalled and not retried.
func (s *projectScope) setNamespaceConflict(message string) {
	s.setCondition(hubv1.NamespaceReadyCondition, metav1.ConditionFalse, hubv1.NamespaceConflictReason, message)
	s.setCondition(hubv1.StalledCondition, metav1.ConditionTrue, hubv1.NamespaceConflictReason, message)
}
