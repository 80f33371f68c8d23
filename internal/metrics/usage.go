package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/minimax/platform-hub/internal/pricing"
)

// UsageMetrics count the usage the server stored, by project, API service,
// model and route (never by key: key IDs would make the series unbounded).
// Every label has a bounded set of values: routes are the gateway's route
// templates, models those the price list names (others count as "other").
// The labels avoid the names the Prometheus Operator gives its target
// labels (namespace, service, endpoint, pod, container, job, instance).
// Only events stored for the first time count, so a batch delivered twice
// counts once. They are counters of this process: sum them over replicas and
// use rate() or increase(); the store keeps the exact totals.
type UsageMetrics struct {
	requests     *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	cachedInput  *prometheus.CounterVec
	videoSeconds *prometheus.CounterVec
	storage      *prometheus.CounterVec
	spend        *prometheus.CounterVec
	unpriced     *prometheus.CounterVec
	quarantined  prometheus.Counter
}

// NewUsageMetrics creates the counters and registers them with reg.
func NewUsageMetrics(reg prometheus.Registerer) *UsageMetrics {
	labels := []string{projectLabel, "api_service", "model", "route"}
	m := &UsageMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_requests_total", Help: "API calls stored in the usage store.",
		}, labels),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_tokens_total", Help: "Tokens used, by direction (input or output).",
		}, append(labels, "direction")),
		cachedInput: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_cached_input_tokens_total",
			Help: "Input tokens read from a prompt cache: a part of hub_usage_tokens_total{direction=\"input\"}.",
		}, labels),
		videoSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_video_seconds_total", Help: "Seconds of generated video.",
		}, labels),
		storage: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_storage_byte_hours_total", Help: "Storage used, in byte-hours.",
		}, labels),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_spend_total", Help: "Spend, in the organization's currency (exact figures are in the usage store).",
		}, append(labels, "currency")),
		unpriced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hub_usage_unpriced_requests_total", Help: "API calls of models that have no price (see the Organization's PricingIncomplete condition).",
		}, labels),
	}
	m.requests, m.tokens, m.videoSeconds = Register(reg, m.requests), Register(reg, m.tokens), Register(reg, m.videoSeconds)
	m.storage, m.spend, m.unpriced = Register(reg, m.storage), Register(reg, m.spend), Register(reg, m.unpriced)
	m.cachedInput = Register(reg, m.cachedInput)
	m.quarantined = Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hub_usage_quarantined_events_total",
		Help: "Usage events the store could not take although it was working; they are kept in its quarantine table.",
	}))
	return m
}

// Quarantined counts events set aside in the store's quarantine.
func (m *UsageMetrics) Quarantined(n int) { m.quarantined.Add(float64(n)) }

// OtherModel stands for every model the price list does not name.
const OtherModel = "other"

// Usage is what one stored event adds to the counters. Its Model must be
// one the price list names, OtherModel, or "" (a call of no model).
type Usage struct {
	// Project is the project; Route the route template the call matched.
	Project, Route string
	pricing.Usage
	Cost     pricing.Cost
	Currency string
}

// Add counts one stored event.
func (m *UsageMetrics) Add(u Usage) {
	lv := []string{u.Project, string(u.Service), u.Model, u.Route}
	m.requests.WithLabelValues(lv...).Inc()
	if u.InputTokens != 0 {
		m.tokens.WithLabelValues(append(lv, "input")...).Add(float64(u.InputTokens))
	}
	if u.CachedInputTokens != 0 {
		m.cachedInput.WithLabelValues(lv...).Add(float64(u.CachedInputTokens))
	}
	if u.OutputTokens != 0 {
		m.tokens.WithLabelValues(append(lv, "output")...).Add(float64(u.OutputTokens))
	}
	if u.VideoSeconds != 0 {
		m.videoSeconds.WithLabelValues(lv...).Add(float64(u.VideoSeconds))
	}
	if u.StorageByteHours != 0 {
		m.storage.WithLabelValues(lv...).Add(float64(u.StorageByteHours))
	}
	if u.Cost.Unpriced {
		m.unpriced.WithLabelValues(lv...).Inc()
		return
	}
	if !u.Cost.Amount.Equal(decimal.Zero) {
		m.spend.WithLabelValues(append(lv, u.Currency)...).Add(u.Cost.Amount.InexactFloat64())
	}
}
