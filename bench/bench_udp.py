#!/usr/bin/env python3
"""UDP VXLAN ingest on loopback: the highest offered rate with zero drops for
the recorder (decap + decode + store + index), next to a bare recvmmsg
receiver that only counts (udp_sink), same sender, same run. Goal: >= 80%."""
import os
import shutil
import subprocess
import time

from common import BENCH_DIR, h, machine

RATES = [50000, 100000, 150000, 200000, 250000, 300000, 400000]
SECONDS = 2.0


def sink_run(src, rate, n):
    port = h.free_udp_port()
    sink = subprocess.Popen([UDP_SINK, "--bind", f"127.0.0.1:{port}", "--idle", "700"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    sent = h.vxsend(src, port, "--rate", rate, "--loop", max(1, n))
    out = dict(kv.split("=") for kv in sink.communicate(timeout=30)[0].decode().split())
    return int(sent["sent"]), int(out["received"]), float(sent["pps"])


def rec_run(src, rate, n):
    store = os.path.join(BENCH_DIR, "udp-store")
    shutil.rmtree(store, ignore_errors=True)
    rec = h.Daemon(store, "--log-level", "warn")
    try:
        sent = h.vxsend(src, rec.port, "--rate", rate, "--loop", max(1, n))
        want = int(sent["sent"])
        h.wait_for(lambda: (rec.stats() or {}).get("rx_packets", 0) >= want, 3)
        time.sleep(1.2)
        st = rec.stats()
    finally:
        rec.stop()
    st = rec.stats() or st
    rec_run.last = st
    return want, st["stored_packets"], float(sent["pps"]), st


def best(fn, src, per_loop):
    good = None
    for rate in RATES:
        loops = max(1, int(rate * SECONDS / per_loop))
        sent, got, achieved = fn(src, rate, loops)[:3]
        ok = got >= sent
        extra = ""
        if not ok and fn is rec_run:
            st = fn.last
            extra = (f" (kernel {st['kernel_drops']}, queue {st['queue_drops']}, "
                     f"rx {st['rx_packets']})")
        print(f"  offered {rate:>7} pps (sender achieved {achieved:>9.0f}): {got}/{sent} "
              f"{'ok' if ok else 'LOSS'}{extra}")
        if not ok or achieved < rate * 0.9:
            break
        good = rate
    return good


def main():
    global UDP_SINK
    h.init()
    UDP_SINK = h.binary("MSCOPE_UDP_SINK", "udp_sink")
    os.makedirs(BENCH_DIR, exist_ok=True)
    src = os.path.join(BENCH_DIR, "udp-20k.pcap")
    h.gen(src, "--packets", 20000, "--flows", 500, "--seed", 41, "--mix", "clean")
    print(f"machine: {machine()}")
    print("bare recvmmsg sink:")
    b = best(sink_run, src, 20000)
    print("mscope-recorder:")
    r = best(rec_run, src, 20000)
    print(f"highest zero-drop rate: sink {b} pps, recorder {r} pps"
          + (f" -> {100.0 * r / b:.0f}% (goal >= 80%)" if b and r else ""))


if __name__ == "__main__":
    main()
