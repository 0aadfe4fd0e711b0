// Flows: the flow records of the range (GET /api/v1/flows), filtered,
// sorted and paged with the API's cursor; a row's details; and "Packets",
// which downloads that flow's capture (search.js's download: POST
// /api/v1/search for its addresses, ports and protocol, over its time span,
// on the recorder that saw it).
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { badge, h, panel, table, errorBox } from "../dom.js";
import { download } from "./search.js";

const ORDERS = ["newest", "first", "last", "bytes", "packets", "rtt", "retransmissions"];
const FIELDS = ["host", "port", "proto", "min_rtt", "retransmissions", "node", "order", "limit"];

// A tcpdump expression for exactly this flow's packets, both directions.
export function flowFilter(rec) {
  const v6 = rec.client.ip.includes(":") || rec.server.ip.includes(":");
  const p = fmt.proto(rec.proto);
  const base = ["tcp", "udp", "sctp"].includes(p) ? p : `${v6 ? "ip6" : "ip"} proto ${rec.proto}`;
  const side = (a, b) => (["tcp", "udp", "sctp"].includes(p)
    ? `src host ${a.ip} and src port ${a.port} and dst host ${b.ip} and dst port ${b.port}`
    : `src host ${a.ip} and dst host ${b.ip}`);
  return `${base} and ((${side(rec.client, rec.server)}) or (${side(rec.server, rec.client)}))`;
}

// Nanoseconds (a decimal string) as the API's "seconds.nanoseconds".
export function nsText(ns) {
  const b = BigInt(ns);
  return `${b / 1000000000n}.${String(b % 1000000000n).padStart(9, "0")}`;
}

function details(row, box) {
  const rec = row.record;
  const d = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const status = h("div", { id: "flow-packets-status" });
  const filter = flowFilter(rec);
  const to = nsText((BigInt(rec.last_ns) + 1n).toString());
  const btn = h("button", { id: "flow-packets", type: "button", onclick: async () => {
    btn.disabled = true;
    try {
      await download({ filter, from: nsText(rec.first_ns), to, nodes: [row.node] }, status,
        `flow-${row.node}-${rec.flow_id}.pcap`);
    } finally {
      btn.disabled = false;
    }
  } }, "Packets (pcap)");
  box.replaceChildren(panel(`Flow ${rec.flow_id} on ${row.node}`,
    h("dl", { class: "details" },
      d("client → server", `${fmt.endpoint(rec.client)} → ${fmt.endpoint(rec.server)} (${fmt.proto(rec.proto)})`),
      d("time", `${fmt.time(rec.first_ns)} … ${fmt.time(rec.last_ns)}`),
      d("state / history", `${rec.conn_state || "—"} / ${rec.history || "—"}${rec.final ? "" : " (still open)"}`),
      d("client → server", `${fmt.count(rec.c2s?.packets)} packets, ${fmt.bytes(api.num(rec.c2s?.ip_bytes))}, ${fmt.count(rec.c2s?.retransmissions)} retransmitted`),
      d("server → client", `${fmt.count(rec.s2c?.packets)} packets, ${fmt.bytes(api.num(rec.s2c?.ip_bytes))}, ${fmt.count(rec.s2c?.retransmissions)} retransmitted`),
      d("handshake RTT", rec.handshake && (rec.handshake.seen & 8) ? fmt.dur(api.num(rec.handshake.initial_rtt_ns)) : "—"),
      d("packets filter", h("code", { id: "flow-filter" }, filter))),
    btn, status, h("details", {}, h("summary", {}, "the record as JSON"), h("pre", {}, JSON.stringify(row, null, 2)))));
}

export async function render(el, params) {
  const r = range.resolve();
  const val = (k, d = "") => params.get(k) || d;
  const form = h("form", { class: "filters", id: "flows-filter", onsubmit: (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const q = {};
    for (const k of FIELDS) q[k] = f.get(k);
    location.hash = `#/flows${api.query(q)}`;
  } },
  h("label", {}, "host", h("input", { name: "host", value: val("host"), placeholder: "any address" })),
  h("label", {}, "port", h("input", { name: "port", value: val("port"), size: 6 })),
  h("label", {}, "protocol", h("select", { name: "proto" },
    ["", "tcp", "udp", "icmp", "icmp6", "sctp"].map((p) => h("option", { value: p, selected: p === val("proto") }, p || "any")))),
  h("label", {}, "min RTT", h("input", { name: "min_rtt", value: val("min_rtt"), placeholder: "e.g. 5ms", size: 8 })),
  h("label", {}, "node", h("input", { name: "node", value: val("node"), size: 10 })),
  h("label", {}, "retransmitted", h("input", { name: "retransmissions", type: "checkbox", value: "true", checked: val("retransmissions") === "true" })),
  h("label", {}, "sort", h("select", { name: "order" }, ORDERS.map((o) => h("option", { value: o, selected: o === val("order", "newest") }, o)))),
  h("label", {}, "per page", h("select", { name: "limit" }, ["25", "50", "100", "500"].map((n) => h("option", { value: n, selected: n === val("limit", "50") }, n)))),
  h("button", { type: "submit" }, "Filter"));
  const list = h("div", { id: "flows-table" });
  const pager = h("div", { class: "pager" });
  const box = h("div", { id: "flow-details" });
  el.append(h("h1", {}, "Flows"), form, panel(null, list, pager), box);

  const q = { from: r.from, to: r.to };
  for (const k of FIELDS) q[k] = val(k);
  q.limit = val("limit", "50");
  const cursors = [null]; // the cursor of each page seen, for "previous"
  let pageNo = 0;
  const load = async () => {
    const qq = { ...q, cursor: cursors[pageNo] };
    const src = `/api/v1/flows${api.query(qq)}`;
    let page;
    try {
      page = await api.get("flows", qq);
    } catch (e) {
      list.replaceChildren(errorBox(e));
      return;
    }
    cursors[pageNo + 1] = page.next_cursor;
    list.replaceChildren(table([
      ["first packet", (f) => fmt.time(f.record.first_ns)],
      ["node", (f) => f.node],
      ["proto", (f) => fmt.proto(f.record.proto)],
      ["client", (f) => fmt.endpoint(f.record.client)],
      ["server", (f) => fmt.endpoint(f.record.server)],
      ["packets", (f) => fmt.count(api.num(f.record.c2s?.packets) + api.num(f.record.s2c?.packets)), true],
      ["bytes", (f) => fmt.bytes(api.num(f.record.c2s?.ip_bytes) + api.num(f.record.s2c?.ip_bytes)), true],
      ["handshake RTT", (f) => (f.record.handshake && (f.record.handshake.seen & 8) ? fmt.dur(api.num(f.record.handshake.initial_rtt_ns)) : "—"), true],
      ["retrans.", (f) => fmt.count(api.num(f.record.c2s?.retransmissions) + api.num(f.record.s2c?.retransmissions)), true],
      ["state", (f) => (f.record.final ? f.record.conn_state || "—" : badge("open"))],
    ], page.flows, {
      src, key: (f) => `${f.node}|${f.record.flow_id}`,
      onclick: (f, ev) => {
        for (const tr of list.querySelectorAll("tr.selected")) tr.classList.remove("selected");
        ev.currentTarget.classList.add("selected");
        details(f, box);
      },
    }));
    pager.replaceChildren(
      h("button", { id: "flows-prev", type: "button", disabled: pageNo === 0, onclick: () => { pageNo--; load(); } }, "← Previous"),
      h("span", { class: "muted", id: "flows-page" }, `page ${pageNo + 1}`),
      h("button", { id: "flows-next", type: "button", disabled: !page.next_cursor, onclick: () => { pageNo++; load(); } }, "Next →"));
    document.body.dataset.flowsPage = String(pageNo + 1);
  };
  await load();
}
