#!/usr/bin/python3
"""mkcorpus.py - make the seed corpora of tests/fuzz/corpus/ from real data.

    python3 tests/fuzz/mkcorpus.py BUILD_DIR [TARGET...]

BUILD_DIR holds pcapgen (tests/tools) and mscope-recorder. Seeds come from
the captures in tests/data, from pcapgen (deterministic: same options, same
bytes), from segments and indexes that `mscope-recorder --read` writes, from
deploy/examples and the recorder's --help, and from the messages a recorder
publishes on the bus. Each target's directory is replaced; files are named by
content (sha1), as libFuzzer names what it adds. The seeds are committed: run
this again only when a format changes. Inputs that once crashed a target
("crash-WHAT") or that show a case worth keeping are kept in the same
directories under names that are not a sha1, and are not touched here.
"""
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
DATA = os.path.join(ROOT, "tests", "data")


def read_pcap(path):
    """(header bytes, [(rec_header, frame)]) of a classic pcap file, any order."""
    with open(path, "rb") as f:
        raw = f.read()
    magic = raw[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, recs = 24, []
    while off + 16 <= len(raw):
        _, _, caplen, _ = struct.unpack(endian + "IIII", raw[off:off + 16])
        recs.append((raw[off:off + 16], raw[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return raw[:24], recs


def write_pcap(path, header, recs):
    with open(path, "wb") as f:
        f.write(header)
        for h, d in recs:
            f.write(h + d)


def frame_kind(d):
    """A coarse class of a frame, to keep one of each: ethertypes, IP version,
    protocol, fragment and extension-header bits, sliced or whole."""
    if len(d) < 14:
        return ("short", len(d))
    et, off, tags = struct.unpack(">H", d[12:14])[0], 14, 0
    while et in (0x8100, 0x88A8, 0x9100) and off + 4 <= len(d):
        et, off, tags = struct.unpack(">H", d[off + 2:off + 4])[0], off + 4, tags + 1
    k = [et, tags]
    if et == 0x0800 and off + 20 <= len(d):
        ihl = (d[off] & 15) * 4
        frag = struct.unpack(">H", d[off + 6:off + 8])[0]
        k += [d[off] >> 4, ihl > 20, d[off + 9], bool(frag & 0x3FFF), bool(frag & 0x1FFF)]
        tl = struct.unpack(">H", d[off + 2:off + 4])[0]
        k.append(off + tl > len(d))
    elif et == 0x86DD and off + 40 <= len(d):
        k += [d[off] >> 4, d[off + 6]]
        pl = struct.unpack(">H", d[off + 4:off + 6])[0]
        k.append(off + 40 + pl > len(d))
    return tuple(k)


class Corpus:
    def __init__(self, name):
        self.dir = os.path.join(CORPUS, name)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            if re.fullmatch(r"[0-9a-f]{40}", f):
                os.unlink(os.path.join(self.dir, f))
        self.n = self.bytes = 0

    def add(self, data):
        if isinstance(data, str):
            data = data.encode()
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.n += 1
            self.bytes += len(data)

    def done(self):
        print("%-14s %4d files %8d bytes" % (os.path.basename(self.dir), self.n, self.bytes))


def pcapgen(build, out, *args):
    subprocess.run([os.path.join(build, "tests", "tools", "pcapgen"), "-w", out] + list(args),
                   check=True, stderr=subprocess.DEVNULL)


def recorder(build):
    return os.path.join(build, "mscope-recorder")


def distinct(recs, limit, key=frame_kind):
    seen, out = set(), []
    for _, d in recs:
        k = key(d)
        if k not in seen and len(out) < limit:
            seen.add(k)
            out.append(d)
    return out


def seeds_decode(build, tmp):
    c = Corpus("decode")
    # Real Linux TCP (handshake with options, data, FIN): the first packets.
    for _, d in read_pcap(os.path.join(DATA, "tcp_clean.pcap"))[1][:4]:
        c.add(d)
    # pcapgen's awkward cases: tags, options, fragments, extension headers,
    # ARP, malformed and sliced frames; one of each kind.
    pcapgen(build, tmp + "/d.pcap", "--packets", "4000", "--seed", "11")
    for d in distinct(read_pcap(tmp + "/d.pcap")[1], 48):
        c.add(d)
    # Outer VXLAN frames, some undecapsulatable; and the UDP payload alone,
    # as the VXLAN listener receives it (from byte 42 on: Ethernet/IPv4/UDP).
    pcapgen(build, tmp + "/v.pcap", "--packets", "400", "--seed", "12", "--vxlan",
            "--bad-vxlan", "20")
    vx = read_pcap(tmp + "/v.pcap")[1]
    for d in distinct(vx, 12, key=lambda d: (d[23], d[36:38], d[42] & 8, frame_kind(d[50:]))):
        c.add(d)
        c.add(d[42:])
    c.done()


def seeds_pcap(build, tmp):
    c = Corpus("pcap")
    hdr, recs = read_pcap(os.path.join(DATA, "tcp_clean.pcap"))
    write_pcap(tmp + "/a.pcap", hdr, recs[:10])
    pcapgen(build, tmp + "/u.pcap", "--packets", "24", "--seed", "21")           # microseconds
    pcapgen(build, tmp + "/n.pcap", "--packets", "24", "--seed", "22", "--nsec")  # nanoseconds
    pcapgen(build, tmp + "/v.pcap", "--packets", "24", "--seed", "23", "--nsec", "--vxlan",
            "--bad-vxlan", "10")
    for f in ("a", "u", "n", "v"):
        with open("%s/%s.pcap" % (tmp, f), "rb") as fh:
            c.add(fh.read())
    # Big-endian: the same records with every header field swapped.
    hdr, recs = read_pcap(tmp + "/u.pcap")
    be = struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", hdr))
    c.add(be + b"".join(struct.pack(">IIII", *struct.unpack("<IIII", h)) + d for h, d in recs))
    # pcapng, as Wireshark and dumpcap write it.
    for f in ("a", "v"):
        subprocess.run(["editcap", "-F", "pcapng", "%s/%s.pcap" % (tmp, f), "%s/%s.pcapng" % (tmp, f)],
                       check=True)
        with open("%s/%s.pcapng" % (tmp, f), "rb") as fh:
            c.add(fh.read())
    # A segment as the recorder writes it (nanoseconds, native order), cut
    # inside its last record as a crash leaves it.
    subprocess.run([recorder(build), "--data-dir", tmp + "/seg", "--read", tmp + "/n.pcap",
                    "--log-level", "error"], check=True)
    with open(tmp + "/seg/seg-000000000001.pcap", "rb") as fh:
        seg = fh.read()
    c.add(seg)
    c.add(seg[:-7])
    c.done()


def seeds_segindex(build, tmp):
    """An input is a segment's index followed by its pcap file."""
    c = Corpus("segindex")
    hdr, recs = read_pcap(os.path.join(DATA, "tcp_short_conns.pcap"))
    write_pcap(tmp + "/s.pcap", hdr, recs[:40])
    pcapgen(build, tmp + "/g.pcap", "--packets", "40", "--flows", "10", "--nsec", "--seed", "31")
    pcapgen(build, tmp + "/c.pcap", "--packets", "30", "--flows", "30", "--nsec", "--seed", "32",
            "--mix", "clean")
    pcapgen(build, tmp + "/v.pcap", "--packets", "30", "--flows", "8", "--nsec", "--seed", "33",
            "--vxlan")
    for name, extra in (("s", []), ("g", []), ("c", []), ("v", ["--decap", "vxlan"])):
        d = "%s/idx-%s" % (tmp, name)
        subprocess.run([recorder(build), "--data-dir", d, "--read", "%s/%s.pcap" % (tmp, name),
                        "--log-level", "error"] + extra, check=True)
        with open(d + "/seg-000000000001.idx", "rb") as f:
            idx = f.read()
        with open(d + "/seg-000000000001.pcap", "rb") as f:
            seg = f.read()
        c.add(idx + seg)
    c.done()


def seeds_catalog(build, tmp):
    """An input is a u32 length, a catalog, then its summary file."""
    c = Corpus("catalog")
    for name, args in (("k1", ["--mix", "clean", "--flows", "20"]), ("k2", ["--flows", "50"]),
                       ("k3", ["--mix", "clean", "--flows", "400"])):
        pcapgen(build, "%s/%s.pcap" % (tmp, name), "--packets", "3000", "--nsec", "--seed", "41",
                *args)
        d = "%s/cat-%s" % (tmp, name)
        subprocess.run([recorder(build), "--data-dir", d, "--read", "%s/%s.pcap" % (tmp, name),
                        "--segment-size", "64K", "--log-level", "error"], check=True)
        with open(d + "/catalog", "rb") as f:
            cat = f.read()
        gen = struct.unpack("<Q", cat[24:32])[0]
        with open("%s/catalog.sum.%d" % (d, gen), "rb") as f:
            summ = f.read()
        c.add(struct.pack("<I", len(cat)) + cat + summ)
        c.add(struct.pack("<I", len(cat)) + cat + summ[:len(summ) // 2])
    c.done()


EXPRS = [
    "host 10.0.1.1", "src host 10.0.1.1", "dst net 192.168.0.0/16", "net 10.0.0.0 mask 255.255.0.0",
    "ip6 net 2001:db8::/48", "host 2001:db8::2 and udp", "port 443", "tcp dst port 443",
    "udp port 53 or tcp port 53", "portrange 5000-6000", "src or dst host 10.0.2.2",
    "src and dst net 10.0.0.0/16", "host 10.0.1.1 or 10.0.3.3", "host 10.0.1.1 and not 10.0.2.2",
    "not (host 10.0.1.1 or port 53)", "port 53 or port 443 and host 10.0.1.1",
    "tcp and not port 443", "icmp or icmp6", "ip proto 47", "proto 6", "ip and not tcp", "not ip6",
    "vlan and host 10.0.1.1", "vlan 100 and host 10.0.1.1", "vlan and vlan and udp",
    "host 10.0.1.1 or vlan and ip6", "mpls or host 10.0.1.1", "arp or host 10.0.1.1",
    "sctp or host 10.9.9.9", "tcp[13] & 2 != 0", "(tcp[13] & 2) != 0 and host 10.0.1.1",
    "len > 100", "greater 40 and port 53", "ether host 00:00:00:00:00:01 or port 53",
    "host (10.0.0.1 or 10.0.0.2)", "not not host 10.0.1.1", "tcp port 80 or 443",
    "dst port 443 and (src net 10.0.0.0/8 or src net 172.16.0.0/12)",
    "ip host 10.0.1.1 and tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "net 10.0.3.0/24 and not port 22", "udp portrange 1-1023 or icmp6 and ip6 host ::1",
]


def seeds_exprscan(build, tmp):
    c = Corpus("exprscan")
    for e in EXPRS:
        c.add(e)
    c.done()


def seeds_exprscan_bpf(build, tmp):
    """An expression, then optionally NUL and packet descriptions (see the target)."""
    c = Corpus("exprscan_bpf")
    for i, e in enumerate(EXPRS):
        c.add(e)
        c.add(e.encode() + b"\0" + bytes((i * 7 + k) & 0xFF for k in range(24)))
    c.done()


def seeds_config(build, tmp):
    """Recorder configuration files: every option with its default, as --help
    prints them, and a few hand-written ones in the README's style."""
    c = Corpus("config")
    out = subprocess.run([recorder(build), "--help"], capture_output=True, text=True).stdout
    lines = []
    for m in re.finditer(r"^\s+(?:-\w, )?--([\w-]+)(?: (\S+))?.*?(?:\(default: ([^)]*)\))?$", out, re.M):
        name, meta, default = m.groups()
        if name in ("config", "help", "read"):
            continue
        if default is not None:
            lines.append("%s = %s" % (name, default))
        elif meta is None:
            lines.append("%s = yes" % name)
    c.add("# every option at its default\n" + "\n".join(lines) + "\n")
    c.add("data-dir = /var/lib/mscope\nmax-disk = 500G   # the budget\nmin-free = 5%\n")
    c.add("data-dir=/srv/mscope\nsegment-size = 1G\nsegment-age = 90s\nflush-interval = 250ms\n"
          "rx-threads = 2\nrcvbuf = 256M\ninsecure = no\nflow-idle = 2m\nflow-grace = 500us\n")
    c.add("listen = [::]:4789\nvxlan-port = 0x12b5\nmax-flows = 1e6\nstats-interval = 1.5h\n")
    c.add("coordinator = tcp://10.0.0.9:5556\nbus-queue = 100000\nnode-id = rec-a\n"
          "no-analysis = off\ndrain-time = 0\n")
    c.done()


def seeds_brconfig(build, tmp):
    c = Corpus("brconfig")
    for f in sorted(os.listdir(os.path.join(ROOT, "deploy", "examples"))):
        with open(os.path.join(ROOT, "deploy", "examples", f), "rb") as fh:
            c.add(fh.read())
    c.add("[tool a]\ntype = udp\ndest = 127.0.0.1:9000\n[tool b]\ntype = gre\ndest = 10.0.0.2\n"
          "[group g]\nmembers = a, b\nfilter = tcp\naction = drop\nslice = 96\nmask-payload = yes\n")
    c.add("dedup = yes\nstrip-vlan = yes\n[tool i]\ntype = interface\ninterface = lo\n"
          "[tool p]\ntype = pcap\ndir = /tmp/x\nprefix = p.1\nrotate-size = 4K\nrotate-interval = 10s\n"
          "max-files = 3\n[tool v6]\ntype = vxlan\ndest = [::1]:4789\nvni = 16777215\n")
    c.done()


def seeds_bus(build, tmp):
    """FlowBatch and Heartbeat messages as a recorder publishes them: import
    captures with --coordinator pointing at a SUB socket here."""
    import zmq
    c = Corpus("bus")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    got = {}
    for i, f in enumerate(("tcp_short_conns.pcap", "tcp_loss5_reorder.pcap", "tcp_zerowin.pcap")):
        p = subprocess.Popen([recorder(build), "--read", os.path.join(DATA, f),
                              "--data-dir", "%s/bus%d" % (tmp, i), "--node-id", "rec-%d" % i,
                              "--coordinator", "tcp://127.0.0.1:%d" % port, "--insecure",
                              "--log-level", "error"])
        deadline = time.time() + 30
        while p.poll() is None or sub.poll(500):
            if sub.poll(200):
                topic, data = sub.recv_multipart()
                got.setdefault(topic, []).append(data)
            if time.time() > deadline:
                p.kill()
                break
    for topic, msgs in sorted(got.items()):
        for m in sorted(msgs, key=len)[:4]:
            if len(m) <= 4096:
                c.add(m)
                continue
            # A big batch: its header fields and its first records only.
            fields = pb_fields(m)
            for keep in (1, 4):
                c.add(b"".join(raw for num, raw in fields if num != 4) +
                      b"".join([raw for num, raw in fields if num == 4][:keep]))
    c.done()


def pb_varint(b, i):
    v = shift = 0
    while True:
        v |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return v, i


def pb_fields(b):
    """The top-level fields of a protobuf message: [(number, raw bytes)]."""
    out, i = [], 0
    while i < len(b):
        start = i
        key, i = pb_varint(b, i)
        wt = key & 7
        if wt == 0:
            _, i = pb_varint(b, i)
        elif wt == 1:
            i += 8
        elif wt == 2:
            n, i = pb_varint(b, i)
            i += n
        elif wt == 5:
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((key >> 3, b[start:i]))
    return out


def _app_packets(path):
    """The TCP and UDP packets of an IPv4 capture as (flow key, client side
    first?, dict): the fields fuzz_appana's input describes."""
    out = []
    for _, d in read_pcap(path)[1]:
        if len(d) < 34 or d[12:14] != b"\x08\x00":
            continue
        ihl = (d[14] & 15) * 4
        proto, l4 = d[23], 14 + ihl
        src, dst = d[26:30], d[30:34]
        total = struct.unpack(">H", d[16:18])[0]
        end = min(len(d), 14 + total)
        if proto == 6:
            sport, dport, seq = struct.unpack(">HHI", d[l4:l4 + 8])
            flags, doff = d[l4 + 13], (d[l4 + 12] >> 4) * 4
            payload = d[l4 + doff:end]
        elif proto == 17:
            sport, dport = struct.unpack(">HH", d[l4:l4 + 4])
            seq, flags, payload = 0, 0, d[l4 + 8:end]
        else:
            continue
        out.append(((src, sport), (dst, dport), proto, seq, flags, payload))
    return out


def seeds_appana(build, tmp):
    """The flows of apprig's captures (tests/data/app_*.pcap) in
    fuzz_appana's packet format (see the target): one seed per flow, the
    client the lower port's peer, the server port mapped onto the target's
    four. Then a few made by hand: DNS over TCP split in its length prefix,
    a ClientHello arriving after a later segment. A flow's seed stops after
    the packet that takes it past 16 KiB (the HTTP flows' bodies run to
    300 KB; the DNS and TLS flows are all shorter)."""
    c = Corpus("appana")
    ports = {53: 0, 443: 1, 8443: 1, 9443: 1, 8080: 2, 9080: 2, 5353: 3}

    def pkt(dir_, udp, flags, port, rel, payload, end=False):
        b0 = dir_ | (2 if udp else 0) | (4 if flags & 1 else 0) | (8 if flags & 4 else 0)
        b0 |= (16 if flags & 2 else 0) | (128 if end else 0)
        return struct.pack(">BBhH", b0, port, rel, len(payload)) + payload

    for name in ("app_dns.pcap", "app_tls.pcap", "app_tls_reorder.pcap", "app_http.pcap"):
        path = os.path.join(DATA, name)
        if not os.path.exists(path):
            continue
        flows = {}
        for a, b, proto, seq, flags, payload in _app_packets(path):
            server = b if b[1] in ports else a
            key = (proto, a, b) if server is b else (proto, b, a)
            flows.setdefault(key, []).append((a == server, proto, seq, flags, payload))
        for key, pkts in list(flows.items())[:40]:
            port = ports.get(key[2][1], 0)
            nxt, seed = {}, b""
            for dir_, proto, seq, flags, payload in pkts:
                if not payload and not flags & 7:
                    continue
                rel = (seq - nxt.get(dir_, seq)) & 0xffffffff if proto == 6 else 0
                rel = max(-32768, min(32767, rel if rel < 1 << 31 else rel - (1 << 32)))
                seed += pkt(int(dir_), proto == 17, flags, port, rel, payload[:65535])
                if proto == 6 and rel >= 0:
                    nxt[dir_] = seq + len(payload) + (1 if flags & 3 else 0)
                if len(seed) > 16384:
                    break
            if seed:
                c.add(seed)
    q = (struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03www\x07example\x04test\x00"
         + struct.pack(">HH", 1, 1))
    r = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 0)
    tcp_q = struct.pack(">H", len(q)) + q
    c.add(pkt(0, 0, 0, 0, 0, tcp_q[:1]) + pkt(0, 0, 0, 0, 0, tcp_q[1:])
          + pkt(1, 0, 0, 0, 0, struct.pack(">H", len(r)) + r) + pkt(0, 0, 1, 0, 0, b""))
    c.add(pkt(0, 1, 0, 0, 0, q) + pkt(1, 1, 0, 0, 0, r) + pkt(0, 1, 0, 3, 0, q, end=True))
    ch = (b"\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03" + b"r" * 32 + b"\x00\x00\x02\x13\x01"
          + b"\x01\x00\x00\x00")
    c.add(pkt(0, 0, 0, 1, 20, ch[20:]) + pkt(0, 0, 0, 1, 0, ch[:20]))
    c.done()


# ---- app_http: packets of both directions of a flow (fuzz_app_http.c's form)


def app_packets(packets, opts=4):
    """fuzz_app_http's input: an options byte, then per packet (dir, bytes,
    gap, fin, step) ctl, length and bytes."""
    out = bytearray([opts])
    for p in packets:
        d, data = p[0], p[1]
        gap, fin, step = (list(p[2:]) + [0, 0, 1])[:3]
        data = data.encode() if isinstance(data, str) else data
        ctl = d | (2 if gap else 0) | (4 if fin else 0) | (min(step, 15) << 3)
        if len(data) > 255:
            out += bytes([ctl | 0x80]) + struct.pack("<H", len(data))
        else:
            out += bytes([ctl, len(data)])
        out += data
    return bytes(out)


def tcp_flows(path):
    """The TCP payloads of an Ethernet/IPv4 capture per connection, in capture
    order, new bytes only (a retransmission's, or data out of order, is left
    out): {client->server key: [(dir, bytes, ns)]}; dir 0 is the sender of
    the connection's first payload."""
    _, recs = read_pcap(path)
    flows, nxt = {}, {}
    for h, d in recs:
        sec, frac = struct.unpack("<II", h[:8])
        if len(d) < 54 or d[12:14] != b"\x08\x00" or d[23] != 6:
            continue
        ihl = (d[14] & 15) * 4
        tl = struct.unpack(">H", d[16:18])[0]
        t = 14 + ihl
        sport, dport, seq = struct.unpack(">HHI", d[t:t + 8])
        off = (d[t + 12] >> 4) * 4
        payload = d[t + off:14 + tl]
        src, dst = (d[26:30], sport), (d[30:34], dport)
        key = (src, dst) if (src, dst) in flows else (dst, src) if (dst, src) in flows else None
        if not payload:
            continue
        if key is None:
            key = (src, dst)
            flows[key] = []
        end = (seq + len(payload)) & 0xFFFFFFFF
        if (src, dst) in nxt and seq != nxt[(src, dst)]:
            continue
        nxt[(src, dst)] = end
        flows[key].append((0 if (src, dst) == key else 1, payload, sec * 10**9 + frac))
    return flows


HTTP_EXCHANGES = [
    [(0, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), (1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
    [(0, "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"),
     (1, "HTTP/1.1 100 Continue\r\n\r\n"),
     (0, "5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
     (1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")],
    [(0, "GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
     (1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
         "HTTP/1.1 304 Not Modified\r\n\r\n")],
    [(0, "GET /old HTTP/1.0\r\n\r\n"), (1, "HTTP/1.0 200 OK\r\n\r\nuntil the close", 0, 1)],
    [(0, "DELETE /d HTTP/1.1\r\n\r\n"), (1, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")],
    [(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"), (0, "GET / HTTP/1.1\r\n\r\n")],
    [(0, "CONNECT h:443 HTTP/1.1\r\n\r\n\x16\x03\x01"), (1, "HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03")],
    [(0, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), (1, "HTTP/1.1 101 Switching\r\n\r\n\x81\x00")],
    [(0, "POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123"), (0, "GET /q HTTP/1.1\r\n\r\n", 1),
     (1, "HTTP/1.1 413 No\r\n\r\n"), (1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1)],
    [(0, "GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n\x00junk\nGET /y HTTP/1.1\r\n\r\n"),
     (1, "junk\r\nHTTP/1.1 2x0\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")],
    [(0, "GET /h HTTP/1.1\r\nCookie: " + "c" * 3000 + "\r\n\r\n"),
     (1, "HTTP/1.1 200 OK\r\nX: " + "v" * 2000 + "\r\nContent-Length: 0\r\n\r\n")],
]


def seeds_app_http(build, tmp):
    c = Corpus("app_http")
    for ex in HTTP_EXCHANGES:
        c.add(app_packets(ex))
        c.add(app_packets(ex, opts=1))
    # Real flows: those of the captures in tests/data that start with a
    # request (app_http.pcap's), each cut to 8 KiB.
    for path in [os.path.join(DATA, f) for f in sorted(os.listdir(DATA)) if f.endswith(".pcap")]:
        for segs in tcp_flows(path).values():
            if not re.match(rb"[A-Z]+ ", segs[0][1]):
                continue
            packets, total, t = [], 0, segs[0][2]
            for d, data, ns in segs:
                data = data[:8192 - total]
                if not data:
                    break
                packets.append((d, data, 0, 0, (ns - t) // 1000000))
                total += len(data)
                t = ns
            c.add(app_packets(packets))
    c.done()


def pb_enc(num, v):
    """One protobuf field: an int (varint; negative as int64 does), bytes or
    str (length-delimited), or a list of fields (a sub-message)."""
    def varint(x):
        x &= (1 << 64) - 1
        out = b""
        while True:
            out += bytes([(x & 0x7F) | (0x80 if x > 0x7F else 0)])
            x >>= 7
            if not x:
                return out
    if isinstance(v, bool) or isinstance(v, int):
        return varint(num << 3) + varint(int(v))
    if isinstance(v, list):
        v = b"".join(v)
    if isinstance(v, str):
        v = v.encode()
    return varint(num << 3 | 2) + varint(len(v)) + v


RPC_TOKEN = "fuzz-rpc-token-0123456789"  # tests/fuzz/fuzz_rpc.c's


def rpc_requests():
    """Requests of every kind, as mscope and the REST API send them."""
    e = pb_enc
    t0, t1 = 1700000000 * 10**9, 1700003600 * 10**9
    flows = [[e(1, t0), e(2, t1)], [e(3, "10.0.0.1"), e(8, "bytes"), e(9, 50)],
             [e(8, "newest"), e(11, "1700000000123456789.42.7265632d61")],
             [e(8, "first"), e(11, "-5.7.72")], [e(12, "10.0.0.0/8"), e(13, "2001:db8::/32"), e(14, 443)],
             [e(10, "rec-a"), e(4, 53), e(5, 17), e(6, 1000000), e(7, True)],
             [e(15, "web"), e(8, "rtt")], [e(1, t1), e(2, t0)], [e(1, -(2**63)), e(2, 2**63 - 1)],
             [e(8, "retransmissions"), e(9, 100000)], [e(8, "last"), e(8, "packets")]]
    bodies = [e(10, b"")]
    bodies += [e(11, f) for f in flows]
    bodies += [e(12, [e(1, t0), e(3, "client"), e(4, "packets"), e(5, 5000)]),
               e(12, [e(3, "server"), e(4, "flows")]), e(12, [e(4, "retransmissions")]),
               e(13, [e(1, t0), e(2, t1), e(3, "rec-b"), e(4, "10.0.0.9"), e(5, 80)])]
    bodies += [e(14, [e(1, t0), e(2, t1), e(3, "tcp port 80"), e(4, 1000), e(6, 8)]),
               e(14, [e(3, "host 10.0.0.1"), e(7, "rec-a"), e(8, True), e(9, 5000)]),
               e(14, [e(7, "nope")]), e(14, [e(1, t1), e(2, t0)]),
               e(14, [e(3, "udp"), e(12, [e(3, "10.0.0.1"), e(9, 20)])]),
               e(14, [e(12, [e(9, 200000)])]), e(15, 4), e(16, True)]
    mon = [e(1, "web"), e(2, "10.0.3.0/24"), e(3, "192.168.1.1"), e(4, 443), e(5, 6),
           e(6, "rec-a"), e(7, "tcp port 443")]
    bodies += [e(40, [e(1, "list")]), e(40, [e(1, "show"), e(2, "web")]),
               e(40, [e(1, "create"), e(3, mon)]), e(40, [e(1, "set"), e(2, "web"), e(3, mon)]),
               e(40, [e(1, "delete"), e(2, "web")]), e(40, [e(1, "create"), e(3, [e(1, "x"), e(7, "tcp port")])]),
               e(41, [e(1, "web"), e(2, t0), e(3, t1)])]
    # application records (QueryApp): records and aggregates of each kind
    bodies += [e(42, [e(1, "dns"), e(2, t0), e(3, t1), e(8, "example.com"), e(10, "3"), e(12, 50)]),
               e(42, [e(1, "tls"), e(6, "10.0.0.0/8"), e(8, "www.example.org"), e(13, True)]),
               e(42, [e(1, "http"), e(9, "/api/x"), e(10, "5xx"), e(11, True), e(13, True),
                      e(14, True), e(15, 8080)]),
               e(42, [e(1, "http"), e(4, "rec-a"), e(5, "192.168.1.1"), e(7, 80), e(10, "404")]),
               e(42, [e(1, "smtp")])]
    out = [e(1, 7) + e(2, RPC_TOKEN) + b for b in bodies]
    out += [e(1, 8) + bodies[1], e(1, 9) + e(2, "wrong") + bodies[1], b""]
    return out


def seeds_rpc(build, tmp):
    c = Corpus("rpc")
    for m in rpc_requests():
        c.add(m)
    c.done()


HTTP_READ = "fuzz-http-read-token-0123456789"    # tests/fuzz/fuzz_http.c's
HTTP_ADMIN = "fuzz-http-admin-token-0123456789"


def http_requests():
    """Requests of every route, as mscope, the dashboard and curl send them."""
    def req(method, target, token=HTTP_READ, body=b"", headers=()):
        h = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1"]
        if token:
            h.append("Authorization: Bearer " + token)
        h += list(headers)
        if body:
            h.append("Content-Type: application/json")
            h.append("Content-Length: %d" % len(body))
        return ("\r\n".join(h) + "\r\n\r\n").encode() + body
    out = [req("GET", "/api/v1/nodes"),
           req("GET", "/api/v1/flows?from=1h&to=1m&host=10.0.0.1&port=443&proto=tcp&limit=50"),
           req("GET", "/api/v1/flows?order=newest&cursor=1700000000123456789.42.7265632d61&node=rec-a"),
           req("GET", "/api/v1/flows?server=10.0.0.0%2F8&client=2001:db8::/32&server_port=80&min_rtt=5ms"
                      "&retransmissions=true&monitor=web", headers=["Accept: application/x-ndjson"]),
           req("GET", "/api/v1/flows?from=2023-11-14T22:13:20Z&to=2023-11-14T21:00:00Z"),
           req("GET", "/api/v1/top?by=client&metric=packets&limit=5&from=24h"),
           req("GET", "/api/v1/series?node=rec-b&server=10.0.0.9&port=80&from=1h"),
           req("POST", "/api/v1/search", HTTP_ADMIN,
               b'{"filter": "tcp port 80", "from": "1h", "to": "1m", "nodes": ["rec-a"],'
               b' "max_packets": 1000, "dedup": true, "dedup_window": "2ms", "node_timeout": "5s"}'),
           req("POST", "/api/v1/search", HTTP_ADMIN, b'{"filter": "udp", "from": 1700000000}'),
           req("POST", "/api/v1/search", HTTP_READ, b'{"filter": "tcp"}'),
           req("GET", "/api/v1/flows/pcap?host=10.0.0.1&limit=20&filter=tcp", HTTP_ADMIN),
           req("GET", "/api/v1/searches/1", HTTP_ADMIN),
           req("GET", "/api/v1/monitors"),
           req("POST", "/api/v1/monitors", HTTP_ADMIN,
               b'{"name": "web", "server": "10.0.3.0/24", "client": "192.168.1.1", "server_port": 443,'
               b' "proto": "tcp", "nodes": ["rec-a"], "filter": "tcp port 443"}'),
           req("PUT", "/api/v1/monitors/web", HTTP_ADMIN, b'{"server": "10.0.3.7", "proto": 17}'),
           req("GET", "/api/v1/monitors/web"),
           req("DELETE", "/api/v1/monitors/web", HTTP_ADMIN),
           req("GET", "/api/v1/monitors/web/series?from=1h&to=1m"),
           req("GET", "/api/v1/app/dns?from=1h&name=example.com&code=3&limit=20"),
           req("GET", "/api/v1/app/tls/top?server=10.0.0.0%2F8&by_minute=true"),
           req("GET", "/api/v1/app/http?uri=%2Fapi&code=5xx&errors=true&server_port=8080"),
           req("GET", "/api/v1/app/http/top?node=rec-a&client=192.168.1.1&port=80"),
           req("GET", "/api/v1/openapi.json", None),
           req("GET", "/api/v1/flows", None), req("GET", "/api/v1/flows", "x" * 40),
           req("DELETE", "/api/v1/nodes"), req("GET", "/api/v1/nope"),
           req("GET", "/", None, headers=["If-None-Match: \"x\""]), req("GET", "/index.html", None),
           req("GET", "/healthz", None), req("GET", "/readyz", None), req("GET", "/metrics", None),
           req("GET", "/api/v1/../healthz?x=%41", None)]
    return out


def seeds_http(build, tmp):
    c = Corpus("http")
    for m in http_requests():
        c.add(m)
    c.done()


SEARCH_TOKEN = "fuzz-search-token-0123456789"  # tests/fuzz/fuzz_searchsvc.c's


def searchsvc_requests():
    """NodeSearchRequests as the coordinator sends them, over the second of
    flows fuzz_searchsvc.c stores from 1700000000 s."""
    e = pb_enc
    t0 = 1700000000 * 10**9
    def ep(ip, port):
        return [e(1, bytes(ip)), e(2, port)]
    def sel(proto, a, ap, b, bp, first, last):
        return e(13, [e(3, proto), e(4, ep(a, ap)), e(5, ep(b, bp)), e(6, first), e(7, last)])
    v4a, v4b = [10, 0, 1, 1], [10, 0, 2, 3]
    v6a = [0x20, 1, 0x0d, 0xb8] + [0] * 11 + [1]
    v6b = [0x20, 1, 0x0d, 0xb8] + [0] * 11 + [2]
    queries = [[], [e(1, t0), e(2, t0 + 500 * 10**6)], [e(3, "tcp port 443"), e(6, 2)],
               [e(3, "host 10.0.2.3 or udp"), e(4, 50)], [e(3, "ip6"), e(5, 1000)],
               [e(3, "net 10.0.0.0/16 and not port 53"), e(1, t0 + 10**8), e(11, 5000)],
               [e(1, t0 + 10**9), e(2, t0)], [e(3, "tcp port")],
               [e(3, "tcp"), sel(6, v4a, 40001, v4b, 443, t0, t0 + 10**9)],
               [sel(17, v4a, 40003, [10, 0, 2, 4], 53, t0, t0 + 10**9),
                sel(17, v6a, 40000, v6b, 53, t0, t0 + 10**9)],
               [sel(6, [1, 2, 3], 1, v4b, 443, t0, t0 + 1)], [sel(6, v4a, 1, v4b, 443, t0 + 5, t0)]]
    out = [e(1, 3) + e(2, SEARCH_TOKEN) + e(10, q) for q in queries]
    out += [e(1, 3) + e(2, SEARCH_TOKEN) + e(11, 4), e(1, 3) + e(2, SEARCH_TOKEN) + e(12, True),
            e(1, 3) + e(2, "wrong") + e(10, []), e(1, 3) + e(2, SEARCH_TOKEN), b"\xff\xff"]
    return out


def seeds_searchsvc(build, tmp):
    c = Corpus("searchsvc")
    for m in searchsvc_requests():
        c.add(m)
    c.done()


TARGETS = {
    "decode": seeds_decode, "pcap": seeds_pcap, "segindex": seeds_segindex,
    "catalog": seeds_catalog,
    "exprscan": seeds_exprscan, "exprscan_bpf": seeds_exprscan_bpf, "config": seeds_config,
    "brconfig": seeds_brconfig, "bus": seeds_bus, "appana": seeds_appana,
    "app_http": seeds_app_http, "rpc": seeds_rpc,
    "http": seeds_http, "searchsvc": seeds_searchsvc,
}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = os.path.abspath(sys.argv[1])
    names = sys.argv[2:] or list(TARGETS)
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            TARGETS[n](build, tmp)


if __name__ == "__main__":
    main()
