#!/usr/bin/env python3
"""File import: pcapng and --decap vxlan (a capture of VXLAN-in-UDP frames:
the inner frames are stored, what cannot be decapsulated is dropped and
counted by reason), and bad input: a truncated file keeps every whole packet
and says so, unknown link types, garbage, a locked data directory.
"""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402


def stats(store):
    return h.read_stats(os.path.join(store, "stats.json"))


def test_decap(d):
    outer = h.gen(os.path.join(d, "outer.pcap"), "--packets", 20000, "--flows", 100, "--vxlan",
                  "--vni", 42, "--bad-vxlan", 3, "--seed", 8)
    store = os.path.join(d, "decap")
    h.import_file(store, outer, "--decap", "vxlan")
    # Oracle: tcpdump picks the valid VXLAN messages (UDP to 4789 with the I
    # flag, whole 8-byte header; the inner frame may be malformed, even shorter
    # than Ethernet: it is still stored) and we strip the 50 outer bytes.
    valid = h.tcpdump(outer, "udp dst port 4789 and udp[4:2] >= 16 and udp[8] & 0x08 != 0")
    want = [(r[0], r[1] - 50, r[2] - 50, r[3][50:]) for r in valid]
    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, want) is None, f"--decap vxlan: {pcapfile.compare(got, want)}")
    st = stats(store)
    total = len(pcapfile.read_pcap(outer)[1])
    dropped = sum(st["not_decapsulated"].values())
    h.check(dropped == total - len(want), f"dropped {dropped}, expected {total - len(want)}: {st}")
    reasons = [k for k, v in st["not_decapsulated"].items() if v]
    h.check(len(reasons) >= 3, f"expected several drop reasons, got {reasons}")
    print(f"ok  --decap vxlan: {len(want)} inner frames stored, {dropped} dropped by {reasons}")


def test_pcapng(d, src):
    ng = os.path.join(d, "in.pcapng")
    h.run(["editcap", "-F", "pcapng", src, ng])
    store = os.path.join(d, "ng")
    h.import_file(store, ng)
    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, h.tcpdump(src, "")) is None, "pcapng import differs")
    print("ok  pcapng import")


def test_truncated(d, src):
    data = open(src, "rb").read()
    cut = os.path.join(d, "cut.pcap")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2 + 7])  # inside some record
    store = os.path.join(d, "cut")
    p = h.run([h.RECORDER, "--data-dir", store, "--read", cut, "--min-free", "0"], check_rc=False)
    h.check(p.returncode == 1, f"truncated input: exit {p.returncode}")
    h.check(b"cut short" in p.stderr, f"no clear message: {p.stderr!r}")
    # Every whole packet before the cut is stored.
    recs, off = [], 24
    while off + 16 <= len(data) // 2 + 7:
        sec, usec, cap, orig = struct.unpack_from("<IIII", data, off)
        if off + 16 + cap > len(data) // 2 + 7:
            break
        recs.append(1)
        off += 16 + cap
    got, _ = h.search(store, "")
    h.check(len(got) == len(recs), f"stored {len(got)} of {len(recs)} whole packets")
    print(f"ok  truncated file: {len(got)} whole packets kept, exit 1 with a message")


def test_bad_files(d):
    store = os.path.join(d, "bad")
    raw = os.path.join(d, "raw.pcap")
    with open(raw, "wb") as f:  # link type 101 (raw IP)
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 101))
    p = h.run([h.RECORDER, "--data-dir", store, "--read", raw], check_rc=False)
    h.check(p.returncode == 1 and b"not supported" in p.stderr, f"raw link type: {p.stderr!r}")
    junk = os.path.join(d, "junk.pcap")
    with open(junk, "wb") as f:
        f.write(os.urandom(4096))
    p = h.run([h.RECORDER, "--data-dir", store, "--read", junk], check_rc=False)
    h.check(p.returncode == 1 and b"cannot read" in p.stderr, f"garbage file: {p.stderr!r}")
    p = h.run([h.RECORDER, "--data-dir", store, "--read", os.path.join(d, "nope.pcap")],
              check_rc=False)
    h.check(p.returncode == 1 and b"No such file" in p.stderr, f"missing file: {p.stderr!r}")
    p = h.run([h.RECORDER, "--data-dir", store, "--segment-size", "12Q"], check_rc=False)
    h.check(p.returncode == 2 and b"--segment-size" in p.stderr, f"bad option: {p.stderr!r}")
    print("ok  bad files and options: clear errors")


def test_locked(d, src):
    store = os.path.join(d, "locked")
    rec = h.Daemon(store)
    try:
        p = h.run([h.RECORDER, "--data-dir", store, "--read", src], check_rc=False)
        h.check(p.returncode == 1 and b"in use by another recorder" in p.stderr,
                f"second writer on one directory: {p.stderr!r}")
    finally:
        rec.stop()
    print("ok  one writer per data directory")


def test_far_future(d, src):
    """Pcap seconds are unsigned 32-bit: times from 2038 to 2106 are stored
    and found as they are (libpcap hands them over as negative numbers)."""
    frames = pcapfile.read_pcap(src)[1][:4]
    times = [1700000000 * 10**9 + 5, (1 << 31) * 10**9 + 123456789,
             0xF0000000 * 10**9 + 999999999, 0xFFFFFFFF * 10**9 + 1]
    recs = [(t, r[1], r[2], r[3]) for t, r in zip(times, frames)]
    path = os.path.join(d, "future.pcap")
    pcapfile.write_pcap(path, recs)
    store = os.path.join(d, "future")
    h.import_file(store, path)
    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, h.tcpdump(path, "")) is None and [r[0] for r in got] == times,
            f"times past 2038: stored {[r[0] for r in got]}, want {times}")
    later, _ = h.search(store, "", t_from="2097-01-01T00:00:00Z")
    h.check([r[0] for r in later] == times[2:], f"--from 2097: {[r[0] for r in later]}")
    print("ok  pcap times in 2038, 2097 and 2106 stored and found as tcpdump reads them")


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 5000, "--flows", 50, "--seed", 2)
    test_decap(d)
    test_pcapng(d, src)
    test_truncated(d, src)
    test_bad_files(d)
    test_locked(d, src)
    test_far_future(d, src)


if __name__ == "__main__":
    main()
