// Package controllers holds one reconciler per hub resource. Each runs inside
// the `manager` role; envtest suites beside them prove their behaviour against
// a real kube-apiserver.
package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// fieldOwner is the field manager of every object the hub writes.
const fieldOwner = "platform-hub"

// Options are the dependencies shared by the reconcilers.
type Options struct {
	// Clock tells the time; tests pass a fake one.
	Clock clock.PassiveClock
	// APIKeyWorkers is how many API keys are reconciled at once. Issuing a
	// key waits on two API-server round trips, so several workers keep the
	// API server busy. Default 16.
	APIKeyWorkers int
	// ServerAccess grants the usage server get on Secrets in each project
	// namespace; empty grants nothing.
	ServerAccess SecretAccess
	// ManagerAccess grants the manager itself its key Secret permissions
	// in each project namespace; empty grants nothing (a manager whose
	// ClusterRole grants them, as in tests and hub dev).
	ManagerAccess SecretAccess
	// APIServerAccess grants the management API get on Secrets in each
	// project namespace; empty grants nothing.
	APIServerAccess SecretAccess
}

// SetupWithManager registers every reconciler with the manager.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.APIKeyWorkers == 0 {
		opts.APIKeyWorkers = 16
	}
	secrets := newSecretCaches(mgr)
	if err := mgr.Add(secrets); err != nil {
		return err
	}
	if err := (&ProjectReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("project-controller"),
		ServerAccess:    opts.ServerAccess,
		ManagerAccess:   opts.ManagerAccess,
		APIServerAccess: opts.APIServerAccess,
		Secrets:         secrets,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the project controller: %w", err)
	}
	if err := (&APIKeyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clock:     opts.Clock,
		Recorder:  mgr.GetEventRecorder("apikey-controller"),
		Secrets:   secrets,
	}).SetupWithManager(mgr, opts.APIKeyWorkers); err != nil {
		return fmt.Errorf("setting up the API key controller: %w", err)
	}
	if err := (&AccessReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the access controller: %w", err)
	}
	if err := (&OrganizationReconciler{
		Client:   mgr.GetClient(),
		Clock:    opts.Clock,
		Recorder: mgr.GetEventRecorder("organization-controller"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the organization controller: %w", err)
	}
	return nil
}

// conflictRequeue is how soon a reconcile that lost a write to a
// concurrent one runs again.
const conflictRequeue = 200 * time.Millisecond

// quietConflicts runs a reconciler and turns an update conflict (a write
// that met a concurrent one, which the next reconcile resolves by reading
// again) into a prompt requeue, logged at debug level: controller-runtime
// logs every returned error as "Reconciler error" with a stack trace, and
// error level is for what an operator must act on.
type quietConflicts struct{ reconcile.Reconciler }

func (q quietConflicts) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := q.Reconciler.Reconcile(ctx, req)
	if err != nil && apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("Write conflict; reconciling again", "error", err.Error())
		return reconcile.Result{RequeueAfter: conflictRequeue}, nil
	}
	return res, err
}
