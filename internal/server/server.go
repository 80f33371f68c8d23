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

	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/objects"
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
	// Store keeps usage; Alerts the alert outbox and history; Audit the
	// audit log.
	Store   usage.Store
	Alerts  alertlog.Store
	Audit   auditlog.Store
	Auth    *Authorizer
	Metrics *metrics.UsageMetrics
	Log     logr.Logger

	// prices is swapped whole when the Organization changes.
	prices atomic.Pointer[Prices]

	// Caps, when set, is told of ingest, and answers the cycle totals of
	// the Hard caps covering a batch's projects
	// (reconcilers.SpendingCapReconciler).
	Caps CapTracker
	// Invitations, when set, serves invitation links (GET shows, POST
	// accepts) at invitations.AcceptPath.
	Invitations *invitations.Handler

	// Objects, when set, is the registry of upstream objects, served at
	// ObjectsPath and ObjectOwnersPath.
	Objects objects.Store
}

// CapTracker is what the server tells the spending caps of ingest, so that
// caps are evaluated from ingest rather than by polling, and gateways stop
// Hard caps from the server's answers. reconcilers.SpendingCapReconciler
// implements it.
type CapTracker interface {
	// BeginIngest is called before a batch is stored; the function it
	// returns is called after, with the events stored as new (none when
	// storing failed), so that running totals count them exactly once.
	BeginIngest() func(stored []usage.Event)
	// Ingested is told the projects a stored batch touched.
	Ingested(projects []string)
	// HardCapTotals are the cycle totals of the Hard caps covering
	// projects, after the batch was stored.
	HardCapTotals(ctx context.Context, projects []string) ([]usage.CapTotals, error)
}

// SetPrices replaces the price list used for spend metrics and the caps; a
// nil list prices nothing (reconcilers.PriceSink).
func (s *Server) SetPrices(list *pricing.PriceList, currency string) {
	if list == nil {
		list = emptyPrices
	}
	s.prices.Store(&Prices{List: list, Currency: currency})
}

// PriceList is the current price list, the same until the prices change
// (reconcilers.PriceSource).
func (s *Server) PriceList() *pricing.PriceList {
	if p := s.prices.Load(); p != nil && p.List != nil {
		return p.List
	}
	return emptyPrices
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+IngestPath, s.Auth.Require("create", "usageevents", http.HandlerFunc(s.ingest)))
	mux.Handle("GET "+AlertsPath, s.Auth.Require("list", "alerts", http.HandlerFunc(s.listAlerts)))
	mux.Handle("POST "+ReportsPath, s.Auth.Require("create", "usagereports", http.HandlerFunc(s.report)))
	mux.Handle("GET "+RecordsPath, s.Auth.Require("list", "usagerecords", http.HandlerFunc(s.records)))
	mux.Handle("POST "+AuditPath, s.Auth.Require("create", "auditevents", http.HandlerFunc(s.recordAudit)))
	mux.Handle("GET "+AuditPath, s.Auth.Require("list", "auditevents", http.HandlerFunc(s.listAudit)))
	if s.Objects != nil {
		mux.Handle("POST "+ObjectsPath, s.Auth.Require("create", "upstreamobjects", http.HandlerFunc(s.claimObjects)))
		mux.Handle("POST "+ObjectOwnersPath, s.Auth.Require("get", "upstreamobjects", http.HandlerFunc(s.objectOwners)))
	}
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
	// Stored is how many of them were new; the rest had been stored before,
	// or were quarantined.
	Stored int `json:"stored"`
	// Quarantined is how many of them the store could not take although it
	// was working (each failed alone): they are kept in the store's
	// quarantine, counted in hub_usage_quarantined_events_total, and must
	// not be sent again.
	Quarantined int `json:"quarantined,omitempty"`
	// Caps are the cycle totals of the Hard spending caps covering the
	// batch's projects, after the batch was stored.
	Caps []usage.CapTotals `json:"caps,omitempty"`
}

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Message string `json:"message"`
	// Index is the position of the first offending event in the batch, if
	// any.
	Index *int `json:"index,omitempty"`
	// Field is the path of the first offending field, such as
	// events[3].inputTokens.
	Field string `json:"field,omitempty"`
	// Invalid lists every invalid event of the batch.
	Invalid []InvalidEvent `json:"invalid,omitempty"`
}

// InvalidEvent says why one event of a batch was refused.
type InvalidEvent struct {
	// Index is the event's position in the batch.
	Index int `json:"index"`
	// Field is the offending field's path, events[<index>].<field>.
	Field string `json:"field"`
	// Message says what the field must be.
	Message string `json:"message"`
}

// ingest stores a batch of events, all or nothing. Invalid events refuse
// the whole batch with 422, listing each with its field and what is wrong;
// the gateway then quarantines those and sends the rest again. Events the
// store cannot take although it works are quarantined here (see insert), so
// that one poison event never blocks the batches behind it.
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
	if invalid := validate(req.Events); len(invalid) > 0 {
		first := invalid[0]
		writeError(w, http.StatusUnprocessableEntity, errorBody{
			Message: fmt.Sprintf("%s: %s (%d invalid events in the batch; nothing was stored)", first.Field, first.Message, len(invalid)),
			Index:   &first.Index, Field: first.Field, Invalid: invalid,
		})
		return
	}
	done := func([]usage.Event) {}
	if s.Caps != nil {
		done = s.Caps.BeginIngest()
	}
	stored, quarantined, err := s.insert(r.Context(), req.Events)
	done(stored)
	s.count(stored)
	if err != nil {
		s.Log.Error(err, "Storing usage events", "events", len(req.Events))
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: "the usage store is unavailable; retry the batch"})
		return
	}
	answer := IngestResponse{Received: len(req.Events), Stored: len(stored), Quarantined: quarantined}
	if s.Caps != nil {
		// The batch is stored: a failure here only delays the gateway's
		// stop to the server's own mark, so it fails nothing.
		if answer.Caps, err = s.Caps.HardCapTotals(r.Context(), projectsOf(req.Events)); err != nil {
			s.Log.Error(err, "Reading the totals of Hard spending caps")
		}
	}
	writeJSON(w, http.StatusOK, answer)
}

// validate lists the invalid events of a batch.
func validate(events []usage.Event) []InvalidEvent {
	var invalid []InvalidEvent
	for i := range events {
		err := events[i].Validate()
		if err == nil {
			continue
		}
		bad := InvalidEvent{Index: i, Field: fmt.Sprintf("events[%d]", i), Message: err.Error()}
		var fe *usage.FieldError
		if errors.As(err, &fe) {
			bad.Field, bad.Message = fmt.Sprintf("events[%d].%s", i, fe.Field), fe.Message
		}
		invalid = append(invalid, bad)
	}
	return invalid
}

// insert stores valid events. When the store fails, the batch is halved
// until the events it cannot take stand alone; an event that fails alone,
// twice, with an error about its data (usage.IsPoison), is quarantined,
// which succeeds only while the store works. So an outage, a timeout or a
// lock fails the whole request (the gateway retries it), while an event
// the store refuses for itself is set aside and the rest is stored. It
// returns the events stored as new, even when it fails, and how many were
// quarantined.
func (s *Server) insert(ctx context.Context, events []usage.Event) ([]usage.Event, int, error) {
	stored, err := s.Store.Insert(ctx, events)
	if err == nil || ctx.Err() != nil {
		return stored, 0, err
	}
	if len(events) == 1 {
		if stored, err = s.Store.Insert(ctx, events); err == nil {
			return stored, 0, nil
		}
		if !usage.IsPoison(err) {
			return nil, 0, err // the store's state, not the event: retry later
		}
		if qerr := s.Store.Quarantine(ctx, events, err.Error()); qerr != nil {
			return nil, 0, errors.Join(err, qerr)
		}
		s.Log.Error(err, "The usage store refused an event; it is quarantined", "event", events[0].ID)
		if s.Metrics != nil {
			s.Metrics.Quarantined(1)
		}
		return nil, 1, nil
	}
	half := len(events) / 2
	first, qFirst, err := s.insert(ctx, events[:half])
	if err != nil {
		return first, qFirst, err
	}
	second, qSecond, err := s.insert(ctx, events[half:])
	return append(first, second...), qFirst + qSecond, err
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
		u := e.PricingUsage()
		if s.Metrics != nil {
			labelled := u
			if labelled.Model != "" && !prices.List.Lists(u.Service, u.Model) {
				labelled.Model = metrics.OtherModel // a bounded set of series
			}
			s.Metrics.Add(metrics.Usage{Project: e.Project, Route: e.Endpoint, Usage: labelled,
				Cost: prices.List.Cost(u), Currency: prices.Currency})
		}
		projects[e.Project] = true
	}
	if s.Caps != nil && len(projects) > 0 {
		list := make([]string, 0, len(projects))
		for p := range projects {
			list = append(list, p)
		}
		s.Caps.Ingested(list)
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
