package v1alpha1

import (
	"strconv"
	"time"
)

// UsageRecordCSVHeader is the header row of usage records as CSV (RFC
// 4180): snake_case, as the usage server's CSV. The management API answers
// Accept: text/csv with it, and the dashboard's exports use it too.
var UsageRecordCSVHeader = []string{"time", "id", "project", "key_id", "service", "endpoint", "model", "input_tokens",
	"cached_input_tokens", "output_tokens", "video_seconds", "storage_byte_hours", "status_code", "cost", "currency", "unpriced"}

// CSVRow is the record as a CSV row, in UsageRecordCSVHeader's columns
// (times in RFC 3339, UTC). Cells are as stored: a writer for spreadsheets
// neutralises formulas (internal/csvexport).
func (r *UsageRecord) CSVRow() []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return []string{r.Time.UTC().Format(time.RFC3339), r.Name, r.Project, r.KeyID, r.Service, r.Endpoint, r.Model,
		i(r.InputTokens), i(r.CachedInputTokens), i(r.OutputTokens), i(r.VideoSeconds), i(r.StorageByteHours),
		strconv.Itoa(int(r.StatusCode)), r.Cost, r.Currency, strconv.FormatBool(r.Unpriced)}
}
