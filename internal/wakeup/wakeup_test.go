package wakeup

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// TestWakesAtTheLatestMomentAskedFor: an object wakes when the clock
// reaches its moment, not before; asking again moves the moment, and a
// zero moment cancels it.
func TestWakesAtTheLatestMomentAskedFor(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	s := New(clk)
	a := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "p", Name: "a"}}
	b := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "p", Name: "b"}}
	woken := func() []reconcile.Request {
		var out []reconcile.Request
		for {
			select {
			case e := <-s.wakeUp:
				out = append(out, e.Object)
			default:
				return out
			}
		}
	}
	s.At(a, clk.Now().Add(time.Hour))
	s.At(a, clk.Now().Add(2*time.Hour)) // moved
	s.At(b, clk.Now().Add(time.Hour))
	s.At(b, time.Time{}) // cancelled
	clk.Step(time.Hour)
	if got := woken(); len(got) != 0 {
		t.Fatalf("woken at 1h: %v", got)
	}
	clk.Step(time.Hour)
	if got := woken(); len(got) != 1 || got[0] != a {
		t.Fatalf("woken at 2h: %v, want %v", got, a)
	}
	if New(clocktesting.NewFakePassiveClock(clk.Now())) != nil {
		t.Fatal("a clock that cannot run functions later gives no schedule")
	}
	var none *Schedule
	none.At(a, clk.Now()) // a nil schedule does nothing
}
