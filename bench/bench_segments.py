#!/usr/bin/env python3
"""Search as the store grows: the same ~2.1 GB of packets (9 hours of
packet time) stored as about 10, 100, 1 000 and 2 000 segments. For each
store, whole-process wall time (page cache warm) of
  - a selective search (one client host and server port) over the last 10
    minutes, with the segment catalog and without it (every index opened,
    as before the catalog), and
  - the same search over the whole store,
beside one tcpdump scanning every segment with the same expression (-V).
Outputs are checked against one nanosecond tcpdump per segment. Goals
(issue 16): last-10-minutes under 20 ms at every size; whole store >= 50x
faster than the scan. Wall time, and CPU time (user + system) of the whole
search and scan, which a shared machine's load distorts less. Prints what
the engine did (--stats), and the load average before and after. With
MSCOPE_RECORDER_BEFORE=BINARY (an earlier build) the whole-store search is
also timed with it, in runs alternating with ours, and printed beside
("before"). MSCOPE_BENCH_SIZES (default 10,100,1000,2000) picks the stores."""
import glob
import os
import shutil
import statistics
import subprocess

from bench_search import pick_query
from common import BENCH_DIR, h, machine, measured, median_measured, median_time, warm

import pcapfile

SIZE = 2100 * 1000 * 1000
RATE = 100  # packets a second of packet time: ~3.4 M packets span ~9 h, as a recorder's store does
BEFORE = os.environ.get("MSCOPE_RECORDER_BEFORE")
SIZES = [int(x) for x in os.environ.get("MSCOPE_BENCH_SIZES", "10,100,1000,2000").split(",")]


def alternating(cmds, runs):
    """Medians of (wall, CPU) seconds per command, the commands' runs
    alternating so that each sees the same load."""
    res = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            res[i].append(measured(cmd)[:2])
    return [(statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for rs in res]


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    src = os.path.join(BENCH_DIR, "segments-src.pcap")
    if not os.path.exists(src):
        h.gen(src, "--bytes", SIZE, "--flows", 50000, "--seed", 31, "--nsec", "--mix", "clean",
              "--rate", RATE)
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'segments':>9} {'MiB each':>9} | {'last 10 min':>11} {'no catalog':>11} "
          f"{'whole store':>11} {'tcpdump scan':>12} {'speed-up':>8} | {'CPU: whole':>10} "
          f"{'tcpdump':>8} {'speed-up':>8} | packets (10 min / all)")
    expr = None
    for count in SIZES:
        store = os.path.join(BENCH_DIR, f"segments-{count}")
        seg_size = SIZE // count
        if not glob.glob(os.path.join(store, "seg-*.idx")):
            shutil.rmtree(store, ignore_errors=True)
            h.run([h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0",
                   "--segment-size", str(seg_size)])
        segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
        if expr is None:
            expr = pick_query(segs[-1])
        listing = os.path.join(BENCH_DIR, "segments.txt")
        with open(listing, "w") as f:
            f.write("\n".join(segs) + "\n")
        for s in segs:
            warm(s)
            warm(s[:-5] + ".idx")
        last = pcapfile.read_pcap(segs[-1])[1][-1][0]
        since = h.ns_str(last - 600 * 1000000000)
        out = os.path.join(BENCH_DIR, "ours.pcap")
        recent = [h.RECORDER, "search", "--data-dir", store, "-w", out, "--from", since, expr]
        whole = [h.RECORDER, "search", "--data-dir", store, "-w", out, expr]
        scan = ["tcpdump", "-V", listing, "-w", os.path.join(BENCH_DIR, "tcpdump.pcap"), expr]
        t_recent = median_time(recent, runs=7)
        n_recent = len(pcapfile.read_pcap(out)[1])
        cat = os.path.join(store, "catalog")
        os.rename(cat, cat + ".off")
        t_nocat = median_time(recent, runs=5)
        os.rename(cat + ".off", cat)
        if BEFORE:
            before = [BEFORE] + whole[1:5] + [out + ".before", expr]
            (t_whole, c_whole), (t_before, c_before) = alternating([whole, before], 5)
        else:
            t_whole, c_whole = median_measured(whole, runs=5)
        got = pcapfile.read_pcap(out)[1]
        t_scan, c_scan = median_measured(scan, runs=1 if count >= 1000 else 3)
        want = []
        for s in segs:
            want += h.tcpdump(s, expr)
        same = pcapfile.compare(got, want) is None
        print(f"{len(segs):>9} {seg_size / 1048576:>9.1f} | {t_recent * 1000:>8.1f} ms "
              f"{t_nocat * 1000:>8.1f} ms {t_whole * 1000:>8.1f} ms {t_scan:>10.2f} s {t_scan / t_whole:>7.0f}x | "
              f"{c_whole * 1000:>7.1f} ms {c_scan:>6.2f} s {c_scan / c_whole:>7.0f}x | "
              f"{n_recent} / {len(got)}{'' if same else '  OUTPUT DIFFERS FROM TCPDUMP'}")
        if BEFORE:
            same_before = pcapfile.compare(pcapfile.read_pcap(out + ".before")[1], want) is None
            print(f"{'':>21}before: whole store {t_before * 1000:.1f} ms ({t_scan / t_before:.0f}x), "
                  f"CPU {c_before * 1000:.1f} ms ({c_scan / c_before:.0f}x)"
                  f"{'' if same_before else '  OUTPUT DIFFERS FROM TCPDUMP'}")
        for label, cmd in (("10 min", recent), ("whole", whole)):
            st = subprocess.run(cmd[:-1] + ["--stats", expr], capture_output=True).stderr.decode()
            print(f"{'':>21}{label}: {st.strip().splitlines()[-1]}")
    print(f"query: '{expr}'")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
