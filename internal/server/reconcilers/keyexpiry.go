package reconcilers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/wakeup"
)

// KeyExpiryWarningDays are the days before expiry at which a key's project
// hears of it.
var KeyExpiryWarningDays = []int32{7, 3, 1}

// KeyExpiryReconciler sends key expiry warnings 7, 3 and 1 days before an
// API key expires, once each, to the NotificationChannels of the key's
// project and the organization's default channels, through the alert outbox.
// When a warning was missed (the hub was down), only the most urgent one due
// is sent: a key 2 days from expiry gets the 3-day warning, not the 7-day one
// as well.
type KeyExpiryReconciler struct {
	client.Client
	Outbox *notify.Outbox
	Clock  clock.PassiveClock
	// DashboardURL is the dashboard's base URL, for the links in warnings.
	DashboardURL string
	// Resync is the longest a key goes unchecked (default 1h).
	Resync time.Duration

	// schedule wakes a key when its next warning is due, by Clock: a
	// clock that jumps (a suspended host, a test's fake clock) still warns
	// on time.
	schedule *wakeup.Schedule
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys,verbs=get;list;watch

// KeyExpiryWarningID is the idempotency key of a warning: the key, the
// expiry it is about (a rotation brings a new one) and the days left.
func KeyExpiryWarningID(keyUID string, expiresAt time.Time, days int32) string {
	return fmt.Sprintf("key_%s_%d_%dd", keyUID, expiresAt.Unix(), days)
}

// Reconcile warns of one key, and comes back when its next warning is due.
func (r *KeyExpiryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := &hubv1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if key.Status.ExpiresAt == nil || (key.Status.Phase != hubv1.KeyActive && key.Status.Phase != hubv1.KeyRotating) {
		return ctrl.Result{}, nil
	}
	now, expires := r.Clock.Now(), key.Status.ExpiresAt.Time
	if !now.Before(expires) {
		return ctrl.Result{}, nil
	}
	// The most urgent warning due now, and when the next one is.
	var due int32
	var next time.Time
	for _, d := range KeyExpiryWarningDays {
		at := expires.Add(-time.Duration(d) * 24 * time.Hour)
		if !now.Before(at) {
			due = d
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if due > 0 {
		if err := r.warn(ctx, key, due, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	resync := r.Resync
	if resync <= 0 {
		resync = time.Hour
	}
	r.schedule.At(req, next)
	if next.IsZero() {
		return ctrl.Result{}, nil // the last warning is out
	}
	return ctrl.Result{RequeueAfter: min(resync, next.Sub(now))}, nil
}

func (r *KeyExpiryReconciler) warn(ctx context.Context, key *hubv1.APIKey, days int32, now time.Time) error {
	expires := key.Status.ExpiresAt.Time
	data := notify.KeyExpiring{Key: notify.ObjectRef{Namespace: key.Namespace, Name: key.Name, UID: string(key.UID)},
		Project: key.Namespace, KeyID: key.Status.KeyID, Owner: key.Spec.Owner, DaysLeft: days, ExpiresAt: expires.UTC()}
	if base := strings.TrimSuffix(r.DashboardURL, "/"); base != "" {
		data.DashboardURL = base + "/projects/" + key.Namespace + "/keys"
	}
	a, err := notify.NewAlert(alertlog.KindKeyExpiring, KeyExpiryWarningID(string(key.UID), expires, days), now, data)
	if err != nil {
		return err
	}
	a.Namespace, a.Name, a.SourceUID, a.Project, a.Threshold = key.Namespace, key.Name, string(key.UID), key.Namespace, days
	channels, err := r.Outbox.Channels(ctx, key.Namespace, nil)
	if err != nil {
		return err
	}
	recorded, err := r.Outbox.Record(ctx, channels, []alertlog.Alert{a})
	if err != nil {
		return err
	}
	if len(recorded) > 0 {
		ctrl.LoggerFrom(ctx).Info("Key expiry warning fired", "daysLeft", days, "channels", len(channels), "alert", a.ID)
	}
	return nil
}

// expiryChanged passes new keys and changes of expiry or phase, not the
// usage written to status every few seconds; the time of a warning is kept
// by requeueing.
func expiryChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*hubv1.APIKey), e.ObjectNew.(*hubv1.APIKey)
		return o.Status.Phase != n.Status.Phase || !o.Status.ExpiresAt.Equal(n.Status.ExpiresAt)
	}}
}

// SetupWithManager registers the reconciler; it runs on the elected replica.
func (r *KeyExpiryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&hubv1.APIKey{}, builder.WithPredicates(expiryChanged())).
		Named("apikey-expiry-warning")
	if r.schedule = wakeup.New(r.Clock); r.schedule != nil {
		b = b.WatchesRawSource(r.schedule.Source())
	}
	return b.Complete(r)
}
