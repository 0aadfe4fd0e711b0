// range.js - the time range every page shows, picked in the header or by
// dragging across a chart (zoom). A preset ("15m") is relative: each
// resolve() gives the window ending now. Pages listen with onRange().

const PRESETS = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
const KEY = "mscope.range";

let state = JSON.parse(sessionStorage.getItem(KEY) || '{"preset":"15m"}');
const history = [];
const listeners = new Set();

// The range as Unix seconds: { from, to, label }.
export function resolve() {
  if (state.preset && PRESETS[state.preset]) {
    const to = Math.floor(Date.now() / 1000);
    return { from: to - PRESETS[state.preset], to, label: state.preset };
  }
  return { from: state.from, to: state.to, label: "custom" };
}

function save(next, remember = true) {
  if (remember) history.push(state);
  state = next;
  sessionStorage.setItem(KEY, JSON.stringify(state));
  show();
  for (const fn of listeners) fn(resolve());
}

export function setPreset(p) {
  save({ preset: p });
}

// An absolute range [from, to) in Unix seconds (a zoom, or typed in).
export function setAbsolute(from, to) {
  from = Math.floor(from);
  to = Math.ceil(to);
  if (!(to > from)) return;
  save({ from, to });
}

export function back() {
  if (history.length) save(history.pop(), false);
}

export function onRange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// datetime-local wants local time without a zone.
function local(sec) {
  const d = new Date(sec * 1000 - new Date(sec * 1000).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function show() {
  const r = resolve();
  document.getElementById("range-preset").value = state.preset || "custom";
  document.getElementById("range-from").value = local(r.from);
  document.getElementById("range-to").value = local(r.to);
  document.getElementById("range-back").disabled = history.length === 0;
  document.body.dataset.rangeFrom = r.from;
  document.body.dataset.rangeTo = r.to;
}

export function init() {
  const preset = document.getElementById("range-preset");
  preset.addEventListener("change", () => {
    if (preset.value !== "custom") setPreset(preset.value);
  });
  document.getElementById("range").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new Date(document.getElementById("range-from").value).getTime() / 1000;
    const t = new Date(document.getElementById("range-to").value).getTime() / 1000;
    if (preset.value !== "custom" && state.preset === preset.value) save({ preset: preset.value });
    else setAbsolute(f, t);
  });
  document.getElementById("range-back").addEventListener("click", back);
  show();
}
