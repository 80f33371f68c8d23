package dashboard

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

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
	g.Expect(json.Unmarshal([]byte(chartOf(rows, starts, from, from.AddDate(0, 0, 2))), &chart)).To(Succeed())
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
}
