#!/usr/bin/env python3
"""Ingest from a pcap file (decode + store + index, --no-analysis) next to
`tcpdump -r IN -w OUT` on the same file, page cache warm, medians of 5 runs.
Goal: >= 1.3x tcpdump. (bench_analysis.py measures the run with analysis.)"""
import os

from common import BENCH_DIR, h, ingest_input, machine, median_time, remover


def main():
    h.init()
    src, size, npk = ingest_input()
    out = os.path.join(BENCH_DIR, "tcpdump-copy.pcap")
    store = os.path.join(BENCH_DIR, "ingest-store")
    clean = remover(store, out)

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
