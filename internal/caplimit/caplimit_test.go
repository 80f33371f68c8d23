package caplimit_test

import (
	"slices"
	"testing"

	"github.com/shopspring/decimal"
	"k8s.io/utils/ptr"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/caplimit"
)

func TestLimits(t *testing.T) {
	d := decimal.RequireFromString
	both := caplimit.Of(&hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("10.00")), TokenLimit: ptr.To[int64](1000)})
	thresholds := []int32{50, 80, 100}
	for _, tc := range []struct {
		name    string
		limits  caplimit.Limits
		use     caplimit.Use
		percent int32
		state   hubv1.CapState
		reached bool
	}{
		{"nothing used", both, caplimit.Use{Spent: d("0")}, 0, hubv1.CapOK, false},
		{"money is the fuller", both, caplimit.Use{Spent: d("8.5"), Tokens: 100}, 85, hubv1.CapWarning, false},
		{"tokens are the fuller", both, caplimit.Use{Spent: d("1"), Tokens: 999}, 99, hubv1.CapWarning, false},
		{"exactly the money limit", both, caplimit.Use{Spent: d("10"), Tokens: 0}, 100, hubv1.CapExceeded, true},
		{"exactly the token limit", both, caplimit.Use{Spent: d("0"), Tokens: 1000}, 100, hubv1.CapExceeded, true},
		{"a billionth short", both, caplimit.Use{Spent: d("9.999999999")}, 99, hubv1.CapWarning, false},
		{"no limit is never reached", caplimit.Limits{}, caplimit.Use{Spent: d("1e9"), Tokens: 1 << 62}, 0, hubv1.CapOK, false},
		{"a limit that is not positive is none",
			caplimit.Of(&hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("0")), TokenLimit: ptr.To[int64](0)}),
			caplimit.Use{Spent: d("5"), Tokens: 5}, 0, hubv1.CapOK, false},
		{"far over", both, caplimit.Use{Tokens: 1 << 62}, 1 << 30, hubv1.CapExceeded, true},
	} {
		f := tc.limits.Fraction(tc.use)
		if got := caplimit.Percent(f); got != tc.percent {
			t.Errorf("%s: percent %d, want %d", tc.name, got, tc.percent)
		}
		if got := caplimit.State(f, thresholds); got != tc.state {
			t.Errorf("%s: state %s, want %s", tc.name, got, tc.state)
		}
		if got := tc.limits.Reached(tc.use); got != tc.reached {
			t.Errorf("%s: reached %v, want %v", tc.name, got, tc.reached)
		}
	}
}

func TestDue(t *testing.T) {
	thresholds := []int32{50, 80, 100}
	if got := caplimit.Due(90, thresholds, map[int32]bool{50: true}); !slices.Equal(got, []int32{80}) {
		t.Errorf("due at 90%% with 50 fired: %v", got)
	}
	if got := caplimit.Due(120, thresholds, nil); !slices.Equal(got, []int32{50, 80, 100}) {
		t.Errorf("a jump past every threshold fires them all, in order: %v", got)
	}
	if got := caplimit.Due(49, thresholds, nil); got != nil {
		t.Errorf("nothing is due below the first: %v", got)
	}
}
