#!/usr/bin/env python3
"""kill -9 during ingest, then restart: every packet fully written before the
crash is found again, the torn tail of the open segment is cut, its index is
rebuilt, and every file passes capinfos. Also: a search run while the daemon
is down finds the unsealed segment's packets (scanned on the fly).
"""
import glob
import os
import sys
import signal
import struct
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 50000, "--flows", 300, "--seed", 9)
    store = os.path.join(d, "store")
    rec = h.Daemon(store, "--segment-size", "4M", "--segment-age", "1h")
    # Send in the background and kill the recorder while packets still arrive.
    import subprocess
    sender = subprocess.Popen([h.VXSEND, "--to", f"127.0.0.1:{rec.port}", "--rate", "20000", src],
                              stdout=subprocess.DEVNULL)
    def open_segment_has_packets():
        for s in glob.glob(os.path.join(store, "seg-*.pcap")):
            if not os.path.exists(s[:-5] + ".idx") and os.path.getsize(s) > 100000:
                return True
        return False

    h.check(h.wait_for(lambda: (rec.stats() or {}).get("stored_packets", 0) > 15000
                       and open_segment_has_packets(), 20),
            "recorder did not store packets")
    rec.proc.send_signal(signal.SIGKILL)
    rec.proc.wait()
    sender.wait()
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    unsealed = [s for s in segs if not os.path.exists(s[:-5] + ".idx")]
    h.check(len(unsealed) == 1, f"expected one unsealed segment after kill -9, got {unsealed}")
    # Simulate a write torn mid-record on top of what the crash left.
    with open(unsealed[0], "ab") as f:
        f.write(struct.pack("<IIII", 1700000000, 0, 1400, 1400) + b"\x00" * 100)
    before = []
    for s in segs:
        before += pcapfile.whole_records(s)[0]
    # The last flush interval's packets were still in memory: not on disk.
    h.check(len(before) > 5000, f"only {len(before)} packets on disk")

    # While down: search scans the unsealed segment, torn tail and all.
    got, _ = h.search(store, "")
    h.check(len(got) == len(before), f"search before restart: {len(got)} of {len(before)}")

    rec2 = h.Daemon(store)
    rec2.stop()
    recs, end, size = pcapfile.whole_records(unsealed[0])
    h.check(end == size, f"torn tail not cut: whole records end at {end}, file is {size}")
    h.check(os.path.exists(unsealed[0][:-5] + ".idx"), "recovered segment has no index")
    st = rec2.stats()
    h.check(st["recovered_segments"] == 1 and st["recovered_torn_bytes"] == 116, f"stats {st}")
    h.check("cut torn tail" in rec2.log_text(), "recovery not logged")
    for s in glob.glob(os.path.join(store, "seg-*.pcap")):
        ok, err = h.capinfos_ok(s)
        h.check(ok, f"capinfos rejects {s} after recovery: {err}")
    got, _ = h.search(store, "")
    want = sorted(before, key=lambda r: r[0])
    h.check(pcapfile.compare(got, want) is None, f"after restart: {pcapfile.compare(got, want)}")
    # The rebuilt index serves indexed searches exactly.
    expr = "host 10.0.1.1 and tcp"
    sel, _ = h.search(store, expr)
    allp = os.path.join(d, "all.pcap")
    pcapfile.write_pcap(allp, want)
    h.check(pcapfile.compare(sel, h.tcpdump(allp, expr)) is None, "indexed search after recovery")
    print(f"crash recovery: {len(before)} packets kept, torn tail cut")


if __name__ == "__main__":
    main()
