// Monitors: the list (GET /api/v1/monitors), a form to create or edit one
// (POST, PUT /api/v1/monitors[/NAME]) and Delete (DELETE) - changes need
// the admin token, and a read token gets a message saying so - and, for one
// monitor (#/monitors?name=NAME), its own Speeds & Feeds and TCP Timing
// over the shared time range from its per-minute series
// (GET /api/v1/monitors/NAME/series), and "Packets", its flows' packets over
// the range as one pcap (GET /api/v1/flows/pcap?monitor=NAME, admin token:
// the packets the monitor's tcpdump expression keeps, of the flows its
// filter selects).
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { lineChart, minutes } from "../chart.js";
import { h, panel, table, errorBox } from "../dom.js";
import { download } from "./search.js";

// A minute's value at path ("ack_rtt.p90"), as a number.
const at = (m, path) => api.num(path.split(".").reduce((o, k) => (o ? o[k] : undefined), m));
const perSecond = (path, k = 1) => (m) => (at(m, path) * k) / 60;
const field = (path) => (m) => at(m, path);

// Each chart: its element id, title, y format and series (label, value of
// a minute's row). The browser test holds its own copy of these formulas.
const lat = (key) => ["p50", "p90", "p99"].map((p) => [p, field(`${key}.${p}`)]);
const SPEEDS = [
  ["chart-mon-throughput", "Throughput (bit/s)", fmt.bits, [
    ["client → server", perSecond("c2s_bytes", 8)], ["server → client", perSecond("s2c_bytes", 8)]]],
  ["chart-mon-packets", "Packets per second", (v) => fmt.si(v, "pkt/s"), [
    ["client → server", perSecond("c2s_packets")], ["server → client", perSecond("s2c_packets")]]],
  ["chart-mon-flows", "Flows per minute", (v) => fmt.si(v), [
    ["started", field("flows_started")], ["finished", field("flows_finished")], ["active", field("flows_active")]]],
];
const TIMING = [
  ["chart-mon-handshake", "Handshake RTT: percentiles", fmt.dur, lat("handshake_rtt")],
  ["chart-mon-ack", "ACK RTT: percentiles and mean", fmt.dur, [...lat("ack_rtt"), ["mean", field("ack_rtt.mean")]]],
  ["chart-mon-app", "Application response time: percentiles and mean", fmt.dur,
    [...lat("app_response"), ["mean", field("app_response.mean")]]],
  ["chart-mon-errors", "Retransmissions, zero windows, resets, failed handshakes (per minute)", (v) => fmt.si(v), [
    ["retransmissions", field("retransmissions")], ["zero windows", field("zero_windows")],
    ["resets", field("resets")], ["failed handshakes", field("handshakes_failed")]]],
];

const PROTOS = { "": 0, tcp: 6, udp: 17, icmp: 1, icmp6: 58, sctp: 132 };

// The REST body of the form's definition.
function definition(form) {
  const f = new FormData(form);
  const s = (k) => String(f.get(k) || "").trim();
  const proto = s("proto").toLowerCase();
  return {
    name: s("name"),
    server: s("server"),
    client: s("client"),
    server_port: Number(s("server_port") || 0),
    proto: proto in PROTOS ? PROTOS[proto] : Number(proto),
    nodes: s("nodes").split(",").map((x) => x.trim()).filter(Boolean),
    filter: s("filter"),
  };
}

// Changes need the admin token: say so plainly on a 403.
function changeError(e) {
  if (e.status === 403) {
    return new Error("Creating, changing and deleting monitors needs the admin token " +
      "(api-admin.token): this tab has the read token. Token… in the header to enter the admin one.");
  }
  return e;
}

function editor(m, status) {
  const v = (k) => (m ? m[k] : "");
  const input = (name, label, attrs = {}) =>
    h("label", {}, label, h("input", { name, id: `monitor-${name.replace("_", "-")}`, value: v(name) || "", ...attrs }));
  const form = h("form", { class: "filters", id: "monitor-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = definition(form);
    status.replaceChildren(h("span", { class: "muted" }, "saving…"));
    try {
      const path = m ? `/api/v1/monitors/${encodeURIComponent(m.name)}` : "/api/v1/monitors";
      const r = await api.request(path, {
        method: m ? "PUT" : "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
      });
      const saved = await r.json();
      status.replaceChildren(h("span", { id: "monitor-saved" }, `saved ${saved.name}`));
      location.hash = `#/monitors?name=${encodeURIComponent(saved.name)}`;
    } catch (e) {
      status.replaceChildren(errorBox(changeError(e)));
    }
  } },
  input("name", "name", m ? { readonly: true, size: 14 } : { required: true, size: 14, placeholder: "e.g. web" }),
  input("server", "server address or network", { size: 18, placeholder: "any" }),
  input("client", "client address or network", { size: 18, placeholder: "any" }),
  h("label", {}, "server port", h("input", { name: "server_port", id: "monitor-port", size: 6, value: m && m.server_port ? m.server_port : "", placeholder: "any" })),
  h("label", {}, "protocol", h("input", { name: "proto", id: "monitor-proto", size: 6, value: m && m.proto ? fmt.proto(m.proto) : "", placeholder: "any" })),
  h("label", {}, "recorders", h("input", { name: "nodes", id: "monitor-nodes", size: 16, value: m ? m.nodes.join(",") : "", placeholder: "all" })),
  input("filter", "tcpdump expression for its packets", { size: 28, placeholder: "none" }),
  h("button", { type: "submit", id: "monitor-save" }, m ? "Save changes" : "Create"));
  return form;
}

function listTable(monitors) {
  const any = (x) => x || "any";
  return table([
    ["name", (m) => h("a", { href: `#/monitors?name=${encodeURIComponent(m.name)}` }, m.name)],
    ["server", (m) => any(m.server)],
    ["client", (m) => any(m.client)],
    ["server port", (m) => any(m.server_port), true],
    ["protocol", (m) => (m.proto ? fmt.proto(m.proto) : "any")],
    ["recorders", (m) => (m.nodes.length ? m.nodes.join(", ") : "all")],
    ["packets filter", (m) => m.filter || "—"],
    ["created", (m) => fmt.time(m.created_ns)],
  ], monitors, { src: "/api/v1/monitors", key: (m) => m.name, empty: "no monitors yet: create one below" });
}

async function listPage(el) {
  const status = h("div", { id: "monitor-status" });
  const list = h("div", { id: "monitors-list" });
  el.append(h("h1", {}, "Monitors"), panel("Monitors", list),
    panel("New monitor", editor(null, status), status),
    h("p", { class: "note" }, "A monitor counts the flow records that arrive after it is created " +
      "(a change, from the change on). Every field left empty means any."));
  const { monitors } = await api.get("monitors");
  list.replaceChildren(listTable(monitors));
}

function charts(defs, x, rows, src) {
  const by = new Map(rows.map((m) => [Math.floor(api.num(m.minute_ns) / 1e9), m]));
  return defs.map(([id, title, yfmt, series]) => {
    const el = h("div", { id });
    const p = panel(title, el);
    // drawn once the panel is in the page (uPlot measures its width)
    p.draw = () => lineChart(el, { x, src, fmt: yfmt, series: series.map(([label, f]) => ({
      label, values: x.map((t) => (by.has(t) ? f(by.get(t)) : null)) })) });
    return p;
  });
}

async function monitorPage(el, name) {
  const r = range.resolve();
  const m = await api.get(`monitors/${encodeURIComponent(name)}`);
  const status = h("div", { id: "monitor-status" });
  const pcapBox = h("div", { id: "monitor-packets-status" });
  const q = { monitor: name, from: String(r.from), to: String(r.to) };
  const pcapBtn = h("button", { type: "button", id: "monitor-packets", onclick: async () => {
    pcapBtn.disabled = true;
    try {
      await download(q, pcapBox, `monitor-${name}-${r.from}-${r.to}.pcap`, (qq, signal) =>
        api.request(`/api/v1/flows/pcap${api.query(qq)}`, { signal }));
    } catch (e) {
      pcapBox.replaceChildren(errorBox(changeError(e)));
    } finally {
      pcapBtn.disabled = false;
    }
  } }, "Packets (pcap)");
  const delBtn = h("button", { type: "button", id: "monitor-delete", onclick: async () => {
    if (!confirm(`Delete the monitor ${name} and its series?`)) return;
    try {
      await api.request(`/api/v1/monitors/${encodeURIComponent(name)}`, { method: "DELETE" });
      location.hash = "#/monitors";
    } catch (e) {
      status.replaceChildren(errorBox(changeError(e)));
    }
  } }, "Delete");
  const src = `/api/v1/monitors/${encodeURIComponent(name)}/series${api.query({ from: r.from, to: r.to })}`;
  const { minutes: rows } = await api.get(`monitors/${encodeURIComponent(name)}/series`, { from: r.from, to: r.to });
  const x = minutes(r.from, r.to);
  const speeds = charts(SPEEDS, x, rows, src);
  const timing = charts(TIMING, x, rows, src);
  el.append(h("h1", {}, h("a", { href: "#/monitors" }, "Monitors"), ` — ${name}`),
    panel("Definition", editor(m, status), h("p", {}, delBtn), status),
    panel("Packets of its flows over the time range",
      h("p", { class: "muted" }, `the flows its filter selects${m.filter ? `, narrowed by ${m.filter}` : ""}; ` +
        "needs the admin token"), pcapBtn, pcapBox),
    h("h2", {}, "Speeds & Feeds"), h("div", { class: "grid" }, speeds),
    h("h2", {}, "TCP Timing"), h("div", { class: "grid" }, timing),
    h("p", { class: "note", id: "monitor-rows" }, `${rows.length} minutes with flows in the range; ` +
      "percentiles over the flows' own values, from per-minute histograms (within 12.5 %)."));
  for (const p of [...speeds, ...timing]) p.draw();
}

export async function render(el, params) {
  const name = params.get("name");
  if (name) return monitorPage(el, name);
  return listPage(el);
}
