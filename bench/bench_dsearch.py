#!/usr/bin/env python3
"""Distributed search, end to end: `mscope search` through a real
coordinator, a selective query (one host and port) over three recorders that
each hold a third of the flows (>= 500 MB each), next to the same search
through the same coordinator answered by one recorder holding all of it.
Page cache warm; whole-process time of the CLI. Goal: <= 1.2x the single
node's time."""
import collections
import glob
import os
import shutil
import statistics
import time

from common import BENCH_DIR, h, machine, timed, warm

import cluster
import pcapfile
from bench_search import pick_query

NAMES = ["rec-1", "rec-2", "rec-3"]
SIZE = 1800 * 1000 * 1000
# A symmetric split by flow: the sum of the two addresses' last bytes.
SHARES = ["(ip and (ip[15] + ip[19]) % 3 = {i}) or (ip6 and (ip6[23] + ip6[39]) % 3 = {i})"]


def build(d):
    stores = {n: os.path.join(d, n) for n in NAMES + ["all"]}
    if all(glob.glob(os.path.join(s, "seg-*.idx")) for s in stores.values()):
        return stores
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    src = os.path.join(d, "src.pcap")
    h.gen(src, "--bytes", SIZE, "--flows", 30000, "--seed", 41, "--nsec", "--mix", "clean")
    h.run([h.RECORDER, "--data-dir", stores["all"], "--read", src, "--min-free", "0"])
    for i, n in enumerate(NAMES):
        part = os.path.join(d, f"{n}.pcap")
        h.run(["tcpdump", "--time-stamp-precision=nano", "-r", src, "-w", part, SHARES[0].format(i=i)])
        h.run([h.RECORDER, "--data-dir", stores[n], "--read", part, "--min-free", "0"])
        os.unlink(part)
    os.unlink(src)
    return stores


def main():
    h.init()
    cluster.init()
    d = os.path.join(BENCH_DIR, "dsearch")
    stores = build(d)
    sizes = {n: sum(os.path.getsize(p) for p in glob.glob(os.path.join(s, "seg-*.pcap")))
             for n, s in stores.items()}
    segs = sorted(glob.glob(os.path.join(stores["all"], "seg-*.pcap")))
    expr = pick_query(segs[len(segs) // 2])
    for s in stores.values():
        for p in glob.glob(os.path.join(s, "seg-*")):
            warm(p)
    run = os.path.join(d, "run")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    os.chmod(run, 0o755)
    co = cluster.Coordinator(run)
    token = open(os.path.join(co.dir, "search.token")).read()
    recs = []
    try:
        for n, s in stores.items():
            with open(os.path.join(s, "search.token"), "w") as f:
                f.write(token)
            port = h.free_tcp_port()
            recs.append(h.Daemon(s, "--node-id", n, "--coordinator", f"tcp://127.0.0.1:{co.port}",
                                 "--search", f"tcp://127.0.0.1:{port}", "--no-analysis"))
        h.check(h.wait_for(lambda: co.stats()["nodes"] == 4, 15), "recorders not known")
        time.sleep(1.5)
        base = [cluster.CLI, "--coordinator", co.rpc, "--token-file", os.path.join(co.dir, "rpc.token"),
                "search", "--from", "0", "-q"]
        out3, out1 = os.path.join(run, "three.pcap"), os.path.join(run, "one.pcap")
        three = base + ["--nodes", ",".join(NAMES), "-w", out3, expr]
        one = base + ["--nodes", "all", "-w", out1, expr]
        t3, t1 = [], []
        for _ in range(7):  # interleaved, so drift hits both alike
            t3.append(timed(three))
            t1.append(timed(one))
        m3, m1 = statistics.median(t3), statistics.median(t1)
        a, b = pcapfile.read_pcap(out3)[1], pcapfile.read_pcap(out1)[1]
        same = collections.Counter((r[0], bytes(r[3])) for r in a) == \
            collections.Counter((r[0], bytes(r[3])) for r in b)
        print(f"machine: {machine()}")
        print(f"data: {sizes['all'] / 1e9:.2f} GB on one recorder; "
              + ", ".join(f"{n} {sizes[n] / 1e6:.0f} MB" for n in NAMES))
        print(f"query: '{expr}' -> {len(a)} packets (same packets both ways: {'yes' if same else 'NO'})")
        print(f"{'':40} {'median s':>9} {'min':>7} {'max':>7}")
        print(f"{'one recorder holding everything':40} {m1:9.3f} {min(t1):7.3f} {max(t1):7.3f}")
        print(f"{'three recorders, a third each':40} {m3:9.3f} {min(t3):7.3f} {max(t3):7.3f}")
        print(f"three / one: {m3 / m1:.2f}x  (goal <= 1.2x)")
    finally:
        for r in recs:
            r.stop()
        co.stop()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
