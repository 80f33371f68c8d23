package controllers

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// projectStateChanged passes Project events that change what its keys do:
// archiving, a spending-cap phase, the namespace becoming ready.
func projectStateChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldP, okOld := e.ObjectOld.(*hubv1.Project)
			newP, okNew := e.ObjectNew.(*hubv1.Project)
			if !okOld || !okNew {
				return true
			}
			return oldP.Spec.Archived != newP.Spec.Archived ||
				oldP.Status.Phase != newP.Status.Phase ||
				oldP.Status.Namespace != newP.Status.Namespace
		},
	}
}

// keyPolicyChanged passes Organization events that change the key policy.
func keyPolicyChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldO, okOld := e.ObjectOld.(*hubv1.Organization)
			newO, okNew := e.ObjectNew.(*hubv1.Organization)
			if !okOld || !okNew {
				return true
			}
			return !equality.Semantic.DeepEqual(oldO.Spec.Security.APIKeys, newO.Spec.Security.APIKeys)
		},
	}
}
