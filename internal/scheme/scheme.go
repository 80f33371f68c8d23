// Package scheme builds the runtime scheme every role of the hub uses: the
// Kubernetes built-in types and the hub's own. It is its own package so that
// the gateway and the server can use it without importing the manager's
// wiring, and with it the controllers and webhooks.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// New returns a scheme with the Kubernetes built-in types and the hub's.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := hubv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
