// api.js - the REST API (/api/v1/) with the user's bearer token.
//
// The token is asked for once (a dialog) and kept in sessionStorage, so it
// lives as long as the tab; a 401 asks again. 64-bit figures arrive as
// decimal strings (docs/API.md): num() turns them into numbers for display.

const KEY = "mscope.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

let asking = null; // one dialog for every request that needs it

// Show the token dialog; resolves when a token that /api/v1/nodes accepts
// has been entered.
export function askToken(message = "") {
  if (asking) return asking;
  const dlg = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const err = document.getElementById("token-error");
  err.textContent = message;
  input.value = "";
  asking = new Promise((resolve) => {
    const form = document.getElementById("token-form");
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      const r = await fetch("/api/v1/nodes", { headers: { Authorization: `Bearer ${t}` } });
      if (r.status === 401) {
        err.textContent = "The coordinator does not know this token.";
        return;
      }
      sessionStorage.setItem(KEY, t);
      dlg.close();
      asking = null;
      resolve(t);
    };
    dlg.addEventListener("cancel", (ev) => ev.preventDefault()); // Escape: stay
    dlg.showModal();
  });
  return asking;
}

// The query string for params, leaving out empty values.
export function query(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "" && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// fetch() with the token; a 401 asks for a token and tries once more.
export async function request(path, init = {}) {
  if (!token()) await askToken();
  for (let attempt = 0; ; attempt++) {
    const headers = { ...(init.headers || {}), Authorization: `Bearer ${token()}` };
    const r = await fetch(path, { ...init, headers });
    if (r.status === 401 && attempt === 0) {
      await askToken("The coordinator refused the token: enter it again.");
      continue;
    }
    if (!r.ok) {
      let msg = `${r.status} ${r.statusText}`;
      try {
        msg = (await r.json()).error || msg;
      } catch (e) { /* not JSON */ }
      if (r.status === 403) msg += " (this needs the admin token: Token… to enter it)";
      throw new ApiError(r.status, msg);
    }
    return r;
  }
}

// GET path with params; the answer's JSON.
export async function get(path, params) {
  const r = await request(`/api/v1/${path}${query(params)}`);
  return r.json();
}

export const num = (s) => (s === undefined || s === null ? 0 : Number(s));
