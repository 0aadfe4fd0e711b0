// apps.js - the application records pages, one per kind (#/dns, #/tls,
// #/http): the records of the range (GET /api/v1/app/KIND, newest first),
// filtered by name, errors only or a node, and their per-minute aggregates
// per server name and endpoint (GET /api/v1/app/KIND/top?by_minute=true):
// count, errors and response-time percentiles as the coordinator sums them.
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { h, panel, table, errorBox } from "../dom.js";

const FIELDS = ["name", "errors", "node", "limit"];
const nul = (v, f = String) => (v === null || v === undefined ? "—" : f(v));
const hex = (v) => `0x${Number(v).toString(16).padStart(4, "0")}`;

// The columns of each kind's records: the fields as people read them.
const COLUMNS = {
  dns: [
    ["qname", (r) => r.qname],
    ["transport", (r) => r.transport],
    ["qtype", (r) => r.qtype, true],
    ["rcode", (r) => nul(r.rcode), true],
    ["answers", (r) => r.answers, true],
    ["response", (r) => nul(r.response_ns, fmt.dur), true],
  ],
  tls: [
    ["SNI", (r) => nul(r.sni)],
    ["version", (r) => nul(r.version, hex)],
    ["cipher", (r) => nul(r.cipher, hex)],
    ["ALPN", (r) => r.alpn.join(", ") || "—"],
    ["hello RTT", (r) => nul(r.hello_rtt_ns, fmt.dur), true],
  ],
  http: [
    ["method", (r) => r.method],
    ["host", (r) => nul(r.host)],
    ["URI", (r) => r.uri],
    ["status", (r) => nul(r.status), true],
    ["request body", (r) => fmt.bytes(r.request_body_bytes), true],
    ["response body", (r) => nul(r.response_body_bytes, fmt.bytes), true],
    ["response", (r) => nul(r.response_ns, fmt.dur), true],
  ],
};

const TITLES = { dns: "DNS", tls: "TLS", http: "HTTP" };

function page(kind) {
  return async function render(el, params) {
    const r = range.resolve();
    const val = (k, d = "") => params.get(k) || d;
    const form = h("form", { class: "filters", id: `${kind}-filter`, onsubmit: (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      const q = {};
      for (const k of FIELDS) q[k] = f.get(k);
      location.hash = `#/${kind}${api.query(q)}`;
    } },
    h("label", {}, kind === "dns" ? "qname" : kind === "tls" ? "SNI" : "host",
      h("input", { name: "name", value: val("name"), placeholder: "part of it, or a * pattern" })),
    h("label", {}, "node", h("input", { name: "node", value: val("node"), size: 10 })),
    h("label", {}, "errors only", h("input", { name: "errors", type: "checkbox", value: "true", checked: val("errors") === "true" })),
    h("label", {}, "records", h("select", { name: "limit" }, ["50", "100", "500"].map((n) => h("option", { value: n, selected: n === val("limit", "100") }, n)))),
    h("button", { type: "submit" }, "Filter"));
    const recs = h("div", { id: `${kind}-records` });
    const aggs = h("div", { id: `${kind}-minutes` });
    el.append(h("h1", {}, TITLES[kind]), form,
      panel("Per minute, per name and server", aggs), panel("Records, newest first", recs));
    const q = { from: r.from, to: r.to, name: val("name"), node: val("node"), errors: val("errors") };
    const rq = { ...q, limit: val("limit", "100") };
    const tq = { ...q, by_minute: "true", limit: "500" };
    const [records, top] = await Promise.all([
      api.get(`app/${kind}`, rq).catch((e) => e), api.get(`app/${kind}/top`, tq).catch((e) => e)]);
    if (top instanceof Error) aggs.replaceChildren(errorBox(top));
    else {
      aggs.replaceChildren(table([
        ["minute", (a) => fmt.time(a.minute_ns)],
        [kind === "http" ? "host" : kind === "dns" ? "qname" : "SNI", (a) => a.name || "—"],
        ...(kind === "http" ? [["endpoint", (a) => a.endpoint]] : []),
        ["server", (a) => fmt.endpoint(a.server)],
        ["count", (a) => fmt.count(a.count), true],
        ["errors", (a) => fmt.count(a.errors), true],
        ["p50", (a) => nul(a.p50_ns, fmt.dur), true],
        ["p95", (a) => nul(a.p95_ns, fmt.dur), true],
        ["p99", (a) => nul(a.p99_ns, fmt.dur), true],
      ], top.aggregates, {
        src: `/api/v1/app/${kind}/top${api.query(tq)}`,
        key: (a) => `${a.minute_ns}|${a.name}|${a.endpoint}|${a.server.ip}|${a.server.port}`,
      }));
    }
    if (records instanceof Error) recs.replaceChildren(errorBox(records));
    else {
      recs.replaceChildren(table([
        ["time", (x) => fmt.time(x.ts_ns)],
        ["node", (x) => x.node],
        ["client", (x) => fmt.endpoint(x.client)],
        ["server", (x) => fmt.endpoint(x.server)],
        ...COLUMNS[kind],
      ], records.records, {
        src: `/api/v1/app/${kind}${api.query(rq)}`,
        key: (x) => `${x.node}|${x.flow_id}|${x.ts_ns}`,
      }));
    }
  };
}

export const dns = { render: page("dns") };
export const tls = { render: page("tls") };
export const http = { render: page("http") };
