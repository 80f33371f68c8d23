package dashboard

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
)

// TestChartKeepsTheBusiestGroups: a chart of many groups draws the seven
// with the most calls and one line for the others, whose calls it keeps.
func TestChartKeepsTheBusiestGroups(t *testing.T) {
	g := NewWithT(t)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]usageRow, 0, 40)
	starts := make([]int64, 0, 40)
	for day := range 2 {
		for p := range 20 {
			rows = append(rows, usageRow{Group: fmt.Sprintf("p-%02d", p), Calls: fmt.Sprintf("/usage/calls?p=%d", p),
				UsageFigures: mgmtv1alpha1.UsageFigures{Calls: int64(p + 1)}})
			starts = append(starts, from.AddDate(0, 0, day).Unix())
		}
	}
	var chart usageChart
	g.Expect(json.Unmarshal([]byte(chartOf(rows, starts, from, from.AddDate(0, 0, 2), 0)), &chart)).To(Succeed())
	g.Expect(chart.X).To(HaveLen(2))
	labels := make([]string, 0, len(chart.Series))
	var sum int64
	for _, s := range chart.Series {
		labels = append(labels, s.Label)
		for _, v := range s.Values {
			sum += v
		}
	}
	g.Expect(labels).To(Equal([]string{"p-13", "p-14", "p-15", "p-16", "p-17", "p-18", "p-19", "13 others"}))
	g.Expect(sum).To(Equal(int64(2*210)), "every call is drawn")
	g.Expect(chart.Series[7].Values).To(Equal([]int64{91, 91}))
	g.Expect(chart.Series[7].Links).To(Equal([]string{"", ""}))
	g.Expect(chart.Series[0].Links[0]).To(Equal("/usage/calls?p=13"))

	// Groups the report already summed join the line of others.
	rows = append(rows, usageRow{Others: true, UsageFigures: mgmtv1alpha1.UsageFigures{Calls: 1000}})
	starts = append(starts, from.AddDate(0, 0, 1).Unix())
	g.Expect(json.Unmarshal([]byte(chartOf(rows, starts, from, from.AddDate(0, 0, 2), 30)), &chart)).To(Succeed())
	g.Expect(chart.Series).To(HaveLen(8))
	g.Expect(chart.Series[7].Label).To(Equal("43 others"))
	g.Expect(chart.Series[7].Values).To(Equal([]int64{91, 1091}))
}

// TestUsageTablesStayBounded: a report of many groups is shown as a row
// per day (every group summed, the others too) and the report's totals of
// the costliest groups, whatever their number.
func TestUsageTablesStayBounded(t *testing.T) {
	g := NewWithT(t)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	view := usageView{Range: "7d", Granularity: "Day", Group: "Project"}
	report := &mgmtv1alpha1.UsageReport{Spec: mgmtv1alpha1.UsageReportSpec{StartTime: metav1.NewTime(from),
		EndTime: metav1.NewTime(from.AddDate(0, 0, 3))}}
	report.Status.TimeZone = "UTC"
	for day := range 3 {
		for p := range 120 {
			start := from.AddDate(0, 0, day)
			report.Status.Buckets = append(report.Status.Buckets, mgmtv1alpha1.UsageBucket{
				StartTime: metav1.NewTime(start), EndTime: metav1.NewTime(start.AddDate(0, 0, 1)), Project: fmt.Sprintf("p-%03d", p),
				UsageFigures: mgmtv1alpha1.UsageFigures{Calls: 1, InputTokens: int64(p), Cost: fmt.Sprintf("%d.25", p)}})
		}
	}
	// The report summed five more groups, on the first day.
	report.Status.Buckets = append(report.Status.Buckets[:120:120], append([]mgmtv1alpha1.UsageBucket{{StartTime: metav1.NewTime(from),
		EndTime: metav1.NewTime(from.AddDate(0, 0, 1)), Others: true, UsageFigures: mgmtv1alpha1.UsageFigures{Calls: 5, Cost: "1000"}}},
		report.Status.Buckets[120:]...)...)
	report.Status.OtherGroups = 5
	// The costliest groups' totals, as the report ranks them.
	for p := 124; p > 124-groupRowsShown; p-- {
		report.Status.GroupTotals = append(report.Status.GroupTotals, mgmtv1alpha1.UsageBucket{StartTime: report.Spec.StartTime,
			EndTime: report.Spec.EndTime, Project: fmt.Sprintf("p-%03d", p), UsageFigures: mgmtv1alpha1.UsageFigures{Calls: 3, Cost: fmt.Sprintf("%d.75", p)}})
	}
	report.Status.GroupCount = 125
	rows, _ := usageRows(view, report)
	periods, groups, more := usageTables(view, report, rows)
	g.Expect(periods).To(HaveLen(3))
	g.Expect(periods[0].Start).To(Equal("1 Nov 2026 00:00"))
	g.Expect(periods[0].UsageFigures.Calls).To(BeEquivalentTo(125))
	g.Expect(periods[0].Cost).To(Equal("8170"), "0.25 + 1.25 + … + 119.25, and the others' 1000")
	g.Expect(periods[1].UsageFigures.Calls).To(BeEquivalentTo(120))
	g.Expect(periods[0].Calls).To(Equal("/usage/calls?from=2026-11-01T00%3A00%3A00Z&to=2026-11-02T00%3A00%3A00Z"))
	g.Expect(groups).To(HaveLen(groupRowsShown))
	g.Expect(more).To(Equal(125-groupRowsShown), "the groups the report has but does not list")
	g.Expect(groups[0].Group).To(Equal("p-124"), "in the report's order, the costliest first")
	g.Expect(groups[0].Cost).To(Equal("124.75"))
	g.Expect(groups[0].UsageFigures.Calls).To(BeEquivalentTo(3))
	g.Expect(groups[0].Calls).To(Equal("/usage/calls?from=2026-11-01T00%3A00%3A00Z&project=p-124&to=2026-11-04T00%3A00%3A00Z"))
	g.Expect(groups[groupRowsShown-1].Group).To(Equal("p-075"))

	// A management API that predates groupTotals leaves them out: the
	// table sums the buckets' groups instead, the costliest first.
	report.Status.GroupTotals, report.Status.GroupCount = nil, 0
	_, groups, more = usageTables(view, report, rows)
	g.Expect(groups).To(HaveLen(groupRowsShown))
	g.Expect(more).To(Equal(120-groupRowsShown+5), "the groups left out here and those the report summed")
	g.Expect(groups[0].Group).To(Equal("p-119"))
	g.Expect(groups[0].Cost).To(Equal("357.75"), "119.25 on each of three days")
	g.Expect(groups[0].UsageFigures.Calls).To(BeEquivalentTo(3))
	g.Expect(groups[0].InputTokens).To(BeEquivalentTo(3 * 119))
	g.Expect(groups[0].Calls).To(Equal("/usage/calls?from=2026-11-01T00%3A00%3A00Z&project=p-119&to=2026-11-04T00%3A00%3A00Z"))
	g.Expect(groups[groupRowsShown-1].Group).To(Equal("p-070"))
}
