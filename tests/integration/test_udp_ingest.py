#!/usr/bin/env python3
"""Ingest over real UDP: a sender on loopback wraps a pcap's frames in VXLAN
(with a share of deliberately broken messages); the recorder daemon stores
every inner frame exactly, counts the broken ones by reason, and a packet is
searchable within a second of arrival.
"""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile

BAD_EVERY = 97


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 20000, "--flows", 200, "--seed", 5)
    frames = pcapfile.read_pcap(src)[1]
    store = os.path.join(d, "store")
    rec = h.Daemon(store, "--segment-size", "1M")
    try:
        sent = h.vxsend(src, rec.port, "--rate", 40000, "--bad-every", BAD_EVERY)
        h.check(int(sent["sent"]) == len(frames), f"vxsend sent {sent}")
        h.check(rec.wait_rx(len(frames)), f"recorder saw {rec.stats()} of {len(frames)}")
        # Searchable within a second of arrival: the flush interval is 200 ms.
        want = [f for i, f in enumerate(frames, 1) if i % BAD_EVERY != 0]
        t0 = time.time()
        got = h.wait_for(lambda: len(h.search(store, "")[0]) == len(want) or None, 1.0, 0.05)
        h.check(got, f"not all packets searchable within 1 s of arrival "
                     f"({len(h.search(store, '')[0])} of {len(want)})")
        print(f"all {len(want)} packets searchable {time.time() - t0:.2f} s after the last arrived")
        st = rec.stats()
        nbad = len(frames) // BAD_EVERY
        nd = st["not_decapsulated"]
        h.check(nd["vxlan_short"] + nd["vxlan_no_i_flag"] == nbad,
                f"bad VXLAN counted {nd}, sent {nbad}")
        h.check(nd["vxlan_short"] > 0 and nd["vxlan_no_i_flag"] > 0, f"both reasons: {nd}")
        h.check(st["queue_drops"] == 0 and st["kernel_drops"] == 0, f"drops: {st}")
    finally:
        rc = rec.stop()
    h.check(rc == 0, f"recorder exit status {rc}:\n{rec.log_text()}")
    got, _ = h.search(store, "")
    # Over UDP the original length is what arrived: compare bytes and caplen.
    h.check(len(got) == len(want), f"stored {len(got)} of {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g[3] != w[3]:
            h.fail(f"packet {i} differs from input frame (caplen {g[1]} vs {w[1]})")
    times = [g[0] for g in got]
    h.check(times == sorted(times), "answer not in time order")
    for s in glob.glob(os.path.join(store, "seg-*.pcap")):
        ok, err = h.capinfos_ok(s)
        h.check(ok, f"capinfos rejects {s}: {err}")
        h.check(os.path.exists(s[:-5] + ".idx"), f"{s} not sealed at shutdown")
    st = rec.stats()
    h.check(st["stored_packets"] == len(want), f"final stats {st}")
    # Search by an inner-packet filter over the UDP-fed store equals tcpdump.
    sent_data = {w[3] for w in want}
    for expr in ("host 10.0.1.1 and port 443", "udp", "not tcp"):
        got, _ = h.search(store, expr)
        oracle = h.tcpdump(src, expr)
        # only the frames that were sent intact (not replaced by a broken message)
        exp = [o[3] for o in oracle if o[3] in sent_data]
        h.check([g[3] for g in got] == exp, f"'{expr}' over UDP differs from tcpdump")
    print("udp ingest: stored packets equal the input")


if __name__ == "__main__":
    main()
