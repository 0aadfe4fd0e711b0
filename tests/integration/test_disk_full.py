#!/usr/bin/env python3
"""A full disk (a small tmpfs) pauses writing with a clear log line and a
counter, turns /healthz and /readyz to 503, never corrupts a segment, and
resumes (healthy again) when space frees.
Needs root to mount the tmpfs; skipped visibly otherwise.
"""
import glob
import os
import sys
import subprocess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile


def main():
    h.init()
    if os.geteuid() != 0:
        h.skip("needs root to mount a small tmpfs")
    d = h.tmpdir()
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    h.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt])
    try:
        run(d, mnt)
        stats_on_the_full_disk(d, mnt)
    finally:
        subprocess.run(["umount", "-l", mnt])


def run(d, mnt):
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 12000, "--flows", 100, "--seed", 4,
                "--mix", "clean")
    ballast = os.path.join(mnt, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * (2 * 1024 * 1024))
    store = os.path.join(mnt, "store")
    rec = h.Daemon(store, "--segment-size", "64M", stats_file=os.path.join(d, "stats.json"))
    try:
        h.vxsend(src, rec.port, "--rate", 20000)
        h.check(rec.wait_rx(12000), f"rx {rec.stats()}")
        h.check(h.wait_for(lambda: rec.stats()["paused"] == 1, 10), f"not paused: {rec.stats()}")
        st = rec.stats()
        h.check(st["drop_disk_full"] > 0 and st["disk_full_events"] == 1, f"stats {st}")
        h.check("writing paused" in rec.log_text(), "no clear log line on disk full")
        code, health = h.http_json(rec.http, "/healthz")
        h.check(code == 503 and any("disk is full" in r for r in health["reasons"]),
                f"/healthz on a full disk: {code} {health}")
        h.check(h.http_json(rec.http, "/readyz")[0] == 503, "/readyz on a full disk")
        # The segment on the full disk is valid as it stands.
        seg = glob.glob(os.path.join(store, "seg-*.pcap"))[0]
        ok, err = h.capinfos_ok(seg)
        h.check(ok, f"capinfos rejects the segment on a full disk: {err}")
        stored_before = st["stored_packets"]
        # Free space: writing resumes and new packets are kept.
        os.unlink(ballast)
        h.check(h.wait_for(lambda: rec.stats()["paused"] == 0, 10), "writing did not resume")
        h.check("writing resumed" in rec.log_text(), "resume not logged")
        # Healthy again once the drops are older than the window (5 s).
        h.check(h.wait_for(lambda: h.http_json(rec.http, "/healthz")[0] == 200, 10),
                f"/healthz after the disk freed: {h.http_json(rec.http, '/healthz')}")
        h.vxsend(src, rec.port, "--rate", 20000, "--loop", 1)
        h.check(h.wait_for(lambda: rec.stats()["stored_packets"] > stored_before, 10),
                "nothing stored after resume")
    finally:
        rc = rec.stop()
    h.check(rc == 0, f"exit status {rc}")
    st = rec.stats()
    got, raw = h.search(store, "")
    h.check(len(got) == st["stored_packets"],
            f"search finds {len(got)}, stats say {st['stored_packets']} stored")
    h.check(st["rx_packets"] == st["stored_packets"] + st["drop_disk_full"],
            f"packets unaccounted for: {st}")
    ok, err = h.capinfos_ok(seg)
    h.check(ok, f"capinfos rejects the segment after all: {err}")
    print(f"disk full: paused, {st['drop_disk_full']} dropped and counted, resumed, "
          f"{st['stored_packets']} stored intact")


def fill(path):
    """Write zeros until the file system is full; the bytes written."""
    n = 0
    with open(path, "wb") as f:
        try:
            while True:
                n += f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return n


def stats_on_the_full_disk(d, mnt):
    """stats.json lives on the disk the recorder fills (its default place):
    it must keep saying what happens, daemon and import alike."""
    for name in ("ballast", "store"):
        p = os.path.join(mnt, name)
        if os.path.isdir(p):
            subprocess.run(["rm", "-rf", p])
        elif os.path.exists(p):
            os.unlink(p)
    src = h.gen(os.path.join(d, "in2.pcap"), "--packets", 6000, "--flows", 50, "--seed", 5,
                "--mix", "clean")
    store = os.path.join(mnt, "store2")
    rec = h.Daemon(store, "--segment-size", "64M", stats_file=os.path.join(store, "stats.json"))
    try:
        h.check(h.wait_for(lambda: os.path.exists(os.path.join(store, "stats.json.tmp")), 10),
                "stats.json and its companion were not made at start")
        fill(os.path.join(mnt, "ballast2"))
        h.vxsend(src, rec.port, "--rate", 20000)
        # Every packet received is in stats.json, though nothing can be written.
        ok = h.wait_for(lambda: (rec.stats() or {}).get("rx_packets") == 6000 and
                        rec.stats()["paused"] == 1, 10)
        h.check(ok, f"stats.json on the full disk froze: {rec.stats()}")
        st = rec.stats()
        h.check(st["drop_disk_full"] > 0, f"drops on the full disk not in stats.json: {st}")
    finally:
        rec.stop()
    os.unlink(os.path.join(mnt, "ballast2"))
    print(f"ok  stats.json on the full disk keeps counting: {st['rx_packets']} received, "
          f"{st['drop_disk_full']} dropped, paused")

    # An import that fills the disk: its stats.json says so at the end.
    imp = os.path.join(mnt, "imp")
    big = h.gen(os.path.join(d, "big.pcap"), "--bytes", "8m", "--flows", 50, "--seed", 6)
    p = h.run([h.RECORDER, "--data-dir", imp, "--read", big, "--segment-size", "64M",
               "--min-free", "0"], check_rc=False)
    h.check(p.returncode == 1 and b"disk full" in p.stderr, f"import on a small disk: "
            f"{p.returncode} {p.stderr[-300:]!r}")
    st = h.read_stats(os.path.join(imp, "stats.json"))
    h.check(st and st["drop_disk_full"] > 0 and st["rx_packets"] == st["stored_packets"] +
            st["drop_disk_full"], f"the import's stats.json: {st}")
    print(f"ok  an import that filled the disk wrote its stats.json: {st['stored_packets']} "
          f"stored, {st['drop_disk_full']} dropped")


if __name__ == "__main__":
    main()
