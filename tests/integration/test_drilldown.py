#!/usr/bin/env python3
"""Drill-down: `mscope flows [filters] -w FILE` writes the packets of exactly
the flows those filters select, each from the recorder that saw it, merged
into one capture.

Two real recorders get different traffic (pcapgen's clean mix over VXLAN),
stored in small segments (so the recorders' catalogs judge the selected
flows by each segment's summary before opening its index), and publish
their flow records to a real coordinator. For several filters
(a host, a server and port, a protocol, a mean RTT, one node, a client
network, a monitor with its own expression, a limit),
the capture equals tcpdump's reading of what the recorders received (their
segments) with the equivalent expression: the selected flows' protocols,
address pairs and ports (from `mscope flows --json` with the same filters),
inside their time spans, merged in the coordinator's order. Also: a selection of no flows is
an empty capture; a selection cut by --limit says so; the REST equivalent
(GET /api/v1/flows/pcap) gives the same bytes; capinfos accepts them all.
"""
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
import pcapfile  # noqa: E402
from cluster import Coordinator  # noqa: E402

NAMES = ["rec-a", "rec-b"]
RANGE = ["--since", "1h"]


def flows_json(co, *filters):
    p = h.run(co.cli("flows", "--json", "--limit", 10000, *RANGE, *filters))
    return json.loads(p.stdout)


def term(f):
    """The tcpdump expression of one flow record's packets."""
    proto = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}.get(f["proto"])
    h.check(proto is not None, f"unexpected protocol in {f}")
    a, b = f["client"], f["server"]
    t = f"{proto} and host {a['ip']} and host {b['ip']}"
    if f["proto"] in (6, 17):
        t += f" and port {a['port']} and port {b['port']}"
    return f"({t})"


_STORED = {}


def stored(store):
    """One capture of every packet a recorder's segments hold, in their
    order (made once: the recorders have settled), so that tcpdump compiles
    each long expression once, not once per segment."""
    if store not in _STORED:
        recs = []
        for seg in sorted(glob.glob(os.path.join(store, "seg-*.pcap"))):
            recs += pcapfile.read_pcap(seg)[1]
        _STORED[store] = store + ".all.pcap"
        pcapfile.write_pcap(_STORED[store], recs)
    return _STORED[store]


def expected(stores, flows, extra=None):
    """tcpdump's packets of these flows from what each recorder received
    (its segments: packets carry their arrival times), inside the flows'
    spans, merged as the coordinator merges (time, then the recorders'
    names)."""
    out = []
    for i, name in enumerate(NAMES):
        mine = [f for f in flows if f["node"] == name]
        if not mine:
            continue
        expr = " or ".join(term(f) for f in mine)
        if extra:
            expr = f"({extra}) and ({expr})"
        got = h.tcpdump(stored(stores[name]), expr)
        spans = [(f["first_ns"], f["last_ns"]) for f in mine]
        out += [(r[0], i, k, r) for k, r in enumerate(got) if any(a <= r[0] <= b for a, b in spans)]
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in out]


def unique_pairs(flows):
    """Each selected flow's (protocol, endpoints) once per recorder: then a
    5-tuple expression selects exactly one flow's packets."""
    seen = set()
    for f in flows:
        k = (f["node"], f["proto"], frozenset([(f["client"]["ip"], f["client"]["port"]),
                                               (f["server"]["ip"], f["server"]["port"])]))
        if k in seen:
            return False
        seen.add(k)
    return True


def drill(co, out, *filters, check_rc=0):
    p = h.run(co.cli("flows", *RANGE, *filters, "-w", out), check_rc=False)
    err = p.stderr.decode(errors="replace")
    h.check(p.returncode == check_rc, f"mscope flows {filters} -w: exit {p.returncode}:\n{err}")
    return pcapfile.read_pcap(out)[1], err


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    co = Coordinator(d)
    inputs, recs, stores = {}, {}, {}
    for i, name in enumerate(NAMES):
        inputs[name] = h.gen(os.path.join(d, f"{name}.pcap"), "--packets", 15000, "--flows", 60,
                             "--seed", 40 + i, "--mix", "clean", "--nsec")
        datadir = stores[name] = os.path.join(d, name)
        recs[name] = h.Daemon(datadir, "--node-id", name, *co.enroll(datadir, name),
                              "--search", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                              "--flow-idle", "1s", "--flow-interval", "1h",
                              "--segment-size", "256K")
    try:
        for name in NAMES:
            h.vxsend(inputs[name], recs[name].port, "--rate", 30000)
        for name in NAMES:
            h.check(recs[name].wait_rx(15000), f"{name}: {recs[name].stats()}")
        # Every flow final (idle 1 s) and written.
        def settled():
            st = [recs[n].stats() or {} for n in NAMES]
            pub = sum(s.get("records_published", 0) for s in st)
            return (all(s.get("flows_active", 1) == 0 for s in st) and pub > 0
                    and co.stats()["records_written"] >= pub)
        h.check(h.wait_for(settled, 30), f"records not settled: {[recs[n].stats() for n in NAMES]} "
                f"{co.stats()}")
        h.check(h.wait_for(lambda: co.stats()["nodes"] == 2, 10), "nodes not registered")

        out = os.path.join(d, "drill.pcap")
        # An analysis-only filter (no tcpdump expression says it): the flows
        # whose mean ACK RTT is at least the median's.
        def mean_rtt(f):
            st = [f["c2s"]["rtt_ns"], f["s2c"]["rtt_ns"]]
            n = sum(x["count"] for x in st)
            return sum(x.get("mean", 0) * x["count"] for x in st) / n if n else None
        rtts = sorted(m for m in map(mean_rtt, flows_json(co)) if m is not None)
        h.check(len(rtts) > 10, f"only {len(rtts)} flows with an RTT")
        median_us = int(rtts[len(rtts) // 2] // 1000)
        cases = [("--host", "10.0.1.1"), ("--server", "10.0.2.2:443"), ("--proto", 17),
                 ("--min-rtt", f"{median_us}us"), ("--host", "10.0.1.1", "--node", "rec-b"),
                 ("--client", "10.0.0.0/8", "--proto", 6)]
        for filters in cases:
            flows = flows_json(co, *filters)
            h.check(len(flows) > 0, f"{filters}: no flows selected (test data); all flows: "
                    f"{len(flows_json(co))}; {h.run(co.cli('flows', '--limit', 3)).stdout.decode()}")
            h.check(unique_pairs(flows), f"{filters}: a 5-tuple repeats; the oracle would be ambiguous")
            want = expected(stores, flows)
            got, err = drill(co, out, *filters)
            h.check(got == want, f"{filters}: {len(got)} packets, tcpdump {len(want)} "
                    f"(flows {len(flows)})\n{err}")
            h.check(f"the packets of {len(flows)} flow" in err, f"{filters}: {err}")
            ok, cerr = h.capinfos_ok(out)
            h.check(ok, f"{filters}: capinfos: {cerr}")
            print(f"ok  flows {' '.join(map(str, filters))}: {len(flows)} flows, {len(got)} packets "
                  f"== tcpdump")

        # A monitor's packets: the flows its definition matches, its own
        # tcpdump expression applied to them.
        push = "tcp[tcpflags] & tcp-push != 0"
        h.run(co.cli("monitors", "create", "web", "server=10.0.2.0/24", "port=443", f"filter={push}"))
        flows = flows_json(co, "--monitor", "web")
        want = expected(stores, flows, push)
        got, err = drill(co, out, "--monitor", "web")
        h.check(len(flows) > 0 and len(want) > 0 and got == want,
                f"--monitor web: {len(got)} packets, tcpdump {len(want)} ({len(flows)} flows)")
        p = h.run(co.cli("flows", *RANGE, "--monitor", "nope", "-w", out), check_rc=False)
        h.check(p.returncode == 2 and b"no monitor 'nope'" in p.stderr,
                f"unknown monitor: exit {p.returncode}: {p.stderr.decode()}")
        print(f"ok  --monitor web: {len(flows)} flows, {len(got)} packets with its expression == tcpdump")

        # The limit: exactly that many flows' packets, and a warning.
        flows = flows_json(co, "--proto", 6, "--limit", 5)
        got, err = drill(co, out, "--proto", 6, "--limit", 5)
        h.check(len(flows) == 5 and got == expected(stores, flows),
                f"--limit 5: {len(got)} packets, want {len(expected(stores, flows))}")
        h.check("more flows match than the limit" in err, f"no limit warning: {err}")
        print(f"ok  --limit 5: the first 5 flows' packets ({len(got)}), and a warning")

        # Nothing selected: an empty capture, exit 0.
        got, err = drill(co, out, "--host", "192.0.2.99")
        h.check(got == [] and os.path.getsize(out) == 24 and "the packets of 0 flows" in err,
                f"empty selection: {len(got)} packets, {os.path.getsize(out)} bytes: {err}")
        print("ok  a selection of no flows: an empty capture")

        # An expression longer than libpcap's optimizer handles in reasonable
        # time is refused at once, by the CLI's search and by REST.
        long_expr = " or ".join(f"host 10.0.{i // 250}.{i % 250 + 1}" for i in range(120))
        t = time.time()
        p = h.run(co.cli("search", *RANGE, "-w", out, long_expr), check_rc=False)
        h.check(p.returncode == 2 and b"at most 1024" in p.stderr and time.time() - t < 10,
                f"a {len(long_expr)}-byte expression: exit {p.returncode} in {time.time() - t:.1f} s: "
                f"{p.stderr.decode()[-300:]}")
        tok = open(os.path.join(co.dir, "api-admin.token")).read().strip()
        st, _, body = h.http_get(co.http, "/api/v1/search", tok, method="POST",
                                 body=json.dumps({"filter": long_expr}).encode(),
                                 headers={"Content-Type": "application/json"})
        h.check(st == 400 and b"at most 1024" in body, f"REST, the long expression: {st} {body[:200]}")
        print(f"ok  a {len(long_expr)}-byte expression is refused at once (CLI exit 2, REST 400)")

        # A bad filter value is refused as the flows query refuses it.
        p = h.run(co.cli("flows", *RANGE, "--host", "not-an-address", "-w", out), check_rc=False)
        h.check(p.returncode == 2, f"bad host: exit {p.returncode}: {p.stderr.decode()}")

        # REST: the same capture for the same filters.
        drill(co, out, "--server", "10.0.2.2:443")
        tok = open(os.path.join(co.dir, "api-admin.token")).read().strip()
        since = int(time.time()) - 3600
        st, hdr, body = h.http_get(co.http, f"/api/v1/flows/pcap?from={since}&server=10.0.2.2&server_port=443",
                                   token=tok)
        sid = hdr.get("x-mscope-search-id")
        status = h.http_json(co.http, f"/api/v1/searches/{sid}", tok)
        h.check(st == 200 and body == open(out, "rb").read(),
                f"REST drill-down: {st} {len(body)} bytes vs {os.path.getsize(out)}: {status}")
        # Progress while it runs: a reader that takes nothing holds the search
        # (credit), and its status lists every recorder's state so far.
        import socket
        host, port = co.http.rsplit(":", 1)
        sk = socket.socket()
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sk.connect((host, int(port)))
        sk.sendall(f"GET /api/v1/flows/pcap?from={since} HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: Bearer {tok}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sk.recv(1)
        sid = [ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
               if ln.lower().startswith(b"x-mscope-search-id:")][0]
        def running():
            return h.http_json(co.http, f"/api/v1/searches/{sid}", tok)[1]
        st = running()
        h.check(st["state"] == "running" and st["trailer"] and
                sorted(n["node"] for n in st["trailer"]["nodes"]) == NAMES and
                all(n["status"] in ("pending", "running", "ok") for n in st["trailer"]["nodes"]) and
                int(st["trailer"]["flows"]) > 0, f"status of a running drill-down: {st}")
        sk.close()
        h.check(h.wait_for(lambda: running()["state"] == "cancelled", 90),
                f"the search did not end when its reader went: {running()}")
        print(f"ok  a running search's status: each recorder's state, {st['trailer']['packets']} packets so far")
        rtok = open(os.path.join(co.dir, "api-read.token")).read().strip()
        st, _, _ = h.http_get(co.http, "/api/v1/flows/pcap?host=10.0.2.2", token=rtok)
        h.check(st == 403, f"packets with the read token: {st}")
        print("ok  GET /api/v1/flows/pcap: the same bytes; the read token may not read packets")
    finally:
        for r in recs.values():
            r.stop()
        co.stop()


if __name__ == "__main__":
    main()
