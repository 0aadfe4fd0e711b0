// Search: a tcpdump expression over the shared time range -> one merged
// pcap from every recorder (POST /api/v1/search, admin token), read as it
// streams (bytes so far), with the search's state and, at the end, each
// recorder's status and figures (GET /api/v1/searches/ID). Cancel aborts
// the request, which cancels the search on every recorder.
import * as api from "../api.js";
import * as fmt from "../format.js";
import * as range from "../range.js";
import { badge, h, panel, table, errorBox } from "../dom.js";

let running = null; // the AbortController of the search in progress

// POST /api/v1/search for query: the answer, its capture streaming.
function startSearch(query, signal) {
  const body = { filter: query.filter, from: query.from, to: query.to };
  if (query.nodes && query.nodes.length) body.nodes = query.nodes;
  if (query.max_packets) body.max_packets = Number(query.max_packets);
  return api.request("/api/v1/search", {
    method: "POST", body: JSON.stringify(body), signal,
    headers: { "Content-Type": "application/json" },
  });
}

// Run query ({filter, from, to, nodes?, max_packets?}) and save the capture
// as name; progress and the per-recorder status go into box. start(query,
// signal) asks for the capture: a search by default, or any request whose
// answer is a search's stream (X-Mscope-Search-Id), such as GET
// /api/v1/flows/pcap. Resolves with the search's status (or throws).
export async function download(query, box, name, start = startSearch) {
  const bar = h("progress", {});
  const text = h("span", { class: "muted", id: "search-progress" }, " starting…");
  const nodesBox = h("div", { id: "search-nodes" });
  box.replaceChildren(h("p", {}, bar, text), nodesBox);
  box.dataset.query = JSON.stringify(query);
  box.dataset.state = "running";
  const ctl = new AbortController();
  running = ctl;
  let id = null;
  let poll = null;
  try {
    const r = await start(query, ctl.signal);
    id = r.headers.get("X-Mscope-Search-Id");
    let state = "running";
    // While it runs, the status has each recorder's state so far.
    poll = setInterval(async () => {
      try {
        const st = await api.get(`searches/${id}`);
        state = st.state;
        if (st.state === "running" && st.trailer) {
          const n = st.trailer.nodes, ended = n.filter((x) => !["pending", "running"].includes(x.status));
          state = `running, ${ended.length} of ${n.length} recorders done`;
          nodesBox.replaceChildren(nodesTable(st.trailer, id));
        }
      } catch (e) { /* the final status is asked for below */ }
    }, 500);
    const parts = [];
    let got = 0;
    const reader = r.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      got += value.length;
      text.textContent = ` search ${id}: ${state}, ${fmt.bytes(got)} received`;
    }
    clearInterval(poll);
    poll = null;
    const st = await api.get(`searches/${id}`);
    const t = st.trailer || { nodes: [] };
    bar.max = 1;
    bar.value = 1;
    text.textContent = ` search ${id}: ${st.state}${t.partial ? " (PARTIAL: some recorders did not answer)" : ""}, ` +
      `${fmt.count(t.packets)} packets, ${fmt.bytes(got)} in ${name}`;
    nodesBox.replaceChildren(nodesTable(t, id));
    const url = URL.createObjectURL(new Blob(parts, { type: "application/vnd.tcpdump.pcap" }));
    const a = h("a", { href: url, download: name, id: "search-file" }, `Save ${name} again`);
    box.append(h("p", {}, a));
    a.click();
    box.dataset.state = st.state;
    return st;
  } catch (e) {
    box.dataset.state = "failed";
    box.append(errorBox(ctl.signal.aborted ? new Error("cancelled") : e));
    throw e;
  } finally {
    if (poll) clearInterval(poll);
    if (running === ctl) running = null;
  }
}

// Each recorder's part of a search (its status so far, or how it ended).
function nodesTable(t, id) {
  return table([
    ["recorder", (n) => n.node],
    ["status", (n) => badge(n.status)],
    ["packets", (n) => fmt.count(n.figures?.packets), true],
    ["bytes", (n) => fmt.bytes(api.num(n.figures?.bytes)), true],
    ["error", (n) => n.error || ""],
  ], t.nodes, { src: `/api/v1/searches/${id}`, key: (n) => `${n.node}|${n.status}` });
}

export async function render(el, params) {
  const r = range.resolve();
  const box = h("div", { id: "search-status" });
  const form = h("form", { class: "filters", id: "search-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const nodes = String(f.get("nodes") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const q = { filter: f.get("filter"), from: String(r.from), to: String(r.to), nodes, max_packets: f.get("max_packets") };
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    try {
      await download(q, box, `mscope-${stamp}.pcap`);
    } catch (e) { /* shown in box */ }
  } },
  h("label", {}, "tcpdump expression", h("input", { name: "filter", id: "search-filter", size: 48, value: params.get("filter") || "", placeholder: "e.g. host 10.0.3.7 and tcp port 443 (empty: every packet)" })),
  h("label", {}, "recorders", h("input", { name: "nodes", size: 16, placeholder: "all" })),
  h("label", {}, "at most packets", h("input", { name: "max_packets", size: 10 })),
  h("button", { type: "submit", id: "search-run" }, "Search"),
  h("button", { type: "button", id: "search-cancel", onclick: () => running && running.abort() }, "Cancel"));
  el.append(h("h1", {}, "Search packets"),
    panel(`Over ${fmt.time(BigInt(r.from) * 1000000000n)} … ${fmt.time(BigInt(r.to) * 1000000000n)} (the time range above)`, form, box),
    h("p", { class: "note" }, "Searches return packets, so they need the admin token. The capture is merged by time across recorders: the same file as `mscope search -w`."));
}
