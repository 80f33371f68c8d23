// Package usagereport answers usage reports: the organization's usage over
// a time range, in buckets of a granularity, grouped and filtered by
// dimension, priced in the organization's currency, and compared with the
// period before and the same dates a month earlier. The usage server builds
// them from its store; the management API (UsageReport) and the dashboard
// ask the server for them.
//
// Prices apply per service and model, so a report is always summed from the
// store grouped by service and model as well as the dimensions asked for,
// each group is priced, and the priced groups are then folded into the
// dimensions asked for. Money is decimal throughout.
package usagereport

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// Path is where the usage server answers reports: POST a Request as JSON,
// get a Report.
const Path = "/v1/usage/reports"

// Limits on a request, so that one report stays one bounded answer.
const (
	// MaxBuckets is the most time buckets a report may span.
	MaxBuckets = 2000
	// MaxFilterValues is the most values one filter may list.
	MaxFilterValues = 100
)

// maxRows bounds what a report holds while it is built: its rows (a group
// in a bucket) of usage priced part by part, plus the store's buckets
// (grouped by service and model too) of usage priced whole; a variable for
// tests.
var maxRows = 50000

// Request asks for a report.
type Request struct {
	// From and To bound the range [From, To).
	From time.Time `json:"startTime"`
	To   time.Time `json:"endTime"`
	// Granularity is the bucket size: minute, hour, day or month; empty
	// means one bucket for the whole range.
	Granularity usage.Granularity `json:"granularity,omitempty"`
	// TimeZone is the IANA zone where day and month buckets start and where
	// "the same dates last month" are counted; empty means UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// GroupBy splits each bucket by these dimensions.
	GroupBy []usage.Dimension `json:"groupBy,omitempty"`
	// Filter keeps only usage matching every non-empty list.
	Filter Filter `json:"filter,omitzero"`
	// Compare adds the figures of the period just before and of the same
	// dates one month earlier.
	Compare bool `json:"compare,omitempty"`
	// TopGroups, when above zero, keeps the buckets of the TopGroups
	// groups with the highest cost over the range (then the most calls,
	// then the first in group order); every other group's usage is summed,
	// bucket by bucket, into one bucket with Others set and no group
	// values. Total and the comparisons are unchanged. A chart of a
	// thousand projects asks for its lines so: the answer stays small.
	TopGroups int `json:"topGroups,omitempty"`
	// GroupTotals, when above zero, adds to the report the whole range's
	// figures of the GroupTotals groups with the highest cost, ranked as
	// TopGroups ranks them, and how many groups the range holds. A table
	// of a thousand projects asks for its rows so, and a chart can ask for
	// fewer lines (TopGroups) in the same report.
	GroupTotals int `json:"groupTotals,omitempty"`
}

// Filter narrows a report: each non-empty list keeps usage whose value is
// one of its values.
type Filter struct {
	Projects  []string `json:"projects,omitempty"`
	KeyIDs    []string `json:"keyIDs,omitempty"`
	Services  []string `json:"services,omitempty"`
	Models    []string `json:"models,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	// Members keeps the usage of keys these members own (emails, compared
	// without case).
	Members []string `json:"members,omitempty"`
}

// ByMember groups a report by the member who owns each key (an email, as
// hubv1.EmailKey keeps it; empty for a key with no recorded owner). The
// store groups by key ID, and the report folds key IDs into their owners,
// as the usage server recorded them from the APIKeys.
const ByMember usage.Dimension = "member"

// lists are the store's filters, by dimension (Members apart: the store
// filters by owner itself).
func (f Filter) lists() map[usage.Dimension][]string {
	return map[usage.Dimension][]string{usage.ByProject: f.Projects, usage.ByKeyID: f.KeyIDs,
		usage.ByService: f.Services, usage.ByModel: f.Models, usage.ByEndpoint: f.Endpoints}
}

// Figures are the sums of one group, priced.
type Figures struct {
	usage.Totals
	// Cost is the price of the usage in the organization's currency, a
	// decimal string; unpriced usage adds nothing (see UnpricedCalls).
	Cost string `json:"cost"`
	// UnpricedCalls counts calls whose model has no price and whose service
	// has no default price: they are not in Cost.
	UnpricedCalls int64 `json:"unpricedCalls,omitempty"`
}

// Bucket is the usage of one group in one time bucket.
type Bucket struct {
	// Start and End bound the bucket [Start, End), within the range.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Group holds the value of each grouped dimension.
	Group map[usage.Dimension]string `json:"group,omitempty"`
	// Others is set on the bucket that sums the groups TopGroups left out;
	// it has no Group.
	Others bool `json:"others,omitempty"`
	Figures
}

// Report is the answer to a Request.
type Report struct {
	// Currency is the organization's currency (ISO 4217), for every cost.
	Currency string `json:"currency"`
	// Buckets are in time order, and within a time bucket in the order of
	// their group values (the others last).
	Buckets []Bucket `json:"buckets"`
	// OtherGroups is how many groups TopGroups summed into the others.
	OtherGroups int `json:"otherGroups,omitempty"`
	// GroupTotals, with Request.GroupTotals, are the whole range's figures
	// of the costliest groups, the costliest first: each a bucket from the
	// range's start to its end. GroupCount is how many groups had usage in
	// the range.
	GroupTotals []Bucket `json:"groupTotals,omitempty"`
	GroupCount  int      `json:"groupCount,omitempty"`
	// Total sums the whole range.
	Total Figures `json:"total"`
	// Previous is the period of the same length just before the range, and
	// SameDatesLastMonth the same dates one month earlier (in TimeZone);
	// both only when Compare was asked.
	Previous           *Figures `json:"previous,omitempty"`
	SameDatesLastMonth *Figures `json:"sameDatesLastMonth,omitempty"`
}

// InvalidError is a request that cannot be answered; Field names the
// offending field as the request's JSON spells it.
type InvalidError struct {
	Field, Message string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

// Validate checks a request and returns its time zone.
func (r *Request) Validate() (*time.Location, error) {
	if r.From.IsZero() || r.To.IsZero() || !r.From.Before(r.To) {
		return nil, &InvalidError{"endTime", "must be after startTime, and both must be set"}
	}
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil || strings.EqualFold(r.TimeZone, "local") {
		return nil, &InvalidError{"timeZone", fmt.Sprintf("%q is not an IANA time zone such as Europe/Berlin", r.TimeZone)}
	}
	if err := r.validateGranularity(); err != nil {
		return nil, err
	}
	seen := map[usage.Dimension]bool{}
	for i, d := range r.GroupBy {
		if _, ok := (Filter{}).lists()[d]; !ok && d != ByMember {
			return nil, &InvalidError{fmt.Sprintf("groupBy[%d]", i), fmt.Sprintf("must be project, keyID, service, model, endpoint or member, not %q", d)}
		}
		if seen[d] {
			return nil, &InvalidError{fmt.Sprintf("groupBy[%d]", i), fmt.Sprintf("%q is listed twice", d)}
		}
		seen[d] = true
	}
	lists := r.Filter.lists()
	lists[ByMember] = r.Filter.Members
	for d, values := range lists {
		if len(values) > MaxFilterValues {
			return nil, &InvalidError{"filter." + string(d) + "s", fmt.Sprintf("may list at most %d values", MaxFilterValues)}
		}
		if i := slices.Index(values, ""); i >= 0 {
			return nil, &InvalidError{fmt.Sprintf("filter.%ss[%d]", d, i), "must not be empty"}
		}
	}
	return loc, nil
}

// validateGranularity checks the granularity and that the range holds at
// most MaxBuckets buckets of it.
func (r *Request) validateGranularity() error {
	var step time.Duration
	switch r.Granularity {
	case "":
	case usage.Minute:
		step = time.Minute
	case usage.Hour:
		step = time.Hour
	case usage.Day:
		step = 24 * time.Hour
	case usage.Month:
		step = 28 * 24 * time.Hour
	default:
		return &InvalidError{"granularity", fmt.Sprintf("must be minute, hour, day or month, not %q", r.Granularity)}
	}
	if r.TopGroups < 0 {
		return &InvalidError{"topGroups", fmt.Sprintf("must be 0 (every group) or more, not %d", r.TopGroups)}
	}
	if r.GroupTotals < 0 {
		return &InvalidError{"groupTotals", fmt.Sprintf("must be 0 (none) or more, not %d", r.GroupTotals)}
	}
	if step > 0 && r.To.Sub(r.From)/step > MaxBuckets {
		return &InvalidError{"granularity", fmt.Sprintf("the range holds more than %d %s buckets; ask for a coarser granularity or a shorter range",
			MaxBuckets, r.Granularity)}
	}
	return nil
}

// Build answers r from the store, priced by prices. The figures of every
// bucket are the sums of the stored events in it, to the token; costs are
// exact decimals.
func Build(ctx context.Context, store usage.Store, prices *pricing.PriceList, currency string, r Request) (*Report, error) {
	loc, err := r.Validate()
	if err != nil {
		return nil, err
	}
	set, err := build(ctx, store, prices, r, r.From, r.To, loc)
	if err != nil {
		return nil, err
	}
	defer set.release()
	rows := set.rows
	report := &Report{Currency: currency, Total: sum(rows)}
	if r.GroupTotals > 0 || r.TopGroups > 0 && len(r.GroupBy) > 0 {
		ranked := rankGroups(rows, r.From)
		if r.GroupTotals > 0 {
			report.GroupCount = len(ranked)
			report.GroupTotals = buckets(ranked[:min(len(ranked), r.GroupTotals)], r.GroupBy, "", r.To, loc)
		}
		if r.TopGroups > 0 && len(r.GroupBy) > 0 {
			rows, report.OtherGroups = topGroups(rows, ranked, r.TopGroups)
		}
	}
	report.Buckets = buckets(rows, r.GroupBy, r.Granularity, r.To, loc)
	if r.Compare {
		whole := r
		whole.Granularity, whole.GroupBy = "", nil
		for _, c := range []struct {
			from, to time.Time
			into     **Figures
		}{
			{r.From.Add(-r.To.Sub(r.From)), r.From, &report.Previous},
			{monthEarlier(r.From, loc), monthEarlier(r.To, loc), &report.SameDatesLastMonth},
		} {
			set, err := build(ctx, store, prices, whole, c.from, c.to, loc)
			if err != nil {
				return nil, err
			}
			figures := sum(set.rows)
			set.release()
			*c.into = &figures
		}
	}
	return report, nil
}

// storeQuery is the store's query for r over [from, to): grouped by
// service and model (prices apply per model) and the dimensions r asks for.
// The store filters on one value per dimension; a filter of several values
// is grouped by, and keep says which values to keep.
func storeQuery(r Request, from, to time.Time, loc *time.Location) (usage.Query, map[usage.Dimension]map[string]bool) {
	q := usage.Query{From: from, To: to, Granularity: r.Granularity, Location: loc}
	if len(r.Filter.Members) > 0 {
		q.Owners = r.Filter.Members
	}
	keep := map[usage.Dimension]map[string]bool{}
	dims := []usage.Dimension{usage.ByService, usage.ByModel}
	for d, values := range r.Filter.lists() {
		switch len(values) {
		case 0:
		case 1:
			setFilter(&q.Filter, d, values[0])
		default:
			keep[d] = map[string]bool{}
			for _, v := range values {
				keep[d][v] = true
			}
			dims = append(dims, d)
		}
	}
	for _, d := range r.GroupBy {
		if d == ByMember {
			d = usage.ByKeyID // folded into owners by build
		}
		if !slices.Contains(dims, d) {
			dims = append(dims, d)
		}
	}
	q.GroupBy = dims
	return q, keep
}

// bucketEnd is where the bucket that holds start ends, within the range:
// start is the bucket's start, or the range's where it starts inside the
// first bucket (minute and hour buckets are UTC's).
func bucketEnd(start time.Time, g usage.Granularity, to time.Time, loc *time.Location) time.Time {
	var end time.Time
	switch g {
	case usage.Minute:
		end = start.Truncate(time.Minute).Add(time.Minute)
	case usage.Hour:
		end = start.Truncate(time.Hour).Add(time.Hour)
	case usage.Day:
		s := start.In(loc)
		end = time.Date(s.Year(), s.Month(), s.Day()+1, 0, 0, 0, 0, loc)
	case usage.Month:
		s := start.In(loc)
		end = time.Date(s.Year(), s.Month()+1, 1, 0, 0, 0, 0, loc)
	default:
		return to
	}
	if end.After(to) {
		return to
	}
	return end
}

func setFilter(f *usage.Filter, d usage.Dimension, v string) {
	switch d {
	case usage.ByProject:
		f.Project = v
	case usage.ByKeyID:
		f.KeyID = v
	case usage.ByService:
		f.Service = v
	case usage.ByModel:
		f.Model = v
	case usage.ByEndpoint:
		f.Endpoint = v
	}
}

// monthEarlier is the same date and time one month before t in loc, on the
// month's last day when it has no such day (March 31 → February 28), where
// time.AddDate would roll over into the next month.
func monthEarlier(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	year, month, day := t.Date()
	firstOfPrevious := time.Date(year, month-1, 1, 0, 0, 0, 0, loc)
	lastDay := firstOfPrevious.AddDate(0, 1, -1).Day()
	hour, minute, second := t.Clock()
	return time.Date(firstOfPrevious.Year(), firstOfPrevious.Month(), min(day, lastDay), hour, minute, second, t.Nanosecond(), loc)
}

// rankGroups sums each group's rows into one row that starts at from,
// and ranks them: the highest cost first, then the most calls, then the
// first in group order.
func rankGroups(rows []*row, from time.Time) []*row {
	index := map[string]int{}
	var groups []row
	for _, r := range rows {
		at, ok := index[r.group]
		if !ok {
			at = len(groups)
			index[r.group] = at
			groups = append(groups, row{start: from, group: r.group})
		}
		groups[at].add(r)
	}
	ranked := make([]*row, len(groups))
	for i := range groups {
		ranked[i] = &groups[i]
	}
	slices.SortFunc(ranked, func(a, b *row) int {
		return cmp.Or(b.cost.Cmp(a.cost), cmp.Compare(b.totals.Calls, a.totals.Calls), strings.Compare(a.group, b.group))
	})
	return ranked
}

// topGroups keeps the rows of the first n groups of ranked (rankGroups),
// and sums the others' into one row per time bucket, after the kept ones of
// that time. It returns how many groups it summed.
func topGroups(rows, ranked []*row, n int) ([]*row, int) {
	if len(ranked) <= n {
		return rows, 0
	}
	kept := make(map[string]bool, n)
	for _, g := range ranked[:n] {
		kept[g.group] = true
	}
	out := make([]*row, 0, n*len(rows)/len(ranked)+1)
	var others *row // the current time bucket's
	for _, r := range rows {
		if others != nil && !r.start.Equal(others.start) {
			out = append(out, others)
			others = nil
		}
		if kept[r.group] {
			out = append(out, r)
			continue
		}
		if others == nil {
			others = &row{start: r.start, others: true}
		}
		others.add(r)
	}
	if others != nil {
		out = append(out, others)
	}
	return out, len(ranked) - n
}
