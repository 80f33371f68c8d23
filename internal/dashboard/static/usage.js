// The Usage page's chart: calls per bucket, a line per group, drawn with
// uPlot from the data the page carries (data-chart). Clicking a point opens
// the calls behind it. The table below the chart has the same figures, and
// the page reads without this script.
"use strict";

const palette = ["#0b57d0", "#a4161a", "#0a7c39", "#7a4d00", "#6b3fa0", "#00727a", "#b3147a", "#4d5661"];

function drawUsageChart() {
	const el = document.getElementById("usage-chart");
	if (!el || !window.uPlot || el.dataset.drawn) {
		return;
	}
	const chart = JSON.parse(el.dataset.chart);
	if (chart.x.length === 0) {
		return;
	}
	el.dataset.drawn = "true";
	const series = [{}].concat(chart.series.map((s, i) => ({
		label: s.label || "—",
		stroke: palette[i % palette.length],
		width: 2,
		points: { show: true, size: 7 },
	})));
	const plot = new uPlot({
		width: Math.max(280, el.clientWidth),
		height: 240,
		series: series,
		scales: {
			x: { time: true, range: () => [chart.from, chart.to] },
			y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] },
		},
		axes: [{}, { label: "calls" }],
		legend: { live: false },
	}, [chart.x].concat(chart.series.map((s) => s.values)), el);
	// A click goes to the calls of the point nearest the pointer, in the
	// bucket under it.
	plot.over.addEventListener("click", () => {
		const i = plot.cursor.idx;
		if (i == null) {
			return;
		}
		const y = plot.posToVal(plot.cursor.top, "y");
		let best = -1;
		let distance = Infinity;
		chart.series.forEach((s, k) => {
			const d = Math.abs(s.values[i] - y);
			if (s.links[i] && d < distance) {
				best = k;
				distance = d;
			}
		});
		if (best >= 0) {
			window.location.assign(chart.series[best].links[i]);
		}
	});
	el.usagePlot = plot;
}

document.addEventListener("DOMContentLoaded", drawUsageChart);
// htmx swaps the report in every minute: draw the new chart.
document.addEventListener("htmx:afterSettle", drawUsageChart);
