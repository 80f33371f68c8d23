// Package usage stores metered usage: raw events, deduplicated by ID, and
// hourly and daily rollups by project, key, service, model and endpoint
// (daily.go), with one Store interface and two implementations run through
// the same test suite: SQLite (the embedded default, pure Go) and
// PostgreSQL (for several server replicas).
package usage

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/sqldb"
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
	// Endpoint is the route the call matched, as its template
	// (/v1/files/{file_id}/content), so that it has a bounded set of values.
	Endpoint string `json:"endpoint"`
	// Model is the model the call used.
	Model string `json:"model,omitempty"`
	// InputTokens and OutputTokens count tokens (training tokens of a
	// fine-tuning job count as input; cache reads and writes count as
	// input).
	InputTokens  int64 `json:"inputTokens,omitempty"`
	OutputTokens int64 `json:"outputTokens,omitempty"`
	// CachedInputTokens are the input tokens that the upstream read from
	// its prompt cache, a part of InputTokens (OpenAI's
	// prompt_tokens_details.cached_tokens, Anthropic's
	// cache_read_input_tokens); they are priced at the cached input price.
	CachedInputTokens int64 `json:"cachedInputTokens,omitempty"`
	// VideoSeconds counts seconds of generated video.
	VideoSeconds int64 `json:"videoSeconds,omitempty"`
	// StorageByteHours counts bytes held times hours held.
	StorageByteHours int64 `json:"storageByteHours,omitempty"`
	// StatusCode is the HTTP status the caller received.
	StatusCode int `json:"statusCode"`
	// Flags say what was wrong with the usage the upstream reported, when
	// something was: the call is recorded with what was valid, and flagged
	// for review (see the Flag constants).
	Flags []Flag `json:"flags,omitempty"`
}

// Flag marks an event whose usage could not be read whole from the upstream's
// answer. The call is still recorded: a served call never vanishes.
type Flag string

// Flags.
const (
	// FlagUsageMissing: a successful answer of a metered route had no usage.
	FlagUsageMissing Flag = "usage_missing"
	// FlagUsageMalformed: a usage figure was of the wrong type, negative or
	// above its ceiling; it was recorded as zero.
	FlagUsageMalformed Flag = "usage_malformed"
	// FlagUsageUnreadable: the answer could not be decoded (an encoding the
	// gateway did not ask for, corrupt compression, JSON cut short).
	FlagUsageUnreadable Flag = "usage_unreadable"
	// FlagStreamIncomplete: a stream ended before its usage event (the
	// client left, or the upstream broke off).
	FlagStreamIncomplete Flag = "stream_incomplete"
	// FlagModelInvalid: the model the request named is not a valid name
	// (too long, control characters); it was recorded as "".
	FlagModelInvalid Flag = "model_invalid"
)

// Field names shared by events, objects and their columns.
const (
	flagsField   = "flags"
	projectField = "project"
)

var knownFlags = map[Flag]bool{FlagUsageMissing: true, FlagUsageMalformed: true, FlagUsageUnreadable: true,
	FlagStreamIncomplete: true, FlagModelInvalid: true}

// Limits of event fields, checked by Validate.
const (
	MaxIDLength       = 64
	MaxNameLength     = 253
	MaxEndpointLength = 256
)

// Ceilings of one event's quantities. No real call comes near them (the
// largest context windows hold about ten million tokens; a generated video
// lasts seconds), and with them no sum the store keeps can overflow in
// practice; the store also saturates its sums, so that not even forged
// figures can make one overflow or change type.
const (
	// MaxTokensPerCall bounds inputTokens and outputTokens: 10^9.
	MaxTokensPerCall = 1_000_000_000
	// MaxVideoSecondsPerCall bounds videoSeconds: a day.
	MaxVideoSecondsPerCall = 86_400
	// MaxStorageByteHoursPerEvent bounds storageByteHours: a petabyte held
	// for an hour, 10^15.
	MaxStorageByteHoursPerEvent = 1_000_000_000_000_000
)

// Event times must fall in [MinEventTime, MaxEventTime): they are stored as
// Unix microseconds, and a year 0 or 300000 is a bug, not a call.
var (
	MinEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxEventTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ErrInvalidEvent wraps every validation error.
var ErrInvalidEvent = errors.New("invalid usage event")

// FieldError says which field of an event is invalid and why. It wraps
// ErrInvalidEvent.
type FieldError struct {
	// Field is the event's JSON field name, such as inputTokens.
	Field string
	// Message says what the field must be.
	Message string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrInvalidEvent, e.Field, e.Message)
}

// Unwrap makes errors.Is(err, ErrInvalidEvent) hold.
func (e *FieldError) Unwrap() error { return ErrInvalidEvent }

// Validate says what is wrong with an event, if anything, as a *FieldError.
func (e *Event) Validate() error {
	if field, msg := e.problem(); field != "" {
		return &FieldError{Field: field, Message: msg}
	}
	return nil
}

func (e *Event) problem() (field, msg string) {
	for _, f := range []struct {
		name, value string
		max         int
		required    bool
	}{
		{"id", e.ID, MaxIDLength, true},
		{projectField, e.Project, MaxNameLength, true},
		{"keyID", e.KeyID, MaxNameLength, true},
		{"endpoint", e.Endpoint, MaxEndpointLength, true},
		{"model", e.Model, MaxNameLength, false},
	} {
		if msg := TextProblem(f.value, f.max, f.required); msg != "" {
			return f.name, msg
		}
	}
	if e.Time.Before(MinEventTime) || !e.Time.Before(MaxEventTime) {
		return "time", fmt.Sprintf("must be between %s and %s", MinEventTime.Format(time.RFC3339), MaxEventTime.Format(time.RFC3339))
	}
	return e.quantityProblem()
}

// TextProblem says what is wrong with a text field of at most max bytes,
// if anything (see sqldb.TextProblem).
func TextProblem(s string, max int, required bool) string { return sqldb.TextProblem(s, max, required) }

func (e *Event) quantityProblem() (field, msg string) {
	for _, q := range []struct {
		name       string
		value, max int64
	}{
		{"inputTokens", e.InputTokens, MaxTokensPerCall},
		{"outputTokens", e.OutputTokens, MaxTokensPerCall},
		{"videoSeconds", e.VideoSeconds, MaxVideoSecondsPerCall},
		{"storageByteHours", e.StorageByteHours, MaxStorageByteHoursPerEvent},
	} {
		if q.value < 0 || q.value > q.max {
			return q.name, fmt.Sprintf("must be between 0 and %d, not %d", q.max, q.value)
		}
	}
	if e.CachedInputTokens < 0 || e.CachedInputTokens > e.InputTokens {
		return "cachedInputTokens", fmt.Sprintf("must be between 0 and inputTokens (%d), not %d: cached tokens are a part of the input",
			e.InputTokens, e.CachedInputTokens)
	}
	if e.StatusCode < 100 || e.StatusCode > 599 {
		return "statusCode", "must be an HTTP status (100 to 599)"
	}
	if len(e.Flags) > len(knownFlags) {
		return flagsField, fmt.Sprintf("must hold at most %d flags", len(knownFlags))
	}
	for _, f := range e.Flags {
		if !knownFlags[f] {
			return flagsField, fmt.Sprintf("unknown flag %q", f)
		}
	}
	switch e.Service {
	case pricing.Chat, pricing.Video, pricing.FineTuning, pricing.Storage:
		return "", ""
	}
	return "service", fmt.Sprintf("must be one of chat, video, fine_tuning, storage, not %q", e.Service)
}

// Totals sums usage.
type Totals struct {
	Calls       int64 `json:"calls"`
	InputTokens int64 `json:"inputTokens"`
	// CachedInputTokens are the part of InputTokens read from a prompt
	// cache.
	CachedInputTokens int64 `json:"cachedInputTokens"`
	OutputTokens      int64 `json:"outputTokens"`
	VideoSeconds      int64 `json:"videoSeconds"`
	StorageByteHours  int64 `json:"storageByteHours"`
}

// Add adds other to t. Sums saturate at math.MaxInt64 rather than wrap:
// usage is never negative, so a saturated figure is the only wrong answer an
// absurd store can give, and it errs towards stopping a cap.
func (t *Totals) Add(other Totals) {
	t.Calls = SaturatingAdd(t.Calls, other.Calls)
	t.InputTokens = SaturatingAdd(t.InputTokens, other.InputTokens)
	t.CachedInputTokens = SaturatingAdd(t.CachedInputTokens, other.CachedInputTokens)
	t.OutputTokens = SaturatingAdd(t.OutputTokens, other.OutputTokens)
	t.VideoSeconds = SaturatingAdd(t.VideoSeconds, other.VideoSeconds)
	t.StorageByteHours = SaturatingAdd(t.StorageByteHours, other.StorageByteHours)
}

// Tokens is input plus output tokens (saturating).
func (t Totals) Tokens() int64 { return SaturatingAdd(t.InputTokens, t.OutputTokens) }

// SaturatingAdd adds two non-negative figures, answering math.MaxInt64
// where the sum would overflow.
func SaturatingAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (e *Event) totals() Totals {
	return Totals{Calls: 1, InputTokens: e.InputTokens, CachedInputTokens: e.CachedInputTokens, OutputTokens: e.OutputTokens,
		VideoSeconds: e.VideoSeconds, StorageByteHours: e.StorageByteHours}
}

// PricingUsage is the event's usage as the price list takes it.
func (e *Event) PricingUsage() pricing.Usage {
	return pricing.Usage{Service: e.Service, Model: e.Model, InputTokens: e.InputTokens, CachedInputTokens: e.CachedInputTokens,
		OutputTokens: e.OutputTokens, VideoSeconds: e.VideoSeconds, StorageByteHours: e.StorageByteHours}
}

// PricingUsage is the usage of a bucket grouped by service and model, as
// the price list takes it.
func (b *Bucket) PricingUsage() pricing.Usage {
	return b.Totals.PricingUsage(pricing.Service(b.Group[ByService]), b.Group[ByModel])
}

// PricingUsage is the usage of totals of one model of one service, as the
// price list takes it.
func (t Totals) PricingUsage(service pricing.Service, model string) pricing.Usage {
	return pricing.Usage{Service: service, Model: model, InputTokens: t.InputTokens, CachedInputTokens: t.CachedInputTokens,
		OutputTokens: t.OutputTokens, VideoSeconds: t.VideoSeconds, StorageByteHours: t.StorageByteHours}
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
