package usagereport

import (
	"context"
	"fmt"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/usage"
)

// RecordsPath is where the usage server lists usage records: GET with the
// RecordsRequest as query parameters, a RecordsPage back.
const RecordsPath = "/v1/usage/records"

// Page sizes of records.
const (
	DefaultRecordsLimit = 100
	MaxRecordsLimit     = 1000
)

// RecordsRequest asks for a page of usage records: the per-call log behind
// every report bucket.
type RecordsRequest struct {
	// From and To bound the calls' times [From, To).
	From, To time.Time
	// Filter keeps calls matching every non-empty value.
	Filter usage.Filter
	// Limit is the page size (1 to MaxRecordsLimit; 0 means
	// DefaultRecordsLimit).
	Limit int
	// Continue is the previous page's Continue, to read on.
	Continue string
}

// Record is one call, priced.
type Record struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Project     string    `json:"project"`
	KeyID       string    `json:"keyID"`
	Service     string    `json:"service"`
	Endpoint    string    `json:"endpoint"`
	Model       string    `json:"model,omitempty"`
	InputTokens int64     `json:"inputTokens"`
	// CachedInputTokens are the part of InputTokens read from a prompt
	// cache.
	CachedInputTokens int64 `json:"cachedInputTokens"`
	OutputTokens      int64 `json:"outputTokens"`
	VideoSeconds      int64 `json:"videoSeconds,omitempty"`
	StorageByteHours  int64 `json:"storageByteHours,omitempty"`
	StatusCode        int   `json:"statusCode"`
	// Cost is the call's price, a decimal string; Unpriced is set when its
	// model has no price (Cost is then 0).
	Cost     string `json:"cost"`
	Unpriced bool   `json:"unpriced,omitempty"`
}

// RecordsPage is a page of records in time order (then by ID), and the
// token of the next page, empty on the last.
type RecordsPage struct {
	Currency string   `json:"currency"`
	Records  []Record `json:"records"`
	Continue string   `json:"continue,omitempty"`
}

// Records reads one page of records from the store, priced by prices.
func Records(ctx context.Context, store usage.Store, prices *pricing.PriceList, currency string, r RecordsRequest) (*RecordsPage, error) {
	if r.From.IsZero() || r.To.IsZero() || !r.From.Before(r.To) {
		return nil, &InvalidError{"endTime", "must be after startTime, and both must be set"}
	}
	limit := r.Limit
	switch {
	case limit == 0:
		limit = DefaultRecordsLimit
	case limit < 0 || limit > MaxRecordsLimit:
		return nil, &InvalidError{"limit", fmt.Sprintf("must be from 1 to %d, not %d", MaxRecordsLimit, limit)}
	}
	f := usage.EventFilter{From: r.From, To: r.To, Filter: r.Filter, Limit: limit + 1}
	if r.Continue != "" {
		after, err := sqldb.ParseCursor(r.Continue)
		if err != nil {
			return nil, &InvalidError{"continue", "is not a token this server gave; start again without it"}
		}
		f.After = &after
	}
	page := &RecordsPage{Currency: currency, Records: make([]Record, 0, limit)}
	var next *usage.EventCursor
	err := store.Events(ctx, f, func(e usage.Event) error {
		if len(page.Records) == limit {
			last := page.Records[limit-1]
			next = &usage.EventCursor{Time: last.Time, ID: last.ID}
			return nil
		}
		cost := prices.Cost(e.PricingUsage())
		page.Records = append(page.Records, Record{ID: e.ID, Time: e.Time, Project: e.Project, KeyID: e.KeyID, Service: string(e.Service),
			Endpoint: e.Endpoint, Model: e.Model, InputTokens: e.InputTokens, CachedInputTokens: e.CachedInputTokens,
			OutputTokens: e.OutputTokens, VideoSeconds: e.VideoSeconds,
			StorageByteHours: e.StorageByteHours, StatusCode: e.StatusCode, Cost: cost.Amount.String(), Unpriced: cost.Unpriced})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != nil {
		page.Continue = next.Token()
	}
	return page, nil
}
