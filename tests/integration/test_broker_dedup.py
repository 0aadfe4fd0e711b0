#!/usr/bin/env python3
"""Broker deduplication and VLAN stripping.

Every packet of a capture is duplicated at a small offset (2-300 us later) as
the other end of the connection would have mirrored it: other MAC addresses,
TTL one lower, another IP checksum, and for every other packet an 802.1Q tag.
With dedup on, a pcap-file tool gets the original capture back exactly; every
duplicate is counted (globally and per tool). With dedup off it gets both.
With strip-vlan on, every frame arrives untagged. And decoys: before each of
a set of packets a different one that an unkeyed hash of the kind the broker
used would name the same half of the time (see decoy_of); with dedup on,
every packet, decoy or not, must reach the tool.
"""
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402


def copy_of(data, tag):
    d = bytearray(data)
    d[0:6], d[6:12] = b"\x02\xaa\xbb\xcc\xdd\x01", b"\x02\xaa\xbb\xcc\xdd\x02"
    et = struct.unpack("!H", d[12:14])[0]
    if et == 0x0800:
        d[14 + 8] = (d[14 + 8] - 1) & 0xFF     # TTL
        d[14 + 10] ^= 0x5A                      # header checksum
    elif et == 0x86DD:
        d[14 + 7] = (d[14 + 7] - 1) & 0xFF     # hop limit
    if tag:
        d = d[:12] + b"\x81\x00\x00\x2a" + d[12:]
    return bytes(d)


# hash_bytes's constants (common/hash.c): the decoys below are built against it.
P1, P2 = 0x9e3779b185ebca87, 0xc2b2ae3d27d4eb4f
DECOY_FIX = (-(1 << 30) * P1 * pow(P2, -1, 1 << 64)) % (1 << 64)


def decoy_of(data):
    """Another packet that hash_bytes names like data for half of all seeds:
    the top bit of the transport bytes' third 64-bit word flipped and their
    fifth word (the next one of that lane) corrected for it (tests/unit/
    test_dedup.c explains why), counted from the IP header's 20th byte, where
    that hash of the packet's body began (options or not). None when data is
    not an untagged IPv4 frame with 48 bytes after that."""
    if data[12:14] != b"\x08\x00":
        return None
    l4 = 14 + 20
    if len(data) < l4 + 48 or struct.unpack("!H", data[16:18])[0] < 20 + 48:
        return None
    d = bytearray(data)
    d[l4 + 23] ^= 0x80
    w = struct.unpack_from("<Q", d, l4 + 32)[0]
    struct.pack_into("<Q", d, l4 + 32, (w + DECOY_FIX) % (1 << 64))
    return bytes(d)


def untag(data):
    d = bytes(data)
    while len(d) >= 18 and d[12:14] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
        d = d[:12] + d[16:]
    return d


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "orig.pcap"), "--packets", 8000, "--flows", 300, "--nsec",
                "--mix", "clean", "--seed", 11)
    orig = pcapfile.read_pcap(src)[1]
    rnd = random.Random(7)
    dup = []
    for i, (ts, cap, olen, data) in enumerate(orig):
        c = copy_of(data, i % 2 == 0)
        extra = len(c) - len(data)
        dup.append((ts, 0, i, (ts, cap, olen, bytes(data))))
        dup.append((ts + rnd.randint(2000, 300000), 1, i, (ts, cap + extra, olen + extra, c)))
    dup.sort(key=lambda x: (x[0], x[1], x[2]))
    dup_recs = [(t, r[1], r[2], r[3]) for t, _, _, r in dup]
    dpath = os.path.join(d, "dup.pcap")
    pcapfile.write_pcap(dpath, dup_recs)

    def run(name, globals_, pcap):
        conf = h.write_conf(os.path.join(d, f"{name}.conf"), f"""{globals_}
[tool all]
type = pcap
dir = {d}/{name}
[tool tcp]
type = pcap
dir = {d}/{name}-tcp
filter = tcp
""")
        stats = os.path.join(d, f"{name}.json")
        h.broker_read(conf, pcap, "--stats-file", stats)
        return h.pcap_dir(f"{d}/{name}")[0], h.read_stats(stats)

    # No false positives: the original capture through dedup is unchanged.
    got, st = run("clean", "dedup = yes\ndedup-window = 1ms", src)
    h.check(pcapfile.compare(got, orig) is None and st["deduplicated"] == 0,
            f"dedup changed a capture without duplicates: {st['deduplicated']} dropped")
    got, st = run("dedup", "dedup = yes\ndedup-window = 1ms", dpath)
    diff = pcapfile.compare(got, orig)
    h.check(diff is None, f"deduplicated output is not the original: {diff}")
    h.check(st["deduplicated"] == len(orig), f"deduplicated {st['deduplicated']} != {len(orig)}")
    h.check(st["tools"]["all"]["deduplicated"] == len(orig), f"per-tool counter: {st['tools']['all']}")
    # Per tool: the duplicates its filter would have selected (a VLAN-tagged
    # copy is not 'tcp' to BPF, so tcpdump over the duplicated file counts them).
    ntcp = len(h.tcpdump(src, "tcp"))
    ndup_tcp = len(h.tcpdump(dpath, "tcp")) - ntcp
    h.check(st["tools"]["tcp"]["deduplicated"] == ndup_tcp and st["tools"]["tcp"]["sent"] == ntcp,
            f"tcp tool: {st['tools']['tcp']}, want {ndup_tcp} deduplicated and {ntcp} sent")
    print(f"dedup: {len(dup_recs)} packets (each twice, 2-300 us apart) -> the {len(orig)} "
          f"originals, {st['deduplicated']} duplicates counted")
    # Decoys: each sent 50 us before its packet; both must go through.
    pairs = []
    for ts, cap, olen, data in orig:
        dcy = decoy_of(bytes(data))
        if dcy and len(pairs) < 2000:
            pairs += [(ts - 50000, cap, olen, dcy), (ts, cap, olen, bytes(data))]
    pairs.sort(key=lambda r: r[0])
    ppath = os.path.join(d, "decoys.pcap")
    pcapfile.write_pcap(ppath, pairs)
    got, st = run("decoys", "dedup = yes\ndedup-window = 1ms", ppath)
    h.check(len(pairs) >= 1000, f"only {len(pairs)} decoys and packets")
    h.check(pcapfile.compare(got, pairs) is None and st["deduplicated"] == 0,
            f"dedup dropped {st['deduplicated']} packets that only a decoy sent before looked like")
    print(f"decoys: {len(pairs) // 2} packets, each after a decoy an unkeyed hash names like it half "
          f"the time: all {len(pairs)} reach the tool")
    # Dedup off (the default): every copy goes through.
    got, st = run("nodedup", "", dpath)
    h.check(len(got) == len(dup_recs) and st["deduplicated"] == 0 and not st["dedup"],
            f"dedup must be off by default: {len(got)} of {len(dup_recs)}")
    # A window shorter than the offsets keeps the later copies.
    got, st = run("short", "dedup = yes\ndedup-window = 1us", dpath)
    h.check(st["deduplicated"] == 0, "copies 2-300 us apart are not duplicates within 1 us")
    # VLAN stripping.
    got, st = run("strip", "strip-vlan = yes", dpath)
    want = [untag(r[3]) for r in dup_recs]
    h.check([bytes(r[3]) for r in got] == want, "strip-vlan: frames differ from the untagged input")
    tagged = sum(1 for r in dup_recs if bytes(r[3][12:14]) == b"\x81\x00")
    h.check(st["vlan_stripped"] == tagged, f"vlan_stripped {st['vlan_stripped']} != {tagged}")
    h.check(all(r[2] >= r[1] for r in got), "origlen below caplen after stripping")
    print(f"strip-vlan: {tagged} tagged frames untagged; dedup off by default keeps all "
          f"{len(dup_recs)}")


if __name__ == "__main__":
    main()
