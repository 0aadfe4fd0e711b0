#!/usr/bin/env python3
"""Full recorder pipeline (decode + store + index + TCP analysis) on a large
synthetic pcap with many flows, next to the same run with --no-analysis and
next to `tcpdump -r IN -w OUT`. Goal: analysis costs <= 25% of the pipeline.
Then memory: resident size with 1 million concurrent flows, and per flow."""
import os
import shutil
import subprocess

from common import BENCH_DIR, h, ingest_input, machine, median_time, remover


def max_rss_kb(cmd):
    """Peak resident set of a child process (ru_maxrss of waited children)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        h.fail(f"{cmd} exited with {status}")
    return ru.ru_maxrss


def main():
    h.init()
    src, size, _ = ingest_input()
    store = os.path.join(BENCH_DIR, "analysis-store")
    out = os.path.join(BENCH_DIR, "tcpdump-copy.pcap")
    clean = remover(store, out)

    base = [h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0", "--log-level", "warn"]
    t_td = median_time(["tcpdump", "-r", src, "-w", out], runs=5, before=clean)
    t_full = median_time(base + ["--flows-json", "/dev/null"], runs=5, before=clean)
    t_store = median_time(base + ["--no-analysis"], runs=5, before=clean)
    t_ana = median_time([h.RECORDER, "--read", src, "--flows-json", "/dev/null",
                         "--log-level", "warn"], runs=5)
    clean()
    n = 1000000
    print(f"machine: {machine()}")
    print(f"input: {n} packets, {size / 1e6:.0f} MB, ~20k concurrent flows")
    print(f"{'':44} {'seconds':>8} {'Mpps':>6}")
    for name, t in (("tcpdump -r IN -w OUT", t_td),
                    ("recorder: store + index (--no-analysis)", t_store),
                    ("recorder: store + index + analysis", t_full),
                    ("recorder: analysis only (no --data-dir)", t_ana)):
        print(f"{name:44} {t:8.3f} {n / t / 1e6:6.2f}")
    print(f"analysis share of the full pipeline: {100 * (t_full - t_store) / t_full:.0f}%  (goal <= 25%)")
    print(f"full pipeline vs tcpdump copy: {t_td / t_full:.2f}x")

    # Memory: more than a million distinct flows into a table of exactly 1M
    # (--max-flows), so at the end a million flows are alive at once.
    many = os.path.join(BENCH_DIR, "flows-1m.pcap")
    if not os.path.exists(many):
        h.gen(many, "--packets", 1800000, "--flows", 1000000, "--seed", 22, "--mix", "clean")
    common = [h.RECORDER, "--read", many, "--log-level", "warn", "--flow-idle", "1h",
              "--max-flows", "1000000"]
    rss_with = max_rss_kb(common + ["--flows-json", "/dev/null"])
    st = os.path.join(BENCH_DIR, "flows-1m-stats.json")
    max_rss_kb(common + ["--flows-json", "/dev/null", "--stats-file", st])
    flows = h.read_stats(st)
    rss_without = max_rss_kb([h.RECORDER, "--read", many, "--log-level", "warn", "--no-analysis",
                              "--data-dir", os.path.join(BENCH_DIR, "mem-store"), "--min-free", "0"])
    shutil.rmtree(os.path.join(BENCH_DIR, "mem-store"), ignore_errors=True)
    created = flows["flows_created"] if flows else 0
    alive = min(created, 1000000)
    print(f"1M-flow capture: {created} flows created, {flows['flows_evicted_full'] if flows else 0} "
          f"closed early by the full table, {alive} alive at the end; peak RSS analysis-only "
          f"{rss_with / 1024:.0f} MiB; store-only (no flow table) {rss_without / 1024:.0f} MiB")
    base_rss = max_rss_kb([h.RECORDER, "--read", many, "--log-level", "warn", "--flows-json",
                           "/dev/null", "--max-flows", "1"])
    if alive:
        print(f"memory per active flow: {(rss_with - base_rss) * 1024 / alive:.0f} bytes "
              f"(peak RSS minus the same run with a 1-flow table, {base_rss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
