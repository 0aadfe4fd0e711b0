#!/usr/bin/env python3
"""Ingest from a pcap file (decode + store + index, --no-analysis) next to
`tcpdump -r IN -w OUT` on the same file, page cache warm, medians of 5 runs.
Goal: >= 1.3x tcpdump. (bench_analysis.py measures the run with analysis.)"""
import os
import shutil

from common import BENCH_DIR, h, machine, median_time, warm


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    src = os.path.join(BENCH_DIR, "ingest-1m.pcap")
    if not os.path.exists(src):
        h.gen(src, "--packets", 1000000, "--flows", 20000, "--seed", 21, "--nsec")
    size = os.path.getsize(src)
    npk = 1000000
    warm(src)
    out = os.path.join(BENCH_DIR, "tcpdump-copy.pcap")
    store = os.path.join(BENCH_DIR, "ingest-store")

    def clean():
        shutil.rmtree(store, ignore_errors=True)
        if os.path.exists(out):
            os.unlink(out)

    t_tcpdump = median_time(["tcpdump", "-r", src, "-w", out], runs=5, before=clean)
    t_ours = median_time([h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0",
                          "--no-analysis", "--log-level", "warn"], runs=5, before=clean)
    clean()
    print(f"machine: {machine()}")
    print(f"input: {npk} packets, {size / 1e6:.0f} MB")
    print(f"{'':28} {'seconds':>8} {'Mpps':>6} {'MB/s':>7}")
    for name, t in (("tcpdump -r IN -w OUT", t_tcpdump), ("mscope-recorder --read (store)", t_ours)):
        print(f"{name:28} {t:8.3f} {npk / t / 1e6:6.2f} {size / t / 1e6:7.0f}")
    print(f"ratio (ours / tcpdump throughput): {t_tcpdump / t_ours:.2f}x  (goal >= 1.3x)")


if __name__ == "__main__":
    main()
