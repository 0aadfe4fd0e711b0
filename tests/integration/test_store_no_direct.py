#!/usr/bin/env python3
"""A file system that refuses O_DIRECT (ramfs; tmpfs accepts it since Linux
6.6) gets buffered writes: the store says so once, not once per segment,
and stores every packet as on any other file system. Needs root to mount
the ramfs; skipped visibly otherwise.
"""
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile


def main():
    h.init()
    if os.geteuid() != 0:
        h.skip("needs root to mount a ramfs")
    d = h.tmpdir()
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    h.run(["mount", "-t", "ramfs", "ramfs", mnt])
    try:
        run(d, mnt)
    finally:
        subprocess.run(["umount", "-l", mnt])


def run(d, mnt):
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 20000, "--flows", 200, "--seed", 5)
    want = h.tcpdump(src, "")
    store = os.path.join(mnt, "store")
    p = h.import_file(store, src, "--segment-size", "2M")
    log = p.stderr.decode(errors="replace")
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    h.check(len(segs) >= 3, f"expected several segments, got {len(segs)}")
    n = log.count("refuses O_DIRECT")
    h.check(n == 1, f"the fall-back to buffered writes logged {n} times:\n{log}")
    for s in segs:
        ok, err = h.capinfos_ok(s)
        h.check(ok, f"capinfos rejects {s}: {err}")
    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, want) is None, f"search: {pcapfile.compare(got, want)}")
    expr = "tcp and host 10.0.1.1"
    sel, _ = h.search(store, expr)
    h.check(pcapfile.compare(sel, h.tcpdump(src, expr)) is None, f"search {expr!r}")
    print(f"no O_DIRECT: {len(want)} packets in {len(segs)} segments, fall-back logged once")


if __name__ == "__main__":
    main()
