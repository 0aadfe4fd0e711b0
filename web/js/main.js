// main.js - the dashboard's router: the URL's fragment names the page
// ("#/flows?host=10.0.0.1"); each page module exports render(el, params),
// which draws into el and may return a function that stops its timers.
import * as api from "./api.js";
import * as range from "./range.js";
import { errorBox } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as speeds from "./pages/speeds.js";
import * as timing from "./pages/timing.js";
import * as flows from "./pages/flows.js";
import * as search from "./pages/search.js";
import * as monitors from "./pages/monitors.js";
import { dns, tls, http } from "./pages/apps.js";

const PAGES = { overview, speeds, timing, flows, dns, tls, http, search, monitors };

let stop = null;
let generation = 0;

function parse() {
  const [name, q] = location.hash.replace(/^#\/?/, "").split("?");
  return { name: PAGES[name] ? name : "overview", params: new URLSearchParams(q || "") };
}

async function show() {
  const { name, params } = parse();
  if (stop) stop();
  stop = null;
  const gen = ++generation;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  }
  const el = document.getElementById("page");
  el.replaceChildren();
  document.body.dataset.page = name;
  document.body.dataset.ready = "0";
  try {
    const s = await PAGES[name].render(el, params);
    if (gen !== generation) {
      if (s) s();
      return;
    }
    stop = s || null;
  } catch (e) {
    if (gen === generation) el.append(errorBox(e));
  }
  // The browser test waits for this: every request of the page answered.
  if (gen === generation) document.body.dataset.ready = "1";
}

range.init();
range.onRange(show);
window.addEventListener("hashchange", show);
document.getElementById("signout").addEventListener("click", async () => {
  api.forgetToken();
  await api.askToken();
  show();
});
show();
