#!/usr/bin/env python3
"""Broker: several tools with different filters, actions and slicing, and a
group of three members sharing the load by a symmetric flow hash.

- Each pcap-file tool holds exactly what `tcpdump -r IN 'FILTER'` selects, in
  order, sliced to its length (original length kept); action = drop selects
  the complement; files sorted by name are in time order.
- Group of three: every connection (both directions) lands wholly on one
  member; the packet split is within 10% of even; removing a member moves only
  that member's connections.
- mask-payload zeroes what follows the TCP/UDP header (sliced too), while a tool
  beside it still gets the original bytes.
- The same feed over UDP (VXLAN) gives a VXLAN tool what the filter selects.
"""
import collections
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import flows  # noqa: E402
import harness as h  # noqa: E402
import pcapfile  # noqa: E402


def expect_sliced(recs, n):
    return [(t, min(c, n), o, bytes(d[:n])) for t, c, o, d in recs]


def same(got, want, what):
    diff = pcapfile.compare([(t, c, o, bytes(d)) for t, c, o, d in got],
                            [(t, c, o, bytes(d)) for t, c, o, d in want])
    h.check(diff is None, f"{what}: {diff}")


def complement(allrecs, selected):
    out, j = [], 0
    for r in allrecs:
        if j < len(selected) and r[0] == selected[j][0] and bytes(r[3]) == bytes(selected[j][3]):
            j += 1
        else:
            out.append(r)
    h.check(j == len(selected), "selection is not a subsequence of the input")
    return out


def tools_and_slicing(d):
    src = h.gen(os.path.join(d, "mixed.pcap"), "--packets", 20000, "--flows", 500, "--nsec",
                "--seed", 5)
    conf = h.write_conf(os.path.join(d, "two.conf"), f"""
[tool web]
type = pcap
dir = {d}/web
filter = tcp port 443
rotate-size = 256K

[tool few]
type = pcap
dir = {d}/few
rotate-size = 256K
max-files = 3

[tool few-more]
type = pcap
dir = {d}/few
filter = tcp port 443
rotate-size = 256K

[tool small]
type = pcap
dir = {d}/small
filter = udp or icmp or icmp6
slice = 64

[tool notweb]
type = pcap
dir = {d}/notweb
filter = tcp port 443
action = drop
slice = 200
""")
    h.broker_read(conf, src, "--stats-file", os.path.join(d, "two.json"))
    web, names = h.pcap_dir(f"{d}/web")
    h.check(len(names) > 3, f"web should have rotated at 256K: {names}")
    same(web, h.tcpdump(src, "tcp port 443"), "tool web vs tcpdump 'tcp port 443'")
    fewdir = sorted(os.listdir(f"{d}/few"))
    few = [n for n in fewdir if n.startswith("few-2")]
    more = [n for n in fewdir if n.startswith("few-more-")]
    st = h.read_stats(os.path.join(d, "two.json"))
    h.check(len(few) == 3 and st["tools"]["few"]["files_deleted"] == st["tools"]["few"]["files"] - 3,
            f"max-files 3: {few}, counters {st['tools']['few']}")
    h.check(len(more) == len(fewdir) - 3 and len(more) > 3, f"another tool's files deleted: {fewdir}")
    print(f"max-files: 3 newest of {st['tools']['few']['files']} files kept; the other tool's "
          f"{len(more)} files in the same directory untouched")
    ts = [r[0] for r in web]
    h.check(ts == sorted(ts), "files sorted by name are not in time order")
    small, _ = h.pcap_dir(f"{d}/small")
    same(small, expect_sliced(h.tcpdump(src, "udp or icmp or icmp6"), 64), "tool small (slice 64)")
    notweb, _ = h.pcap_dir(f"{d}/notweb")
    # action = drop sends the complement of the selection - also frames too
    # short for the filter to read, which tcpdump's 'not (...)' would reject.
    same(notweb, expect_sliced(complement(pcapfile.read_pcap(src)[1], web), 200),
         "tool notweb (drop)")
    st = h.read_stats(os.path.join(d, "two.json"))
    h.check(st["tools"]["web"]["matched"] == len(web) == st["tools"]["web"]["sent"],
            f"web counters: {st['tools']['web']}")
    h.check(st["tools"]["small"]["sliced"] == sum(1 for r in small if r[2] > 64),
            f"small sliced counter: {st['tools']['small']}")
    h.check(st["tools"]["notweb"]["in"] == 20000, "every packet is offered to every tool")
    print(f"tools: web {len(web)} (in {len(names)} files), small {len(small)} sliced to 64, "
          f"notweb {len(notweb)}: each equal to tcpdump's selection")


def group_conf(d, name, members):
    text = ""
    for m in members:
        text += f"[tool {m}]\ntype = pcap\ndir = {d}/{name}/{m}\n\n"
    text += f"[group lb]\nfilter = tcp or udp\nmembers = {', '.join(members)}\n"
    return h.write_conf(os.path.join(d, f"{name}.conf"), text)


def member_flows(d, name, members):
    out = {}
    for m in members:
        recs, _ = h.pcap_dir(f"{d}/{name}/{m}")
        out[m] = recs
    return out


def group_balance(d):
    src = h.gen(os.path.join(d, "clean.pcap"), "--packets", 30000, "--flows", 2000, "--nsec",
                "--mix", "clean", "--seed", 3)
    members = ["m0", "m1", "m2"]
    h.broker_read(group_conf(d, "g3", members), src, "--stats-file", os.path.join(d, "g3.json"))
    got = member_flows(d, "g3", members)
    want = h.tcpdump(src, "tcp or udp")
    total = sum(len(v) for v in got.values())
    h.check(total == len(want), f"group delivered {total} packets, tcpdump selects {len(want)}")
    owner = {}
    for m, recs in got.items():
        for r in recs:
            k = flows.conn_key(r[3])
            h.check(k is not None, "non-IP frame in the clean mix")
            if owner.setdefault(k, m) != m:
                h.fail(f"connection {k} split between {owner[k]} and {m}")
    even = total / 3
    split = {m: len(v) for m, v in got.items()}
    for m, n in split.items():
        h.check(abs(n - even) <= 0.10 * even, f"split {split} is not within 10% of even ({even:.0f})")
    union = collections.Counter(bytes(r[3]) for v in got.values() for r in v)
    h.check(union == collections.Counter(bytes(r[3]) for r in want), "members' union != selection")
    st = h.read_stats(os.path.join(d, "g3.json"))
    for m in members:
        h.check(st["tools"]["lb"]["members"][m]["sent"] == split[m], f"member counters: {st}")
    print(f"group of 3: {len(owner)} connections, none split; packets {split} "
          f"(even = {even:.0f})")
    # Remove m2: only m2's connections move.
    h.broker_read(group_conf(d, "g2", ["m0", "m1"]), src)
    got2 = member_flows(d, "g2", ["m0", "m1"])
    moved = kept = 0
    for m, recs in got2.items():
        for r in recs:
            k = flows.conn_key(r[3])
            if owner[k] == "m2":
                moved += 1
            elif owner[k] != m:
                h.fail(f"connection {k} moved from {owner[k]} to {m} though {owner[k]} stayed")
            else:
                kept += 1
    h.check(moved == split["m2"], f"{moved} packets moved, m2 had {split['m2']}")
    print(f"member m2 removed: its {moved} packets moved to m0/m1, the other {kept} stayed put")


def payload_offset(f):
    """Where the TCP/UDP payload starts in an untagged IPv4/IPv6 frame."""
    et = int.from_bytes(f[12:14], "big")
    if et == 0x0800:
        l4, proto = 14 + (f[14] & 15) * 4, f[23]
    elif et == 0x86DD:
        l4, proto = 54, f[20]
    else:
        return None
    if proto == 6:
        return l4 + (f[l4 + 12] >> 4) * 4
    return l4 + 8 if proto == 17 else None


def masking(d):
    src = os.path.join(d, "clean.pcap")  # made by group_balance
    conf = h.write_conf(os.path.join(d, "mask.conf"), f"""
[tool masked]
type = pcap
dir = {d}/masked
filter = tcp or udp
mask-payload = yes
slice = 200
[tool clear]
type = pcap
dir = {d}/clear
filter = tcp or udp
""")
    h.broker_read(conf, src)
    masked, _ = h.pcap_dir(f"{d}/masked")
    clear, _ = h.pcap_dir(f"{d}/clear")
    same(clear, h.tcpdump(src, "tcp or udp"), "the tool beside the masking one sees original bytes")
    h.check(len(masked) == len(clear), "masked tool count")
    nonzero = 0
    for m, c in zip(masked, clear):
        mf, cf = bytes(m[3]), bytes(c[3])
        off = payload_offset(cf)
        h.check(off is not None, "clean mix frame without TCP/UDP")
        h.check(mf[:off] == cf[:min(off, 200)] and mf[off:] == bytes(len(mf) - min(off, len(mf))),
                f"masking wrong at ts {m[0]}")
        h.check(m[1] == min(c[1], 200) and m[2] == c[2], "masked frames are sliced to 200")
        nonzero += any(cf[off:200])
    h.check(nonzero > 1000, f"too few frames had payload to mask: {nonzero}")
    print(f"mask-payload: {len(masked)} frames with headers intact and payload zeroed "
          f"({nonzero} had payload bytes); the other tool got them unmasked")


def udp_feed(d):
    """Live VXLAN feed in, VXLAN out to a UDP socket, with a filter."""
    src = h.gen(os.path.join(d, "feed.pcap"), "--packets", 3000, "--flows", 100, "--nsec",
                "--mix", "clean", "--seed", 9)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    port = rx.getsockname()[1]
    conf = h.write_conf(os.path.join(d, "udp.conf"), f"""
[tool ids]
type = vxlan
dest = 127.0.0.1:{port}
vni = 4242
filter = tcp port 443
""")
    b = h.Broker(conf, d)
    try:
        sent = h.vxsend(src, b.port, "--rate", 20000)
        h.check(b.wait_rx(int(sent["sent"])), f"broker saw {b.stats()}")
        got = []
        while True:
            try:
                got.append(rx.recv(65536))
            except socket.timeout:
                break
    finally:
        b.stop()
    want = [bytes(r[3]) for r in h.tcpdump(src, "tcp port 443")]
    h.check(all(g[:8] == bytes([8, 0, 0, 0, 0, 0x10, 0x92, 0]) for g in got),
            "VXLAN header with I flag and VNI 4242 expected")
    h.check([g[8:] for g in got] == want, f"VXLAN tool got {len(got)} frames, filter selects {len(want)}")
    st = b.stats()
    h.check(st["tools"]["ids"]["sent"] == len(want), f"counters: {st['tools']['ids']}")
    print(f"udp feed: {sent['sent']} VXLAN messages in, {len(got)} re-encapsulated with VNI 4242 out")


def main():
    h.init()
    d = h.tmpdir()
    tools_and_slicing(d)
    group_balance(d)
    masking(d)
    udp_feed(d)


if __name__ == "__main__":
    main()
