// TCP Timing: handshake RTT, ACK RTT and application response time over
// time, as percentiles and means, and the rates of retransmissions, zero
// windows and resets - for all traffic, or one server endpoint
// (#/timing?server=IP&port=N, linked from the tables).
//
// Means and retransmissions per minute come from GET /api/v1/series (the
// coordinator's per-minute sums). Percentiles and zero windows are not in
// those sums: they are computed here from the flow records of the range
// (GET /api/v1/flows, up to SAMPLE of them, newest first; the page says
// when the range held more).
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { lineChart, minutes } from "../chart.js";
import { h, panel, table } from "../dom.js";

const SAMPLE = 20000;
const PCTS = [50, 90, 99];

// The value at percentile p of sorted values (nearest rank).
function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function sampleFlows(params) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api.get("flows", { ...params, limit: 5000, cursor });
    rows.push(...page.flows);
    cursor = page.next_cursor;
  } while (cursor && rows.length < SAMPLE);
  return { rows, more: Boolean(cursor) };
}

// Per minute: the flows' values of f (a number or null), as percentiles.
function percentiles(x, flows, f) {
  const per = new Map();
  for (const fl of flows) {
    const v = f(fl.record);
    if (v === null || !(v > 0)) continue;
    const t = Math.floor(api.num(fl.record.first_ns) / 60e9) * 60;
    if (!per.has(t)) per.set(t, []);
    per.get(t).push(v);
  }
  for (const vs of per.values()) vs.sort((a, b) => a - b);
  return PCTS.map((p) => x.map((t) => (per.has(t) ? pct(per.get(t), p) : null)));
}

const stat = (s) => (s && api.num(s.count) > 0 ? api.num(s.sum) / api.num(s.count) : null);
const handshake = (r) => (r.handshake && (r.handshake.seen & 8) ? api.num(r.handshake.initial_rtt_ns) : null);
function ackRtt(r) {
  const a = r.c2s && r.c2s.rtt_ns, b = r.s2c && r.s2c.rtt_ns;
  const n = (a ? api.num(a.count) : 0) + (b ? api.num(b.count) : 0);
  return n ? ((a ? api.num(a.sum) : 0) + (b ? api.num(b.sum) : 0)) / n : null;
}
const appResponse = (r) => stat(r.app_response_ns);
const dirSum = (r, k) => (r.c2s ? api.num(r.c2s[k]) : 0) + (r.s2c ? api.num(r.s2c[k]) : 0);

export async function render(el, params) {
  const r = range.resolve();
  const server = params.get("server") || "";
  const port = params.get("port") || "";
  const form = h("form", { class: "filters", id: "timing-filter", onsubmit: (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    location.hash = `#/timing${api.query({ server: f.get("server"), port: f.get("port") })}`;
  } },
  h("label", {}, "server address", h("input", { name: "server", value: server, placeholder: "all" })),
  h("label", {}, "port", h("input", { name: "port", value: port, size: 6 })),
  h("button", { type: "submit" }, "Show"));
  const charts = {
    hs: h("div", { id: "chart-timing-handshake" }),
    ack: h("div", { id: "chart-timing-ack" }),
    app: h("div", { id: "chart-timing-app" }),
    retx: h("div", { id: "chart-timing-retx" }),
    zw: h("div", { id: "chart-timing-zw" }),
  };
  const note = h("p", { class: "note" });
  const servers = h("div", { id: "timing-servers" });
  el.append(h("h1", {}, "TCP Timing", server ? ` — ${server}${port ? `:${port}` : ""}` : ""), form,
    h("div", { class: "grid" },
      panel("Handshake RTT (SYN → ACK): percentiles", charts.hs),
      panel("ACK RTT: percentiles and mean", charts.ack),
      panel("Application response time: percentiles and mean", charts.app),
      panel("Retransmissions (% of packets)", charts.retx),
      panel("Zero windows and resets (per minute)", charts.zw)),
    note, panel("Server endpoints with the most retransmissions", servers));

  const span = { from: r.from, to: r.to };
  const sq = { ...span, server, port };
  const fq = { ...span, host: server, port, proto: "tcp" };
  const [series, sample, top] = await Promise.all([
    api.get("series", sq), sampleFlows(fq),
    api.get("top", { ...span, by: "server", metric: "retransmissions", limit: 10 })]);
  const x = minutes(r.from, r.to);
  const by = new Map(series.minutes.map((m) => [Math.floor(api.num(m.minute_ns) / 1e9), m]));
  const mean = (sum, cnt) => x.map((t) => {
    const m = by.get(t);
    return m && api.num(m[cnt]) > 0 ? api.num(m[sum]) / api.num(m[cnt]) : null;
  });
  const ssrc = `/api/v1/series${api.query(sq)}`;
  const fsrc = `/api/v1/flows${api.query(fq)}`;
  const pseries = (vals) => PCTS.map((p, i) => ({ label: `p${p}`, values: vals[i] }));
  lineChart(charts.hs, { x, src: fsrc, fmt: fmt.dur, series: pseries(percentiles(x, sample.rows, handshake)) });
  lineChart(charts.ack, { x, src: `${fsrc} ${ssrc}`, fmt: fmt.dur, series: [
    ...pseries(percentiles(x, sample.rows, ackRtt)), { label: "mean", values: mean("rtt_sum", "rtt_count") }] });
  lineChart(charts.app, { x, src: `${fsrc} ${ssrc}`, fmt: fmt.dur, series: [
    ...pseries(percentiles(x, sample.rows, appResponse)), { label: "mean", values: mean("app_sum", "app_count") }] });
  lineChart(charts.retx, { x, src: ssrc, fmt: (v) => `${v.toPrecision(2)} %`, series: [{
    label: "retransmitted", values: x.map((t) => {
      const m = by.get(t);
      return m && api.num(m.packets) ? (100 * api.num(m.retransmissions)) / api.num(m.packets) : null;
    }) }] });
  const perMinute = (k) => {
    const c = new Map();
    for (const fl of sample.rows) {
      const t = Math.floor(api.num(fl.record.first_ns) / 60e9) * 60;
      c.set(t, (c.get(t) || 0) + dirSum(fl.record, k));
    }
    return x.map((t) => (c.has(t) ? c.get(t) : null));
  };
  lineChart(charts.zw, { x, src: fsrc, fmt: (v) => fmt.si(v), series: [
    { label: "zero windows", values: perMinute("zero_windows") }, { label: "resets", values: perMinute("rsts") }] });
  note.textContent = `Percentiles, zero windows and resets from ${sample.rows.length.toLocaleString("en-US")} TCP flow records` +
    (sample.more ? ` (the newest; the range holds more: narrow it for all of them)` : " (all of the range's)") +
    "; means and retransmissions from every flow's per-minute sums.";
  const tsrc = `/api/v1/top${api.query({ ...span, by: "server", metric: "retransmissions", limit: 10 })}`;
  servers.replaceChildren(table([
    ["server endpoint", (t) => h("a", { href: `#/timing?server=${encodeURIComponent(t.ip)}&port=${t.port}` }, fmt.endpoint(t))],
    ["retrans.", (t) => fmt.count(t.retransmissions), true],
    ["packets", (t) => fmt.count(t.packets), true],
    ["flows", (t) => fmt.count(t.flows), true],
    ["bytes", (t) => fmt.bytes(api.num(t.bytes)), true],
  ], top.talkers, { src: tsrc, key: (t) => `${t.ip}|${t.port || 0}` }));
}
