#!/usr/bin/env python3
"""Merge throughput: three time-overlapping nanosecond pcaps merged by time
into one, through the coordinator's merge module (pcapmerge, the same code
as a distributed search's merge) next to Wireshark's mergecap on the same
files, page cache warm. Goal: at least mergecap's packets/s."""
import os
import subprocess

from common import BENCH_DIR, h, machine, median_time, warm

N = 3
SIZE = 200 * 1000 * 1000


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    pcapmerge = h.binary("MSCOPE_PCAPMERGE", "pcapmerge")
    ins = []
    for i in range(N):
        p = os.path.join(BENCH_DIR, f"merge-in-{i}.pcap")
        if not os.path.exists(p):
            h.gen(p, "--bytes", SIZE, "--flows", 2000, "--seed", 71 + i, "--nsec", "--mix", "clean")
        ins.append(p)
    out_ours = os.path.join(BENCH_DIR, "merge-ours.pcap")
    out_base = os.path.join(BENCH_DIR, "merge-mergecap.pcap")

    def before():
        for p in ins:
            warm(p)

    t_ours = median_time([pcapmerge, "-w", out_ours] + ins, runs=5, before=before)
    # mergecap puts the last input first among equal timestamps; given the
    # inputs reversed its tie order is ours, so the outputs compare byte for byte.
    t_base = median_time(["mergecap", "-F", "nsecpcap", "-w", out_base] + ins[::-1], runs=3,
                         before=before)
    total = sum(os.path.getsize(p) for p in ins)
    packets = int(subprocess.run(["capinfos", "-M", "-c", "-T", out_ours], capture_output=True)
                  .stdout.decode().splitlines()[-1].split("\t")[-1])
    # Same records in the same order? (The file headers differ in snaplen.)
    same = subprocess.run(["cmp", "-s", "-i", "24", out_ours, out_base]).returncode == 0
    print(f"machine: {machine()}")
    print(f"input: {N} files, {total / 1e6:.0f} MB, {packets} packets, overlapping in time")
    print(f"{'':28} {'seconds':>8} {'Mpkt/s':>8} {'MB/s':>8}")
    for name, t in (("mergecap -F nsecpcap", t_base), ("pcapmerge (merge.c)", t_ours)):
        print(f"{name:28} {t:8.3f} {packets / t / 1e6:8.2f} {total / t / 1e6:8.0f}")
    print(f"ours / mergecap: {t_base / t_ours:.2f}x  (goal >= 1x); byte-identical records: "
          f"{'yes' if same else 'NO'}")
    os.unlink(out_ours)
    os.unlink(out_base)


if __name__ == "__main__":
    main()
