// dashboard.test.js - the dashboard in Debian's chromium, driven by
// playwright-core. tests/integration/test_dashboard.py starts the cluster
// and runs this with MSCOPE_URL, MSCOPE_READ_TOKEN, MSCOPE_ADMIN_TOKEN,
// MSCOPE_CHROMIUM, MSCOPE_OUT (downloads and result.json) and MSCOPE_SHOTS
// (one screenshot per page) in its environment.
//
// On every page: each chart has drawn data (its canvas has pixels of its
// first series' colour) and each table's rows are those of the REST answer
// it says it came from (data-src), in the same order. Downloads are saved
// and listed in result.json with their expression and time range, for the
// Python side to compare with `mscope search`. Exit status 0: all passed.
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
  if (src.startsWith("/api/v1/searches/")) return body.trailer.nodes.map((n) => `${n.node}|${n.status}`);
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
  result.downloads.push({ what, path: file, filter: q.filter, from: q.from, to: q.to, nodes: q.nodes || [] });
}

async function main() {
  const browser = await chromium.launch({ executablePath: E.MSCOPE_CHROMIUM, args: ["--no-sandbox"] });
  const errors = [];
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

    // Search: an expression over the shared range.
    await page.goto(`${URL}/#/search`);
    await waitReady(page, "search");
    await page.fill("#search-filter", "tcp and not port 80");
    await saveDownload(page, "#search-run", "#search-status", "search");
    await checkTables(page, "search status");
    await page.screenshot({ path: path.join(E.MSCOPE_SHOTS, "search.png"), fullPage: true });
    result.pages.push("search");
    console.log("ok  search: downloaded; per-recorder status equals /api/v1/searches/ID");

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
