package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/minimax/platform-hub/internal/usagereport"
)

// ReportsPath is where the management API and the dashboard ask for usage
// reports (usagereport.Request in, usagereport.Report out).
const ReportsPath = usagereport.Path

// maxReportRequestBytes bounds a report request's body.
const maxReportRequestBytes = 64 << 10

// report answers a usage report, priced by the organization's current
// price list. A request that cannot be answered gets 400 with the field to
// change.
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	var req usagereport.Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: "the body must be one JSON usage report request: " + err.Error()})
		return
	}
	prices := s.prices.Load()
	if prices == nil {
		prices = &Prices{List: emptyPrices}
	}
	report, err := usagereport.Build(r.Context(), s.Store, prices.List, prices.Currency, req)
	var invalid *usagereport.InvalidError
	switch {
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, errorBody{Message: invalid.Error(), Field: invalid.Field})
	case err != nil:
		s.Log.Error(err, "Building a usage report")
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: storeUnavailable})
	default:
		writeJSON(w, http.StatusOK, report)
	}
}
