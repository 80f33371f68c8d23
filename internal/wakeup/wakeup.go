// Package wakeup wakes a reconciler at the moments its objects' state says
// something is due (a key's renewal, the end of an overlap, an expiry, an
// expiry warning), by the reconciler's clock.
package wakeup

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Schedule wakes a reconciler at the moments its objects' state says
// something is due, by the reconciler's clock. A RequeueAfter alone waits by the workqueue's clock,
// which is always the real one: with the clock of the tests (or any clock
// moved on), a due moment would pass unnoticed until something else
// touched the object. Each object has at most one wake-up, the latest one
// asked for, since a reconcile computes its earliest due moment anew.
type Schedule struct {
	clock  clock.WithDelayedExecution
	wakeUp chan event.TypedGenericEvent[reconcile.Request]

	mu     sync.Mutex
	timers map[types.NamespacedName]clock.Timer
}

// New returns a schedule by c, or nil when c cannot run functions later
// (a bare PassiveClock): then RequeueAfter alone schedules. A nil Schedule
// is valid and does nothing.
func New(c clock.PassiveClock) *Schedule {
	delayed, ok := c.(clock.WithDelayedExecution)
	if !ok {
		return nil
	}
	return &Schedule{clock: delayed, wakeUp: make(chan event.TypedGenericEvent[reconcile.Request], 1024),
		timers: map[types.NamespacedName]clock.Timer{}}
}

// Source is what the reconciler watches (WatchesRawSource): its objects,
// at their moments.
func (s *Schedule) Source() source.TypedSource[reconcile.Request] {
	return source.TypedChannel(s.wakeUp, handler.TypedFuncs[reconcile.Request, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[reconcile.Request],
			q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			q.Add(e.Object)
		},
	})
}

// At wakes req at t (by the clock), replacing any earlier wake-up of it; a
// zero t cancels it. A replaced wake-up that fires anyway costs one
// reconcile that finds nothing due.
func (s *Schedule) At(req reconcile.Request, t time.Time) {
	if s == nil {
		return
	}
	var timer clock.Timer
	if !t.IsZero() {
		// The fake clock runs this function while it holds its own lock:
		// it takes no lock of ours, and never waits on a full channel.
		timer = s.clock.AfterFunc(max(t.Sub(s.clock.Now()), 0), func() {
			e := event.TypedGenericEvent[reconcile.Request]{Object: req}
			select {
			case s.wakeUp <- e:
			default:
				go func() { s.wakeUp <- e }()
			}
		})
	}
	s.mu.Lock()
	old := s.timers[req.NamespacedName]
	if timer != nil {
		s.timers[req.NamespacedName] = timer
	} else {
		delete(s.timers, req.NamespacedName)
	}
	s.mu.Unlock()
	if old != nil {
		old.Stop()
	}
}
