#!/usr/bin/env python3
"""The application analytics oracle (tests/lib/app_oracle.py: tshark's DNS,
TLS and HTTP/1.x transactions) agrees with what the rig that made the
traffic did (tests/lib/apprig.py: real dnsmasq, dig, Python ssl, openssl
s_client, http.server and curl between two network namespaces over a
delayed, lossy userspace wire).

This checks the oracle and the rig against each other; the recorder's
application records (issue 15, docs/APP_ANALYTICS.md) are to be checked
against the oracle with app_oracle.compare() once they exist.

For each scenario:
  * every transaction the rig made is exactly one oracle record, and there
    are no others: DNS by (transport, client port, id), TLS by client port,
    HTTP by connection and order;
  * its fields are the rig's: qname, qtype, id, rcode (null for the query
    the server never answered), answer count; SNI, ALPN list, negotiated
    version and cipher, ClientHello version; method, URI, Host, status,
    request and response body lengths;
  * TLS: the ClientHello's first and completing frames and the
    ServerHello's completing frame are those the payloads give;
  * HTTP: the frames the oracle names (a request's first segment and the
    one that completed it, the one that completed the response's headers)
    are those a plain reading of the TCP payloads gives (each direction's
    bytes laid out by sequence number, messages found by a small parser
    here): the check of the oracle's reassembly positions;
  * times are positive and plausible for the path (10 ms each way for DNS
    and TLS, 5 ms for HTTP): at least the round trip, under a few seconds;
  * the captures hold what the scenarios exist for: a ClientHello and a
    ServerHello split across segments, a retransmitted ClientHello and
    ServerHello segment (tshark's tcp.analysis.retransmission), split
    ServerHellos reaching the capture point out of order (tls_reorder),
    several HTTP messages in one frame, a response whose headers completed
    before its body, a HEAD, TCP DNS queries (several on one connection)
    and an unanswered one.
Before that, compare() itself: identical records agree, a changed field is
named, a missing record is reported.

Root, /dev/net/tun, dnsmasq and dig are needed (scripts/deps.sh installs
them); without them the test is skipped (exit 77).  About 25 s.
"""
import copy
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import app_oracle as ao  # noqa: E402
import apprig  # noqa: E402
import harness as h  # noqa: E402

MS = 1_000_000
PROBLEMS = []


def check(cond, msg):
    if not cond:
        PROBLEMS.append(msg)
    return cond


def unavailable():
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ip", "nft", "tcpdump", "ethtool", "tshark", "dnsmasq", "dig", "openssl",
                 "curl"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/deps.sh)"
    return None


def run_scenario(name, td, work):
    """(pcap, log) of a scenario; one more try if the rig failed (real
    programs, real timers: a run that loses a race is run again)."""
    for attempt in (1, 2):
        pcap = os.path.join(work, f"app_{name}_{attempt}.pcap")
        t0 = time.monotonic()
        try:
            _, log = apprig.scenario(name, pcap, td, work)
            print(f"{name}: {len(log)} transactions made in {time.monotonic() - t0:.1f} s",
                  flush=True)
            return pcap, log
        except (apprig.RigError, OSError, subprocess.SubprocessError) as e:
            if attempt == 2:
                h.fail(f"scenario {name} could not run twice: {e}")
            print(f"{name}: the rig failed once, again: {e}", flush=True)


def by(records, kind):
    return [r for r in records if r["kind"] == kind]


def check_common(name, recs, pcap_range, rtt_min):
    lo, hi = pcap_range
    for r in recs:
        check(lo <= r["ts_ns"] <= hi, f"{name}: ts_ns {r['ts_ns']} outside the capture")
        for f in ao.RECORDER_ONLY:
            check(r[f] is None, f"{name}: {f} is the recorder's, the oracle gives None")
        check(set(r["client"]) == {"ip", "port"} and r["client"]["ip"] == apprig.CLIENT_IP,
              f"{name}: client {r['client']}")
        check(r["server"]["ip"] == apprig.SERVER_IP, f"{name}: server {r['server']}")
        t = {"dns": "response_ns", "tls": "hello_rtt_ns", "http": "response_ns"}[r["kind"]]
        v = r[t]
        if v is not None:
            check(isinstance(v, int) and rtt_min <= v < 5000 * MS,
                  f"{name}: {t} {v} ns not within {rtt_min} ns .. 5 s ({ao._desc(r)})")


def check_dns(recs, log):
    check(len(recs) == len(log), f"dns: {len(recs)} records for {len(log)} queries")
    index = {(r["transport"], r["client"]["port"], r["id"]): r for r in recs}
    for q in log:
        r = index.get((q["transport"], q["client_port"], q["id"]))
        if not check(r is not None, f"dns: query {q} has no record"):
            continue
        for f in ("qname", "qtype", "rcode", "answers"):
            check(r[f] == q[f], f"dns {q['qname']} id {q['id']}: {f} {r[f]!r}, rig {q[f]!r}")
        check(r["server"]["port"] == q["server_port"], f"dns {q['qname']}: server port")
        if q["rcode"] is None:
            check(r["response_ns"] is None, f"dns {q['qname']}: unanswered yet response_ns")
        else:
            check(r["response_ns"] is not None, f"dns {q['qname']}: no response_ns")
    check(any(q["rcode"] is None for q in log), "dns: no unanswered query in the rig")
    check(any(r["transport"] == "tcp" for r in recs), "dns: no query over TCP")
    per_conn = {}
    for r in recs:
        if r["transport"] == "tcp":
            per_conn[r["client"]["port"]] = per_conn.get(r["client"]["port"], 0) + 1
    check(max(per_conn.values(), default=0) >= 2, "dns: no TCP connection with several queries")
    check(any(r["rcode"] == 3 for r in recs), "dns: no NXDOMAIN")
    check(len({r["qtype"] for r in recs}) >= 5, "dns: fewer than 5 query types")


def check_tls(recs, log, pcap, reorder=False):
    name = "tls_reorder" if reorder else "tls"
    check(len(recs) == len(log), f"{name}: {len(recs)} records for {len(log)} connections")
    # By both ports: the kernel may give one client port to connections to
    # two servers (8443, then 9443) within a run; one after the other when
    # it gives it twice to the same server.
    index = {}
    for r in recs:
        index.setdefault((r["client"]["port"], r["server"]["port"]), []).append(r)
    for c in log:
        got = index.get((c["client_port"], c["server_port"]))
        r = got.pop(0) if got else None
        if not check(r is not None, f"tls: connection {c['client_port']} -> {c['server_port']} "
                                    f"has no record"):
            continue
        what = f"{name} {c['tool']} port {c['client_port']}"
        for f in ("sni", "alpn", "version", "cipher"):
            check(r[f] == c[f], f"{what}: {f} {r[f]!r}, rig {c[f]!r}")
        check(r["server"]["port"] == c["server_port"], f"{what}: server port")
        check(r["client_version"] == 0x0303, f"{what}: client_version {r['client_version']}")
        check(r["record_version"] in (0x0301, 0x0303),
              f"{what}: record_version {r['record_version']}")
    check(any(r["_ch_segments"] >= 2 for r in recs),
          f"{name}: no ClientHello split across segments")
    check(any(r.get("_sh_segments", 1) >= 2 for r in recs),
          f"{name}: no ServerHello split across segments")
    if reorder:
        # tshark reassembles them only with tcp.reassemble_out_of_order (the
        # oracle sets it); that the ServerHellos above were all found is the
        # check, this says the capture had out-of-order segments to test it
        p = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", "tcp.analysis.out_of_order",
                            "-T", "fields", "-e", "frame.number"], capture_output=True,
                           text=True)
        n = len(p.stdout.split())
        print(f"{name}: {n} out-of-order segments at the capture point", flush=True)
        check(n >= 1, f"{name}: no out-of-order segment in the capture")
        return
    check(any(r["sni"] is None for r in recs), "tls: no ClientHello without SNI")
    # Retransmitted handshake segments: a retransmission carrying the first
    # payload byte of a direction (relative sequence 1) is the start of the
    # ClientHello (client) or of the ServerHello (server).
    p = subprocess.run(["tshark", "-n", "-r", pcap, "-Y",
                        "tcp.analysis.retransmission && tcp.len > 0 && tcp.seq == 1",
                        "-T", "fields", "-e", "tcp.srcport"], capture_output=True, text=True)
    ports = [int(x) for x in p.stdout.split()]
    ch = sum(1 for x in ports if x not in apprig.TLS_PORTS)
    sh = sum(1 for x in ports if x in apprig.TLS_PORTS)
    print(f"tls: {sum(r['_ch_segments'] >= 2 for r in recs)} split ClientHellos, "
          f"{sum(r.get('_sh_segments', 1) >= 2 for r in recs)} split ServerHellos, "
          f"{ch} ClientHello and {sh} ServerHello segments retransmitted", flush=True)
    check(ch >= 1, "tls: no retransmitted ClientHello segment")
    check(sh >= 1, "tls: no retransmitted ServerHello segment")


def check_http(recs, log):
    check(len(recs) == len(log), f"http: {len(recs)} records for {len(log)} requests")
    conns = {}  # by both ports, as in check_tls
    for r in recs:
        conns.setdefault((r["client"]["port"], r["server"]["port"]), []).append(r)
    want = {}
    for e in log:
        want.setdefault((e["client_port"], e["server_port"]), []).append(e)
    for port, reqs in want.items():
        got = conns.get(port, [])
        if not check(len(got) == len(reqs),
                     f"http: connection {port}: {len(got)} records for {len(reqs)} requests"):
            continue
        for e, r in zip(reqs, got):
            for f in ("method", "uri", "host", "status", "request_body_bytes",
                      "response_body_bytes"):
                check(r[f] == e[f], f"http {e['group']} {e['method']} {e['uri']}: {f} "
                                    f"{r[f]!r}, rig {e[f]!r}")
            check(r["server"]["port"] == e["server_port"], f"http {e['uri']}: server port")
    frames = {}
    for r in recs:
        frames.setdefault(r["_response_frame"], []).append(r)
    check(any(len(v) >= 2 for v in frames.values()),
          "http: no frame with several responses (pipelining)")
    check(any(r["_headers_frame"] != r["_response_frame"] for r in recs),
          "http: no response whose headers completed before its body")


def _http_messages(data, no_body=()):
    """[(start, headers end, end)] of the HTTP/1.x messages laid end to end
    in `data` (one direction of a connection): a parser of its own, to
    check the oracle's positions with.  no_body: the numbers of the
    messages that have none whatever their headers say (answers to HEAD)."""
    out, pos = [], 0
    while pos < len(data):
        hend = data.find(b"\r\n\r\n", pos)
        if hend < 0:
            break
        hend += 4
        head = data[pos:hend].decode("latin-1").lower()
        length = 0
        if len(out) in no_body:
            end = hend
        elif "transfer-encoding: chunked" in head:
            q = hend
            while True:
                eol = data.index(b"\r\n", q)
                n = int(data[q:eol].split(b";")[0], 16)
                q = eol + 2 + n + 2
                if n == 0:
                    break
            end = q
        else:
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":")[1])
            end = hend + length
        out.append((pos, hend, end))
        pos = end
    return out


def payload_streams(pcap, server_ports):
    """Each direction's TCP payload laid out by sequence number, from
    tshark's per-frame fields (no reassembly, no dissection):
    {(client port, server port, "c2s"|"s2c"): (bytes, owner)}, owner[i] the
    frame that first carried byte i (first copies win)."""
    p = subprocess.run(["tshark", "-n", "-r", pcap, "-o", "tcp.desegment_tcp_streams:FALSE",
                        "-o", "tcp.relative_sequence_numbers:TRUE", "-Y", "tcp.len > 0",
                        "-T", "fields", "-e", "frame.number", "-e", "tcp.srcport",
                        "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.payload"],
                       capture_output=True, text=True)
    segs = {}
    for line in p.stdout.splitlines():
        frame, sport, dport, seq, payload = line.split("\t")
        sport, dport = int(sport), int(dport)
        key = (dport, sport, "s2c") if sport in server_ports else (sport, dport, "c2s")
        segs.setdefault(key, []).append(
            (int(frame), int(seq) - 1, bytes.fromhex(payload.replace(":", ""))))
    out = {}
    for key, ss in segs.items():
        size = max(off + len(b) for _, off, b in ss)
        data, owner = bytearray(size), [0] * size
        for frame, off, b in sorted(ss):
            for i in range(len(b)):
                if not owner[off + i]:
                    owner[off + i] = frame
                    data[off + i] = b[i]
        out[key] = (bytes(data), owner)
    return out


def completed(owner, start, end):
    """The frame that completed bytes start..end-1: the last of their first
    copies to arrive."""
    return max(owner[start:end])


def check_http_positions(pcap, recs):
    """The frames the oracle names (first segment of a request, the one
    that completed it, the one that completed the response's headers)
    are those a plain reading of the TCP payloads gives (payload_streams;
    messages found by the small parser above)."""
    streams = payload_streams(pcap, apprig.HTTP_PORTS)
    conns = {}
    for r in recs:
        conns.setdefault((r["client"]["port"], r["server"]["port"]), []).append(r)
    checked = 0
    for (cport, sport), rs in conns.items():
        cdata, cown = streams[(cport, sport, "c2s")]
        sdata, sown = streams[(cport, sport, "s2c")]
        reqs = _http_messages(cdata)
        heads = {i for i, (qs, _, _) in enumerate(reqs) if cdata[qs:qs + 5] == b"HEAD "}
        resps = _http_messages(sdata, heads)
        if not check(len(reqs) == len(rs) == len(resps),
                     f"http positions: connection {cport}: {len(reqs)} requests, "
                     f"{len(resps)} responses read, {len(rs)} records"):
            continue
        for r, (qs, _, qe), (rs_, rh, _) in zip(rs, reqs, resps):
            want = (cown[qs], completed(cown, qs, qe), completed(sown, rs_, rh))
            got = (r["_first_frame"], r["_request_frame"], r["_headers_frame"])
            check(got == want, f"http positions {r['method']} {r['uri']}: the oracle's "
                               f"(first, request, headers) frames {got}, the bytes say {want}")
            checked += 1
    print(f"http: the frames of {checked} exchanges checked against the bytes", flush=True)


def check_tls_positions(pcap, recs, name):
    """The ClientHello's first and completing frames and the ServerHello's
    completing frame, as the oracle names them, against the payloads: each
    hello is the first handshake message of its direction, and tshark
    dissects it when the TLS record holding it is complete, so "completed"
    is the record's last byte (here every hello has a record of its own)."""
    streams = payload_streams(pcap, apprig.TLS_PORTS)
    checked = 0
    for r in recs:
        key = (r["client"]["port"], r["server"]["port"])
        cdata, cown = streams[key + ("c2s",)]
        ch_end = 5 + int.from_bytes(cdata[3:5], "big")
        want = [cown[0], completed(cown, 0, ch_end)]
        got = [r["_first_frame"], r["_ch_frame"]]
        if r.get("_sh_frame"):
            sdata, sown = streams[key + ("s2c",)]
            want.append(completed(sown, 0, 5 + int.from_bytes(sdata[3:5], "big")))
            got.append(r["_sh_frame"])
        check(got == want, f"{name} positions {key}: the oracle's (first, ClientHello, "
                           f"ServerHello) frames {got}, the bytes say {want}")
        checked += 1
    print(f"{name}: the frames of {checked} handshakes checked against the bytes", flush=True)


def selfcheck(theirs):
    ok, rep = ao.compare(theirs, theirs)
    check(ok and "0 missing, 0 extra" in rep, f"compare: identical records differ:\n{rep}")
    for kind, field in (("dns", "rcode"), ("tls", "sni"), ("http", "response_ns")):
        ours = copy.deepcopy(theirs)
        i = next(i for i, r in enumerate(ours) if r["kind"] == kind)
        ours[i][field] = "changed"
        ok, rep = ao.compare(ours, theirs, min_share=1.0)
        check(not ok and f"{kind}.{field}: ours" in rep,
              f"compare: a changed {kind}.{field} is not reported:\n{rep[:2000]}")
    ok, rep = ao.compare(theirs[1:], theirs)
    check(not ok and "MISSING" in rep, "compare: a missing record is not reported")
    extra = dict(copy.deepcopy(theirs[0]), client={"ip": "192.0.2.1", "port": 1})
    ok, rep = ao.compare(theirs + [extra], theirs)
    check(not ok and "EXTRA" in rep, "compare: an extra record is not reported")
    ok, rep = ao.compare(theirs + [extra], theirs, allow_extra=True)
    check(ok and "EXTRA" in rep, "compare: allow_extra does not allow an extra record")


def main():
    why = unavailable()
    if why:
        h.skip(f"application analytics rig: {why}")
    t_start = time.monotonic()
    work = h.tmpdir("mscope-app-")
    td = apprig.find_tapdelay(work)
    ports = {"dns_ports": apprig.DNS_PORTS, "tls_ports": apprig.TLS_PORTS,
             "http_ports": apprig.HTTP_PORTS}
    everything = []
    for name, rtt_min in (("dns", 20 * MS), ("tls", 20 * MS), ("tls_reorder", 20 * MS),
                          ("http", 10 * MS)):
        pcap, log = run_scenario(name, td, work)
        notes = []
        recs = ao.records(pcap, notes=notes, **ports)
        for n in notes:
            print(f"{name}: oracle note: {n}", flush=True)
        check(not notes, f"{name}: the oracle found oddities (above)")
        ts = ao.tshark_flows._timestamps(pcap)
        mine = by(recs, name.split("_")[0])
        check(len(mine) == len(recs), f"{name}: records of other kinds: "
                                      f"{[ao._desc(r) for r in recs if r['kind'] != name][:3]}")
        check_common(name, mine, (ts[0], ts[-1]), rtt_min)
        before = len(PROBLEMS)
        {"dns": lambda: check_dns(mine, log),
         "tls": lambda: (check_tls(mine, log, pcap), check_tls_positions(pcap, mine, name)),
         "tls_reorder": lambda: (check_tls(mine, log, pcap, reorder=True),
                                check_tls_positions(pcap, mine, name)),
         "http": lambda: (check_http(mine, log), check_http_positions(pcap, mine))}[name]()
        print(f"{name}: {len(mine)} oracle records, "
              f"{'all agree with the rig' if len(PROBLEMS) == before else 'PROBLEMS'}",
              flush=True)
        everything += mine
    selfcheck(everything)
    if PROBLEMS:
        h.fail(f"{len(PROBLEMS)} problem(s):\n" + "\n".join(PROBLEMS[:60]))
    print(f"app oracle: {len(everything)} transactions, every one as the rig made it "
          f"({time.monotonic() - t_start:.1f} s)")


if __name__ == "__main__":
    main()
