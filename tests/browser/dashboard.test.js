// dashboard.test.js - the dashboard in Debian's chromium, driven by
// playwright-core. tests/integration/test_dashboard.py starts the cluster
// and runs this with MSCOPE_URL, MSCOPE_READ_TOKEN, MSCOPE_ADMIN_TOKEN,
// MSCOPE_CHROMIUM, MSCOPE_OUT (downloads and result.json) and MSCOPE_SHOTS
// (one screenshot per page) in its environment.
//
// On every page: each chart has drawn data (its canvas has pixels of its
// first series' colour) and each table's rows are those of the REST answer
// it says it came from (data-src), in the same order (also the DNS, TLS and
// HTTP pages' records and per-minute aggregates). Downloads are saved
// and listed in result.json with their expression and time range, for the
// Python side to compare with `mscope search`. Monitors: one is created
// from the page (after the read token is refused), the Python side feeds
// its flow records (files in MSCOPE_OUT: monitor-created, then fed), and its
// charts must equal its REST series; its packets are downloaded; one is
// edited, one deleted. Exit status 0: all passed.
"use strict";
const { chromium } = require("playwright-core");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const E = process.env;
const URL = E.MSCOPE_URL;
const result = { pages: [], downloads: [] };

async function apiGet(src, token = E.MSCOPE_ADMIN_TOKEN) {
  const r = await fetch(URL + src, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `GET ${src}: ${r.status}`);
  return r.json();
}

// Each kind of table's row identity, as dom.js's table() writes data-key.
function keysOf(src, body) {
  // The Overview's drops and storage tables: a row per recorder (#part).
  const part = src.match(/^\/api\/v1\/nodes#(\w+)$/);
  if (part) return body.nodes.map((n) => `${n.node}|${part[1]}`);
  if (src.startsWith("/api/v1/nodes")) return body.nodes.map((n) => `${n.node}|${n.state}`);
  if (src.startsWith("/api/v1/top")) return body.talkers.map((t) => `${t.ip}|${t.port || 0}`);
  if (src.startsWith("/api/v1/flows")) return body.flows.map((f) => `${f.node}|${f.record.flow_id}`);
  if (/^\/api\/v1\/app\/\w+\/top/.test(src)) {
    return body.aggregates.map((a) => `${a.minute_ns}|${a.name}|${a.endpoint}|${a.server.ip}|${a.server.port}`);
  }
  if (src.startsWith("/api/v1/app/")) return body.records.map((x) => `${x.node}|${x.flow_id}|${x.ts_ns}`);
  if (src.startsWith("/api/v1/searches/")) return body.trailer.nodes.map((n) => `${n.node}|${n.status}`);
  if (src === "/api/v1/monitors") return body.monitors.map((m) => m.name);
  throw new Error(`no row keys for ${src}`);
}

async function waitReady(page, name) {
  await page.waitForFunction((n) => document.body.dataset.page === n && document.body.dataset.ready === "1",
    name, { timeout: 60000 });
}

// Every table with a data-src equals the API's answer; returns how many.
async function checkTables(page, name, { min = 1 } = {}) {
  const tables = await page.$$eval("table[data-src]", (ts) => ts.map((t) => ({
    src: t.dataset.src,
    keys: [...t.querySelectorAll("tbody tr[data-key]")].map((r) => r.dataset.key),
  })));
  assert.ok(tables.length >= min, `${name}: ${tables.length} tables, want ${min}`);
  for (const t of tables) {
    assert.ok(t.src, `${name}: a table without data-src`);
    const want = keysOf(t.src, await apiGet(t.src));
    assert.ok(want.length > 0, `${name}: ${t.src} has no rows in the API either`);
    assert.deepEqual(t.keys, want, `${name}: table from ${t.src} differs from the API`);
  }
  return tables.length;
}

// Every chart drew: data-points > 0 and its plot has its first series' colour.
async function checkCharts(page, name, { min = 1 } = {}) {
  const charts = await page.$$eval(".chart", (els) => els.map((el) => {
    const c = el.querySelector("canvas");
    let coloured = 0;
    if (c) {
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 4) {
        // #2563eb, the first series' stroke (chart.js's COLORS[0]), antialiased
        if (Math.abs(px[i] - 37) < 40 && Math.abs(px[i + 1] - 99) < 40 && Math.abs(px[i + 2] - 235) < 40 && px[i + 3] > 128) coloured++;
      }
    }
    return { id: el.id, points: Number(el.dataset.points || 0), coloured };
  }));
  assert.ok(charts.length >= min, `${name}: ${charts.length} charts, want ${min}`);
  for (const c of charts) {
    assert.ok(c.points > 0, `${name}: chart ${c.id} has no data`);
    assert.ok(c.coloured > 30, `${name}: chart ${c.id} drew ${c.coloured} pixels of its line`);
  }
  return charts.length;
}

async function visit(page, name, checks = {}) {
  await page.goto(`${URL}/#/${name}`);
  await waitReady(page, name);
  await page.waitForTimeout(300); // layout settles before the screenshot
  const nt = await checkTables(page, name, checks.tables);
  const nc = await checkCharts(page, name, checks.charts);
  await page.screenshot({ path: path.join(E.MSCOPE_SHOTS, `${name}.png`), fullPage: true });
  console.log(`ok  ${name}: ${nc} charts drawn, ${nt} tables equal to the REST API`);
  result.pages.push(name);
}

// Click button, save the download it starts, and note its query (the
// status box's data-query) for the Python side.
async function saveDownload(page, button, box, what) {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 120000 }), page.click(button)]);
  const file = path.join(E.MSCOPE_OUT, `${what}.pcap`);
  await dl.saveAs(file);
  await page.waitForFunction((b) => document.querySelector(b).dataset.state === "done", box);
  const q = JSON.parse(await page.$eval(box, (el) => el.dataset.query));
  result.downloads.push({ what, path: file, filter: q.filter, from: q.from, to: q.to, nodes: q.nodes || [],
    monitor: q.monitor });
}

// What a monitor's charts should draw from a MonitorMinute (the page's
// formulas, written again): chart id -> the values of its series.
const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const MONITOR_CHARTS = {
  "chart-mon-throughput": [(m) => (num(m.c2s_bytes) * 8) / 60, (m) => (num(m.s2c_bytes) * 8) / 60],
  "chart-mon-packets": [(m) => num(m.c2s_packets) / 60, (m) => num(m.s2c_packets) / 60],
  "chart-mon-flows": [(m) => num(m.flows_started), (m) => num(m.flows_finished), (m) => num(m.flows_active)],
  "chart-mon-handshake": ["p50", "p90", "p99"].map((p) => (m) => num(m.handshake_rtt?.[p])),
  "chart-mon-ack": ["p50", "p90", "p99", "mean"].map((p) => (m) => num(m.ack_rtt?.[p])),
  "chart-mon-app": ["p50", "p90", "p99", "mean"].map((p) => (m) => num(m.app_response?.[p])),
  "chart-mon-errors": [(m) => num(m.retransmissions), (m) => num(m.zero_windows), (m) => num(m.resets),
    (m) => num(m.handshakes_failed)],
};

// Each monitor chart's drawn values are its series' REST minutes, minute by
// minute (null where the API lists no minute).
async function checkMonitorCharts(page) {
  const drawn = await page.$$eval("[id^=chart-mon-]", (els) => els.map((el) => ({
    id: el.id, src: el.dataset.src, data: el.chartData })));
  assert.deepEqual(drawn.map((c) => c.id).sort(), Object.keys(MONITOR_CHARTS).sort());
  let minutes = 0;
  for (const c of drawn) {
    const body = await apiGet(c.src);
    const by = new Map(body.minutes.map((m) => [Math.floor(Number(m.minute_ns) / 1e9), m]));
    minutes = body.minutes.length;
    const want = MONITOR_CHARTS[c.id].map((f) => c.data.x.map((t) => (by.has(t) ? f(by.get(t)) : null)));
    assert.deepEqual(c.data.series.map((s) => s.values), want, `${c.id}: drawn values differ from ${c.src}`);
    assert.ok([...by.keys()].every((t) => c.data.x.includes(t)), `${c.id}: a minute of ${c.src} not drawn`);
  }
  assert.ok(minutes > 0, "the monitor's series is empty");
  return minutes;
}

// Wait for the Python side to create a file in MSCOPE_OUT.
async function waitFile(name, timeout = 180000) {
  const f = path.join(E.MSCOPE_OUT, name);
  for (const t0 = Date.now(); !fs.existsSync(f); await new Promise((r) => setTimeout(r, 200))) {
    assert.ok(Date.now() - t0 < timeout, `the test did not write ${name}`);
  }
}

async function monitorChecks(page) {
  const name = "page-web";
  const fill = async () => {
    await page.fill("#monitor-name", name);
    await page.fill("#monitor-proto", "tcp");
    await page.fill("#monitor-nodes", "rec-c");
  };
  // The read token cannot change monitors, and the page says so.
  await page.evaluate((t) => sessionStorage.setItem("mscope.token", t), E.MSCOPE_READ_TOKEN);
  await page.goto(`${URL}/#/monitors`);
  await waitReady(page, "monitors");
  await fill();
  await page.click("#monitor-save");
  await page.waitForSelector("#monitor-status .error");
  const said = await page.$eval("#monitor-status .error", (e) => e.textContent);
  assert.match(said, /needs the admin token/, `read token: ${said}`);
  errors.length = 0; // the browser logs the refused request (403) itself
  // The admin token creates it.
  await page.evaluate((t) => sessionStorage.setItem("mscope.token", t), E.MSCOPE_ADMIN_TOKEN);
  await page.reload();
  await waitReady(page, "monitors");
  await fill();
  await page.click("#monitor-save");
  await page.waitForFunction((n) => location.hash === `#/monitors?name=${n}` && document.body.dataset.ready === "1", name);
  fs.writeFileSync(path.join(E.MSCOPE_OUT, "before-monitors.json"), JSON.stringify(result));
  fs.writeFileSync(path.join(E.MSCOPE_OUT, "monitor-created"), name);
  console.log(`ok  monitors: the read token is told it needs the admin one; ${name} created from the page`);
  await waitFile("fed"); // its flow records have come (test_dashboard.py)

  await visit(page, "monitors", { tables: { min: 1 }, charts: { min: 0 } });
  await page.goto(`${URL}/#/monitors?name=${name}`);
  await waitReady(page, "monitors");
  await page.waitForTimeout(300);
  const nc = await checkCharts(page, "monitor", { min: 7 });
  const minutes = await checkMonitorCharts(page);
  await page.screenshot({ path: path.join(E.MSCOPE_SHOTS, "monitors.png"), fullPage: true });
  console.log(`ok  monitor ${name}: ${nc} charts drawn, equal to its REST series (${minutes} minutes)`);
  await saveDownload(page, "#monitor-packets", "#monitor-packets-status", "monitor");
  console.log(`ok  monitor ${name}: packets of the range downloaded`);

  // Another one, created, edited and deleted from the page (page-web's
  // packets are compared with the CLI's after this: it stays as it was).
  await page.goto(`${URL}/#/monitors`);
  await waitReady(page, "monitors");
  await page.fill("#monitor-name", "page-tmp");
  await page.click("#monitor-save");
  await page.waitForFunction(() => location.hash === "#/monitors?name=page-tmp" && document.body.dataset.ready === "1");
  await page.fill("#monitor-filter", "tcp");
  await page.fill("#monitor-port", "8443");
  await page.click("#monitor-save");
  await page.waitForFunction(() => document.getElementById("monitor-saved"));
  const edited = await apiGet("/api/v1/monitors/page-tmp");
  assert.ok(edited.filter === "tcp" && edited.server_port === 8443, `edited: ${JSON.stringify(edited)}`);
  await waitReady(page, "monitors");
  page.once("dialog", (d) => d.accept());
  await page.click("#monitor-delete");
  await page.waitForFunction(() => location.hash === "#/monitors" && document.body.dataset.ready === "1");
  const left = (await apiGet("/api/v1/monitors")).monitors.map((m) => m.name);
  assert.deepEqual(left, [name], `after the delete: ${left}`);
  await checkTables(page, "monitors after delete");
  result.pages.push("monitors");
  console.log("ok  monitors: edited and deleted from the page");
}

const errors = [];

async function main() {
  const browser = await chromium.launch({ executablePath: E.MSCOPE_CHROMIUM, args: ["--no-sandbox"] });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });

    // The token is asked for once: a wrong one is refused in the dialog.
    await page.goto(`${URL}/`);
    await page.waitForSelector("#token-dialog[open]");
    await page.fill("#token-input", "not-a-token");
    await page.click("#token-ok");
    await page.waitForFunction(() => document.getElementById("token-error").textContent.length > 0);
    errors.length = 0; // the browser logs the refused request (401) itself
    await page.fill("#token-input", E.MSCOPE_ADMIN_TOKEN);
    await page.click("#token-ok");
    await waitReady(page, "overview");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("mscope.token")), E.MSCOPE_ADMIN_TOKEN);
    // The ingest rate needs two polls.
    await page.waitForFunction(() => /^[1-9][0-9.]* .?pkt\/s$/.test(
      document.querySelector("#card-rate .v").textContent), null, { timeout: 20000 });
    await visit(page, "overview", { tables: { min: 1 }, charts: { min: 2 } });
    // From here a fixed range that ends before the live traffic began (its
    // flows would change the tables between the page's request and ours),
    // typed into the picker.
    await page.selectOption("#range-preset", "custom");
    await page.evaluate(([from, to]) => {
      const local = (s) => new Date(s * 1000 - new Date(s * 1000).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
      document.getElementById("range-from").value = local(from);
      document.getElementById("range-to").value = local(to);
    }, [Number(E.MSCOPE_RANGE_FROM), Number(E.MSCOPE_RANGE_TO)]);
    await page.click("#range-apply");
    await waitReady(page, "overview");
    assert.equal(await page.evaluate(() => document.body.dataset.rangeFrom), E.MSCOPE_RANGE_FROM);

    await visit(page, "speeds", { tables: { min: 2 }, charts: { min: 2 } });
    await visit(page, "timing", { tables: { min: 1 }, charts: { min: 5 } });
    // Drag across a chart: the shared range zooms to it; Back undoes it.
    const box = await (await page.$("#chart-timing-ack .u-over")).boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction((f) => document.body.dataset.rangeFrom !== f && document.body.dataset.ready === "1",
      E.MSCOPE_RANGE_FROM);
    const zoomed = await page.evaluate(() => [Number(document.body.dataset.rangeFrom), Number(document.body.dataset.rangeTo)]);
    assert.ok(zoomed[0] > Number(E.MSCOPE_RANGE_FROM) && zoomed[1] < Number(E.MSCOPE_RANGE_TO), `zoom: ${zoomed}`);
    await checkTables(page, "timing zoomed");
    await page.click("#range-back");
    await waitReady(page, "timing");
    assert.equal(await page.evaluate(() => document.body.dataset.rangeFrom), E.MSCOPE_RANGE_FROM);
    console.log(`ok  drag-to-zoom: ${zoomed[1] - zoomed[0]} s of ${E.MSCOPE_RANGE_TO - E.MSCOPE_RANGE_FROM}; Back restores it`);
    await visit(page, "flows", { tables: { min: 1 }, charts: { min: 0 } });

    // Flows: the next page (the API's cursor) is the API's next page too.
    await page.click("#flows-next");
    await page.waitForFunction(() => document.body.dataset.flowsPage === "2");
    await checkTables(page, "flows page 2");
    // A flow's details, and its packets.
    await page.click("#flows-table tbody tr[data-key]");
    await page.waitForSelector("#flow-packets");
    await page.screenshot({ path: path.join(E.MSCOPE_SHOTS, "flow-details.png"), fullPage: true });
    await saveDownload(page, "#flow-packets", "#flow-packets-status", "flow");
    console.log("ok  flows: page 2 equals the API's; a flow's packets downloaded");

    // Application records: each kind's records and per-minute aggregates.
    for (const kind of ["dns", "tls", "http"]) await visit(page, kind, { tables: { min: 2 }, charts: { min: 0 } });

    // Search: an expression over the shared range.
    await page.goto(`${URL}/#/search`);
    await waitReady(page, "search");
    await page.fill("#search-filter", "tcp and not port 80");
    await saveDownload(page, "#search-run", "#search-status", "search");
    await checkTables(page, "search status");
    await page.screenshot({ path: path.join(E.MSCOPE_SHOTS, "search.png"), fullPage: true });
    result.pages.push("search");
    console.log("ok  search: downloaded; per-recorder status equals /api/v1/searches/ID");

    await monitorChecks(page);

    assert.deepEqual(errors, [], `the page reported errors:\n${errors.join("\n")}`);
  } finally {
    await browser.close();
    fs.writeFileSync(path.join(E.MSCOPE_OUT, "result.json"), JSON.stringify(result, null, 2));
  }
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
