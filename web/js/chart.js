// chart.js - time series charts (uPlot), with drag-to-zoom: selecting a
// span on any chart sets the shared time range (range.js) to it.
import uPlot from "/vendor/uPlot.esm.js";
import * as range from "./range.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

// Draw into el a chart of x (Unix seconds) against each series
// ({label, values, unit}); fmt formats the y axis values. Sets
// el.dataset.points to the number of values drawn, which the
// browser test checks along with the canvas's pixels; zeros and gaps do
// not count. el.chartData keeps what was drawn ({x, series}), for the test
// to compare with the API's answer.
export function lineChart(el, { x, series, fmt = (v) => String(v), src = "" }) {
  el.replaceChildren();
  el.classList.add("chart");
  const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null && v !== undefined && v !== 0).length, 0);
  el.dataset.points = points;
  el.dataset.src = src;
  el.chartData = { x, series: series.map((s) => ({ label: s.label, values: s.values })) };
  if (!points) {
    el.append(Object.assign(document.createElement("div"), { className: "empty", textContent: "no data in this range" }));
    return null;
  }
  const width = Math.max(320, el.clientWidth || el.parentElement.clientWidth - 24);
  const opts = {
    width,
    height: 240,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    axes: [{}, { values: (u, vals) => vals.map(fmt), size: 70 }],
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      stroke: COLORS[i % COLORS.length],
      width: 1.5,
      points: { show: x.length < 3 },
      spanGaps: false,
      value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)),
    }))],
    hooks: {
      setSelect: [(u) => {
        if (u.select.width < 3) return;
        const from = u.posToVal(u.select.left, "x");
        const to = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ width: 0, height: 0 }, false);
        range.setAbsolute(from, to);
      }],
    },
  };
  return new uPlot(opts, [x, ...series.map((s) => s.values)], el);
}

// Minutes [from, to) in Unix seconds, for charts whose data may skip some:
// every minute gets a slot (null where there is no data), so gaps show.
export function minutes(from, to) {
  const xs = [];
  for (let t = Math.floor(from / 60) * 60; t < to; t += 60) xs.push(t);
  return xs;
}
