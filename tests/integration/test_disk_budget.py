#!/usr/bin/env python3
"""The disk budget: with --max-disk the store deletes its oldest segments
(pcap and index together) and keeps the newest packets, searchable exactly.
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
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 40000, "--flows", 300, "--seed", 3,
                "--nsec")
    frames = pcapfile.read_pcap(src)[1]
    store = os.path.join(d, "store")
    p = h.import_file(store, src, "--segment-size", "1M", "--max-disk", "6M")
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    idxs = sorted(glob.glob(os.path.join(store, "seg-*.idx")))
    used = sum(os.path.getsize(f) for f in segs + idxs)
    h.check(used <= 6 * 1024 * 1024, f"{used} bytes on disk exceed --max-disk 6M")
    h.check(len(segs) == len(idxs), "a segment lost its index or vice versa")
    h.check(not os.path.exists(os.path.join(store, "seg-000000000001.pcap")),
            "the oldest segment was not evicted")
    st = h.read_stats(os.path.join(store, "stats.json"))
    h.check(st["segments_evicted"] > 0, f"stats {st}")
    h.check(b"evicted segment" in p.stderr, "eviction not logged")
    got, _ = h.search(store, "")
    h.check(0 < len(got) < len(frames), f"kept {len(got)} of {len(frames)}")
    # What is kept is exactly the newest packets, in order.
    h.check(pcapfile.compare(got, frames[-len(got):]) is None,
            f"kept packets are not the newest: {pcapfile.compare(got, frames[-len(got):])}")
    print(f"disk budget: kept newest {len(got)} of {len(frames)} packets in {used} bytes")


if __name__ == "__main__":
    main()
