#!/usr/bin/env python3
"""Zero fill is never taken for packets. A file system may show zeros past
the last write that reached the disk after a crash (blocks allocated, data
not written), and the store writes with O_DIRECT in 4 KiB blocks: a segment
left with zero bytes after its last whole record must be searched and
repaired as if they were not there (a record header of 16 zero bytes ends
the walk, like a torn record), never read as empty packets of 1970.
"""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 3000, "--flows", 50, "--seed", 12)
    want = h.tcpdump(src, "")
    store = os.path.join(d, "store")
    h.import_file(store, src)
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    h.check(len(segs) == 1, f"expected one segment, got {segs}")
    seg = segs[0]
    size = os.path.getsize(seg)
    # As a crash would leave it: no index, zeros up to the next 4 KiB block
    # and one more block of them.
    os.unlink(seg[:-5] + ".idx")
    zeros = 4096 - size % 4096 + 4096
    with open(seg, "ab") as f:
        f.write(b"\0" * zeros)

    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, want) is None,
            f"search of the unsealed segment with zero fill: {pcapfile.compare(got, want)}")

    empty = os.path.join(d, "empty.pcap")
    pcapfile.write_pcap(empty, [])
    p = h.import_file(store, empty)
    log = p.stderr.decode(errors="replace")
    h.check(f"cut torn tail of {seg}: {zeros} bytes" in log, f"zero fill not cut:\n{log}")
    h.check(os.path.getsize(seg) == size, f"{seg} is {os.path.getsize(seg)} bytes, not {size}")
    h.check(os.path.exists(seg[:-5] + ".idx"), "repaired segment has no index")
    ok, err = h.capinfos_ok(seg)
    h.check(ok, f"capinfos rejects {seg}: {err}")
    got, _ = h.search(store, "")
    h.check(pcapfile.compare(got, want) is None, f"after repair: {pcapfile.compare(got, want)}")
    print(f"zero fill: {zeros} bytes after {len(want)} packets cut, none taken for a packet")


if __name__ == "__main__":
    main()
