// format.js - figures as people read them.

const SI = ["", "k", "M", "G", "T", "P"];

export function si(v, unit = "", digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1000 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  const s = i === 0 && Number.isInteger(v) ? String(Math.abs(v)) : x.toPrecision(digits);
  return `${v < 0 ? "-" : ""}${s} ${SI[i]}${unit}`.trim();
}

export const bytes = (v) => si(v, "B");
export const bits = (v) => si(v, "bit/s");
export const count = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));

// A duration in nanoseconds.
export function dur(ns) {
  if (ns === null || ns === undefined || ns < 0 || Number.isNaN(ns)) return "—";
  if (ns < 1e3) return `${ns} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`;
  return `${(ns / 1e9).toPrecision(3)} s`;
}

// An instant in nanoseconds (string or number) as local date and time.
export function time(ns) {
  const ms = Number(BigInt(ns) / 1000000n);
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function ago(ns) {
  const s = Math.max(0, Date.now() / 1000 - Number(BigInt(ns) / 1000000n) / 1000);
  if (s < 90) return `${s.toFixed(0)} s ago`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

const PROTOS = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp" };
export const proto = (p) => PROTOS[p] || String(p);

export function endpoint(e) {
  if (!e) return "—";
  const ip = e.ip.includes(":") ? `[${e.ip}]` : e.ip;
  return e.port ? `${ip}:${e.port}` : e.ip;
}
