package dashboard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/shopspring/decimal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/billing"
)

// usageView is a Usage page's question, all of it in the URL so that a
// view can be shared: the range, the bucket size, the grouping and a
// project filter.
type usageView struct {
	// Range is "cycle" (the current billing cycle, the default), "24h",
	// "7d" or "30d".
	Range string
	// Granularity is Hour, Day (the default) or Month.
	Granularity string
	// Group is Project (the default), KeyID or Model.
	Group   string
	Project string
}

var (
	usageRanges        = []string{"cycle", "24h", "7d", "30d"}
	usageGranularities = []string{string(mgmtv1alpha1.GranularityHour), string(mgmtv1alpha1.GranularityDay), string(mgmtv1alpha1.GranularityMonth)}
	usageGroups        = []string{string(mgmtv1alpha1.DimensionProject), string(mgmtv1alpha1.DimensionKeyID), string(mgmtv1alpha1.DimensionModel)}
)

// viewOf reads a view from the URL, each value one of its choices.
func viewOf(q url.Values) usageView {
	pick := func(v string, choices []string) string {
		for _, c := range choices {
			if v == c {
				return v
			}
		}
		return choices[0]
	}
	v := usageView{Range: pick(q.Get("range"), usageRanges), Project: q.Get("project")}
	v.Granularity = pick(q.Get("granularity"), []string{"Day", "Hour", "Month"})
	v.Group = pick(q.Get("group"), usageGroups)
	return v
}

// query is the view's URL query.
func (v usageView) query() string {
	q := url.Values{"range": {v.Range}, "granularity": {v.Granularity}, "group": {v.Group}}
	if v.Project != "" {
		q.Set("project", v.Project)
	}
	return q.Encode()
}

// usageData is what the Usage page shows.
type usageData struct {
	View                          usageView
	Ranges, Granularities, Groups []string
	Query                         string
	From, To, Currency, TimeZone  string
	Total                         mgmtv1alpha1.UsageFigures
	Previous, SameDatesLastMonth  *mgmtv1alpha1.UsageFigures
	// Periods has a row per bucket, GroupRows a row per group (the
	// costliest first), leaving MoreGroups out.
	Periods, GroupRows []usageRow
	MoreGroups         int
	// Chart is the buckets as the usage chart draws them, JSON.
	Chart string
}

// usageChart is the chart's data: calls per bucket for each group, with
// the drill-down link of each point (static/usage.js draws it).
type usageChart struct {
	// From and To are the report's range, Unix seconds: the x axis.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// X are the buckets' starts, Unix seconds.
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string   `json:"label"`
	Values []int64  `json:"values"`
	Links  []string `json:"links"`
}

// chartOf lays the rows out for the chart: a series per group, a point per
// bucket start (zero, linking nowhere, where a group had no usage). Rows of
// the others (the groups the report summed, otherGroups of them) join the
// chart's line of others.
func chartOf(rows []usageRow, starts []int64, from, to time.Time, otherGroups int) string {
	chart := usageChart{From: from.Unix(), To: to.Unix(), X: []int64{}, Series: []chartSeries{}}
	index := map[int64]int{}
	for _, t := range starts {
		if _, ok := index[t]; !ok {
			index[t] = len(chart.X)
			chart.X = append(chart.X, t)
		}
	}
	series := map[string]int{}
	rest := make([]int64, len(chart.X))
	for i, row := range rows {
		x := index[starts[i]]
		if row.Others {
			rest[x] += row.UsageFigures.Calls
			continue
		}
		k, ok := series[row.Group]
		if !ok {
			k = len(chart.Series)
			series[row.Group] = k
			chart.Series = append(chart.Series, chartSeries{Label: row.Group, Values: make([]int64, len(chart.X)),
				Links: make([]string, len(chart.X))})
		}
		chart.Series[k].Values[x] += row.UsageFigures.Calls
		chart.Series[k].Links[x] = row.Calls
	}
	chart.Series = topSeries(chart.Series, rest, otherGroups)
	raw, _ := json.Marshal(chart)
	return string(raw)
}

// chartSeriesShown is how many lines a chart draws: more cannot be told
// apart. The report's costliest groups get their own line (its topGroups);
// the rest share one, whose points open no calls (the table lists each
// group's).
const chartSeriesShown = 8

// topSeries keeps the chartSeriesShown-1 series with the most calls, in
// their order, and sums the others into one, with rest: the calls at each
// point of restGroups groups already summed. The report keeps no more
// groups than that, so it is its costliest that keep their lines; a report
// of more (a different topGroups) is still drawn in chartSeriesShown lines.
func topSeries(series []chartSeries, rest []int64, restGroups int) []chartSeries {
	if len(series) <= chartSeriesShown && restGroups == 0 {
		return series
	}
	total := func(s chartSeries) (n int64) {
		for _, v := range s.Values {
			n += v
		}
		return n
	}
	order := make([]int, len(series))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(total(series[b]), total(series[a])) })
	keep := slices.Clone(order[:min(len(order), chartSeriesShown-1)])
	slices.Sort(keep)
	out := make([]chartSeries, 0, chartSeriesShown)
	for _, i := range keep {
		out = append(out, series[i])
	}
	other := chartSeries{Label: fmt.Sprintf("%d others", len(series)-len(keep)+restGroups), Values: slices.Clone(rest),
		Links: make([]string, len(rest))}
	for _, i := range order[len(keep):] {
		for x, v := range series[i].Values {
			other.Values[x] += v
		}
	}
	return append(out, other)
}

// usageRow is a bucket of the report, with the link to its calls.
type usageRow struct {
	Start, Group string
	// Others is set on a row of the groups the report summed; it has no
	// group, and no link.
	Others bool
	mgmtv1alpha1.UsageFigures
	// Calls drills down to the calls behind the row.
	Calls string
}

// What a report comes with, besides the view's buckets.
type reportExtras int

const (
	// reportChart is a chart's: the buckets of the costliest groups, a
	// line each, and the others summed.
	reportChart reportExtras = iota
	// reportPage is the Usage page's: the chart's, with the period before
	// and the same dates last month, and the totals of the groups its
	// table lists.
	reportPage
	// reportCSV is every bucket, as CSV.
	reportCSV
)

// report asks the management API, as the member, for the view's report.
// The billing cycle is the Organization's (its time zone and start day);
// buckets are the member's days and hours, in their time zone.
func (s *Server) report(r *http.Request, v *viewer, view usageView, extras reportExtras) (*mgmtv1alpha1.UsageReport, error) {
	ctx := r.Context()
	loc, startDay := time.UTC, 1
	if org := s.organization(ctx); org != nil {
		if l, err := time.LoadLocation(org.Spec.Billing.TimeZone); err == nil && org.Spec.Billing.TimeZone != "" {
			loc = l
		}
		if org.Spec.Billing.CycleStartDay > 0 {
			startDay = int(org.Spec.Billing.CycleStartDay)
		}
	}
	now := s.o.Clock.Now()
	to := now.Truncate(time.Hour).Add(time.Hour)
	// The last 7 and 30 days are whole days in the member's zone, today
	// the last of them, as a chart by day draws them; by hour they are
	// the hours up to now.
	lastDays := func(n int) time.Time {
		if view.Granularity == string(mgmtv1alpha1.GranularityHour) {
			return to.AddDate(0, 0, -n)
		}
		today := now.In(v.Zone)
		return time.Date(today.Year(), today.Month(), today.Day()-(n-1), 0, 0, 0, 0, v.Zone)
	}
	var from time.Time
	switch view.Range {
	case "24h":
		from = to.Add(-24 * time.Hour)
	case "7d":
		from = lastDays(7)
	case "30d":
		from = lastDays(30)
	default:
		cycle := billing.CycleAt(now, startDay, loc)
		from, to = cycle.Start, cycle.End
	}
	report := &mgmtv1alpha1.UsageReport{Spec: mgmtv1alpha1.UsageReportSpec{StartTime: metav1.NewTime(from), EndTime: metav1.NewTime(to),
		Granularity: mgmtv1alpha1.Granularity(view.Granularity), TimeZone: v.Zone.String(),
		GroupBy: []mgmtv1alpha1.Dimension{mgmtv1alpha1.Dimension(view.Group)}, Compare: extras == reportPage, CSV: extras == reportCSV}}
	if extras != reportCSV {
		// A chart draws the costliest groups and sums the rest, and the
		// page's table lists the costliest groups' totals: so does the
		// report, which stays small whatever the number of groups.
		report.Spec.TopGroups = chartSeriesShown - 1
	}
	if extras == reportPage {
		report.Spec.GroupTotals = groupRowsShown
	}
	if view.Project != "" {
		report.Spec.Projects = []string{view.Project}
	}
	as, err := s.asMember(r, v)
	if err != nil {
		return nil, err
	}
	return report, as.Create(ctx, report)
}

// usagePage shows the view's report: totals against the period before
// and the same dates last month, and each bucket with a link to its calls.
// It refreshes itself every minute while open (htmx), and reads without
// JavaScript.
func (s *Server) usagePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	view := viewOf(r.URL.Query())
	report, err := s.report(r, v, view, reportPage)
	if err != nil {
		code, message := refusal(err)
		s.fail(w, r, code, message)
		return
	}
	st := &report.Status
	data := usageData{View: view, Ranges: usageRanges, Granularities: usageGranularities, Groups: usageGroups, Query: view.query(),
		From: v.moment(report.Spec.StartTime.Time), To: v.moment(report.Spec.EndTime.Time),
		Currency: st.Currency, TimeZone: st.TimeZone, Total: st.Total, Previous: st.Previous, SameDatesLastMonth: st.SameDatesLastMonth}
	rows, chart := usageRows(view, report)
	data.Chart = chart
	data.Periods, data.GroupRows, data.MoreGroups = usageTables(view, report, rows)
	s.render(w, r, http.StatusOK, "usage", s.pageOf(v, "/usage"), data)
}

// usageRows are a report's buckets as rows, each with the link to its
// calls, and as the chart's data.
func usageRows(view usageView, report *mgmtv1alpha1.UsageReport) (rows []usageRow, chart string) {
	st := &report.Status
	starts := make([]int64, 0, len(st.Buckets))
	zone := locationOf(st.TimeZone)
	for _, b := range st.Buckets {
		starts = append(starts, b.StartTime.Unix())
		row := usageRow{Start: b.StartTime.In(zone).Format("2 Jan 2006 15:04"), UsageFigures: b.UsageFigures, Others: b.Others}
		if !b.Others {
			row.Group = view.groupOf(b)
			row.Calls = view.callsLink(b.StartTime.Time, b.EndTime.Time, row.Group)
		}
		rows = append(rows, row)
	}
	return rows, chartOf(rows, starts, report.Spec.StartTime.Time, report.Spec.EndTime.Time, int(st.OtherGroups))
}

// groupOf is the bucket's value of the view's group.
func (v usageView) groupOf(b mgmtv1alpha1.UsageBucket) string {
	return map[string]string{"Project": b.Project, "KeyID": b.KeyID, "Model": b.Model}[v.Group]
}

// callsLink is the drill-down to the calls of [from, to), of group (all
// groups when empty) and of the view's project.
func (v usageView) callsLink(from, to time.Time, group string) string {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	if group != "" {
		q.Set(map[string]string{"Project": "project", "KeyID": "keyID", "Model": "model"}[v.Group], group)
	}
	if v.Project != "" {
		q.Set("project", v.Project)
	}
	return "/usage/calls?" + q.Encode()
}

// groupRowsShown is how many groups the page's table of groups lists, the
// costliest first; the CSV has them all.
const groupRowsShown = 50

// usageTables are the page's two tables, both bounded whatever the number
// of groups: a row per bucket (every group summed), and a row per group
// (the whole range), the costliest first, as many as the report's group
// totals (groupRowsShown). more is how many groups the second leaves out.
func usageTables(view usageView, report *mgmtv1alpha1.UsageReport, rows []usageRow) (periods, groups []usageRow, more int) {
	st := &report.Status
	byStart := map[int64]*figureSum{}
	var starts []int64
	for i, r := range rows {
		b := st.Buckets[i]
		// By the bucket's instant: two hours a DST change gives one local
		// name are two rows.
		s, ok := byStart[b.StartTime.Unix()]
		if !ok {
			s = &figureSum{row: usageRow{Start: r.Start, Calls: view.callsLink(b.StartTime.Time, b.EndTime.Time, "")}}
			byStart[b.StartTime.Unix()] = s
			starts = append(starts, b.StartTime.Unix())
		}
		s.add(r.UsageFigures)
	}
	for _, k := range starts {
		periods = append(periods, byStart[k].done())
	}
	totals, count := st.GroupTotals, int(st.GroupCount)
	if count == 0 {
		totals, count = groupTotalsOf(view, st)
	}
	for _, b := range totals {
		group := view.groupOf(b)
		groups = append(groups, usageRow{Group: group, UsageFigures: b.UsageFigures,
			Calls: view.callsLink(report.Spec.StartTime.Time, report.Spec.EndTime.Time, group)})
	}
	return periods, groups, count - len(groups)
}

// groupTotalsOf sums the report's buckets by group, the costliest first,
// and counts its groups, those summed into the others too: the table's
// rows when the report has no group totals, as from a management API that
// predates spec.groupTotals, during an upgrade. The table then lists the
// chart's groups only.
func groupTotalsOf(view usageView, st *mgmtv1alpha1.UsageReportStatus) ([]mgmtv1alpha1.UsageBucket, int) {
	byGroup := map[string]*figureSum{}
	var names []string
	for _, b := range st.Buckets {
		if b.Others {
			continue
		}
		group := view.groupOf(b)
		s, ok := byGroup[group]
		if !ok {
			s = &figureSum{bucket: b}
			s.bucket.UsageFigures = mgmtv1alpha1.UsageFigures{}
			byGroup[group] = s
			names = append(names, group)
		}
		s.add(b.UsageFigures)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		return cmp.Or(byGroup[b].cost.Cmp(byGroup[a].cost), cmp.Compare(byGroup[b].row.UsageFigures.Calls, byGroup[a].row.UsageFigures.Calls))
	})
	totals := make([]mgmtv1alpha1.UsageBucket, 0, min(len(names), groupRowsShown))
	for _, g := range names[:min(len(names), groupRowsShown)] {
		s := byGroup[g]
		s.bucket.UsageFigures = s.done().UsageFigures
		totals = append(totals, s.bucket)
	}
	return totals, len(names) + int(st.OtherGroups)
}

// figureSum adds up figures into a table's row (and the bucket it stands
// for, when a group's), with their cost as a decimal.
type figureSum struct {
	row    usageRow
	bucket mgmtv1alpha1.UsageBucket
	cost   decimal.Decimal
}

func (s *figureSum) add(f mgmtv1alpha1.UsageFigures) {
	s.row.UsageFigures.Calls += f.Calls
	s.row.InputTokens += f.InputTokens
	s.row.CachedInputTokens += f.CachedInputTokens
	s.row.OutputTokens += f.OutputTokens
	s.row.VideoSeconds += f.VideoSeconds
	s.row.StorageByteHours += f.StorageByteHours
	s.row.UnpricedCalls += f.UnpricedCalls
	if c, err := decimal.NewFromString(f.Cost); err == nil {
		s.cost = s.cost.Add(c)
	}
}

// done is the row, with its cost.
func (s *figureSum) done() usageRow {
	s.row.Cost = s.cost.String()
	return s.row
}

func locationOf(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}

// usageCSV exports the view's report as CSV (the management API's
// columns).
func (s *Server) usageCSV(w http.ResponseWriter, r *http.Request, v *viewer) {
	report, err := s.report(r, v, viewOf(r.URL.Query()), reportCSV)
	if err != nil {
		code, message := refusal(err)
		s.fail(w, r, code, message)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
	_, _ = w.Write([]byte(report.Status.CSV))
}

// callsData is what the drill-down shows: the calls behind a bucket.
type callsData struct {
	From, To, Filter string
	Calls            []mgmtv1alpha1.UsageRecord
	Next             string
}

// usageCalls lists the calls of a range and a group, a page at a time:
// the management API's usage records, read as the member.
func (s *Server) usageCalls(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	fields := client.MatchingFields{mgmtv1alpha1.FieldStartTime: q.Get("from"), mgmtv1alpha1.FieldEndTime: q.Get("to")}
	data := callsData{From: v.instant(q.Get("from")), To: v.instant(q.Get("to"))}
	for _, f := range []string{mgmtv1alpha1.FieldProject, mgmtv1alpha1.FieldKeyID, "model"} {
		if value := q.Get(f); value != "" {
			fields[f] = value
			data.Filter += " " + f + " " + value
		}
	}
	as, err := s.asMember(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	page := &mgmtv1alpha1.UsageRecordList{}
	opts := []client.ListOption{fields, client.Limit(callsPageSize)}
	if c := q.Get("continue"); c != "" {
		opts = append(opts, client.Continue(c))
	}
	if err := as.List(r.Context(), page, opts...); err != nil {
		code, message := refusal(err)
		s.fail(w, r, code, message)
		return
	}
	data.Calls = page.Items
	if page.Continue != "" {
		q.Set("continue", page.Continue)
		data.Next = "/usage/calls?" + q.Encode()
	}
	s.render(w, r, http.StatusOK, "usage-calls", s.pageOf(v, "/usage"), data)
}
