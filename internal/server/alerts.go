package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/sqldb"
)

// AlertsPath lists the alert history.
const AlertsPath = alertlog.Path

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
	// Alerts are oldest first; under a limit, the newest are kept, but
	// for a page (paging=true), which holds the oldest after continue.
	Alerts []alertlog.Alert `json:"alerts"`
	// Continue, in a page, reads on: pass it back as continue. Empty on
	// the last page.
	Continue string `json:"continue,omitempty"`
}

// pageAfter reads the paging parameters: paging=true asks for pages in
// time order, and continue, a page's token, for the one after it. It
// returns nil when no page is asked for.
func pageAfter(q url.Values) (*sqldb.Cursor, error) {
	if token := q.Get("continue"); token != "" {
		c, err := sqldb.ParseCursor(token)
		if err != nil {
			return nil, errors.New("continue is not a token this server gave; start again without it")
		}
		return &c, nil
	}
	if q.Get("paging") == "true" {
		return &sqldb.Cursor{}, nil
	}
	return nil, nil
}

// nextPage trims a page read with one row more than its limit, and says
// where the next one starts ("" when this is the last).
func nextPage[T any](rows []T, limit int, at func(T) sqldb.Cursor) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, at(rows[limit-1]).Token()
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
	var err error
	if f.After, err = pageAfter(q); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: err.Error()})
		return
	}
	if f.After != nil {
		f.Limit++ // one more, to tell whether a next page exists
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
	answer := AlertsResponse{Alerts: alerts}
	if f.After != nil {
		answer.Alerts, answer.Continue = nextPage(alerts, f.Limit-1, func(a alertlog.Alert) sqldb.Cursor {
			return sqldb.Cursor{Time: a.Time, ID: a.ID}
		})
	}
	writeJSON(w, http.StatusOK, answer)
}
