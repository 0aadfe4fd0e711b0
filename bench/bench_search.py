#!/usr/bin/env python3
"""Selective search (one host and port) over a >= 2 GB store, page cache warm,
whole-process time of `mscope-recorder search` next to tcpdump scanning the
same segments with the same filter (`tcpdump -V list`). Outputs must be the
same packets. Goal: >= 50x faster."""
import glob
import os
import subprocess

from common import BENCH_DIR, h, machine, median_time, warm

import pcapfile

EXPR = "host 10.0.1.1 and tcp port 443"


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    store = os.path.join(BENCH_DIR, "search-store")
    if not glob.glob(os.path.join(store, "seg-*.idx")):
        src = os.path.join(BENCH_DIR, "search-2g5.pcap")
        h.gen(src, "--bytes", 2600 * 1000 * 1000, "--flows", 50000, "--seed", 31, "--nsec")
        h.run([h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0"])
        os.unlink(src)
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    total = sum(os.path.getsize(s) for s in segs)
    listing = os.path.join(BENCH_DIR, "segments.txt")
    with open(listing, "w") as f:
        f.write("\n".join(segs) + "\n")
    for s in segs:
        warm(s)
        warm(s[:-5] + ".idx")
    ours = [h.RECORDER, "search", "--data-dir", store, "-w", os.path.join(BENCH_DIR, "ours.pcap"), EXPR]
    base = ["tcpdump", "--time-stamp-precision=nano", "-V", listing, "-w",
            os.path.join(BENCH_DIR, "tcpdump.pcap"), EXPR]
    t_ours = median_time(ours, runs=7)
    t_base = median_time(base, runs=3)
    a = pcapfile.read_pcap(os.path.join(BENCH_DIR, "ours.pcap"))[1]
    b = pcapfile.read_pcap(os.path.join(BENCH_DIR, "tcpdump.pcap"))[1]
    diff = pcapfile.compare(a, b)
    stats = subprocess.run(ours[:-1] + ["--stats", EXPR], capture_output=True).stderr.decode().strip()
    print(f"machine: {machine()}")
    print(f"store: {len(segs)} segments, {total / 1e9:.2f} GB; query: '{EXPR}' -> {len(a)} packets")
    print(f"{'':34} {'seconds':>8}")
    print(f"{'tcpdump -V segments (scan)':34} {t_base:8.3f}")
    print(f"{'mscope-recorder search (index)':34} {t_ours:8.4f}")
    print(f"speed-up: {t_base / t_ours:.0f}x  (goal >= 50x); same output: {'yes' if diff is None else diff}")
    print(f"engine: {stats}")


if __name__ == "__main__":
    main()
