// Overview: the recorders and their health (GET /api/v1/nodes, polled every
// 5 s: the ingest rate is the change of each one's received packets between
// two polls), and what the flow records say of the whole range
// (GET /api/v1/series). Drops by reason and storage are each recorder's own
// counters as its last heartbeat gave them (the nodes rows' drops, disk_used,
// oldest_ns, newest_ns).
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { lineChart, minutes } from "../chart.js";
import { badge, h, panel, table, errorBox } from "../dom.js";

const POLL_MS = 5000;
const last = new Map(); // node -> { rx, at, start, rate } from an earlier poll

// Packets per second since the last poll at least 2 s ago (a page drawn
// again at once keeps the rate it had).
function rates(nodes) {
  const now = performance.now();
  const out = new Map();
  for (const n of nodes) {
    const rx = api.num(n.rx_packets);
    const prev = last.get(n.node);
    if (prev && prev.start === n.start_ns && now - prev.at < 2000) {
      if (prev.rate !== undefined) out.set(n.node, prev.rate);
      continue;
    }
    const rate = prev && prev.start === n.start_ns ? Math.max(0, (rx - prev.rx) / ((now - prev.at) / 1000)) : undefined;
    if (rate !== undefined) out.set(n.node, rate);
    last.set(n.node, { rx, at: now, start: n.start_ns, rate });
  }
  return out;
}

function clock(n) {
  if (!n.clock_offset_known) return "—";
  const ms = api.num(n.clock_offset_ns) / 1e6;
  return `${ms >= 0 ? "+" : ""}${ms.toFixed(1)} ms`;
}

const dropped = (n) => Object.values(n.drops || {}).reduce((a, v) => a + api.num(v), 0);

// The span of packets a recorder holds (newest minus oldest), "—" if none.
function held(n) {
  const o = api.num(n.oldest_ns);
  const s = (api.num(n.newest_ns) - o) / 1e9;
  if (!o || s < 0) return "—";
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

// Drops: one row per recorder, one column per reason any recorder reports.
function dropsTable(nodes) {
  const reasons = [...new Set(nodes.flatMap((n) => Object.keys(n.drops || {})))].sort();
  return table([
    ["recorder", (n) => n.node],
    ...reasons.map((k) => [k, (n) => fmt.count(api.num((n.drops || {})[k])), true]),
    ["total", (n) => fmt.count(dropped(n)), true],
  ], nodes, { src: "/api/v1/nodes#drops", key: (n) => `${n.node}|drops`, empty: "no recorder has been heard from" });
}

// Storage: bytes on disk and the time span of the packets held.
function storageTable(nodes) {
  return table([
    ["recorder", (n) => n.node],
    ["disk used", (n) => fmt.bytes(api.num(n.disk_used)), true],
    ["oldest packet", (n) => (api.num(n.oldest_ns) ? fmt.time(n.oldest_ns) : "—")],
    ["newest packet", (n) => (api.num(n.newest_ns) ? fmt.time(n.newest_ns) : "—")],
    ["time held", held, true],
  ], nodes, { src: "/api/v1/nodes#storage", key: (n) => `${n.node}|storage`, empty: "no recorder has been heard from" });
}

function cards(nodes, rate) {
  const by = (s) => nodes.filter((n) => n.state === s).length;
  const sum = (f) => nodes.reduce((a, n) => a + api.num(n[f]), 0);
  const total = [...rate.values()].reduce((a, b) => a + b, 0);
  const card = (k, v, id) => h("div", { class: "card", id }, h("div", { class: "k" }, k), h("div", { class: "v" }, v));
  return h("div", { class: "cards" },
    card("recorders alive", `${by("alive")} / ${nodes.length}`, "card-alive"),
    card("stale / dead", `${by("stale")} / ${by("dead")}`, "card-down"),
    card("ingest rate", rate.size ? fmt.si(total, "pkt/s") : "measuring…", "card-rate"),
    card("flows active", fmt.count(sum("flows_active")), "card-flows"),
    card("packets dropped", fmt.count(nodes.reduce((a, n) => a + dropped(n), 0)), "card-drops"),
    card("storage used", fmt.bytes(sum("disk_used")), "card-disk"),
    card("records shed", fmt.count(sum("records_shed")), "card-shed"),
    card("bus gaps", fmt.count(sum("gaps")), "card-gaps"));
}

function nodesTable(nodes, rate) {
  return table([
    ["recorder", (n) => n.node],
    ["state", (n) => badge(n.state)],
    ["last heartbeat", (n) => fmt.ago(n.last_seen_ns)],
    ["ingest pkt/s", (n) => (rate.has(n.node) ? fmt.si(rate.get(n.node)) : "…"), true],
    ["received pkts", (n) => fmt.count(n.rx_packets), true],
    ["stored pkts", (n) => fmt.count(n.stored_packets), true],
    ["flows active", (n) => fmt.count(n.flows_active), true],
    ["records published", (n) => fmt.count(n.records_published), true],
    ["records shed", (n) => fmt.count(n.records_shed), true],
    ["bus gaps", (n) => fmt.count(n.gaps), true],
    ["clock", clock, true],
    ["version", (n) => n.version],
    ["search", (n) => n.search_endpoint || "—"],
  ], nodes, { src: "/api/v1/nodes", key: (n) => `${n.node}|${n.state}`, empty: "no recorder has been heard from" });
}

export async function render(el) {
  const r = range.resolve();
  const top = h("div", { id: "overview-nodes" });
  const traffic = h("div", { id: "chart-overview-bytes" });
  const flowsChart = h("div", { id: "chart-overview-flows" });
  el.append(h("h1", {}, "Overview"), top,
    h("div", { class: "grid" },
      panel("Traffic in flow records (bytes/s, all recorders)", traffic),
      panel("Flows started per minute", flowsChart)));

  const poll = async () => {
    try {
      const { nodes } = await api.get("nodes");
      const rate = rates(nodes);
      top.replaceChildren(cards(nodes, rate), panel("Recorders", nodesTable(nodes, rate)),
        h("div", { class: "grid" },
          panel("Packets dropped, by reason", h("div", { id: "overview-drops" }, dropsTable(nodes))),
          panel("Storage", h("div", { id: "overview-storage" }, storageTable(nodes)))));
    } catch (e) {
      top.replaceChildren(errorBox(e));
    }
  };
  const series = async () => {
    const src = `/api/v1/series${api.query({ from: r.from, to: r.to })}`;
    const { minutes: rows } = await api.get("series", { from: r.from, to: r.to });
    const x = minutes(r.from, r.to);
    const by = new Map(rows.map((m) => [Math.floor(api.num(m.minute_ns) / 1e9), m]));
    lineChart(traffic, { x, src, fmt: (v) => fmt.si(v, "B/s"), series: [
      { label: "bytes/s", values: x.map((t) => (by.has(t) ? api.num(by.get(t).bytes) / 60 : 0)) }] });
    lineChart(flowsChart, { x, src, fmt: (v) => fmt.si(v), series: [
      { label: "flows", values: x.map((t) => (by.has(t) ? api.num(by.get(t).flows) : 0)) }] });
  };
  await Promise.all([poll(), series()]);
  const timer = setInterval(poll, POLL_MS);
  return () => clearInterval(timer);
}
