#!/usr/bin/env python3
"""Application records' cost (issue 15): the recorder's analysis of a
capture where 30 % of the flows are DNS, TLS or HTTP, with application
records (`--app-json`) next to the same run without them (`--app=no`);
goal: at most 15 % slower.

The capture is made from the committed captures of real traffic, copied
with the client address changed per copy: tests/data/tcp_short_conns.pcap
(125 TCP connections that are none of them: 68 %), app_dns.pcap (22 DNS
flows), app_tls.pcap (31 TLS connections) and app_http.pcap (6 HTTP/1.x
connections, 23 exchanges, 0.5 MB of bodies): 59 of 184 flows, 32 %.
Analysis only (`--read` without --data-dir, flow records to /dev/null).
Runs alternate between the two settings; medians of MSCOPE_BENCH_RUNS
(default 5) runs of CPU seconds (user + system) and wall time. Prints
packets per CPU second of each: of the whole process, and of the analysis
thread alone (its own CPU time, which the recorder logs as it ends). The
issue's figure is the analysis's packet rate: the analysis is one thread,
and the process's time adds the reader thread's, which the setting does
not change, to both sides."""
import os
import re
import statistics
import sys

from common import BENCH_DIR, h, machine, measured, remover

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import pcapfile  # noqa: E402

RUNS = int(os.environ.get("MSCOPE_BENCH_RUNS", "5"))
COPIES = int(os.environ.get("MSCOPE_BENCH_APP_COPIES", "300"))
DATA = os.path.join(h.ROOT, "tests", "data")


def mix(path, copies):
    """The four captures merged by time, copied `copies` times one after
    the other with the client's address (10.203.x.y in the app captures,
    the client side of tcp_short_conns) moved per copy. Returns packets."""
    recs = []
    for name in ("tcp_short_conns.pcap", "app_dns.pcap", "app_tls.pcap", "app_http.pcap"):
        _, rs = pcapfile.read_pcap(os.path.join(DATA, name))
        t0 = rs[0][0]
        recs += [(ts - t0, cap, orig, data) for ts, cap, orig, data in rs]
    recs.sort(key=lambda r: r[0])
    span = recs[-1][0] + 1_000_000_000
    client = bytes([10, 203, 0, 1])
    out = []
    base = 1_800_000_000 * 1_000_000_000
    for k in range(copies):
        new = bytes([10, 100 + (k >> 8) % 100, k & 255, 1])
        for ts, cap, orig, data in recs:
            d = bytearray(data)
            if d[26:30] == client:
                d[26:30] = new
            elif d[30:34] == client:
                d[30:34] = new
            out.append((base + k * span + ts, cap, orig, bytes(d)))
    pcapfile.write_pcap(path, out)
    return len(out)


def main():
    h.RECORDER = h.binary("MSCOPE_RECORDER", "mscope-recorder")
    os.makedirs(BENCH_DIR, exist_ok=True)
    pcap = os.path.join(BENCH_DIR, "app_mix.pcap")
    remover(pcap)
    n = mix(pcap, COPIES)
    print(f"machine: {machine()}")
    print(f"capture: {n} packets, {COPIES * 184} flows of which {COPIES * 59} DNS/TLS/HTTP "
          "(32 %)")
    base = [h.RECORDER, "--read", pcap, "--flows-json", "/dev/null", "--log-level", "info"]
    cmds = {"without (--app=no)": base + ["--app=no"],
            "with (--app-json)": base + ["--app-json", "/dev/null"]}
    res = {k: [] for k in cmds}
    ana = {k: [] for k in cmds}
    for _ in range(RUNS):
        for k, cmd in cmds.items():
            err = []
            res[k].append(measured(cmd, err))
            m = re.search(r"analysis thread: ([0-9.]+) s CPU", err[0])
            if not m:
                h.fail(f"no 'analysis thread' line from {' '.join(cmd)}")
            ana[k].append(float(m.group(1)))
    cpu, acpu = {}, {}
    for k, rs in res.items():
        wall = statistics.median(r[0] for r in rs)
        cpu[k] = statistics.median(r[1] for r in rs)
        acpu[k] = statistics.median(ana[k])
        print(f"{k:20} CPU {cpu[k]:.3f} s ({n / cpu[k] / 1e6:.2f} M packets/s), analysis thread "
              f"{acpu[k]:.3f} s ({n / acpu[k] / 1e6:.2f} M packets/s), wall {wall:.3f} s, "
              f"peak RSS {max(r[2] for r in rs) // 1024} MiB")
    w, wo = "with (--app-json)", "without (--app=no)"
    print(f"application records cost {100 * (cpu[w] - cpu[wo]) / cpu[wo]:+.1f} % CPU of the process, "
          f"{100 * (acpu[w] - acpu[wo]) / acpu[wo]:+.1f} % of the analysis thread (goal <= +15 %)")


if __name__ == "__main__":
    main()
