package reconcilers

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/caplimit"
)

// status renders an evaluation as the cap's status.
func (e evaluation) status(capObj *hubv1.SpendingCap, scope hubv1.CapScope, project string, c cycle, now time.Time) hubv1.SpendingCapStatus {
	spec := &capObj.Spec
	s := hubv1.SpendingCapStatus{
		Scope: scope, Project: project,
		CycleStart: &metav1.Time{Time: c.start}, CycleEnd: &metav1.Time{Time: c.end},
		Spent: amount(e.spent), Tokens: e.tokens, UnpricedCalls: e.unpriced, EvaluatedAt: &metav1.Time{Time: now.Truncate(time.Second)},
		ObservedGeneration: capObj.Generation,
		Conditions:         append([]metav1.Condition(nil), capObj.Status.Conditions...),
	}
	fraction := caplimit.Of(spec).Fraction(caplimit.Use{Spent: e.spent, Tokens: e.tokens})
	s.Percent = caplimit.Percent(fraction)
	s.State = caplimit.State(fraction, spec.EffectiveThresholds())
	if hours := decimal.NewFromFloat(e.recent.Hours()); e.recent >= time.Minute {
		s.BurnRate = &hubv1.BurnRate{SpendPerHour: amount(e.recentSpend.Div(hours)),
			TokensPerHour: decimal.NewFromInt(e.recentTokens).Div(hours).IntPart()}
		if eta := e.exhaustion(spec, now); eta != nil && eta.Before(c.end) && s.State != hubv1.CapExceeded {
			s.ProjectedExhaustion = &metav1.Time{Time: eta.Truncate(time.Second)}
		}
	}

	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: hubv1.ReconciledReason, ObservedGeneration: capObj.Generation,
		Message: fmt.Sprintf("evaluated as usage is stored; the billing cycle started %s", c.start.UTC().Format(time.RFC3339))})
	if s.State == hubv1.CapExceeded && spec.Enforcement == hubv1.CapHard {
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: hubv1.CapReachedCondition, Status: metav1.ConditionTrue,
			Reason: hubv1.CapReachedReason, ObservedGeneration: capObj.Generation,
			Message: fmt.Sprintf("the cap is exhausted: API calls it covers are refused until it is raised or the cycle ends at %s",
				c.end.UTC().Format(time.RFC3339))})
	} else {
		meta.RemoveStatusCondition(&s.Conditions, hubv1.CapReachedCondition)
	}
	return s
}

// exhaustion is when the cap reaches 100% at the recent rate, or nil when
// usage is not growing.
func (e evaluation) exhaustion(spec *hubv1.SpendingCapSpec, now time.Time) *time.Time {
	var eta *time.Time
	consider := func(remaining, perHour decimal.Decimal) {
		if !perHour.IsPositive() {
			return
		}
		hours, _ := remaining.Div(perHour).Float64()
		t := now.Add(time.Duration(hours * float64(time.Hour)))
		if eta == nil || t.Before(*eta) {
			eta = &t
		}
	}
	hours := decimal.NewFromFloat(e.recent.Hours())
	if spec.Limit != nil {
		if limit, err := decimal.NewFromString(string(*spec.Limit)); err == nil {
			consider(limit.Sub(e.spent), e.recentSpend.Div(hours))
		}
	}
	if spec.TokenLimit != nil {
		consider(decimal.NewFromInt(*spec.TokenLimit-e.tokens), decimal.NewFromInt(e.recentTokens).Div(hours))
	}
	return eta
}

func amount(d decimal.Decimal) hubv1.Amount {
	return hubv1.Amount(d.Round(9).String())
}
