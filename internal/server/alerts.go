package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/minimax/platform-hub/internal/alertlog"
)

// AlertsPath lists the alert history.
const AlertsPath = "/v1/alerts"

// storeUnavailable answers a query the store could not serve.
const storeUnavailable = "the usage store is unavailable; retry"

// timeRange reads the from and to parameters (RFC 3339) of a listing.
func timeRange(q url.Values, from, to *time.Time) error {
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", from}, {"to", to}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fmt.Errorf("%s must be an RFC 3339 time such as 2026-11-01T00:00:00Z, not %q", p.name, v)
			}
			*p.into = t
		}
	}
	return nil
}

// Limits of one alert listing.
const (
	defaultAlertLimit = 100
	maxAlertLimit     = 1000
)

// AlertsResponse is the body of an alert listing.
type AlertsResponse struct {
	// Alerts are oldest first; under a limit, the newest are kept.
	Alerts []alertlog.Alert `json:"alerts"`
}

// listAlerts answers GET /v1/alerts: the alert history (spending cap
// thresholds and key expiry warnings) with the state of every delivery.
// Query parameters, all optional: project, kind, from and to (RFC 3339),
// limit (default 100, at most 1000).
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := alertlog.Filter{Project: q.Get("project"), Kind: alertlog.Kind(q.Get("kind")), Limit: defaultAlertLimit}
	if err := timeRange(q, &f.From, &f.To); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: err.Error()})
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAlertLimit {
			writeError(w, http.StatusBadRequest, errorBody{Message: fmt.Sprintf("limit must be a number from 1 to %d, not %q", maxAlertLimit, v)})
			return
		}
		f.Limit = n
	}
	switch f.Kind {
	case "", alertlog.KindCapThreshold, alertlog.KindKeyExpiring:
	default:
		writeError(w, http.StatusBadRequest, errorBody{Message: fmt.Sprintf("kind must be %s or %s, not %q",
			alertlog.KindCapThreshold, alertlog.KindKeyExpiring, f.Kind)})
		return
	}
	alerts, err := s.Alerts.Alerts(r.Context(), f)
	if err != nil {
		s.Log.Error(err, "Listing alerts")
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: storeUnavailable})
		return
	}
	if alerts == nil {
		alerts = []alertlog.Alert{}
	}
	writeJSON(w, http.StatusOK, AlertsResponse{Alerts: alerts})
}
