#!/usr/bin/env python3
"""Search equals the oracle: for many tcpdump expressions and time windows,
`mscope-recorder search` returns exactly what `tcpdump -r` returns for the
same input and expression restricted to the window - same packets, same
order, byte for byte. Two imports that overlap in time (one microsecond, one
nanosecond pcap) across many small segments exercise the time-ordered merge;
capinfos must accept every segment and every answer.
"""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile

EXPRS = [
    "",                                         # everything
    "host 10.0.1.1",                            # host
    "net 10.0.0.0/16",                          # net
    "port 443",                                 # port
    "src host 10.0.1.1 and dst port 443",       # src/dst
    "tcp",                                      # protocols
    "udp and port 53",
    "icmp or icmp6",
    "not tcp",                                  # not
    "host 10.0.2.2 or port 53",                 # or
    "(host 10.0.1.1 or host 10.0.2.2) and not port 22",  # parentheses
    "vlan",                                     # vlan
    "vlan and host 10.0.1.1",
    "vlan and tcp port 443",                    # the index judges tagged flows too
    "vlan and vlan and udp",                    # QinQ
    "not vlan and udp",
    "ip6",                                      # ip6
    "ip6 and tcp port 80",
    "tcp[13] & 2 != 0",                         # no index terms: a scan
    "greater 1000",                             # original length
    "less 100",
    "ip[6:2] & 0x3fff != 0",                    # fragments
    "not ip and not ip6",                       # ARP, odd frames
    "host 10.0.1.1 or 10.0.3.3",                # inherited qualifier
    "portrange 5000-6000 or dst net 192.168.0.0/16",
]


def main():
    h.init()
    d = h.tmpdir()
    a = h.gen(os.path.join(d, "a.pcap"), "--packets", 60000, "--flows", 400, "--seed", 11)
    b = h.gen(os.path.join(d, "b.pcap"), "--packets", 30000, "--flows", 200, "--seed", 12,
              "--nsec", "--start", 1700000001)
    store = os.path.join(d, "store")
    h.import_file(store, a, "--segment-size", "2M")
    h.import_file(store, b, "--segment-size", "2M")
    segs = sorted(glob.glob(os.path.join(store, "seg-*.pcap")))
    h.check(len(segs) >= 8, f"expected many segments, got {len(segs)}")
    for s in segs:
        ok, err = h.capinfos_ok(s)
        h.check(ok, f"capinfos rejects segment {s}: {err}")
        h.check(os.path.exists(s[:-5] + ".idx"), f"segment {s} has no index")

    a_recs = pcapfile.read_pcap(a)[1]
    b_recs = pcapfile.read_pcap(b)[1]
    t0 = min(a_recs[0][0], b_recs[0][0])
    t1 = max(a_recs[-1][0], b_recs[-1][0])
    # Windows: all; a middle slice whose edges fall exactly on packet times
    # (from inclusive, to exclusive); RFC 3339 forms are covered by unit tests.
    mid_from = a_recs[len(a_recs) // 3][0]
    mid_to = b_recs[len(b_recs) // 2][0]
    windows = [(None, None), (mid_from, mid_to), (t0 + (t1 - t0) // 2, None)]

    checked = 0
    for expr in EXPRS:
        oracle_all = sorted(h.tcpdump(a, expr) + h.tcpdump(b, expr), key=lambda r: r[0])
        for wf, wt in windows:
            want = h.window(oracle_all, wf, wt)
            got, raw = h.search(store, expr,
                                None if wf is None else h.ns_str(wf),
                                None if wt is None else h.ns_str(wt))
            diff = pcapfile.compare(got, want)
            h.check(diff is None, f"'{expr}' window {wf}..{wt}: {diff}")
            checked += 1
        out = os.path.join(d, "out.pcap")
        with open(out, "wb") as f:
            f.write(raw)
        ok, err = h.capinfos_ok(out)
        h.check(ok, f"capinfos rejects the answer to '{expr}': {err}")
        print(f"ok  '{expr}': {len(oracle_all)} packets over all windows")
    # Limits, and an empty answer that is still a valid pcap.
    got, _ = h.search(store, "tcp", extra=["--max-packets", "100"])
    want = [r for r in sorted(h.tcpdump(a, "tcp") + h.tcpdump(b, "tcp"), key=lambda r: r[0])][:100]
    h.check(pcapfile.compare(got, want) is None, "--max-packets 100 is not the first 100")
    got, raw = h.search(store, "host 203.0.113.99")
    h.check(got == [] and len(raw) == 24, "an empty answer must be a header-only pcap")
    # A bad filter: libpcap's message, non-zero exit, no output file.
    p = h.run([h.RECORDER, "search", "--data-dir", store, "-w", os.path.join(d, "bad.pcap"),
               "host and and"], check_rc=False)
    h.check(p.returncode != 0 and b"syntax error" in p.stderr,
            f"bad filter: rc {p.returncode}, {p.stderr!r}")
    print(f"{checked} expression/window pairs equal tcpdump")


if __name__ == "__main__":
    main()
