#!/usr/bin/env python3
"""Distributed search: three real recorder daemons, each holding a different
share of the flows of one pcap, and a real coordinator.

- For every expression and time window, `mscope search` gives exactly what
  `tcpdump -r` gives on the original pcap: the same packets in the same
  order (packets with the same timestamp on different recorders come in the
  order of the recorders' names, as documented), and capinfos accepts it;
  `-w -` streams a pcap that tshark reads.
- A bad filter: every node reports libpcap's message, exit 2, nobody crashes.
- A slow client: the coordinator's and the recorders' memory stay bounded
  (counters, and RSS outside the sanitizer build) while the answer is far
  bigger; a cancel frees the recorders' work at once.
- A recorder killed mid-search: the answer ends within the node timeout,
  marked partial, with every packet of the surviving recorders.
- Live ingest while a big search runs drops nothing.
- The recorder's search port refuses a wrong token and survives garbage.
"""
import collections
import os
import shlex
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
import pcapfile  # noqa: E402
from cluster import Coordinator, load_pb  # noqa: E402

try:
    import zmq
except ImportError:
    h.fail("python3-zmq is not installed (scripts/deps.sh installs it)")

NAMES = ["rec-a", "rec-b", "rec-c"]
MiB = 1 << 20

EXPRS = [
    "",
    "host 10.0.1.1",
    "tcp",
    "udp and port 53",
    "not tcp",
    "vlan and tcp port 443",
    "ip6",
    "tcp[13] & 2 != 0",
    "ip[6:2] & 0x3fff != 0",
    "not ip and not ip6",
    "(host 10.0.1.1 or host 10.0.2.2) and not port 22",
]


def share_of(data):
    """Which recorder gets a frame: by its unordered IP address pair (so both
    directions and every fragment of a flow go together), else its MACs."""
    off = 12
    et = int.from_bytes(data[off:off + 2], "big") if len(data) >= 14 else 0
    while et in (0x8100, 0x88A8) and len(data) >= off + 6:
        off += 4
        et = int.from_bytes(data[off:off + 2], "big")
    l3 = off + 2
    if et == 0x0800 and len(data) >= l3 + 20:
        a, b = data[l3 + 12:l3 + 16], data[l3 + 16:l3 + 20]
    elif et == 0x86DD and len(data) >= l3 + 40:
        a, b = data[l3 + 8:l3 + 24], data[l3 + 24:l3 + 40]
    else:
        a, b = data[0:6], data[6:12]
    return zlib.crc32(min(a, b) + max(a, b)) % len(NAMES)


def split(src, d):
    _, recs = pcapfile.read_pcap(src)
    shares = [[] for _ in NAMES]
    for r in recs:
        shares[share_of(bytes(r[3]))].append(r)
    paths = []
    for i, s in enumerate(shares):
        p = os.path.join(d, f"share-{NAMES[i]}.pcap")
        pcapfile.write_pcap(p, s, nsec=True)
        paths.append(p)
    return paths, shares


def expected_order(records, owner):
    """tcpdump's order, with packets of equal timestamps regrouped by the
    recorders' names (the documented tie rule), stable within a recorder."""
    keyed = [(r[0], owner.get(bytes(r[3]) + r[0].to_bytes(8, "little"), 9), i, r)
             for i, r in enumerate(records)]
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]


class Recorder(h.Daemon):
    def __init__(self, datadir, name, coord, *extra):
        self.search_port = h.free_tcp_port()
        self.endpoint = f"tcp://127.0.0.1:{self.search_port}"
        super().__init__(datadir, "--node-id", name, *coord.enroll(datadir, name),
                         "--search", self.endpoint, *extra)

    def rss_kib(self):
        return rss_kib(self.proc.pid)


def rss_kib(pid):
    """Anonymous resident memory: what buffering costs (mapped segment files
    are file pages, not counted)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def cli(co, *args, check_rc=None):
    p = h.run(co.cli("search", *args), check_rc=False)
    if check_rc is not None and p.returncode != check_rc:
        h.fail(f"mscope search {' '.join(map(str, args))} exited {p.returncode}, not {check_rc}:\n"
               f"{p.stderr.decode(errors='replace')}")
    return p


class SearchClient:
    """The RPC API driven by hand: a DEALER that grants credit when told."""

    def __init__(self, pb, co, query, token=None):
        self.pb = pb
        self.ctx = zmq.Context()
        self.sock = co.curve(self.ctx.socket(zmq.DEALER))
        self.sock.setsockopt(zmq.LINGER, 500)
        self.sock.connect(co.rpc)
        self.token = token or open(os.path.join(co.dir, "rpc.token")).read().strip()
        self.id = int(time.time() * 1e6)
        req = pb.Request(id=self.id, token=self.token)
        req.search.CopyFrom(query)
        self.sock.send(req.SerializeToString())
        self.records = bytearray()
        self.chunks = 0
        self.trailer = None
        self.status = None

    def read(self, n_chunks=None, timeout=30):
        """Take up to n_chunks (None: to the end), granting one credit each."""
        got = 0
        while self.trailer is None and (n_chunks is None or got < n_chunks):
            if not self.sock.poll(timeout * 1000):
                h.fail(f"no answer from the coordinator within {timeout} s")
            r = self.pb.Response()
            r.ParseFromString(self.sock.recv())
            h.check(r.id == self.id, f"answer for id {r.id}, not {self.id}")
            if r.HasField("search_chunk"):
                self.records += r.search_chunk.records
                self.chunks += 1
                got += 1
                self.credit(1)
            if r.HasField("search_trailer") or r.status != 0:
                self.trailer = r.search_trailer
                self.status = r.status
        return got

    def credit(self, n):
        req = self.pb.Request(id=self.id, token=self.token, search_credit=n)
        self.sock.send(req.SerializeToString())

    def cancel(self):
        req = self.pb.Request(id=self.id, token=self.token, search_cancel=True)
        self.sock.send(req.SerializeToString())

    def close(self):
        self.sock.close()
        self.ctx.term()

    def packets(self):
        hdr = bytearray(24)
        hdr[0:4] = pcapfile.MAGIC_NSEC.to_bytes(4, "little")
        hdr[4:8] = (2).to_bytes(2, "little") + (4).to_bytes(2, "little")
        hdr[16:20] = (262144).to_bytes(4, "little")
        hdr[20:24] = (1).to_bytes(4, "little")
        return pcapfile.read_pcap(bytes(hdr + self.records))[1]


def oracle_checks(d, co, orig, owner):
    _, all_recs = pcapfile.read_pcap(orig)
    t0, t1 = all_recs[0][0], all_recs[-1][0]
    span = t1 - t0
    windows = [(t0, t1 + 1), (t0 + span // 3, t0 + 2 * span // 3)]
    n = 0
    for expr in EXPRS:
        want_all = h.tcpdump(orig, expr)
        for (a, b) in windows:
            out = os.path.join(d, "out.pcap")
            args = ["--from", h.ns_str(a), "--to", h.ns_str(b), "-w", out, "-q"]
            cli(co, *args, *(expr.split() if expr else []), check_rc=0)
            ok, why = h.capinfos_ok(out)
            h.check(ok, f"capinfos refuses the merged capture of '{expr}': {why}")
            _, got = pcapfile.read_pcap(out)
            want = expected_order(h.window(want_all, a, b), owner)
            diff = pcapfile.compare(got, want)
            h.check(diff is None, f"'{expr}' in [{a}, {b}): merged capture differs from tcpdump: {diff}")
            n += 1
    print(f"ok  {len(EXPRS)} expressions x {len(windows)} windows: merged capture == tcpdump -r, "
          f"capinfos accepts ({n} searches)")

    # -w - streams a capture tshark reads.
    cmd = " ".join(shlex.quote(a) for a in co.cli("search", "--from", h.ns_str(t0), "--to",
                                                  h.ns_str(t1 + 1), "-q", "-w", "-", "tcp"))
    p = subprocess.run(f"{cmd} | tshark -r - -T fields -e frame.number | wc -l",
                       shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    want = len(h.tcpdump(orig, "tcp"))
    h.check(p.returncode == 0 and int(p.stdout.decode().strip() or 0) == want,
            f"mscope search -w - | tshark -r - saw {p.stdout.decode().strip()} packets, want {want}: "
            f"{p.stderr.decode(errors='replace')}")
    print(f"ok  mscope search -w - | tshark -r -: {want} packets")

    # Limits: the first N packets of the merged answer, and the recorders stop.
    out = os.path.join(d, "limited.pcap")
    cli(co, "--from", h.ns_str(t0), "--to", h.ns_str(t1 + 1), "-c", 100, "-q", "-w", out, "tcp",
        check_rc=0)
    want = expected_order(h.tcpdump(orig, "tcp"), owner)[:100]
    diff = pcapfile.compare(pcapfile.read_pcap(out)[1], want)
    h.check(diff is None, f"-c 100: not the first 100 packets: {diff}")
    print("ok  -c 100: the first 100 packets of the merged answer")


def bad_filter(co):
    p = cli(co, "--from", "0", "-w", "/dev/null", "tcp", "port", check_rc=2)
    err = p.stderr.decode(errors="replace")
    for name in NAMES:
        line = [ln for ln in err.splitlines() if ln.startswith(name)]
        h.check(line and "failed" in line[0] and "syntax error" in line[0],
                f"bad filter: no clear per-node error for {name}:\n{err}")
    p = cli(co, "--from", "0", "--nodes", "rec-zz", "-w", "/dev/null", "tcp", check_rc=2)
    h.check(b"unknown recorder" in p.stderr, f"an unknown node is not named: {p.stderr}")
    print("ok  bad filter: libpcap's message from every node, exit 2; unknown node refused")


def slow_client(pb, co, recs, coord_rss0):
    """Read a big answer slowly; memory stays bounded; cancel frees the work."""
    q = pb.SearchQuery(from_ns=0, filter="", credit=1)
    c = SearchClient(pb, co, q)
    c.read(2)
    time.sleep(3)  # an unbounded pipeline would pull the whole answer in now
    st = co.stats()["search"]
    bound = len(NAMES) * 4 * MiB + 2 * MiB
    h.check(st["active"] == 1, f"search not active at the coordinator: {st}")
    h.check(st["bytes_held_max"] <= bound,
            f"coordinator held {st['bytes_held_max']} bytes for a slow client (bound {bound})")
    for r in recs:
        s = r.stats()["search"]
        h.check(s["active"] == 1 and s["buffered_bytes_max"] <= MiB,
                f"{r.datadir}: recorder search state unexpected: {s}")
    if not h.sanitized():
        grow = rss_kib(co.proc.pid) - coord_rss0
        h.check(grow < 32 * 1024, f"coordinator RSS grew {grow} KiB for a slow client")
        for r in recs:
            h.check(r.rss_kib() < r.rss0 + 24 * 1024,
                    f"recorder RSS grew from {r.rss0} to {r.rss_kib()} KiB for a slow client")
    c.read(3)
    c.cancel()
    ok = h.wait_for(lambda: all(r.stats()["search"]["active"] == 0 for r in recs) and
                    co.stats()["search"]["active"] == 0, 5)
    h.check(ok, f"cancel did not free the work: coordinator {co.stats()['search']}, "
                f"recorders {[r.stats()['search'] for r in recs]}")
    # Told by the coordinator's cancel, or seeing its connection close first.
    h.check(all(r.stats()["search"]["cancelled"] + r.stats()["search"]["abandoned"] >= 1 for r in recs),
            "recorders did not count the cancelled search")
    c.close()
    print(f"ok  slow client: coordinator held at most {st['bytes_held_max'] // 1024} KiB "
          f"(bound {bound // 1024}), recorders 1 chunk each; cancel freed every recorder at once")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    orig = h.gen(os.path.join(d, "orig.pcap"), "--packets", 40000, "--flows", 400, "--seed", 51)
    paths, shares = split(orig, d)
    owner = {}
    for i, s in enumerate(shares):
        for r in s:
            owner[bytes(r[3]) + r[0].to_bytes(8, "little")] = i
    dirs = []
    for i, p in enumerate(paths):
        dd = os.path.join(d, NAMES[i])
        h.import_file(dd, p)
        dirs.append(dd)
    # Bulk for the slow-client and kill checks: much more than any window.
    big = h.gen(os.path.join(d, "big.pcap"), "--bytes", "48m", "--flows", 300, "--seed", 52,
                "--start", 1800000000)
    for dd in dirs:
        h.import_file(dd, big)

    co = Coordinator(d)
    pb = load_pb(d)
    recs = [Recorder(dd, NAMES[i], co) for i, dd in enumerate(dirs)]
    try:
        known = h.wait_for(lambda: co.stats()["nodes"] == 3, 15)
        h.check(known, f"the coordinator does not know the 3 recorders: {co.stats()}")
        time.sleep(1.5)  # every node's heartbeat with its search endpoint
        oracle_checks(d, co, orig, owner)
        bad_filter(co)

        # The search port itself: a wrong token and garbage.
        ctx = zmq.Context()
        s = co.curve(ctx.socket(zmq.DEALER), os.path.join(co.dir, "curve.key"),
                     os.path.join(dirs[0], "curve.pub"))
        s.setsockopt(zmq.LINGER, 0)
        s.connect(recs[0].endpoint)
        req = pb.NodeSearchRequest(id=7, token="not-the-token-0123456789")
        req.start.CopyFrom(pb.SearchQuery(filter="tcp"))
        s.send(req.SerializeToString())
        h.check(s.poll(5000), "no answer to a wrong token")
        r = pb.NodeSearchReply()
        r.ParseFromString(s.recv())
        h.check(r.HasField("done") and not r.done.ok and "token" in r.done.error,
                f"wrong token not refused: {r}")
        s.send(b"\xff\x01garbage")
        h.check(s.poll(5000), "no answer to garbage")
        r.ParseFromString(s.recv())
        h.check(r.HasField("done") and not r.done.ok, f"garbage not refused: {r}")
        s.close()
        ctx.term()
        h.check(all(x.proc.poll() is None for x in recs), "a recorder died of garbage")
        print("ok  recorder search port: wrong token refused, garbage answered, still up")

        for r in recs:
            r.rss0 = r.rss_kib()
        slow_client(pb, co, recs, rss_kib(co.proc.pid))

        # Live ingest into rec-a while a big search runs: nothing dropped.
        live = h.gen(os.path.join(d, "live.pcap"), "--packets", 30000, "--flows", 100, "--seed", 53,
                     "--mix", "clean", "--start", 1900000000)
        rx0 = recs[0].stats()["rx_packets"]
        search = subprocess.Popen(co.cli("search", "--from", "0", "-q", "-w",
                                         os.path.join(d, "all.pcap")),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sent = int(h.vxsend(live, recs[0].port, "--rate", 20000)["sent"])
        _, err = search.communicate(timeout=120)
        h.check(search.returncode == 0, f"the big search failed: {err.decode(errors='replace')}")
        ok = h.wait_for(lambda: recs[0].stats()["rx_packets"] - rx0 >= sent, 10)
        st = recs[0].stats()
        h.check(ok and st["queue_drops"] == 0 and st["kernel_drops"] == 0,
                f"ingest during a search: sent {sent}, received {st['rx_packets'] - rx0}, "
                f"drops queue {st['queue_drops']} kernel {st['kernel_drops']}")
        print(f"ok  {sent} packets ingested live during a "
              f"{os.path.getsize(os.path.join(d, 'all.pcap')) // MiB} MiB search, none dropped")
        os.unlink(os.path.join(d, "all.pcap"))

        # Every recorder holds big.pcap: with --dedup each packet comes once.
        out = os.path.join(d, "dedup.pcap")
        p = cli(co, "--from", "1800000000", "--dedup", "-w", out, check_rc=0)
        got = pcapfile.read_pcap(out)[1]
        _, big_recs = pcapfile.read_pcap(big)
        want, last = [], {}
        for r in big_recs:  # what big.pcap itself repeats within 1 ms is dropped too
            key = bytes(r[3])
            if key not in last or r[0] - last[key] > 1000000:
                want.append(r)
                last[key] = r[0]
        diff = pcapfile.compare(got, want)
        h.check(diff is None, f"--dedup over three copies of big.pcap: {diff}\n{p.stderr.decode()}")
        h.check(b"duplicate packets dropped" in p.stderr, f"dedup count not shown: {p.stderr}")
        print(f"ok  --dedup: three recorders' copies of {len(big_recs)} packets merged into {len(got)}")

        # A recorder killed mid-search: partial, within the timeout, survivors complete.
        q = pb.SearchQuery(from_ns=1800000000 * 10**9, filter="", credit=1, node_timeout_ms=2000)
        c = SearchClient(pb, co, q)
        c.read(2)
        recs[2].proc.kill()
        recs[2].proc.wait()
        t_kill = time.time()
        c.read(None, timeout=30)
        took = time.time() - t_kill
        tr = c.trailer
        h.check(tr is not None and tr.partial, f"answer without rec-c not marked partial: {tr}")
        by = {n.node: n for n in tr.nodes}
        h.check(by["rec-c"].status in ("timeout", "unreachable") and by["rec-a"].status == "ok" and
                by["rec-b"].status == "ok", f"node statuses wrong: {tr}")
        got = c.packets()
        c.close()
        # Every recorder holds all of big.pcap: each of its packets must come
        # at least twice (rec-a, rec-b) and at most three times, in time order.
        seen = collections.Counter((r[0], bytes(r[3])) for r in got)
        want_ab = 2 * len(big_recs)
        short = [r for r in big_recs if seen[(r[0], bytes(r[3]))] < 2]
        h.check(not short, f"{len(short)} packets of the surviving recorders missing, first at {short[:1]}")
        h.check(all(seen[(r[0], bytes(r[3]))] <= 3 for r in big_recs) and len(got) == tr.packets and
                all(got[i][0] <= got[i + 1][0] for i in range(len(got) - 1)),
                f"merged answer wrong: {len(got)} packets, trailer {tr.packets}")
        h.check(by["rec-a"].figures.packets == len(big_recs) == by["rec-b"].figures.packets,
                f"survivors' figures: {by['rec-a'].figures} {by['rec-b'].figures}")
        p = cli(co, "--from", "0", "-w", os.path.join(d, "p.pcap"), "-q", "tcp", check_rc=4)
        # rec-c is still in the registry (its heartbeats not yet missed): its
        # refused connections make it unreachable at once, not at the timeout.
        h.check(b"PARTIAL" in p.stderr and b"cannot connect" in p.stderr,
                f"partial answer not said, or not why: {p.stderr}")
        cli(co, "--from", "0", "--allow-partial", "-w", os.path.join(d, "p.pcap"), "-q", "tcp", check_rc=0)
        print(f"ok  recorder killed mid-search: partial answer {took:.1f} s after the kill, "
              f"survivors complete ({want_ab} packets); exit 4, 0 with --allow-partial")
    finally:
        for r in recs:
            r.stop()
        co.stop()


if __name__ == "__main__":
    main()
