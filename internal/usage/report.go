package usage

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/csvexport"
)

// Comparison puts a period's usage next to the period before it and the same
// period a month earlier.
type Comparison struct {
	Current       Totals `json:"current"`
	Previous      Totals `json:"previous"`
	SameLastMonth Totals `json:"sameLastMonth"`
}

// Compare sums usage over [from, to), the equally long period just before it,
// and the same dates one month earlier in loc.
func Compare(ctx context.Context, s Store, from, to time.Time, loc *time.Location, f Filter) (Comparison, error) {
	if loc == nil {
		loc = time.UTC
	}
	sum := func(from, to time.Time) (Totals, error) {
		buckets, err := s.Aggregate(ctx, Query{From: from, To: to, Filter: f})
		var t Totals
		for _, b := range buckets {
			t.Add(b.Totals)
		}
		return t, err
	}
	var c Comparison
	var err error
	if c.Current, err = sum(from, to); err != nil {
		return c, err
	}
	if c.Previous, err = sum(from.Add(-to.Sub(from)), from); err != nil {
		return c, err
	}
	c.SameLastMonth, err = sum(from.In(loc).AddDate(0, -1, 0), to.In(loc).AddDate(0, -1, 0))
	return c, err
}

// WriteEventsCSV streams matching events as CSV (RFC 4180) with a header row.
func WriteEventsCSV(ctx context.Context, w io.Writer, s Store, f EventFilter) error {
	cw := csvexport.NewWriter(w)
	// The columns are the store's, with the time as RFC 3339.
	header := strings.Split(eventColumns, ", ")
	header[1] = "time"
	if err := cw.Write(header); err != nil {
		return err
	}
	record := make([]string, len(header))
	err := s.Events(ctx, f, func(e Event) error {
		record[0], record[1], record[2], record[3] = e.ID, e.Time.UTC().Format(time.RFC3339Nano), e.Project, e.KeyID
		record[4], record[5], record[6] = string(e.Service), e.Endpoint, e.Model
		record[7], record[8] = strconv.FormatInt(e.InputTokens, 10), strconv.FormatInt(e.CachedInputTokens, 10)
		record[9], record[10] = strconv.FormatInt(e.OutputTokens, 10), strconv.FormatInt(e.VideoSeconds, 10)
		record[11], record[12] = strconv.FormatInt(e.StorageByteHours, 10), strconv.Itoa(e.StatusCode)
		record[13] = joinFlags(e.Flags)
		return cw.Write(record)
	})
	if err != nil {
		return fmt.Errorf("exporting events: %w", err)
	}
	cw.Flush()
	return cw.Error()
}

// WriteBucketsCSV writes aggregated usage as CSV (RFC 4180) with a header row:
// the bucket start, one column per grouped dimension, then the totals.
func WriteBucketsCSV(w io.Writer, q Query, buckets []Bucket) error {
	cw := csvexport.NewWriter(w)
	header := make([]string, 0, 1+len(q.GroupBy)+6)
	header = append(header, "start")
	for _, d := range q.GroupBy {
		header = append(header, string(d))
	}
	header = append(header, strings.Split(totalsColumns, ", ")...)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, b := range buckets {
		record := []string{b.Start.Format(time.RFC3339)}
		for _, d := range q.GroupBy {
			record = append(record, b.Group[d])
		}
		record = append(record, strconv.FormatInt(b.Calls, 10), strconv.FormatInt(b.InputTokens, 10),
			strconv.FormatInt(b.CachedInputTokens, 10), strconv.FormatInt(b.OutputTokens, 10), strconv.FormatInt(b.VideoSeconds, 10),
			strconv.FormatInt(b.StorageByteHours, 10))
		if err := cw.Write(record); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
