// dom.js - small helpers to build the page without a framework.

// h("td", {class: "n"}, "12") -> <td class="n">12</td>. Attributes starting
// with "on" are listeners; children are nodes or text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A table from rows: columns are [heading, value(row), numeric?]. src is
// the API URL the rows came from and key(row) each row's identity: the
// browser test reads both back (data-src, data-key) to compare the table
// with the API's own answer.
export function table(columns, rows, { src, key, onclick, empty = "nothing in this range" } = {}) {
  const head = h("tr", {}, columns.map(([t, , n]) => h("th", { class: n ? "n" : null }, t)));
  const body = rows.length
    ? rows.map((r) =>
      h("tr", { dataset: { key: key ? key(r) : "" }, onclick: onclick ? (ev) => onclick(r, ev) : null },
        columns.map(([, f, n]) => {
          const v = f(r);
          return h("td", { class: n ? "n" : null }, v instanceof Node ? v : String(v));
        })))
    : [h("tr", { class: "empty" }, h("td", { colspan: columns.length, class: "muted" }, empty))];
  return h("table", { dataset: { src: src || "", rows: rows.length } }, h("thead", {}, head), h("tbody", {}, body));
}

export function panel(title, ...children) {
  return h("section", { class: "panel" }, title ? h("h2", {}, title) : null, ...children);
}

export function badge(text) {
  return h("span", { class: `badge ${text}` }, text);
}

export function errorBox(e) {
  return h("p", { class: "error" }, String(e.message || e));
}
