// Package usage stores metered usage: raw events, deduplicated by ID, and
// hourly rollups by project, key, service, model and endpoint, with one Store
// interface and two implementations run through the same test suite:
// SQLite (the embedded default, pure Go) and PostgreSQL (for several server
// replicas).
package usage

import (
	"errors"
	"fmt"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
)

// Event is one metered API call. Events carry public key IDs, never keys.
type Event struct {
	// ID makes delivery idempotent: an event stored twice counts once.
	ID string `json:"id"`
	// Time is when the call was made.
	Time time.Time `json:"time"`
	// Project is the project (and namespace) of the key.
	Project string `json:"project"`
	// KeyID is the public ID of the key that made the call.
	KeyID string `json:"keyID"`
	// Service is what the call is billed under.
	Service pricing.Service `json:"service"`
	// Endpoint is the API path, such as /v1/chat/completions.
	Endpoint string `json:"endpoint"`
	// Model is the model the call used.
	Model string `json:"model,omitempty"`
	// InputTokens and OutputTokens count tokens (training tokens of a
	// fine-tuning job count as input).
	InputTokens  int64 `json:"inputTokens,omitempty"`
	OutputTokens int64 `json:"outputTokens,omitempty"`
	// VideoSeconds counts seconds of generated video.
	VideoSeconds int64 `json:"videoSeconds,omitempty"`
	// StorageByteHours counts bytes held times hours held.
	StorageByteHours int64 `json:"storageByteHours,omitempty"`
	// StatusCode is the HTTP status the caller received.
	StatusCode int `json:"statusCode"`
}

// Limits of event fields, checked by Validate.
const (
	MaxIDLength       = 64
	MaxNameLength     = 253
	MaxEndpointLength = 256
)

// ErrInvalidEvent wraps every validation error.
var ErrInvalidEvent = errors.New("invalid usage event")

// Validate says what is wrong with an event, if anything.
func (e *Event) Validate() error {
	if msg := e.problem(); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, msg)
	}
	return nil
}

func (e *Event) problem() string {
	switch {
	case e.ID == "" || len(e.ID) > MaxIDLength:
		return fmt.Sprintf("id must be 1 to %d characters", MaxIDLength)
	case e.Time.IsZero():
		return "time is required"
	case e.Project == "" || len(e.Project) > MaxNameLength:
		return fmt.Sprintf("project must be 1 to %d characters", MaxNameLength)
	case e.KeyID == "" || len(e.KeyID) > MaxNameLength:
		return fmt.Sprintf("keyID must be 1 to %d characters", MaxNameLength)
	case e.Endpoint == "" || len(e.Endpoint) > MaxEndpointLength:
		return fmt.Sprintf("endpoint must be 1 to %d characters", MaxEndpointLength)
	case len(e.Model) > MaxNameLength:
		return fmt.Sprintf("model must be at most %d characters", MaxNameLength)
	}
	return e.quantityProblem()
}

func (e *Event) quantityProblem() string {
	switch {
	case e.InputTokens < 0 || e.OutputTokens < 0 || e.VideoSeconds < 0 || e.StorageByteHours < 0:
		return "inputTokens, outputTokens, videoSeconds and storageByteHours cannot be negative"
	case e.StatusCode < 100 || e.StatusCode > 599:
		return "statusCode must be an HTTP status (100 to 599)"
	}
	switch e.Service {
	case pricing.Chat, pricing.Video, pricing.FineTuning, pricing.Storage:
		return ""
	}
	return fmt.Sprintf("service must be one of chat, video, fine_tuning, storage, not %q", e.Service)
}

// Totals sums usage.
type Totals struct {
	Calls            int64 `json:"calls"`
	InputTokens      int64 `json:"inputTokens"`
	OutputTokens     int64 `json:"outputTokens"`
	VideoSeconds     int64 `json:"videoSeconds"`
	StorageByteHours int64 `json:"storageByteHours"`
}

// Add adds other to t.
func (t *Totals) Add(other Totals) {
	t.Calls += other.Calls
	t.InputTokens += other.InputTokens
	t.OutputTokens += other.OutputTokens
	t.VideoSeconds += other.VideoSeconds
	t.StorageByteHours += other.StorageByteHours
}

// Tokens is input plus output tokens.
func (t Totals) Tokens() int64 { return t.InputTokens + t.OutputTokens }

func (e *Event) totals() Totals {
	return Totals{Calls: 1, InputTokens: e.InputTokens, OutputTokens: e.OutputTokens,
		VideoSeconds: e.VideoSeconds, StorageByteHours: e.StorageByteHours}
}

// PricingUsage is the usage of a bucket grouped by service and model, as
// the price list takes it.
func (b *Bucket) PricingUsage() pricing.Usage {
	return pricing.Usage{Service: pricing.Service(b.Group[ByService]), Model: b.Group[ByModel],
		InputTokens: b.InputTokens, OutputTokens: b.OutputTokens, VideoSeconds: b.VideoSeconds, StorageByteHours: b.StorageByteHours}
}

// CapTotals is a Hard spending cap's usage in its billing cycle, as the
// server knows it right after storing a batch. The server answers each
// ingest batch with the totals of the Hard caps covering its projects, and
// gateways enforce those caps from it plus what they metered since.
type CapTotals struct {
	// UID is the SpendingCap's UID.
	UID string `json:"uid"`
	// CycleStart is the start of the billing cycle the totals are for.
	CycleStart time.Time `json:"cycleStart"`
	// Spent is money spent in the cycle, a decimal string.
	Spent string `json:"spent"`
	// Tokens is input plus output tokens used in the cycle.
	Tokens int64 `json:"tokens"`
}
