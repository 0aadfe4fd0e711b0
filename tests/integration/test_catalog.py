#!/usr/bin/env python3
"""The segment catalog (DIR/catalog): a search opens only the indexes of the
segments that overlap its time range, and a stale, missing or damaged
catalog never costs a packet.

An import of many small segments; for time windows of several widths the
search equals `tcpdump -r` over the window, and (strace) it opens exactly
the indexes of the segments whose packets overlap the window. Then the
catalog is made stale both ways (a segment deleted since it was written,
segments sealed since), damaged, and removed: every answer is still
tcpdump's, and with a damaged or missing catalog every index is opened.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402


def search_traced(d, store, expr, t_from, t_to):
    """The search's packets, and the segment indexes it opened."""
    trace = os.path.join(d, "trace")
    cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", trace, h.RECORDER, "search",
           "--data-dir", store, "-w", "-", "--from", h.ns_str(t_from), "--to", h.ns_str(t_to)]
    # LeakSanitizer cannot work under ptrace: off for the traced run.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    p = h.run(cmd + ([expr] if expr else []), env=env)
    opened = set()
    for line in open(trace):
        m = re.search(r'seg-(\d+)\.idx"', line)
        if m and "= -1" not in line:
            opened.add(int(m.group(1)))
    return pcapfile.read_pcap(p.stdout)[1], opened


def overlapping(store, t_from, t_to):
    """The segments holding a packet in [t_from, t_to)."""
    out = set()
    for seg in glob.glob(os.path.join(store, "seg-*.pcap")):
        recs = pcapfile.read_pcap(seg)[1]
        if recs and min(r[0] for r in recs) < t_to and max(r[0] for r in recs) >= t_from:
            out.add(int(re.search(r"seg-(\d+)", seg).group(1)))
    return out


def main():
    h.init()
    if not shutil.which("strace"):
        h.fail("strace is not installed (scripts/deps.sh installs it)")
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 30000, "--rate", 1000, "--seed", 5,
                "--nsec")
    store = os.path.join(d, "store")
    h.import_file(store, src, "--segment-size", "256K")
    segs = glob.glob(os.path.join(store, "seg-*.idx"))
    h.check(len(segs) >= 40 and os.path.exists(os.path.join(store, "catalog")),
            f"{len(segs)} segments, catalog {os.path.exists(os.path.join(store, 'catalog'))}")
    allp = h.tcpdump(src, "")
    t0, t1 = allp[0][0], allp[-1][0] + 1
    sec = 1000000000
    for expr, a, b in [("", t0 + 10 * sec, t0 + 11 * sec), ("tcp", t0 + 3 * sec, t0 + 7 * sec),
                       ("host 10.0.1.1", t0, t1), ("", t1 - sec // 2, t1)]:
        want = h.window(h.tcpdump(src, expr), a, b)
        got, opened = search_traced(d, store, expr, a, b)
        h.check(got == want, f"{expr!r} [{a},{b}): {len(got)} packets, tcpdump {len(want)}")
        h.check(opened == overlapping(store, a, b),
                f"{expr!r} [{a},{b}): opened {sorted(opened)}, overlapping "
                f"{sorted(overlapping(store, a, b))}")
    print(f"ok  {len(segs)} segments: each search opens only the overlapping segments' indexes")

    # Stale one way: the catalog of a store that has since sealed more.
    old = open(os.path.join(store, "catalog"), "rb").read()
    before = set(glob.glob(os.path.join(store, "seg-*.pcap")))
    src2 = h.gen(os.path.join(d, "in2.pcap"), "--packets", 5000, "--rate", 1000, "--seed", 6,
                 "--nsec", "--start", 1700000100)
    h.import_file(store, src2, "--segment-size", "256K")
    new = {int(re.search(r"seg-(\d+)", p).group(1))
           for p in set(glob.glob(os.path.join(store, "seg-*.pcap"))) - before}
    open(os.path.join(store, "catalog"), "wb").write(old)
    # ... and the other: a segment deleted since (evicted).
    first = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))[0]
    gone = pcapfile.read_pcap(first)[1]
    os.unlink(first[:-5] + ".idx")
    os.unlink(first)
    both = [r for r in sorted(allp + h.tcpdump(src2, ""), key=lambda r: r[0]) if r not in gone]
    got, _ = search_traced(d, store, "", 0, 1 << 62)
    h.check(sorted(got) == sorted(both), f"stale catalog: {len(got)} packets, want {len(both)}")
    a, b = 1700000100 * sec, 1700000103 * sec
    got, opened = search_traced(d, store, "", a, b)
    # Those the catalog does not list are opened; of the rest, only overlapping ones.
    h.check(got == h.window(h.tcpdump(src2, ""), a, b) and
            opened == overlapping(store, a, b) | new,
            f"segments sealed after the catalog: {len(got)} packets, opened {sorted(opened)}")
    print("ok  a stale catalog (segments sealed and deleted since): every packet found")

    # Damaged, then missing: ignored, every index opened, same answers.
    data = bytearray(old)
    data[40] ^= 1
    open(os.path.join(store, "catalog"), "wb").write(data)
    a, b = t0 + 10 * sec, t0 + 11 * sec
    for what in ("damaged", "missing"):
        got, opened = search_traced(d, store, "", a, b)
        h.check(got == h.window(allp, a, b), f"{what} catalog: {len(got)} packets")
        h.check(len(opened) == len(glob.glob(os.path.join(store, "seg-*.idx"))),
                f"{what} catalog: opened {len(opened)} indexes, not all")
        if what == "damaged":
            os.unlink(os.path.join(store, "catalog"))
    print("ok  a damaged or missing catalog: ignored, every index opened, same answers")

    # The daemon writes it at start.
    rec = h.Daemon(store)
    rec.stop()
    h.check(os.path.exists(os.path.join(store, "catalog")), "no catalog after a daemon's start")
    got, opened = search_traced(d, store, "", a, b)
    h.check(got == h.window(allp, a, b) and opened == overlapping(store, a, b),
            f"after the daemon: {len(got)} packets, opened {sorted(opened)}")
    print("ok  the daemon writes the catalog at start")


if __name__ == "__main__":
    main()
