package usage

import (
	"context"
	"time"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// Store keeps usage events and their rollups. Implementations are safe for
// concurrent use.
type Store interface {
	// Insert stores the events whose IDs it has not stored before and adds
	// them to the rollups, all in one transaction: either the whole batch is
	// stored or none of it. It returns the events that were new, in batch
	// order (an ID repeated within the batch counts once); when all were
	// new, that is the events slice itself.
	Insert(ctx context.Context, events []Event) ([]Event, error)

	// Aggregate sums usage over [q.From, q.To) per time bucket and group.
	Aggregate(ctx context.Context, q Query) ([]Bucket, error)

	// Sum adds up usage as Aggregate does, but hands the sums to fn in
	// parts as it reads them, in no order: a bucket's usage may come in
	// several parts (from days, hours and raw events) that the caller adds
	// up. group holds the values of q.GroupBy in q's order, and is reused
	// between calls. A caller that folds the buckets further (a usage
	// report) saves building and sorting them.
	Sum(ctx context.Context, q Query, fn func(start time.Time, group []string, t Totals)) error

	// Events calls fn for every stored event that matches f, in time order,
	// streaming (memory does not grow with the number of events).
	Events(ctx context.Context, f EventFilter, fn func(Event) error) error

	// LastUsed returns every key with events stored at or after since (by
	// the store's clock, so events delivered late count), with its project,
	// the time of its latest event among them, and when they were stored.
	LastUsed(ctx context.Context, since time.Time) ([]KeyActivity, error)

	// RollUpDays sums the hourly rollups of the days that end at or before
	// before, and are not summed yet, into daily rollups, which long
	// reports then read: per key by UTC day, and per project by day in UTC
	// and in each whole-hour offset that zones have around before (see
	// DayOffsets; days of offsets no longer asked for are dropped). Usage
	// that arrives later for those days is added to them as it is stored.
	// The server's leader calls it hourly with the organization's billing
	// zone; until it has, reports read hours, and answer the same.
	RollUpDays(ctx context.Context, before time.Time, zones ...*time.Location) error

	// Prune deletes raw events before eventsBefore and rollups before
	// rollupsBefore (retention).
	Prune(ctx context.Context, eventsBefore, rollupsBefore time.Time) error

	// Quarantine keeps events the store could not take although it was
	// otherwise working (each failed alone), with the reason, for an
	// operator to inspect. They count in no usage. Quarantining an ID
	// twice keeps the first.
	Quarantine(ctx context.Context, events []Event, reason string) error

	// Quarantined lists up to limit quarantined events, oldest first.
	Quarantined(ctx context.Context, limit int) ([]QuarantinedEvent, error)

	// RecordKeyOwners records who owns each key ID, for usage by owner
	// (group spending caps). A key ID keeps its last recorded owner.
	RecordKeyOwners(ctx context.Context, owners []KeyOwner) error

	// KeyOwners returns the recorded owner (as hubv1.EmailKey keeps it) of
	// each of keyIDs that has one.
	KeyOwners(ctx context.Context, keyIDs []string) (map[string]string, error)

	// Close releases the store's connections.
	Close() error
}

// Granularity is the size of an aggregation bucket.
type Granularity string

// Granularities. Day and month buckets start at midnight in Query.Location;
// minute and hour buckets are UTC minutes and hours (every zone's offset is
// whole minutes). Minute buckets are summed from raw events, where they are
// kept: an hour whose raw events are pruned counts whole, in the minute its
// starts.
const (
	Minute Granularity = "minute"
	Hour   Granularity = "hour"
	Day    Granularity = "day"
	Month  Granularity = "month"
)

// Dimension is something usage can be grouped by.
type Dimension string

// Dimensions.
const (
	ByProject  Dimension = "project"
	ByKeyID    Dimension = "keyID"
	ByService  Dimension = "service"
	ByModel    Dimension = "model"
	ByEndpoint Dimension = "endpoint"
)

// Filter narrows usage to matching values; empty fields match everything.
type Filter struct {
	Project  string
	KeyID    string
	Service  string
	Model    string
	Endpoint string
	// Owners, when set, keeps the usage of keys whose owner is one of
	// them (as RecordKeyOwners recorded it), compared as hubv1.EmailKey
	// does: without case.
	Owners []string
}

// Query asks for aggregated usage.
type Query struct {
	// From and To bound the time range [From, To), exactly: hours the
	// range cuts are summed from raw events.
	From, To time.Time
	// Granularity is the bucket size; empty means one bucket for the range.
	Granularity Granularity
	// Location is where day and month buckets start (the organization's
	// billing time zone); nil means UTC. Hour buckets are UTC hours.
	Location *time.Location
	// GroupBy splits each bucket by these dimensions.
	GroupBy []Dimension
	Filter
}

// Bucket is usage of one group in one time bucket.
type Bucket struct {
	// Start is the first instant of the bucket (the query's From when there
	// is no granularity).
	Start time.Time `json:"start"`
	// Group holds the value of each grouped dimension.
	Group map[Dimension]string `json:"group,omitempty"`
	Totals
}

// EventFilter selects raw events.
type EventFilter struct {
	From, To time.Time
	Filter
	// Limit caps the number of events; zero means no cap.
	Limit int
	// After, when set, keeps only events after it in the store's order
	// (time, then ID): where the previous page ended.
	After *EventCursor
}

// EventCursor is a place in the store's order of events: the time and ID of
// an event.
type EventCursor = sqldb.Cursor

// QuarantinedEvent is an event the store set aside.
type QuarantinedEvent struct {
	Event    Event
	Reason   string
	Received time.Time
}

// KeyOwner is the owner (an email) of a key ID.
type KeyOwner struct {
	KeyID   string
	Project string
	Owner   string
}

// KeyActivity is when a key was last used.
type KeyActivity struct {
	Project string
	KeyID   string
	// Last is the time of the key's latest event (by the caller's clock).
	Last time.Time
	// Stored is when its latest events were stored (by the store's clock).
	Stored time.Time
}
