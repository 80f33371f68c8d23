package usagereport_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// BenchmarkManagementQueries10M stores 10 million events over 30 days in
// SQLite and times what the usage server does for the management API:
//   - a 30-day daily report grouped by project and model, priced (target:
//     p99 under 200 ms), next to the store's own aggregation of the same
//     query, and to the same report before the days were rolled up (read
//     from the hourly rollups);
//   - a page of 100 usage records, priced, at places spread over the range
//     (target: p99 under 100 ms), next to the store's own read of the same
//     page.
//
// Each figure is reported as p99 and as a ratio to its baseline of the same
// run (the machines are noisy).
func BenchmarkManagementQueries10M(b *testing.B) {
	const total, batch, days = 10_000_000, 5000, 30
	ctx := context.Background()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	store, err := usage.OpenSQLite(ctx, filepath.Join(b.TempDir(), "usage.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	for i := 0; i < total; i += batch {
		if _, err := store.Insert(ctx, seedEvents(start, i, batch, days)); err != nil {
			b.Fatal(err)
		}
	}
	end := start.AddDate(0, 0, days)
	prices, err := pricing.New(&hubv1.PriceList{Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{
		{Name: "model-0", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20"}},
		{Name: "model-1", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.50", OutputPer1MTokens: "2.00"}},
	}, Default: &hubv1.TokenPrice{InputPer1MTokens: "1", OutputPer1MTokens: "4"}}})
	if err != nil {
		b.Fatal(err)
	}

	const runs = 100
	report := usagereport.Request{From: start, To: end, Granularity: usage.Day, TimeZone: "UTC",
		GroupBy: []usage.Dimension{usage.ByProject, usage.ByModel}}
	query := usage.Query{From: start, To: end, Granularity: usage.Day, GroupBy: report.GroupBy}
	build := func() time.Duration {
		t := time.Now()
		r, err := usagereport.Build(ctx, store, prices, "USD", report)
		if err != nil {
			b.Fatal(err)
		}
		if r.Total.Calls != total {
			b.Fatalf("the report counted %d calls, want %d", r.Total.Calls, total)
		}
		return time.Since(t)
	}
	// The baseline of the days: the same report from the hourly rollups
	// (20 runs: each takes about half a second).
	hourlyTimes := make([]time.Duration, 0, 20)
	for range 20 {
		hourlyTimes = append(hourlyTimes, build())
	}
	// The days are over: the server's leader rolls them up.
	t := time.Now()
	if err := store.RollUpDays(ctx, end); err != nil {
		b.Fatal(err)
	}
	rollUp := time.Since(t)

	reportTimes, aggregateTimes := make([]time.Duration, 0, runs), make([]time.Duration, 0, runs)
	for range runs {
		reportTimes = append(reportTimes, build())
		t := time.Now()
		if _, err := store.Aggregate(ctx, query); err != nil {
			b.Fatal(err)
		}
		aggregateTimes = append(aggregateTimes, time.Since(t))
	}

	// Pages begin at places spread over the range: the cursor of an event
	// every total/runs events.
	pageTimes, eventTimes := make([]time.Duration, 0, runs), make([]time.Duration, 0, runs)
	for i := range runs {
		j := i * (total / runs)
		seed := seedEvents(start, j, 1, days)[0]
		cursor := usage.EventCursor{Time: seed.Time, ID: seed.ID}
		t := time.Now()
		page, err := usagereport.Records(ctx, store, prices, "USD", usagereport.RecordsRequest{From: start, To: end, Limit: 100,
			Continue: cursor.Token()})
		if err != nil {
			b.Fatal(err)
		}
		pageTimes = append(pageTimes, time.Since(t))
		if len(page.Records) != 100 {
			b.Fatalf("a page held %d records, want 100", len(page.Records))
		}
		t = time.Now()
		n := 0
		if err := store.Events(ctx, usage.EventFilter{From: start, To: end, Limit: 101, After: &cursor}, func(usage.Event) error {
			n++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		eventTimes = append(eventTimes, time.Since(t))
	}

	reportP99, aggregateP99, hourlyP99 := p99(reportTimes), p99(aggregateTimes), p99(hourlyTimes)
	pageP99, eventsP99 := p99(pageTimes), p99(eventTimes)
	b.ReportMetric(ms(reportP99), "report-p99-ms")
	b.ReportMetric(ms(reportP99)/ms(aggregateP99), "x-store-aggregate")
	b.ReportMetric(ms(reportP99)/ms(hourlyP99), "x-from-hours")
	b.ReportMetric(ms(pageP99), "records-p99-ms")
	b.ReportMetric(ms(pageP99)/ms(eventsP99), "x-store-page")
	fmt.Printf("management queries over %d events in %d days: 30-day report by project and model p99 %v (target < 200ms), "+
		"%.1fx the store's aggregation (p99 %v), %.2fx the same report from the hourly rollups (p99 %v; rolling the %d days up took %v); "+
		"page of 100 records p99 %v (target < 100ms), %.1fx the store's read (p99 %v)\n",
		total, days, reportP99.Round(time.Microsecond), ms(reportP99)/ms(aggregateP99), aggregateP99.Round(time.Microsecond),
		ms(reportP99)/ms(hourlyP99), hourlyP99.Round(time.Millisecond), days, rollUp.Round(time.Millisecond),
		pageP99.Round(time.Microsecond), ms(pageP99)/ms(eventsP99), eventsP99.Round(time.Microsecond))
}

// seedEvents makes n events from the offset-th on, spread over days: 10
// projects, 100 keys, 5 models, 3 endpoints.
func seedEvents(start time.Time, offset, n, days int) []usage.Event {
	events := make([]usage.Event, n)
	span := time.Duration(days) * 24 * time.Hour
	for i := range events {
		j := offset + i
		events[i] = usage.Event{
			ID: fmt.Sprintf("ev-%010d", j), Time: start.Add(time.Duration(int64(span) / int64(1<<20) * int64(j%(1<<20)))),
			Project: fmt.Sprintf("project-%d", j%10), KeyID: fmt.Sprintf("key%07d", j%100), Service: pricing.Chat,
			Endpoint: []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses"}[j%3],
			Model:    fmt.Sprintf("model-%d", j%5), InputTokens: int64(100 + j%1000), OutputTokens: int64(50 + j%500),
			StatusCode: 200,
		}
	}
	return events
}

func p99(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[(len(sorted)*99-1)/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
