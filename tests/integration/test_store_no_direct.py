#!/usr/bin/env python3
"""A file system that refuses O_DIRECT gets buffered writes: the store says
so once, not once per segment, and stores every packet as on any other
file system. Two ways to refuse:

- at a write: a file system that takes the O_DIRECT flag and then fails a
  write with EINVAL. Nothing here does that to aligned buffers, so the
  test hook MSCOPE_TEST_DIO_REFUSE (common/dio.c) makes every direct write
  fail so. Once with segments larger than the store's 4 MiB buffer and
  no flush before it fills (its I/O thread meets the refusal) and once
  with 2 MiB segments (the writer meets it, sealing); the segment indexes
  meet it too.
- when the flag is set: ramfs (tmpfs accepts it since Linux 6.6). Needs
  root to mount it; skipped visibly otherwise.

Every store is then read by capinfos, and searched with and without a
filter against tcpdump on the input.
"""
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile


def check_store(store, src, log, says, what):
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    idxs = sorted(glob.glob(os.path.join(store, "seg-*.idx")))
    h.check(len(idxs) == len(segs) and not glob.glob(os.path.join(store, "seg-*.tmp")),
            f"{what}: {len(segs)} segments but {len(idxs)} indexes, or a .tmp left")
    n = log.count(says)
    h.check(n == 1, f"{what}: the fall-back to buffered writes logged {n} times:\n{log}")
    for s in segs:
        ok, err = h.capinfos_ok(s)
        h.check(ok, f"{what}: capinfos rejects {s}: {err}")
    got, _ = h.search(store, "")
    want = h.tcpdump(src, "")
    h.check(pcapfile.compare(got, want) is None, f"{what}: search: {pcapfile.compare(got, want)}")
    expr = "tcp and host 10.0.1.1"
    sel, _ = h.search(store, expr)
    h.check(pcapfile.compare(sel, h.tcpdump(src, expr)) is None, f"{what}: search {expr!r}")
    return len(want), len(segs)


def refused_at_write(d, src):
    env = dict(os.environ, MSCOPE_TEST_DIO_REFUSE="1")
    # Without a flush before the first buffer is full, the I/O thread makes
    # the first write; 2 MiB segments are sealed before a buffer fills.
    for name, args in (("4 MiB buffers", ["--flush-interval", "1h"]),
                       ("2 MiB segments", ["--segment-size", "2M"])):
        store = os.path.join(d, "refused-" + name.split()[0])
        p = h.run([h.RECORDER, "--data-dir", store, "--read", src, "--min-free", "0", *args],
                  env=env)
        log = p.stderr.decode(errors="replace")
        npk, nseg = check_store(store, src, log, "a direct write failed (EINVAL)", name)
        print(f"ok  refused at a write ({name}): {npk} packets in {nseg} segments, logged once")


def refused_at_open(d, src):
    if os.geteuid() != 0:
        print("skip  ramfs (refuses the O_DIRECT flag): needs root to mount it")
        return
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    h.run(["mount", "-t", "ramfs", "ramfs", mnt])
    try:
        store = os.path.join(mnt, "store")
        p = h.import_file(store, src, "--segment-size", "2M")
        log = p.stderr.decode(errors="replace")
        npk, nseg = check_store(store, src, log, "refuses O_DIRECT", "ramfs")
        h.check(nseg >= 3, f"ramfs: expected several segments, got {nseg}")
        print(f"ok  ramfs: {npk} packets in {nseg} segments, fall-back logged once")
    finally:
        subprocess.run(["umount", "-l", mnt])


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 20000, "--flows", 200, "--seed", 5)
    h.check(os.path.getsize(src) > 5 << 20, "the input should fill the store's 4 MiB buffer")
    refused_at_write(d, src)
    refused_at_open(d, src)


if __name__ == "__main__":
    main()
