// Package server is the `server` role: it owns the usage store, takes usage
// events from gateways (ingest), and exports usage metrics. Queries for the
// dashboard and the management API, and the controllers that need the store,
// are added to it as they arrive.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/go-logr/logr"

	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// Limits of one ingest request.
const (
	// MaxBatchBytes is the largest request body accepted.
	MaxBatchBytes = 4 << 20
	// MaxBatchEvents is the most events one request may carry.
	MaxBatchEvents = 5000
)

// IngestPath is where gateways post usage events.
const IngestPath = "/v1/usage/events"

// InvitationsPath is where invitation links point (invitations.AcceptPath).
const InvitationsPath = "/v1/invitations/accept"

// Prices is the organization's current price list and currency.
type Prices struct {
	List     *pricing.PriceList
	Currency string
}

// Server serves the server role's HTTP API.
type Server struct {
	Store   usage.Store
	Auth    *Authorizer
	Metrics *metrics.UsageMetrics
	Log     logr.Logger

	// prices is swapped whole when the Organization changes.
	prices atomic.Pointer[Prices]

	// OnIngest, when set, is told the projects a stored batch touched, so
	// that spending caps are evaluated from ingest rather than by polling.
	OnIngest func(projects []string)

	// CapTotals, when set, gives the usage of the Hard caps covering the
	// projects of a batch, returned in the ingest answer.
	CapTotals func(ctx context.Context, projects []string) ([]usage.CapTotals, error)
	// Invitations, when set, serves invitation links (GET shows, POST
	// accepts) at invitations.AcceptPath.
	Invitations http.Handler

	// BeginIngest, when set, is called before a batch is stored, and what
	// it returns after, with the events that were new, so that the running
	// cap totals count them.
	BeginIngest func() func(stored []usage.Event)
}

// SetPrices replaces the price list used for spend metrics.
func (s *Server) SetPrices(p *Prices) { s.prices.Store(p) }

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+IngestPath, s.Auth.Require("create", "usageevents", http.HandlerFunc(s.ingest)))
	mux.Handle("GET "+AlertsPath, s.Auth.Require("list", "alerts", http.HandlerFunc(s.listAlerts)))
	mux.Handle("POST "+AuditPath, s.Auth.Require("create", "auditevents", http.HandlerFunc(s.recordAudit)))
	mux.Handle("GET "+AuditPath, s.Auth.Require("list", "auditevents", http.HandlerFunc(s.listAudit)))
	if s.Invitations != nil {
		mux.Handle(InvitationsPath, s.Invitations)
	}
	return mux
}

// IngestRequest is the body of an ingest request.
type IngestRequest struct {
	Events []usage.Event `json:"events"`
}

// IngestResponse is the body of a successful ingest request.
type IngestResponse struct {
	// Received is how many events the request carried.
	Received int `json:"received"`
	// Stored is how many of them were new; the rest had been stored before.
	Stored int `json:"stored"`
	// Caps are the cycle totals of the Hard spending caps covering the
	// batch's projects, after the batch was stored.
	Caps []usage.CapTotals `json:"caps,omitempty"`
}

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Message string `json:"message"`
	// Index is the position of the offending event in the batch, if any.
	Index *int `json:"index,omitempty"`
}

// ingest stores a batch of events, all or nothing. A bad event refuses the
// whole batch with 400, naming its index and what is wrong; the gateway can
// then drop that event and send the rest again.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBatchBytes)
	var req IngestRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, errorBody{Message: fmt.Sprintf(
				"the batch is larger than %d bytes; send smaller batches", MaxBatchBytes)})
			return
		}
		writeError(w, http.StatusBadRequest, errorBody{Message: "the body must be JSON of the form {\"events\": [...]}: " + err.Error()})
		return
	}
	if len(req.Events) > MaxBatchEvents {
		writeError(w, http.StatusRequestEntityTooLarge, errorBody{Message: fmt.Sprintf(
			"the batch has %d events; send at most %d per request", len(req.Events), MaxBatchEvents)})
		return
	}
	for i := range req.Events {
		if err := req.Events[i].Validate(); err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Message: err.Error(), Index: &i})
			return
		}
	}
	done := func([]usage.Event) {}
	if s.BeginIngest != nil {
		done = s.BeginIngest()
	}
	stored, err := s.Store.Insert(r.Context(), req.Events)
	done(stored)
	if err != nil {
		s.Log.Error(err, "Storing usage events", "events", len(req.Events))
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: "the usage store is unavailable; retry the batch"})
		return
	}
	s.count(stored)
	answer := IngestResponse{Received: len(req.Events), Stored: len(stored)}
	if s.CapTotals != nil {
		// The batch is stored: a failure here only delays the gateway's
		// stop to the server's own mark, so it fails nothing.
		if answer.Caps, err = s.CapTotals(r.Context(), projectsOf(req.Events)); err != nil {
			s.Log.Error(err, "Reading the totals of Hard spending caps")
		}
	}
	writeJSON(w, http.StatusOK, answer)
}

// count adds newly stored events to the metrics and reports the projects
// they touched.
func (s *Server) count(stored []usage.Event) {
	prices := s.prices.Load()
	if prices == nil {
		prices = &Prices{List: emptyPrices}
	}
	projects := map[string]bool{}
	for i := range stored {
		e := &stored[i]
		u := pricing.Usage{Service: e.Service, Model: e.Model, InputTokens: e.InputTokens, OutputTokens: e.OutputTokens,
			VideoSeconds: e.VideoSeconds, StorageByteHours: e.StorageByteHours}
		if s.Metrics != nil {
			s.Metrics.Add(metrics.Usage{Project: e.Project, Endpoint: e.Endpoint, Usage: u,
				Cost: prices.List.Cost(u), Currency: prices.Currency})
		}
		projects[e.Project] = true
	}
	if s.OnIngest != nil && len(projects) > 0 {
		list := make([]string, 0, len(projects))
		for p := range projects {
			list = append(list, p)
		}
		s.OnIngest(list)
	}
}

// projectsOf lists the projects of events, each once.
func projectsOf(events []usage.Event) []string {
	seen := map[string]bool{}
	var out []string
	for i := range events {
		if p := events[i].Project; !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

var emptyPrices, _ = pricing.New(nil)

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, code int, body errorBody) {
	writeJSON(w, code, map[string]errorBody{"error": body})
}
