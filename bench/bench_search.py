#!/usr/bin/env python3
"""Selective search (one host and port) over a >= 2 GB store, page cache warm,
whole-process time of `mscope-recorder search` next to tcpdump scanning the
same segments with the same filter (`tcpdump -V list`). Outputs must be the
same packets. Goal: >= 50x faster."""
import collections
import glob
import os
import subprocess

from common import BENCH_DIR, h, machine, median_time, warm

import pcapfile



def pick_query(seg):
    """A selective question like an incident's: one client host and the
    server port it talked to, taken from the middle of the store."""
    out = subprocess.run(["tcpdump", "-nr", seg, "-c", "200000", "tcp and ip"],
                         capture_output=True).stdout.decode().splitlines()
    count = collections.Counter()
    for line in out:
        parts = line.split()
        if len(parts) > 4 and parts[1] == "IP":
            src, dst = parts[2].rsplit(".", 1), parts[4].rstrip(":").rsplit(".", 1)
            if len(src) == 2 and len(dst) == 2 and src[0] not in ("10.0.1.1", "10.0.2.2") and dst[1] in ("22", "80", "443", "5432", "8080"):
                count[(src[0], dst[1])] += 1
    (host, port), _ = count.most_common(1)[0]
    return f"host {host} and tcp port {port}"


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    mix = os.environ.get("MSCOPE_BENCH_MIX", "clean")
    store = os.path.join(BENCH_DIR, f"search-store-{mix}")
    if not glob.glob(os.path.join(store, "seg-*.idx")):
        src = os.path.join(BENCH_DIR, "search-2g5.pcap")
        h.gen(src, "--bytes", 2600 * 1000 * 1000, "--flows", 50000, "--seed", 31, "--nsec",
              "--mix", mix)
        h.run([h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0"])
        os.unlink(src)
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    total = sum(os.path.getsize(s) for s in segs)
    listing = os.path.join(BENCH_DIR, "segments.txt")
    with open(listing, "w") as f:
        f.write("\n".join(segs) + "\n")
    EXPR = pick_query(segs[len(segs) // 2])
    for s in segs:
        warm(s)
        warm(s[:-5] + ".idx")
    ours = [h.RECORDER, "search", "--data-dir", store, "-w", os.path.join(BENCH_DIR, "ours.pcap"), EXPR]
    # One tcpdump process over every segment (-V): the fastest fair scan.
    base = ["tcpdump", "-V", listing, "-w", os.path.join(BENCH_DIR, "tcpdump.pcap"), EXPR]
    t_ours = median_time(ours, runs=7)
    t_base = median_time(base, runs=3)
    # Same output? tcpdump -V writes later files' microseconds into a
    # nanosecond file, so compare against one nanosecond tcpdump per segment.
    a = pcapfile.read_pcap(os.path.join(BENCH_DIR, "ours.pcap"))[1]
    b = []
    for s in segs:
        b += h.tcpdump(s, EXPR)
    diff = pcapfile.compare(a, b)
    stats = subprocess.run(ours[:-1] + ["--stats", EXPR], capture_output=True).stderr.decode().strip()
    print(f"machine: {machine()}")
    print(f"store: {len(segs)} segments, {total / 1e9:.2f} GB ({mix} traffic mix); "
          f"query: '{EXPR}' -> {len(a)} packets")
    print(f"{'':34} {'seconds':>8}")
    print(f"{'tcpdump -V segments (scan)':34} {t_base:8.3f}")
    print(f"{'mscope-recorder search (index)':34} {t_ours:8.4f}")
    print(f"speed-up: {t_base / t_ours:.0f}x  (goal >= 50x); same output: {'yes' if diff is None else diff}")
    print(f"engine: {stats}")


if __name__ == "__main__":
    main()
