package usage_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minimax/platform-hub/internal/usage"
)

// benchEvents makes n events over days days, spread over 100 keys in 10
// projects, 5 models and 3 endpoints.
func benchEvents(start time.Time, offset, n, days int) []usage.Event {
	events := make([]usage.Event, n)
	span := time.Duration(days) * 24 * time.Hour
	for i := range events {
		j := offset + i
		events[i] = usage.Event{
			ID: fmt.Sprintf("ev-%010d", j), Time: start.Add(time.Duration(int64(span) / int64(1<<20) * int64(j%(1<<20)))),
			Project: fmt.Sprintf("project-%d", j%10), KeyID: fmt.Sprintf("key%07d", j%100),
			Service: "chat", Endpoint: []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses"}[j%3],
			Model: fmt.Sprintf("model-%d", j%5), InputTokens: int64(100 + j%1000), OutputTokens: int64(50 + j%500),
			StatusCode: 200,
		}
	}
	return events
}

// BenchmarkIngest compares Store.Insert (dedup by ID plus rollups, in one
// transaction per batch) with raw batched inserts of the same rows into the
// same kind of SQLite database. Target: at least half the raw rate.
func BenchmarkIngest(b *testing.B) {
	const total, batch = 200_000, 1000
	ctx := context.Background()
	events := benchEvents(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), 0, total, 30)

	store, err := usage.OpenSQLite(ctx, filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	start := time.Now()
	for i := 0; i < total; i += batch {
		if _, err := store.Insert(ctx, events[i:i+batch]); err != nil {
			b.Fatal(err)
		}
	}
	storeRate := float64(total) / time.Since(start).Seconds()

	rawRate, err := rawInsertRate(ctx, filepath.Join(b.TempDir(), "raw.db"), events, batch)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(storeRate, "events/s")
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(storeRate/rawRate, "x-raw")
	fmt.Printf("usage ingest (SQLite): %.0f events/s; raw batched inserts %.0f rows/s; ratio %.2f (target >= 0.50)\n",
		storeRate, rawRate, storeRate/rawRate)
}

// rawInsertRate inserts the events as plain rows, batch by batch, each batch
// one multi-row INSERT in one transaction, into a fresh SQLite database set
// up like the store's (WAL, synchronous NORMAL).
func rawInsertRate(ctx context.Context, path string, events []usage.Event, batch int) (float64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return 0, err
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(ctx, `CREATE TABLE events (id TEXT, ts BIGINT, project TEXT, key_id TEXT, service TEXT,
		endpoint TEXT, model TEXT, input_tokens BIGINT, cached_input_tokens BIGINT, output_tokens BIGINT, video_seconds BIGINT,
		storage_byte_hours BIGINT, status_code INTEGER, flags TEXT)`); err != nil {
		return 0, err
	}
	const columns = 14 // those of usage_events
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", columns), ",") + ")"
	stmt := "INSERT INTO events VALUES " + strings.TrimSuffix(strings.Repeat(row+",", batch), ",")
	start := time.Now()
	args := make([]any, 0, batch*columns)
	for i := 0; i < len(events); i += batch {
		args = args[:0]
		for _, e := range events[i : i+batch] {
			args = append(args, e.ID, e.Time.UnixMicro(), e.Project, e.KeyID, string(e.Service), e.Endpoint, e.Model,
				e.InputTokens, e.CachedInputTokens, e.OutputTokens, e.VideoSeconds, e.StorageByteHours, e.StatusCode, "")
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(len(events)) / time.Since(start).Seconds(), nil
}

// BenchmarkAggregate30Days ingests 10 million events over 30 days into SQLite
// and times a 30-day daily aggregation by project (target: under 100 ms),
// next to the time to count the raw events of the same range as a baseline.
func BenchmarkAggregate30Days(b *testing.B) {
	const total, batch = 10_000_000, 5000
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(b.TempDir(), "usage.db")
	store, err := usage.OpenSQLite(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	ingestStart := time.Now()
	for i := 0; i < total; i += batch {
		if _, err := store.Insert(ctx, benchEvents(start, i, batch, 30)); err != nil {
			b.Fatal(err)
		}
	}
	ingest := time.Since(ingestStart)
	// The days are over: the server's leader has rolled them up.
	if err := store.RollUpDays(ctx, start.AddDate(0, 0, 30)); err != nil {
		b.Fatal(err)
	}

	q := usage.Query{From: start, To: start.AddDate(0, 0, 30), Granularity: usage.Day, GroupBy: []usage.Dimension{usage.ByProject}}
	elapsed := make([]time.Duration, 0, 10)
	var buckets []usage.Bucket
	for range 10 {
		t := time.Now()
		if buckets, err = store.Aggregate(ctx, q); err != nil {
			b.Fatal(err)
		}
		elapsed = append(elapsed, time.Since(t))
	}
	var calls int64
	for _, bk := range buckets {
		calls += bk.Calls
	}
	if calls != total {
		b.Fatalf("the aggregation counted %d calls, want %d", calls, total)
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	t := time.Now()
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM usage_events WHERE ts >= ? AND ts < ?",
		q.From.UnixMicro(), q.To.UnixMicro()).Scan(&n); err != nil {
		b.Fatal(err)
	}
	rawCount := time.Since(t)

	median := medianOf(elapsed)
	b.ReportMetric(float64(median.Microseconds())/1000, "aggregate-ms")
	b.ReportMetric(float64(rawCount.Microseconds())/1000, "raw-count-ms")
	fmt.Printf("usage 30-day daily aggregation over %d events: median %v of 10 runs (%d buckets), target < 100ms; "+
		"baseline COUNT(*) over the raw events %v; ingest took %v (%.0f events/s)\n",
		total, median.Round(time.Microsecond), len(buckets), rawCount.Round(time.Millisecond),
		ingest.Round(time.Second), float64(total)/ingest.Seconds())
}

func medianOf(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
