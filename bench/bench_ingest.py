#!/usr/bin/env python3
"""Ingest from a pcap file next to `tcpdump -r IN -w OUT` on the same file,
page cache warm, in alternating pairs (tcpdump, ours, tcpdump, ours, ...) so
that both sides of a pair see the same load on a shared machine.

Two series: decode + store + index (`--no-analysis`, goal: median >= 1.3x
tcpdump's throughput and no pair below 1.0x), then the whole pipeline with
the TCP analysis on (goal >= 1.1x). Each run's wall time and CPU seconds
(user + system of the process, from wait4) are printed; a ratio is
tcpdump's wall time over ours.

MSCOPE_BENCH_PAIRS (default 5) sets the pairs per series."""
import os
import statistics

from common import BENCH_DIR, h, ingest_input, machine, measured, remover

PAIRS = int(os.environ.get("MSCOPE_BENCH_PAIRS", "5"))


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def series(title, tcpdump_cmd, ours_cmd, clean, npk, size):
    print(f"\n{title}")
    print(f"{'pair':>4}  {'tcpdump s':>9} {'cpu s':>6}  {'ours s':>7} {'cpu s':>6}  "
          f"{'ratio':>6}  {'load':>5}")
    ratios, rows = [], []
    for i in range(PAIRS):
        load = loadavg()
        clean()
        t = measured(tcpdump_cmd)[:2]
        clean()
        o = measured(ours_cmd)[:2]
        ratios.append(t[0] / o[0])
        rows.append((t, o))
        print(f"{i + 1:>4}  {t[0]:9.3f} {t[1]:6.3f}  {o[0]:7.3f} {o[1]:6.3f}  "
              f"{ratios[-1]:5.2f}x  {load:>5}", flush=True)
    clean()
    med_t = statistics.median(r[0][0] for r in rows)
    med_o = statistics.median(r[1][0] for r in rows)
    cpu_t = statistics.median(r[0][1] for r in rows)
    cpu_o = statistics.median(r[1][1] for r in rows)
    print(f"median wall: tcpdump {med_t:.3f} s ({npk / med_t / 1e6:.2f} Mpps, "
          f"{size / med_t / 1e6:.0f} MB/s), ours {med_o:.3f} s ({npk / med_o / 1e6:.2f} Mpps, "
          f"{size / med_o / 1e6:.0f} MB/s)")
    print(f"median CPU seconds: tcpdump {cpu_t:.3f}, ours {cpu_o:.3f}")
    print(f"ratio (tcpdump wall / ours) per pair: "
          f"{' '.join(f'{r:.2f}x' for r in ratios)}")
    print(f"median {statistics.median(ratios):.2f}x, minimum {min(ratios):.2f}x")
    return ratios


def main():
    h.init()
    src, size, npk = ingest_input()
    out = os.path.join(BENCH_DIR, "tcpdump-copy.pcap")
    store = os.path.join(BENCH_DIR, "ingest-store")
    clean = remover(store, out)
    tcpdump = ["tcpdump", "-r", src, "-w", out]
    ours = [h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0",
            "--log-level", "warn"]
    print(f"machine: {machine()}; load average at start {loadavg()}")
    print(f"input: {npk} packets, {size / 1e6:.0f} MB; {PAIRS} alternating pairs per series")
    a = series("decode + store + index (--no-analysis), goal: median >= 1.3x, no pair < 1.0x",
               tcpdump, ours + ["--no-analysis"], clean, npk, size)
    b = series("decode + store + index + TCP analysis (no --no-analysis), goal >= 1.1x",
               tcpdump, ours, clean, npk, size)
    print(f"\nsummary: store {statistics.median(a):.2f}x median, {min(a):.2f}x minimum; "
          f"with analysis {statistics.median(b):.2f}x median, {min(b):.2f}x minimum")


if __name__ == "__main__":
    main()
