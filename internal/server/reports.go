package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/minimax/platform-hub/internal/usage"
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

// RecordsPath is where the management API asks for pages of usage records
// (usagereport.RecordsPage).
const RecordsPath = usagereport.RecordsPath

// records answers a page of usage records. The query parameters are
// startTime and endTime (RFC 3339), project, keyID, service, model,
// endpoint, limit and continue.
func (s *Server) records(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := usagereport.RecordsRequest{Continue: q.Get("continue"), Filter: usage.Filter{Project: q.Get("project"), KeyID: q.Get("keyID"),
		Service: q.Get("service"), Model: q.Get("model"), Endpoint: q.Get("endpoint")}}
	for name, t := range map[string]*time.Time{"startTime": &req.From, "endTime": &req.To} {
		v, err := time.Parse(time.RFC3339, q.Get(name))
		if err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Message: name + " must be an RFC 3339 time, such as 2026-11-01T00:00:00Z", Field: name})
			return
		}
		*t = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Message: "limit must be a number", Field: "limit"})
			return
		}
		req.Limit = n
	}
	prices := s.prices.Load()
	if prices == nil {
		prices = &Prices{List: emptyPrices}
	}
	page, err := usagereport.Records(r.Context(), s.Store, prices.List, prices.Currency, req)
	var invalid *usagereport.InvalidError
	switch {
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, errorBody{Message: invalid.Error(), Field: invalid.Field})
	case err != nil:
		s.Log.Error(err, "Listing usage records")
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: storeUnavailable})
	default:
		writeJSON(w, http.StatusOK, page)
	}
}
