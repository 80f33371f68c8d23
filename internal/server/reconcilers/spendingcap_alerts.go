package reconcilers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/caplimit"
	"github.com/minimax/platform-hub/internal/notify"
)

// SpendingCapAlertID is the idempotency key of a threshold alert: the cap,
// the cycle and the threshold. Receivers see it as webhook-id.
func SpendingCapAlertID(capUID string, cycleStart time.Time, threshold int32) string {
	return fmt.Sprintf("cap_%s_%d_%d", capUID, cycleStart.Unix(), threshold)
}

// fireThresholds records an alert for every threshold the cap's use has
// reached in the cycle and that has not fired in it yet, in ascending order,
// and returns every threshold fired in the cycle. The store decides what
// fired, so an alert fires once whichever replica (or restart) gets there.
func (r *SpendingCapReconciler) fireThresholds(ctx context.Context, capObj *hubv1.SpendingCap, s *hubv1.SpendingCapStatus,
	c cycle, now time.Time, org *hubv1.Organization) ([]hubv1.FiredAlert, error) {
	fired, err := r.Outbox.Store.Alerts(ctx, alertlog.Filter{Kind: alertlog.KindCapThreshold,
		SourceUID: string(capObj.UID), CycleStart: c.start})
	if err != nil {
		return nil, err
	}
	done := map[int32]bool{}
	for _, a := range fired {
		done[a.Threshold] = true
	}
	var due []alertlog.Alert
	for _, t := range caplimit.Due(s.Percent, capObj.Spec.EffectiveThresholds(), done) {
		// Microseconds apart, so the store keeps their order.
		at := now.Add(time.Duration(len(due)) * time.Microsecond)
		a, err := notify.NewAlert(alertlog.KindCapThreshold, SpendingCapAlertID(string(capObj.UID), c.start, t), at,
			r.thresholdData(capObj, s, t, org))
		if err != nil {
			return nil, err
		}
		a.Namespace, a.Name, a.SourceUID, a.Project, a.CycleStart, a.Threshold =
			capObj.Namespace, capObj.Name, string(capObj.UID), s.Project, c.start, t
		due = append(due, a)
	}
	if len(due) > 0 {
		channels, err := r.Outbox.Channels(ctx, capObj.Namespace, nonNil(capObj.Spec.Channels))
		if err != nil {
			return nil, err
		}
		recorded, err := r.Outbox.Record(ctx, channels, due)
		if err != nil {
			return nil, err
		}
		for _, a := range recorded {
			r.Log.Info("Alert fired", "spendingcap", capObj.Namespace+"/"+capObj.Name, "threshold", a.Threshold,
				"percent", s.Percent, "channels", len(channels), "alert", a.ID)
		}
		fired = append(fired, recorded...)
	}
	out := make([]hubv1.FiredAlert, 0, len(fired))
	for _, a := range fired {
		out = append(out, hubv1.FiredAlert{Threshold: a.Threshold, FiredAt: metav1.Time{Time: a.Time.Truncate(time.Second)}})
	}
	slices.SortFunc(out, func(a, b hubv1.FiredAlert) int { return int(a.Threshold - b.Threshold) })
	out = slices.CompactFunc(out, func(a, b hubv1.FiredAlert) bool { return a.Threshold == b.Threshold })
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// nonNil makes "no channels named" an empty list: a cap sends to the
// channels it names (and the defaults), not to every channel of its
// namespace.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (r *SpendingCapReconciler) thresholdData(capObj *hubv1.SpendingCap, s *hubv1.SpendingCapStatus, threshold int32,
	org *hubv1.Organization) notify.CapThreshold {
	d := notify.CapThreshold{
		Cap:   notify.ObjectRef{Namespace: capObj.Namespace, Name: capObj.Name, UID: string(capObj.UID)},
		Scope: string(s.Scope), Project: s.Project, Threshold: threshold, Percent: s.Percent,
		Spent: string(s.Spent), Currency: org.Spec.Billing.Currency, Tokens: s.Tokens, UnpricedCalls: s.UnpricedCalls,
		Enforcement: string(capObj.Spec.Enforcement),
		CycleStart:  s.CycleStart.UTC(), CycleEnd: s.CycleEnd.UTC(),
	}
	if capObj.Spec.Limit != nil {
		d.Limit = string(*capObj.Spec.Limit)
	}
	if capObj.Spec.TokenLimit != nil {
		d.TokenLimit = *capObj.Spec.TokenLimit
	}
	if s.ProjectedExhaustion != nil {
		t := s.ProjectedExhaustion.UTC()
		d.ProjectedExhaustion = &t
	}
	if base := strings.TrimSuffix(r.DashboardURL, "/"); base != "" {
		d.DashboardURL = base + "/usage"
		if s.Project != "" {
			d.DashboardURL = base + "/projects/" + s.Project + "/usage"
		}
	}
	return d
}
