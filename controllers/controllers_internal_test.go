package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

type failing struct{ err error }

func (f failing) Reconcile(context.Context, reconcile.Request) (reconcile.Result, error) {
	return reconcile.Result{}, f.err
}

// TestConflictsAreRequeuedQuietly: a reconcile that lost a write to a
// concurrent one (however wrapped) is requeued, not reported as an error;
// other errors are returned as they are.
func TestConflictsAreRequeuedQuietly(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "apikeys"}, "k", errors.New("modified"))
	for _, err := range []error{conflict, fmt.Errorf("writing status: %w", conflict), errors.Join(nil, fmt.Errorf("x: %w", conflict))} {
		res, got := quietConflicts{failing{err}}.Reconcile(context.Background(), reconcile.Request{})
		if got != nil || res.RequeueAfter != conflictRequeue {
			t.Errorf("%v: got %v, %+v", err, got, res)
		}
	}
	other := errors.New("boom")
	if _, got := (quietConflicts{failing{other}}).Reconcile(context.Background(), reconcile.Request{}); !errors.Is(got, other) {
		t.Errorf("another error became %v", got)
	}
}
