#!/usr/bin/env python3
"""Damaged segment indexes never give a silent wrong answer.

An imported store of many segments; in seven of them one thing of the index
is changed so that the file still looks well formed: a packet's time, a
flow's key, a posting-list entry, a host entry, a time block, a flow's packet
count, and the header's time range. Before checksums each gave an answer
that was wrong with exit 0, before and after a restart.

- `mscope-recorder search` (standalone) for several expressions and time
  ranges gives exactly `tcpdump -r` of the input. A search checks only the
  index chunks it reads: each damaged index it reads from is counted on
  stderr ("N segment indexes failed their checksums ... scanned instead")
  and written back rebuilt, so the next search is quiet and gives the same;
  over the queries every kind of damage is found.
- A recorder daemon started on the damaged store rebuilds the index whose
  header fails at once (logged); distributed searches through a coordinator
  (`mscope search`) give the oracle's answer and name what they found in
  their warning.
"""
import glob
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
import pcapfile  # noqa: E402
from cluster import Coordinator  # noqa: E402

# segindex.h: segidx_hdr, then the sections. Keep in step with the C struct
# (the test fails loudly when the version moves).
HDR = struct.Struct("<8sIIQQqq5Q7QQQII")
FLOW = 96        # segidx_flow: flowkey_t (64) + first/last (16) + bytes (8) + packets, post_start
HOST = 20        # addr[16] + flow
BLOCK = 16
FK_IPV4 = 4  # flowkey.h


def header(data):
    f = HDR.unpack_from(data)
    names = ["magic", "version", "flags", "seq", "pcap_bytes", "min_ts", "max_ts",
             "npkts", "nflows", "nhosts", "nports", "nblocks",
             "off_ts", "off_off", "off_flows", "off_posts", "off_hosts", "off_ports", "off_blocks",
             "off_crcs", "total_size"]
    return dict(zip(names, f[:len(names)]))


def first_plain_flow(data, hd):
    """The first IPv4 flow (odd flows come first; kind 4 = FK_IPV4)."""
    for i in range(hd["nflows"]):
        if data[hd["off_flows"] + i * FLOW + 56] == FK_IPV4:  # flowkey_t.kind
            return i
    h.fail("no IPv4 flow in the index")


def v4(addr16):
    return ".".join(str(b) for b in addr16[12:16])


def damage(path, what):
    """Change one thing of the index at path, keeping every bound valid.
    Returns the IPv4 host whose packets the change hides from an unchecked
    search (a query for it must still find them all), or None."""
    data = bytearray(open(path, "rb").read())
    hd = header(data)
    h.check(hd["version"] == 3 and hd["total_size"] == len(data), f"{path}: unexpected header {hd}")
    hidden = None
    if what == "time":          # packet 10 moves to the epoch
        struct.pack_into("<q", data, hd["off_ts"] + 8 * 10, 0)
    elif what == "flow key":    # a flow's source address changes
        o = hd["off_flows"] + first_plain_flow(data, hd) * FLOW
        hidden = v4(data[o:o + 16])
        data[o + 15] ^= 0x40
    elif what == "posting":     # a posting-list entry names another packet
        o = hd["off_posts"] + 4 * (hd["npkts"] // 2)
        v, = struct.unpack_from("<I", data, o)
        struct.pack_into("<I", data, o, (v + 1) % hd["npkts"])
    elif what == "host":        # an IPv4 host entry names another flow
        for i in range(hd["nhosts"] // 2, hd["nhosts"]):
            o = hd["off_hosts"] + HOST * i
            if data[o + 10:o + 12] == b"\xff\xff":
                hidden = v4(data[o:o + 16])
                f, = struct.unpack_from("<I", data, o + 16)
                struct.pack_into("<I", data, o + 16, (f + 1) % hd["nflows"])
                break
    elif what == "block":       # a time block claims to end before it starts
        struct.pack_into("<q", data, hd["off_blocks"] + 8, 1)
    elif what == "count":       # a flow loses its last packet
        o = hd["off_flows"] + first_plain_flow(data, hd) * FLOW
        hidden = v4(data[o:o + 16])
        n, = struct.unpack_from("<I", data, o + 88)
        struct.pack_into("<I", data, o + 88, n - 1)
    elif what == "header":      # the segment's time range shrinks to nothing
        struct.pack_into("<q", data, 32, hd["max_ts"])  # min_ts
    open(path, "wb").write(data)
    return hidden


KINDS = ["time", "flow key", "posting", "host", "block", "count", "header"]


def search(store, expr, t_from, t_to):
    cmd = [h.RECORDER, "search", "--data-dir", store, "-w", "-", "--from", h.ns_str(t_from),
           "--to", h.ns_str(t_to)] + ([expr] if expr else [])
    p = h.run(cmd)
    return pcapfile.read_pcap(p.stdout)[1], p.stderr.decode(errors="replace")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 40000, "--flows", 400, "--seed", 21)
    store = os.path.join(d, "store")
    h.import_file(store, src, "--segment-size", "1M")
    idx = sorted(glob.glob(os.path.join(store, "seg-*.idx")))
    h.check(len(idx) >= 12, f"only {len(idx)} segments")
    want_all = h.tcpdump(src, "")
    t0, t1 = want_all[0][0], want_all[-1][0] + 1
    mid0, mid1 = t0 + (t1 - t0) // 4, t0 + (t1 - t0) * 3 // 4
    # One kind of damage per segment, spread over the store.
    victims = {idx[1 + i * (len(idx) - 2) // len(KINDS)]: k for i, k in enumerate(KINDS)}
    h.check(len(victims) == len(KINDS), "victims overlap")
    pristine = os.path.join(d, "pristine")
    os.makedirs(pristine)
    for p in victims:
        shutil.copy(p, pristine)

    def damage_all():
        hidden, damaged = set(), {}
        for p, k in victims.items():
            shutil.copy(os.path.join(pristine, os.path.basename(p)), p)
            hidden.add(damage(p, k))
            damaged[p] = open(p, "rb").read()
        return sorted(hidden - {None}), damaged

    def found(damaged):
        """The damaged indexes a search found (it writes them back rebuilt)."""
        return {victims[p] for p, data in damaged.items() if open(p, "rb").read() != data}

    hidden, _ = damage_all()
    h.check(len(hidden) >= 2, f"hosts hidden by the damage: {hidden}")
    host = hidden[0]
    cases = [("", t0, t1), ("tcp", mid0, mid1), (f"not host {host}", t0, t1),
             ("udp or port 80", mid0, mid1), ("", mid0, mid1)]
    cases += [(f"host {x}", t0, t1) for x in hidden]
    seen = set()
    for expr, a, b in cases:
        want = h.window(h.tcpdump(src, expr), a, b)
        h.check(len(want) > 0, f"oracle empty for {expr!r}")
        _, damaged = damage_all()
        got, err = search(store, expr, a, b)
        h.check(got == want, f"{expr!r} [{a},{b}) over damaged indexes: {len(got)} packets, "
                f"tcpdump {len(want)}")
        # A search reads (and checks) only the index chunks it needs; what it
        # found damaged it says, and rewrites.
        hit = found(damaged)
        seen |= hit
        n = len(hit)
        if n:
            h.check(f"{n} segment index{'es' if n > 1 else ''} failed" in err,
                    f"{expr!r}: {sorted(hit)} damaged, stderr: {err}")
        else:
            h.check("checksum" not in err, f"{expr!r}: a warning without damage found: {err}")
        # Rewritten: the next search trusts them again, quietly, same answer.
        got2, err2 = search(store, expr, a, b)
        h.check(got2 == want and "checksum" not in err2, f"second search: {len(got2)} {err2}")
    h.check(seen == set(KINDS), f"damage never found: {set(KINDS) - seen}")
    print(f"standalone: {len(cases)} searches over {len(idx)} segments, 7 damaged: equal tcpdump")

    # A daemon on the damaged store, searched through a coordinator.
    _, damaged = damage_all()
    co = Coordinator(d)
    search_port = h.free_tcp_port()
    rec = h.Daemon(store, "--node-id", "rec-x", *co.enroll(store, "rec-x"),
                   "--search", f"tcp://127.0.0.1:{search_port}")
    h.check("header fails its checksum: rebuilding it" in rec.log_text(),
            f"the header damage was not found at start:\n{rec.log_text()}")
    h.check(found(damaged) == {"header"}, f"rebuilt at start: {found(damaged)}")
    h.check(h.wait_for(lambda: b"rec-x" in h.run(co.cli("nodes"), check_rc=False).stdout, 20),
            "recorder never registered")
    out = os.path.join(d, "dist.pcap")
    for expr in ("", f"host {host}"):
        want = h.tcpdump(src, expr)
        _, damaged = damage_all()
        p = h.run(co.cli("search", "--from", h.ns_str(t0), "--to", h.ns_str(t1), "-w", out,
                         *([expr] if expr else [])))
        err = p.stderr.decode(errors="replace")
        got = pcapfile.read_pcap(out)[1]
        h.check(got == want, f"mscope search {expr!r} over damaged indexes: {len(got)} packets, "
                f"tcpdump {len(want)}")
        n = len(found(damaged))
        h.check(n >= 1 and f"rec-x: {n} segment index{'es' if n > 1 else ''} failed" in err,
                f"{expr!r}: {n} found, stderr: {err}")
        ok, cerr = h.capinfos_ok(out)
        h.check(ok, f"capinfos: {cerr}")
        p = h.run(co.cli("search", "--from", h.ns_str(t0), "--to", h.ns_str(t1), "-w", out,
                         *([expr] if expr else [])))
        h.check(pcapfile.read_pcap(out)[1] == want and b"checksum" not in p.stderr,
                f"second distributed search {expr!r} differs or still warns")
    rec.stop()
    co.stop()
    print("daemon: header damage rebuilt at start, 6 others found by the search and said so")


if __name__ == "__main__":
    main()
