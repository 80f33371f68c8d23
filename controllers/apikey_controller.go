package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/statusapply"
	"github.com/minimax/platform-hub/internal/wakeup"
)

// APIKeyReconciler issues API keys into Secrets and runs their lifecycle:
// expiry, rotation with an overlap window, revocation and suspension. It is
// modelled on cert-manager's Certificate: a revision counts the keys issued,
// the Secret records the revision of the key it holds (so a key minted before
// a crash is adopted, never minted twice), and failed issuance backs off.
//
// It sets these conditions on an APIKey:
//   - Ready: True when the key works (Active or Rotating); False with
//     Revoked, Expired, ProjectArchived, CapReached, NotInProject,
//     SecretConflict or IssuanceFailed.
//   - Issuing: True while a needed key could not be written (IssuanceFailed).
//   - Delivered: with spec.delivery only; True when the PushSecret is in place.
//   - Stalled: True with NotInProject or SecretConflict, which need a person.
type APIKeyReconciler struct {
	client.Client

	// APIReader reads Secrets from the API server, bypassing the cache, which
	// holds only the hub's own Secrets.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// Secrets reads the key Secrets, one cache per project namespace.
	Secrets *SecretCaches

	// schedule wakes keys at their due moments by Clock (renewal, the end
	// of an overlap, expiry); nil with a clock that cannot.
	schedule *wakeup.Schedule

	// pushSecrets is true when the cluster serves External Secrets Operator's
	// PushSecret API.
	pushSecrets bool
}

// conflictRetry is how often a key looks again at a Secret name that someone
// else's Secret holds: that Secret is not in the cache, so its deletion
// raises no event here.
const conflictRetry = time.Minute

// apiKeyScope is what one reconcile of an APIKey reads and decides.
type apiKeyScope struct {
	key          *hubv1.APIKey
	statusBefore hubv1.APIKeyStatus
	now          time.Time

	// project is the key's Project; nil when the namespace is not a project's.
	project *hubv1.Project
	// policy is the organization's key policy; nil when there is none.
	policy *hubv1.APIKeyPolicy
	// lifetime is the lifetime a key issued now gets (spec, else policy).
	lifetime hubv1.KeyLifetime
	// secret is the key's Secret when it exists and belongs to the key.
	secret *corev1.Secret

	// requeueAt is the earliest moment something is due (expiry, end of an
	// overlap, automatic rotation, a retry).
	requeueAt time.Time

	// What this reconcile did or found, for conditions and events.
	stalledReason, stalledMessage string
	issuedReason                  string
	issuanceError                 error
	retiredKeyID                  string
	// awaitingKey says why a key of delivery mode None waits for a key
	// the management API mints.
	awaitingKey string
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys/status,verbs=get;update;patch
// Secrets: only in project namespaces, through hub-manager-secrets, bound in
// each as it is created (see SecretCaches and reconcileSecretAccess).
// +kubebuilder:rbac:groups=external-secrets.io,resources=pushsecrets,verbs=get;list;watch;create;update;delete

// Reconcile brings one APIKey's Secret and status in line with its spec and
// with the time.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	key := &hubv1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !key.DeletionTimestamp.IsZero() {
		// The Secret and PushSecret are owned by the key and garbage-collected.
		return ctrl.Result{}, nil
	}
	// Times in status have whole seconds; so does every decision on them.
	s := &apiKeyScope{key: key, statusBefore: *key.Status.DeepCopy(), now: r.Clock.Now().Truncate(time.Second)}
	defer func() {
		computeAPIKeyStatus(s)
		// The next due moment, by this reconciler's clock, as well as
		// the RequeueAfter returned (by the real one).
		r.schedule.At(req, s.requeueAt)
		err := r.writeStatus(ctx, s)
		if err == nil {
			// Only what was recorded is told, and only once: a failed status
			// write is retried, and would otherwise repeat the events.
			r.recordTransition(s)
		}
		retErr = errors.Join(retErr, err)
	}()

	if err := r.readContext(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if key.Spec.Revoked {
		return ctrl.Result{}, r.reconcileRevoked(ctx, s)
	}
	if s.project == nil {
		s.setStalled(hubv1.NotInProjectReason, fmt.Sprintf("namespace %q is not the namespace of a Project; "+
			"API keys are issued only in project namespaces", s.key.Namespace))
		return ctrl.Result{}, nil
	}
	if key.DeliveryMode() == hubv1.DeliverySecret {
		if err := r.readSecret(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	// With the Secret's name taken by someone else, the phases that write the
	// Secret stand back, and the ones that only decide from status (the end
	// of an overlap, expiry) still run, so a key never outlives its time.
	for _, phase := range []func(context.Context, *apiKeyScope) error{
		r.reconcileIssuance,
		r.reconcileSecret,
		r.reconcileLifetime,
		r.reconcileOverlap,
		r.reconcileExpiry,
		r.reconcileDelivery,
	} {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	if s.conflict() {
		s.requeueIn(conflictRetry)
	}
	return s.result(), nil
}

// readContext reads the key's Project and the organization's key policy.
func (r *APIKeyReconciler) readContext(ctx context.Context, s *apiKeyScope) error {
	project := &hubv1.Project{}
	err := r.Get(ctx, client.ObjectKey{Name: s.key.Namespace}, project)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading project %q: %w", s.key.Namespace, err)
	case project.Status.Namespace == s.key.Namespace:
		s.project = project
	}
	org := &hubv1.Organization{}
	err = r.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading the organization's key policy: %w", err)
	default:
		s.policy = org.Spec.Security.APIKeys
	}
	s.lifetime = s.policy.IssuedLifetime(s.key.Spec.ExpiresAfter)
	return nil
}

// writeStatus writes the status computed in this reconcile, if it changed.
// The controller owns every status field but usage and lastUsedAt (the
// usage server's), and never changes those: it sends them back as read.
// The update carries the resource version read, so it succeeds only if
// nobody wrote in between (then the values sent back are the current ones)
// and the API server records the controller as manager of just the fields
// it changed. Bulk issuance is bound by the API server, and an update costs
// it less than a server-side apply (BenchmarkAPIKeyIssuance measured about
// a fifth fewer keys per second with apply).
func (r *APIKeyReconciler) writeStatus(ctx context.Context, s *apiKeyScope) error {
	s.key.Status.ObservedGeneration = s.key.Generation
	if equality.Semantic.DeepEqual(s.statusBefore, s.key.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, s.key, client.FieldOwner(statusapply.OwnerAPIKeyController)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}

// SetupWithManager registers the controller. Besides its APIKeys it watches
// the Secrets it owns (a deleted Secret is re-issued), the Projects (archive
// suspends keys) and the Organization (the key policy).
func (r *APIKeyReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		// Status writes (the controller's own, and lastUsedAt from metering)
		// need no reconcile; spec, label and annotation changes do.
		For(&hubv1.APIKey{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// Changes to the key Secrets come from each project namespace's
		// cache (SecretCaches), through one channel.
		WatchesRawSource(r.Secrets.Source()).
		Watches(&hubv1.Project{}, handler.EnqueueRequestsFromMapFunc(r.keysOfProject),
			builder.WithPredicates(projectStateChanged())).
		Watches(&hubv1.Organization{}, handler.EnqueueRequestsFromMapFunc(r.allKeys),
			builder.WithPredicates(keyPolicyChanged())).
		Named("apikey")

	served, err := servesPushSecrets(mgr)
	if err != nil {
		return err
	}
	if served {
		r.pushSecrets = true
		b = b.Owns(newPushSecret())
	}
	if r.schedule = wakeup.New(r.Clock); r.schedule != nil {
		b = b.WatchesRawSource(r.schedule.Source())
	}
	return b.Complete(quietConflicts{r})
}

func (r *APIKeyReconciler) keysOfProject(ctx context.Context, obj client.Object) []reconcile.Request {
	project := obj.(*hubv1.Project)
	return r.keyRequests(ctx, client.InNamespace(project.Name))
}

func (r *APIKeyReconciler) allKeys(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.keyRequests(ctx)
}

func (r *APIKeyReconciler) keyRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	keys := &hubv1.APIKeyList{}
	if err := r.List(ctx, keys, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing API keys to reconcile")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(keys.Items))
	for i := range keys.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
			Namespace: keys.Items[i].Namespace, Name: keys.Items[i].Name,
		}})
	}
	return reqs
}
