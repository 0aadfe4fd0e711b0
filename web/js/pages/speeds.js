// Speeds & Feeds: throughput and packet rate over time per recorder
// (GET /api/v1/series?node=N, per-minute sums of its flow records), and
// the top talkers and top server endpoints of the range (GET /api/v1/top).
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { lineChart, minutes } from "../chart.js";
import { h, panel, table } from "../dom.js";

const METRICS = ["bytes", "packets", "flows", "retransmissions"];

function talkers(rows, by, src) {
  const cols = [
    [by === "server" ? "server endpoint" : "client", (t) => (by === "server" ? fmt.endpoint(t) : t.ip)],
    ["bytes", (t) => fmt.bytes(api.num(t.bytes)), true],
    ["packets", (t) => fmt.count(t.packets), true],
    ["flows", (t) => fmt.count(t.flows), true],
    ["retrans.", (t) => fmt.count(t.retransmissions), true],
  ];
  if (by === "server") {
    cols.push(["", (t) => h("a", { href: `#/timing?server=${encodeURIComponent(t.ip)}&port=${t.port}` }, "TCP timing"), false]);
  }
  return table(cols, rows, { src, key: (t) => `${t.ip}|${t.port || 0}` });
}

export async function render(el, params) {
  const r = range.resolve();
  const metric = METRICS.includes(params.get("metric")) ? params.get("metric") : "bytes";
  const select = h("select", {
    id: "top-metric",
    onchange: (ev) => { location.hash = `#/speeds?metric=${ev.target.value}`; },
  }, METRICS.map((m) => h("option", { value: m, selected: m === metric }, m)));
  const bitsChart = h("div", { id: "chart-speeds-bits" });
  const ppsChart = h("div", { id: "chart-speeds-pps" });
  const clients = h("div", { id: "top-clients" });
  const servers = h("div", { id: "top-servers" });
  el.append(h("h1", {}, "Speeds & Feeds"),
    h("div", { class: "grid" },
      panel("Throughput per recorder (bits/s, both directions)", bitsChart),
      panel("Packet rate per recorder (packets/s)", ppsChart)),
    h("p", {}, h("label", {}, "Top by ", select)),
    h("div", { class: "grid" }, panel("Top talkers (clients)", clients), panel("Top server endpoints", servers)));

  const span = { from: r.from, to: r.to };
  const { nodes } = await api.get("nodes");
  const per = await Promise.all(nodes.map((n) => api.get("series", { ...span, node: n.node })));
  const x = minutes(r.from, r.to);
  const col = (rows, f) => {
    const by = new Map(rows.map((m) => [Math.floor(api.num(m.minute_ns) / 1e9), m]));
    return x.map((t) => (by.has(t) ? f(by.get(t)) : 0));
  };
  const src = nodes.map((n) => `/api/v1/series${api.query({ ...span, node: n.node })}`).join(" ");
  lineChart(bitsChart, { x, src, fmt: fmt.bits, series: nodes.map((n, i) => ({
    label: n.node, values: col(per[i].minutes, (m) => (api.num(m.bytes) * 8) / 60) })) });
  lineChart(ppsChart, { x, src, fmt: (v) => fmt.si(v, "pkt/s"), series: nodes.map((n, i) => ({
    label: n.node, values: col(per[i].minutes, (m) => api.num(m.packets) / 60) })) });

  const q = (by) => ({ ...span, by, metric, limit: 10 });
  const [c, s] = await Promise.all([api.get("top", q("client")), api.get("top", q("server"))]);
  clients.replaceChildren(talkers(c.talkers, "client", `/api/v1/top${api.query(q("client"))}`));
  servers.replaceChildren(talkers(s.talkers, "server", `/api/v1/top${api.query(q("server"))}`));
}
