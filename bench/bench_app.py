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
packets per CPU second of each: of the whole process, of the analysis
thread alone and of the application thread (their own CPU times, which the
recorder logs as they end). The issue's figure is the analysis's packet
rate: that of its slowest stage, the analysis thread or the application
thread, against the analysis thread without application records (the
process's time adds the reader thread's, which the setting does not
change, to both sides). With MSCOPE_RECORDER_BEFORE=BINARY (an earlier
build) its figures are measured in the same runs and printed beside."""
import os
import re
import statistics
import sys

from common import BENCH_DIR, h, machine, measured, remover

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import pcapfile  # noqa: E402

RUNS = int(os.environ.get("MSCOPE_BENCH_RUNS", "5"))
BEFORE = os.environ.get("MSCOPE_RECORDER_BEFORE")
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
    bins = [("", h.RECORDER)] + ([("before: ", BEFORE)] if BEFORE else [])
    cmds = {}
    for pre, rec in bins:
        base = [rec, "--read", pcap, "--flows-json", "/dev/null", "--log-level", "info"]
        cmds[pre + "without (--app=no)"] = base + ["--app=no"]
        cmds[pre + "with (--app-json)"] = base + ["--app-json", "/dev/null"]
    res = {k: [] for k in cmds}
    ana = {k: [] for k in cmds}
    app = {k: [] for k in cmds}
    for _ in range(RUNS):
        for k, cmd in cmds.items():
            err = []
            res[k].append(measured(cmd, err))
            m = re.search(r"analysis thread: ([0-9.]+) s CPU", err[0])
            if not m:
                h.fail(f"no 'analysis thread' line from {' '.join(cmd)}")
            ana[k].append(float(m.group(1)))
            m = re.search(r"application thread: ([0-9.]+) s CPU", err[0])
            app[k].append(float(m.group(1)) if m else 0.0)
    cpu, acpu, pcpu, wall = {}, {}, {}, {}
    for k, rs in res.items():
        wall[k] = statistics.median(r[0] for r in rs)
        cpu[k] = statistics.median(r[1] for r in rs)
        acpu[k] = statistics.median(ana[k])
        pcpu[k] = statistics.median(app[k])
        extra = (f", application thread {pcpu[k]:.3f} s ({n / pcpu[k] / 1e6:.2f} M packets/s)"
                 if pcpu[k] else "")
        print(f"{k:28} CPU {cpu[k]:.3f} s ({n / cpu[k] / 1e6:.2f} M packets/s), analysis thread "
              f"{acpu[k]:.3f} s ({n / acpu[k] / 1e6:.2f} M packets/s){extra}, wall {wall[k]:.3f} s "
              f"({n / wall[k] / 1e6:.2f} M packets/s), peak RSS {max(r[2] for r in rs) // 1024} MiB")
    for pre, _ in bins:
        w, wo = pre + "with (--app-json)", pre + "without (--app=no)"
        # The packet rate a recorder keeps up with is its slowest stage's:
        # the analysis thread, or the application thread when it has one.
        slow_w = max(acpu[w], pcpu[w])
        print(f"{pre or 'now: '}application records cost {100 * (slow_w - acpu[wo]) / acpu[wo]:+.1f} % "
              f"of the slowest analysis stage's packet rate (goal <= +15 %; the analysis thread "
              f"{100 * (acpu[w] - acpu[wo]) / acpu[wo]:+.1f} %), "
              f"{100 * (cpu[w] - cpu[wo]) / cpu[wo]:+.1f} % CPU of the process, "
              f"{100 * (wall[w] - wall[wo]) / wall[wo]:+.1f} % wall time")


if __name__ == "__main__":
    main()
