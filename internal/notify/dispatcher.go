package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
)

// Defaults of the Dispatcher.
const (
	DefaultPoll       = time.Second
	DefaultRetryFor   = 24 * time.Hour
	DefaultMinBackoff = 10 * time.Second
	DefaultMaxBackoff = time.Hour
)

// Dispatcher delivers the alerts of the outbox. It runs on the elected
// replica of the server role. Each channel gets its alerts in the order they
// fired: a channel whose oldest pending alert waits for a retry gets nothing
// newer before it. A failed attempt is retried with exponential backoff and
// jitter until RetryFor has passed since the alert fired; then the delivery
// is dead-lettered and the channel says so in a condition.
//
// Delivery is at least once: a crash between a channel accepting an alert
// and the store recording it sends the alert again, with the same
// webhook-id (and email Message-ID), by which receivers drop the repeat.
type Dispatcher struct {
	// Client reads NotificationChannels (from the cache) and writes their
	// status.
	Client client.Client
	// APIReader reads a channel afresh before its status is written, so
	// the optimistic lock does not trip over a cache a moment behind; nil
	// means Client.
	APIReader client.Reader
	Store     alertlog.Store
	Sender    *Sender
	// Clock schedules retries and stamps the outcomes.
	Clock clock.PassiveClock
	Log   logr.Logger
	// Poll is how often the outbox is read when nothing wakes the
	// dispatcher (default 1s).
	Poll time.Duration
	// RetryFor is how long a failing delivery is retried (default 24h).
	RetryFor time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (default
	// 10s and 1h); it doubles per attempt, with ±20% jitter.
	MinBackoff, MaxBackoff time.Duration

	once sync.Once
	wake chan struct{}
	// busy holds the channels being delivered to: each has one worker at
	// a time, so a slow endpoint holds up only its own alerts.
	mu      sync.Mutex
	busy    map[string]bool
	workers sync.WaitGroup
	// finished numbers each worker's end (seq), by channel: a pass whose
	// read of the outbox is older than a channel's last worker's end holds
	// a stale queue for it (alerts since delivered), and leaves it to the
	// next pass, which that worker's end wakes.
	seq      uint64
	finished map[string]uint64
}

// +kubebuilder:rbac:groups=hub.minimax.io,resources=notificationchannels,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=notificationchannels/status,verbs=get;patch

var _ manager.LeaderElectionRunnable = &Dispatcher{}

// NeedLeaderElection is true: one replica sends, so two do not race to send
// the same alert.
func (d *Dispatcher) NeedLeaderElection() bool { return true }

func (d *Dispatcher) init() {
	d.once.Do(func() {
		d.wake = make(chan struct{}, 1)
		d.busy = map[string]bool{}
		d.finished = map[string]uint64{}
	})
}

// Wake makes the dispatcher read the outbox now, after alerts were recorded.
// It never blocks.
func (d *Dispatcher) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start delivers until ctx ends, then waits for the attempts under way.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.init()
	defer d.workers.Wait()
	poll := cmpOr(d.Poll, DefaultPoll)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-d.wake:
		}
		if err := d.Dispatch(ctx); err != nil && ctx.Err() == nil {
			d.Log.Error(err, "Delivering alerts")
		}
		timer.Reset(poll)
	}
}

// Dispatch makes one pass over the outbox: every channel that has no
// worker yet and whose oldest pending alert is due gets one, which delivers
// its due alerts in order until one fails. It does not wait for them.
func (d *Dispatcher) Dispatch(ctx context.Context) error {
	d.init()
	d.mu.Lock()
	readAt := d.seq
	d.mu.Unlock()
	pending, err := d.Store.PendingDeliveries(ctx)
	if err != nil {
		return err
	}
	byChannel := map[string][]alertlog.PendingDelivery{}
	var order []string
	for _, p := range pending {
		if _, ok := byChannel[p.Channel]; !ok {
			order = append(order, p.Channel)
		}
		byChannel[p.Channel] = append(byChannel[p.Channel], p)
	}
	now := d.Clock.Now()
	for _, channel := range order {
		queue := byChannel[channel]
		d.mu.Lock()
		if d.busy[channel] || d.finished[channel] > readAt || queue[0].NextAttempt.After(now) {
			d.mu.Unlock()
			continue
		}
		d.busy[channel] = true
		d.mu.Unlock()
		d.workers.Add(1)
		go func() {
			defer d.workers.Done()
			defer func() {
				d.mu.Lock()
				delete(d.busy, channel)
				d.seq++
				d.finished[channel] = d.seq
				d.mu.Unlock()
				d.Wake() // alerts may have been recorded for it meanwhile
			}()
			if err := d.drain(ctx, queue); err != nil && ctx.Err() == nil {
				d.Log.Error(err, "Delivering alerts", "channel", channel)
			}
		}()
	}
	return nil
}

// drain delivers a channel's due alerts in order, stopping at the first
// that is not due or fails.
func (d *Dispatcher) drain(ctx context.Context, queue []alertlog.PendingDelivery) error {
	for _, p := range queue {
		if p.NextAttempt.After(d.Clock.Now()) {
			return nil
		}
		ok, err := d.deliver(ctx, p)
		if err != nil || !ok {
			return err
		}
	}
	return nil
}

// deliver makes one attempt; ok says whether the channel may have the next
// alert now (this one was delivered or given up).
func (d *Dispatcher) deliver(ctx context.Context, p alertlog.PendingDelivery) (ok bool, err error) {
	log := d.Log.WithValues("alert", p.AlertID, "channel", p.Channel)
	namespace, name, _ := strings.Cut(p.Channel, "/")
	key := client.ObjectKey{Namespace: namespace, Name: name}
	ch := &hubv1.NotificationChannel{}
	var sendErr error
	switch err := d.Client.Get(ctx, key, ch); {
	case apierrors.IsNotFound(err):
		sendErr = fmt.Errorf("NotificationChannel %s does not exist", p.Channel)
		ch = nil
	case err != nil:
		return false, err
	case disabled(ch) && d.stillDisabled(ctx, key):
		return true, d.giveUp(ctx, p, nil, "the channel is disabled: its webhook answered 410 Gone")
	default:
		msg, err := Render(p.Alert)
		if err != nil {
			return true, d.giveUp(ctx, p, ch, err.Error())
		}
		var served []string
		served, sendErr = d.Sender.Send(ctx, ch, msg, p.Done)
		p.Done = append(p.Done, served...)
	}
	if err := ctx.Err(); err != nil {
		return false, err // stopping: the attempt does not count
	}
	now := d.Clock.Now()
	p.Attempts++
	p.Updated = now
	switch {
	case sendErr == nil:
		p.State, p.LastError, p.NextAttempt = alertlog.DeliveryDelivered, "", time.Time{}
		if err := d.Store.UpdateDelivery(ctx, p.Delivery); err != nil {
			return false, err
		}
		log.V(1).Info("Delivered alert")
		return true, d.delivered(ctx, ch, p, now)
	case errors.Is(sendErr, ErrGone):
		log.Info("Channel answered 410 Gone: disabling it")
		return true, d.gone(ctx, ch, p, now)
	case now.Sub(p.Alert.Time) >= cmpOr(d.RetryFor, DefaultRetryFor):
		log.Info("Giving up an alert", "error", sendErr.Error(), "cause", Cause(sendErr))
		return true, d.giveUp(ctx, p, ch, sendErr.Error())
	}
	p.LastError = truncate(sendErr.Error())
	p.NextAttempt = now.Add(d.backoff(p.Attempts))
	log.V(1).Info("Delivery failed; retrying", "error", p.LastError, "cause", Cause(sendErr), "next", p.NextAttempt)
	if err := d.Store.UpdateDelivery(ctx, p.Delivery); err != nil {
		return false, err
	}
	if ch == nil {
		return false, nil
	}
	return false, d.updateChannel(ctx, ch, func(s *hubv1.NotificationChannelStatus, gen int64) {
		s.Failures++
		s.LastFailureTime, s.LastFailure = &metav1.Time{Time: now}, p.LastError
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionFalse,
			Reason: hubv1.AlertDeliveryFailingReason, ObservedGeneration: gen,
			Message: fmt.Sprintf("alert %s failed (%s); retrying until %s", p.AlertID, p.LastError,
				p.Alert.Time.Add(cmpOr(d.RetryFor, DefaultRetryFor)).UTC().Format(time.RFC3339))})
	})
}

// backoff is the wait after the n-th failed attempt: MinBackoff doubled per
// attempt up to MaxBackoff, ±20% so that many alerts to one endpoint spread.
func (d *Dispatcher) backoff(n int) time.Duration {
	wait := cmpOr(d.MinBackoff, DefaultMinBackoff)
	limit := cmpOr(d.MaxBackoff, DefaultMaxBackoff)
	for i := 1; i < n && wait < limit; i++ {
		wait *= 2
	}
	wait = min(wait, limit)
	return time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())) //nolint:gosec // jitter, not a secret
}

func (d *Dispatcher) delivered(ctx context.Context, ch *hubv1.NotificationChannel, p alertlog.PendingDelivery, now time.Time) error {
	return d.updateChannel(ctx, ch, func(s *hubv1.NotificationChannelStatus, gen int64) {
		s.LastDeliveryTime = &metav1.Time{Time: now}
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
			Reason: hubv1.AlertDeliveredReason, ObservedGeneration: gen, Message: fmt.Sprintf("alert %s was delivered", p.AlertID)})
		if meta.IsStatusConditionTrue(s.Conditions, hubv1.DeadLetteredCondition) {
			meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.DeadLetteredCondition, Status: metav1.ConditionFalse,
				Reason: hubv1.AlertDeliveredReason, ObservedGeneration: gen,
				Message: "deliveries succeed again; alerts given up before stay in the alert history"})
		}
		meta.RemoveStatusCondition(&s.Conditions, hubv1.DisabledCondition) // its spec changed since the 410
	})
}

func (d *Dispatcher) gone(ctx context.Context, ch *hubv1.NotificationChannel, p alertlog.PendingDelivery, now time.Time) error {
	p.State, p.LastError, p.NextAttempt = alertlog.DeliveryDead, ErrGone.Error(), time.Time{}
	if err := d.Store.UpdateDelivery(ctx, p.Delivery); err != nil {
		return err
	}
	return d.updateChannel(ctx, ch, func(s *hubv1.NotificationChannelStatus, gen int64) {
		s.Failures++
		s.LastFailureTime, s.LastFailure = &metav1.Time{Time: now}, p.LastError
		msg := "the webhook answered 410 Gone: nothing more is sent to it; change the channel's spec (a new URL) to enable it again"
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.DisabledCondition, Status: metav1.ConditionTrue,
			Reason: hubv1.GoneReason, ObservedGeneration: gen, Message: msg})
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionFalse,
			Reason: hubv1.GoneReason, ObservedGeneration: gen, Message: msg})
	})
}

// giveUp dead-letters a delivery: it stays in the history with its last
// error, and the channel (when it exists) says so.
func (d *Dispatcher) giveUp(ctx context.Context, p alertlog.PendingDelivery, ch *hubv1.NotificationChannel, reason string) error {
	now := d.Clock.Now()
	p.State, p.LastError, p.NextAttempt, p.Updated = alertlog.DeliveryDead, truncate(reason), time.Time{}, now
	if err := d.Store.UpdateDelivery(ctx, p.Delivery); err != nil {
		return err
	}
	if ch == nil {
		return nil
	}
	return d.updateChannel(ctx, ch, func(s *hubv1.NotificationChannelStatus, gen int64) {
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.DeadLetteredCondition, Status: metav1.ConditionTrue,
			Reason: hubv1.DeadLetterReason, ObservedGeneration: gen,
			Message: truncate(fmt.Sprintf("alert %s (fired %s) was given up: %s", p.AlertID, p.Alert.Time.UTC().Format(time.RFC3339), p.LastError))})
	})
}

// updateChannel patches the status of the channel an attempt used, read
// fresh and guarded by its resource version. When the channel's spec changed
// since (a new URL), the outcome is about a destination that is gone, and
// nothing is written: the next attempt, to the new one, tells.
func (d *Dispatcher) updateChannel(ctx context.Context, used *hubv1.NotificationChannel, mutate func(*hubv1.NotificationChannelStatus, int64)) error {
	if used == nil {
		return nil
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		reader := d.APIReader
		if reader == nil {
			reader = d.Client
		}
		ch := &hubv1.NotificationChannel{}
		if err := reader.Get(ctx, client.ObjectKeyFromObject(used), ch); err != nil {
			return err
		}
		if ch.Generation != used.Generation {
			return nil
		}
		before := ch.DeepCopy()
		mutate(&ch.Status, ch.Generation)
		ch.Status.ObservedGeneration = ch.Generation
		return d.Client.Status().Patch(ctx, ch, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	return client.IgnoreNotFound(err)
}

// stillDisabled reads the channel afresh: the cache may not have seen an
// edit that enables it again.
func (d *Dispatcher) stillDisabled(ctx context.Context, key client.ObjectKey) bool {
	if d.APIReader == nil {
		return true
	}
	ch := &hubv1.NotificationChannel{}
	return d.APIReader.Get(ctx, key, ch) != nil || disabled(ch)
}

// disabled says whether a 410 disabled the channel at its current spec.
func disabled(ch *hubv1.NotificationChannel) bool {
	c := meta.FindStatusCondition(ch.Status.Conditions, hubv1.DisabledCondition)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == ch.Generation
}

func truncate(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
