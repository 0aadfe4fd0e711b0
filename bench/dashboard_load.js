// dashboard_load.js - bench_dashboard.py's browser: loads dashboard pages in
// headless chromium (playwright-core from tests/browser/node_modules), each
// run in a fresh context (no cache, empty sessionStorage but the token and
// the range), and prints one JSON line per load:
//   {"route": "...", "range": "24h", "ms": time from navigation start to the
//    page's data-ready (every request answered, every chart drawn), "charts": N}
//
//   node dashboard_load.js URL TOKEN RUNS RANGE ROUTE...
"use strict";
const path = require("node:path");
const { chromium } = require(path.join(__dirname, "..", "tests", "browser", "node_modules", "playwright-core"));

async function load(browser, url, token, range, route) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  try {
    await context.addInitScript(([tok, r]) => {
      sessionStorage.setItem("mscope.token", tok);
      sessionStorage.setItem("mscope.range", JSON.stringify({ preset: r }));
      // The moment the page says it is ready (main.js sets data-ready).
      new MutationObserver(() => {
        if (document.body && document.body.dataset.ready === "1" && !window.__readyAt) {
          window.__readyAt = performance.now();
        }
      }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-ready"] });
    }, [token, range]);
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const name = route.split("?")[0];
    await page.goto(`${url}/#/${route}`);
    await page.waitForFunction((n) => document.body.dataset.page === n && window.__readyAt, name,
      { timeout: 300000 });
    const out = await page.evaluate(() => ({
      ms: window.__readyAt,
      charts: document.querySelectorAll(".chart canvas").length,
      empty: [...document.querySelectorAll(".chart")].filter((c) => !Number(c.dataset.points)).length,
      error: document.querySelector("#page .error")?.textContent || "",
    }));
    if (errors.length || out.error) throw new Error(`${route}: ${errors.join("; ")} ${out.error}`);
    return { route, range, ...out };
  } finally {
    await context.close();
  }
}

async function main() {
  const [url, token, runs, range, ...routes] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: process.env.MSCOPE_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    await load(browser, url, token, range, routes[0]); // warm the server's caches once
    for (let i = 0; i < Number(runs); i++) {
      for (const route of routes) console.log(JSON.stringify(await load(browser, url, token, range, route)));
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
