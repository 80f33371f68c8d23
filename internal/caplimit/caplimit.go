// Package caplimit decides what a SpendingCap's use means: how much of the
// cap is used, its state, which alert thresholds are reached, and whether a
// Hard cap stops traffic. The server's evaluation
// (reconcilers.SpendingCapReconciler) and the gateway's own count of what it
// metered (gateway.Budgets) both decide here, so they cannot disagree on
// where a cap stops.
package caplimit

import (
	"github.com/shopspring/decimal"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// Limits are a SpendingCap's limits, read once from its spec.
type Limits struct {
	// Money is the most money per billing cycle, or nil.
	Money *decimal.Decimal
	// Tokens is the most input and output tokens per billing cycle, or nil.
	Tokens *int64
}

// Of reads a cap's limits. A money limit that is not a positive decimal
// (the API refuses one; a cap written around it) counts as no limit.
func Of(spec *hubv1.SpendingCapSpec) Limits {
	var l Limits
	if spec.Limit != nil {
		if d, err := decimal.NewFromString(string(*spec.Limit)); err == nil && d.IsPositive() {
			l.Money = &d
		}
	}
	if spec.TokenLimit != nil && *spec.TokenLimit > 0 {
		t := *spec.TokenLimit
		l.Tokens = &t
	}
	return l
}

// Use is a cap's use in a billing cycle.
type Use struct {
	// Spent is money, in the organization's currency.
	Spent decimal.Decimal
	// Tokens counts input and output tokens.
	Tokens int64
}

// Fraction is how much of the cap u uses: the larger of spent/money and
// tokens/tokens (1 is 100%), to 12 decimal places.
func (l Limits) Fraction(u Use) decimal.Decimal {
	used := decimal.Zero
	if l.Money != nil {
		used = decimal.Max(used, u.Spent.DivRound(*l.Money, 12))
	}
	if l.Tokens != nil {
		used = decimal.Max(used, decimal.NewFromInt(u.Tokens).DivRound(decimal.NewFromInt(*l.Tokens), 12))
	}
	return used
}

// Reached tells whether u reaches a limit: at 100%, a Hard cap stops
// traffic. It is exact (no rounding), and cheap enough to ask on every call.
func (l Limits) Reached(u Use) bool {
	return (l.Tokens != nil && u.Tokens >= *l.Tokens) || (l.Money != nil && u.Spent.GreaterThanOrEqual(*l.Money))
}

var hundred = decimal.NewFromInt(100)

// Percent is a fraction as a whole percentage, rounded down (at most 2^30).
func Percent(fraction decimal.Decimal) int32 {
	return int32(min(fraction.Mul(hundred).Floor().IntPart(), 1<<30))
}

// State is a cap's state at a fraction used: Exceeded at 100%, Warning from
// the first threshold (thresholds ascending, as the API keeps them), OK
// below it.
func State(fraction decimal.Decimal, thresholds []int32) hubv1.CapState {
	switch {
	case fraction.GreaterThanOrEqual(decimal.NewFromInt(1)):
		return hubv1.CapExceeded
	case len(thresholds) > 0 && Percent(fraction) >= thresholds[0]:
		return hubv1.CapWarning
	}
	return hubv1.CapOK
}

// Due lists, ascending, the thresholds a percentage used has reached that
// have not fired yet.
func Due(percent int32, thresholds []int32, fired map[int32]bool) []int32 {
	var due []int32
	for _, t := range thresholds {
		if percent >= t && !fired[t] {
			due = append(due, t)
		}
	}
	return due
}
