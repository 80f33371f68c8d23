package controllers

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// setCondition sets a condition for the given generation and keeps Ready first,
// as the API conventions of this project promise. LastTransitionTime changes
// only when the status does.
func setCondition(conditions *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
	slices.SortStableFunc(*conditions, func(a, b metav1.Condition) int {
		switch {
		case a.Type == b.Type:
			return 0
		case a.Type == hubv1.ReadyCondition:
			return -1
		case b.Type == hubv1.ReadyCondition:
			return 1
		}
		return 0
	})
}
