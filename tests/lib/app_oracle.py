"""DNS, TLS and HTTP/1.x transactions as Wireshark dissects them: the oracle
for the recorder's application records (issue 15; docs/APP_ANALYTICS.md).

    records(pcap, dns_ports=, tls_ports=, http_ports=)
                          -> [record dict, ...] in the issue's JSON field
                             names and types, ordered by ts_ns
    compare(ours, theirs) -> (ok, report): transactions paired, every field
                             exact; per-field agreement in the report

    python3 app_oracle.py FILE.pcap [--dns-port P] [--tls-port P] [--http-port P]
                                          prints tshark's records as JSON lines

One tshark run: `tshark -r FILE -T json -x` with fixed preferences (below)
and an empty configuration directory.  -T json keeps every message of a
frame apart (a frame with the end of one HTTP response and two more holds
three "http" objects; the parser keeps duplicate keys in order, which
Python's json would fold), and -x adds to every field a "<field>_raw" array
[hex, position, length, ...]: where the field lies in its data source (the
frame, or the reassembled PDU), which is how the frame that completed an
HTTP response's headers is found (below).  Ports: tshark finds DNS, TLS and
HTTP by port first (tcp.try_heuristic_first FALSE, its default) and by its
TLS/HTTP heuristics on other ports; the rig's ports are given with `-d
udp.port==P,dns`, `-d tcp.port==P,tls`, ... so that a port never decides.
The recorder detects TLS and HTTP from the bytes, so this only matters
here.

Common fields
  kind           "dns" | "tls" | "http"
  client,server  {"ip","port"}: DNS, the query's sender; TLS, the sender of the
                 ClientHello; HTTP, the sender of the request (ip.src/ipv6.src,
                 udp/tcp.srcport of that frame)
  ts_ns          the first packet of the request: the frame of the first
                 segment of the reassembled PDU that holds the query,
                 ClientHello or request (the first entry of tcp.segments), or
                 the frame itself when the message lies in one frame
  flow_id, node, vni, observer
                 the recorder's; None here (compare() does not look at them)
  Every time is the pcap's own nanosecond timestamp of a frame (read with
  pcapfile.py by frame number), never tshark's text, except dns.time which
  is tshark's and is checked against the frames' times.

"The packet that completed a message" is the frame in which tshark dissects
it: for a message in one segment that segment; for one spread over several,
the segment that completed the reassembly (the last byte to arrive in
sequence).  A segment whose bytes tshark has already taken (a retransmission
of a segment captured before) is not dissected again, so a retransmission
never completes a message whose first copy was captured.

DNS (one record per query message; dns.retransmission queries, i.e. the same
id and endpoints again within dns.retransmission_timer (5 s), are not new
queries and are skipped)
  transport      "udp" if the frame has a udp layer, else "tcp"
  id             dns.id (hex in tshark's JSON) as a number
  qname          dns.qry.name of the first question (tshark prints no trailing
                 dot; the root is "<Root>")
  qtype          dns.qry.type of the first question
  rcode          dns.flags.rcode of the response; None when unanswered
  answers        dns.count.answers of the response; 0 when unanswered
  response_ns    dns.time of the response (response frame time - query
                 frame time, both completing frames); None when unanswered
  Pairing: a response (dns.flags.response 1) answers the oldest unanswered
  query with the same id, transport and swapped addresses and ports.
  tshark's own pairing (dns.response_to) is the same rule and is checked.

TLS (one record per TCP connection with a ClientHello; the first ClientHello
and the first ServerHello of the stream: a HelloRetryRequest, which is a
ServerHello, would be taken as the ServerHello; none is made here)
  record_version tls.record.version of the record that holds the ClientHello
  client_version tls.handshake.version of the ClientHello
  version        the ServerHello's tls.handshake.extensions.supported_version if
                 present, else its tls.handshake.version; None without one
  sni            tls.handshake.extensions_server_name of the ClientHello; None
  alpn           the ClientHello's tls.handshake.extensions_alpn_str values in
                 order ([] without the extension)
  cipher         the ServerHello's tls.handshake.ciphersuite; None without one
  hello_rtt_ns   ServerHello frame time - ClientHello frame time (completing
                 frames); None without a ServerHello
  Versions and the cipher are numbers (tshark prints them as hex text).

HTTP/1.x (one record per request; responses are paired with requests in
order on their TCP stream, 1xx responses skipped: HTTP/1.x answers in
order.  tshark 4.0's own pairing, http.request_in / http.response_for.uri,
is wrong for pipelined requests: it pairs every response of a batch with
the last request sent)
  method         http.request.method;  uri  http.request.uri;
  host           http.host (None without a Host header)
  status         http.response.code; None when no response was seen
  request_body_bytes / response_body_bytes
                 the length of http.file_data (from its _raw entry): the body
                 as tshark reassembled it, de-chunked (http.dechunk_body); 0
                 without a body; the response's None when no response
  response_ns    from the frame that completed the request (headers and body:
                 the frame the request is dissected in) to the frame that
                 completed the response's headers.  tshark dissects a response
                 when its body is complete (http.desegment_body), so that
                 frame is found from positions: the headers end 2 bytes after
                 the last http.response.line (position + length from _raw),
                 and the tcp.segments entry of the PDU whose range (tcp.segment
                 _raw position and length within the reassembled PDU) holds
                 the last header byte is the frame.  A response in one frame:
                 that frame.  http.time (to the body's end, and given only for
                 the first response of a pipelined batch) is not used.

Caveats of tshark 4.0 (Debian 12's), and what the oracle does about them:
  * out-of-order segments are not reassembled by default
    (tcp.reassemble_out_of_order FALSE): a message whose segments reach the
    capture point out of order is lost.  Seen with apprig's tls_reorder:
    5 of 8 split ServerHellos had no record with the default, none was
    missing with TRUE.  The oracle sets TRUE (on the in-order captures the
    records are the same either way).  tshark also flags the late first
    copy of a held-back segment as a (fast) retransmission or out-of-order:
    those flags do not mean a second copy.
  * a frame can hold several PDUs: the ones that lie in its own bytes and,
    in order, at most one reassembled one (the PDU that began in an earlier
    segment); which positions are whose is told by content (_messages).
  * the Info column shows the start of a response whose body is still
    incomplete; the JSON tree does not: only the JSON tree is read.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tshark_flows  # noqa: E402  (frame timestamps from the pcap, exact)

TSHARK_PREFS = ["-o", "tcp.desegment_tcp_streams:TRUE",
                "-o", "tcp.analyze_sequence_numbers:TRUE",
                "-o", "tcp.try_heuristic_first:FALSE",
                "-o", "tcp.reassemble_out_of_order:TRUE",
                "-o", "http.desegment_headers:TRUE",
                "-o", "http.desegment_body:TRUE",
                "-o", "http.dechunk_body:TRUE",
                "-o", "tls.desegment_ssl_records:TRUE",
                "-o", "tls.desegment_ssl_application_data:TRUE",
                "-o", "dns.retransmission_timer:5"]

COMMON = ("kind", "flow_id", "node", "vni", "observer", "client", "server", "ts_ns")
FIELDS = {
    "dns": ("transport", "id", "qname", "qtype", "rcode", "answers", "response_ns"),
    "tls": ("record_version", "client_version", "version", "sni", "alpn", "cipher",
            "hello_rtt_ns"),
    "http": ("method", "host", "uri", "status", "request_body_bytes", "response_body_bytes",
             "response_ns"),
}
RECORDER_ONLY = ("flow_id", "node", "vni", "observer")


class OracleError(RuntimeError):
    """tshark failed or its output could not be read."""


# ---- reading tshark's JSON ---------------------------------------------------

def _pairs(p):
    return p   # keep duplicate keys, in order


def _get(pairs, key, default=None):
    for k, v in pairs:
        if k == key:
            return v
    return default


def _all(tree, key):
    """Every value of `key` under `tree` (lists of pairs), depth first, in
    order; a match is not searched further."""
    out = []
    if isinstance(tree, list):
        for item in tree:
            if isinstance(item, tuple) and len(item) == 2:
                k, v = item
                if k == key:
                    out.append(v)
                elif isinstance(v, list):
                    out += _all(v, key)
            elif isinstance(item, list):
                out += _all(item, key)
    return out


def _first(tree, key):
    v = _all(tree, key)
    return v[0] if v else None


def _int(text):
    return int(text, 0) if isinstance(text, str) else None


def tshark_frames(pcap, dns_ports=(53, 5353), tls_ports=(), http_ports=()):
    """tshark's JSON of every frame: a list of (frame number, layers), layers
    a list of (name, value) pairs with duplicates kept in order."""
    cmd = ["tshark", "-n", "-r", pcap, *TSHARK_PREFS, "-T", "json", "-x"]
    for p in dns_ports:
        cmd += ["-d", f"udp.port=={p},dns", "-d", f"tcp.port=={p},dns"]
    for p in tls_ports:
        cmd += ["-d", f"tcp.port=={p},tls"]
    for p in http_ports:
        cmd += ["-d", f"tcp.port=={p},http"]
    cmd += ["-Y", "dns || tls.handshake || http"]
    out = tshark_flows.run_tshark(cmd, pcap, OracleError)
    try:
        doc = json.loads(out.decode() or "[]", object_pairs_hook=_pairs)
    except ValueError as e:
        raise OracleError(f"tshark's JSON of {pcap} does not parse: {e}") from None
    frames = []
    for pkt in doc:
        layers = _get(_get(pkt, "_source"), "layers")
        number = int(_get(_get(layers, "frame"), "frame.number"))
        frames.append((number, layers))
    return frames


def _segments(value):
    """([(frame, position, length)], reassembled bytes) of a tcp.segments
    object."""
    out, raw = [], None
    for k, v in value:
        if k == "tcp.segment_raw":
            raw = v
        elif k == "tcp.segment":
            out.append((int(v), raw[1] if raw else None, raw[2] if raw else None))
            raw = None
    data = _get(value, "tcp.reassembled.data") or ""
    return out, bytes.fromhex(data.replace(":", ""))


def _messages(frames, names):
    """Walks the frames' layers; yields (frame, layers, name, value, segs)
    for every layer called one of `names`, in order.  segs is the
    tcp.segments list of the reassembled PDU the layer was dissected from,
    or None when it lies in the frame's own bytes.  The data source is told
    by content: the layer's bytes (its _raw entry: hex, position, length)
    are the reassembled data's at that position, or they are not.  (In
    order, only the first PDU of a frame can be a reassembled one; with
    out-of-order reassembly one frame may complete several.)"""
    for number, layers in frames:
        sources, raw = [], None
        for k, v in layers:
            if k == "tcp.segments":
                sources.append(_segments(v))
            elif k.endswith("_raw"):
                raw = v
                continue
            elif k in names:
                segs = None
                if raw and len(raw) >= 3 and isinstance(raw[0], str):
                    pdu = bytes.fromhex(raw[0])
                    pos = raw[1]
                    for s, data in sources:
                        if data[pos:pos + len(pdu)] == pdu:
                            segs = s
                            break
                yield number, layers, k, v, segs
            raw = None


def _endpoints(layers):
    ip = _get(layers, "ip") or _get(layers, "ipv6")
    if _get(layers, "ip") is not None:
        src, dst = _get(ip, "ip.src"), _get(ip, "ip.dst")
    else:
        src, dst = _get(ip, "ipv6.src"), _get(ip, "ipv6.dst")
    l4 = _get(layers, "udp")
    transport = "udp"
    if l4 is None:
        l4, transport = _get(layers, "tcp"), "tcp"
    sport = int(_get(l4, f"{transport}.srcport"))
    dport = int(_get(l4, f"{transport}.dstport"))
    stream = _get(l4, f"{transport}.stream")
    return transport, (src, sport), (dst, dport), stream


def _ep(e):
    return {"ip": e[0], "port": e[1]}


def _base(kind, client, server, ts):
    return {"kind": kind, "flow_id": None, "node": None, "vni": None, "observer": None,
            "client": _ep(client), "server": _ep(server), "ts_ns": ts}


# ---- DNS ---------------------------------------------------------------------

def _dns_records(frames, ts):
    out, pending, notes = [], {}, []
    for number, layers, _, dns, segs in _messages(frames, ("dns",)):
        transport, src, dst, _stream = _endpoints(layers)
        flags = _get(dns, "dns.flags_tree") or []
        is_resp = _get(flags, "dns.flags.response") == "1"
        qid = _int(_get(dns, "dns.id"))
        if not is_resp:
            if _get(dns, "dns.retransmission") == "1":
                continue
            queries = _get(dns, "Queries") or []
            name = _first(queries, "dns.qry.name")
            qtype = _first(queries, "dns.qry.type")
            rec = _base("dns", src, dst, ts[(segs[0][0] if segs else number) - 1])
            rec.update(transport=transport, id=qid, qname=name,
                       qtype=int(qtype) if qtype is not None else None, rcode=None,
                       answers=0, response_ns=None, _query_frame=number)
            out.append(rec)
            pending.setdefault((transport, src, dst, qid), []).append(rec)
            continue
        waiting = pending.get((transport, dst, src, qid))
        if not waiting:
            notes.append(f"frame {number}: DNS response id {qid} to no query seen")
            continue
        rec = waiting.pop(0)
        rec["rcode"] = int(_get(flags, "dns.flags.rcode"))
        rec["answers"] = int(_get(dns, "dns.count.answers"))
        rec["response_ns"] = ts[number - 1] - ts[rec["_query_frame"] - 1]
        rec["_response_frame"] = number
        to = _get(dns, "dns.response_to")
        dt = _get(dns, "dns.time")
        if to is not None and int(to) != rec["_query_frame"]:
            notes.append(f"frame {number}: tshark pairs it with frame {to}, "
                         f"the oracle with {rec['_query_frame']}")
        if dt is not None and tshark_flows._ns(dt) != rec["response_ns"]:
            notes.append(f"frame {number}: dns.time {dt} != frame times "
                         f"{rec['response_ns']} ns")
    return out, notes


# ---- TLS ---------------------------------------------------------------------

def _tls_records(frames, ts):
    streams = {}
    for number, layers, _, tls, segs in _messages(frames, ("tls",)):
        transport, src, dst, stream = _endpoints(layers)
        first_seg = segs[0][0] if segs else number
        for record in _all(tls, "tls.record"):
            rversion = _int(_get(record, "tls.record.version"))
            for hs in _all(record, "tls.handshake"):
                htype = _get(hs, "tls.handshake.type")
                if htype not in ("1", "2"):
                    continue
                st = streams.setdefault(stream, {})
                nseg = len(segs) if segs else 1
                if htype == "1" and "ch" not in st:
                    st["ch"] = (number, first_seg, src, dst, rversion, hs, nseg)
                elif htype == "2" and "sh" not in st:
                    st["sh"] = (number, hs, nseg)
    out = []
    for stream, st in streams.items():
        if "ch" not in st:
            continue
        number, first_seg, src, dst, rversion, ch, ch_segs = st["ch"]
        rec = _base("tls", src, dst, ts[first_seg - 1])
        alpn_ext = [v for k, v in ch if k.startswith("Extension: application_layer_protocol")]
        rec.update(record_version=rversion,
                   client_version=_int(_get(ch, "tls.handshake.version")),
                   version=None, sni=_first(ch, "tls.handshake.extensions_server_name"),
                   alpn=_all(alpn_ext, "tls.handshake.extensions_alpn_str"),
                   cipher=None, hello_rtt_ns=None, _ch_frame=number, _stream=int(stream),
                   _ch_segments=ch_segs, _first_frame=first_seg)
        if "sh" in st:
            sh_number, sh, rec["_sh_segments"] = st["sh"]
            sv = _first(sh, "tls.handshake.extensions.supported_version")
            rec["version"] = _int(sv) if sv else _int(_get(sh, "tls.handshake.version"))
            rec["cipher"] = _int(_first(sh, "tls.handshake.ciphersuite"))
            rec["hello_rtt_ns"] = ts[sh_number - 1] - ts[number - 1]
            rec["_sh_frame"] = sh_number
        out.append(rec)
    return out


# ---- HTTP --------------------------------------------------------------------

def _body_len(http):
    raw = _get(http, "http.file_data_raw")
    if raw is not None:
        return raw[2]
    return 0 if _get(http, "http.file_data") is None else len(_get(http, "http.file_data"))


def _headers_frame(number, http, segs):
    """The frame that completed a response's headers (module doc)."""
    if not segs:
        return number
    lines = [v for k, v in http if k in ("http.response.line_raw",)]
    if lines:
        end = max(r[1] + r[2] for r in lines) + 2     # + the empty line
    else:
        hr = _get(http, "http_raw")
        end = hr[1] + hr[2] if hr else None
    if end is None:
        return number
    last = end - 1
    for frame, pos, length in segs:
        if pos is not None and pos <= last < pos + length:
            return frame
    return number


def _http_records(frames, ts):
    streams = {}
    for number, layers, _, http, segs in _messages(frames, ("http",)):
        transport, src, dst, stream = _endpoints(layers)
        st = streams.setdefault(stream, {"req": [], "resp": []})
        if _first(http, "http.request.method") is not None:
            method = _first(http, "http.request.method")
            rec = _base("http", src, dst, ts[(segs[0][0] if segs else number) - 1])
            rec.update(method=method, host=_get(http, "http.host"),
                       uri=_first(http, "http.request.uri"), status=None,
                       request_body_bytes=_body_len(http), response_body_bytes=None,
                       response_ns=None, _request_frame=number, _stream=int(stream),
                       _first_frame=segs[0][0] if segs else number)
            st["req"].append(rec)
        elif _first(http, "http.response.code") is not None:
            code = int(_first(http, "http.response.code"))
            if 100 <= code < 200:
                continue
            st["resp"].append((number, code, _body_len(http), _headers_frame(number, http,
                                                                              segs)))
    out, notes = [], []
    for stream, st in streams.items():
        for i, rec in enumerate(st["req"]):
            if i < len(st["resp"]):
                number, code, blen, hframe = st["resp"][i]
                rec.update(status=code, response_body_bytes=blen,
                           response_ns=ts[hframe - 1] - ts[rec["_request_frame"] - 1],
                           _response_frame=number, _headers_frame=hframe)
            out.append(rec)
        if len(st["resp"]) > len(st["req"]):
            notes.append(f"tcp stream {stream}: {len(st['resp'])} responses to "
                         f"{len(st['req'])} requests")
    return out, notes


def records(pcap, dns_ports=(53, 5353), tls_ports=(), http_ports=(), notes=None):
    """tshark's transactions in `pcap` as records (module doc), ordered by
    ts_ns.  Keys starting with "_" are the oracle's own (frame numbers,
    stream) for reports.  `notes`, a list, receives what the oracle found
    odd (tshark's pairing differing from the oracle's, ...)."""
    ts = tshark_flows._timestamps(pcap)
    frames = tshark_frames(pcap, dns_ports, tls_ports, http_ports)
    dns, n1 = _dns_records(frames, ts)
    tls = _tls_records(frames, ts)
    http, n2 = _http_records(frames, ts)
    if notes is not None:
        notes += n1 + n2
    out = dns + tls + http
    out.sort(key=lambda r: (r["ts_ns"], r["kind"]))
    return out


def public(rec):
    """A record without the oracle's own "_" keys."""
    return {k: v for k, v in rec.items() if not k.startswith("_")}


# ---- comparison --------------------------------------------------------------

def _key(r):
    c, s = r.get("client") or {}, r.get("server") or {}
    k = (r.get("kind"), c.get("ip"), c.get("port"), s.get("ip"), s.get("port"))
    if r.get("kind") == "dns":
        k += (r.get("transport"), r.get("id"))
    return k


def compare(ours, theirs, min_share=0.99, allow_extra=False):
    """Pairs records by kind and endpoints (DNS also transport and id),
    several on the same key in ts_ns order, and compares every field of the
    issue (FIELDS and client/server/ts_ns; flow_id, node, vni, observer are
    the recorder's and not compared).  ok when every tshark transaction is
    found, none of ours is left over (unless allow_extra: e.g. a capture
    with out-of-order segments, which tshark 4.0 does not reassemble by
    default), and, per field, at least `min_share` of the pairs agree
    exactly.  Returns (ok, report)."""
    pending = {}
    for r in sorted(ours, key=lambda r: r.get("ts_ns") or 0):
        pending.setdefault(_key(r), []).append(r)
    pairs, missing = [], []
    for t in sorted(theirs, key=lambda r: r["ts_ns"]):
        q = pending.get(_key(t))
        if q:
            pairs.append((q.pop(0), t))
        else:
            missing.append(t)
    extra = [r for q in pending.values() for r in q]
    lines, per_field = [], {}
    for o, t in pairs:
        for f in ("ts_ns",) + FIELDS[t["kind"]]:
            name = f"{t['kind']}.{f}"
            agree = o.get(f, "<absent>") == t.get(f)
            n = per_field.setdefault(name, [0, 0])
            n[0] += agree
            n[1] += 1
            if not agree:
                lines.append(f"  {name}: ours {json.dumps(o.get(f, '<absent>'))} tshark "
                             f"{json.dumps(t.get(f))} ({_desc(t)})")
    ok = not missing and (allow_extra or not extra)
    head = [f"{len(pairs)} of {len(theirs)} tshark transactions paired, {len(missing)} "
            f"missing, {len(extra)} extra"]
    for name, (a, n) in sorted(per_field.items()):
        share = a / n if n else 1.0
        if share < min_share:
            ok = False
        head.append(f"  {name:28} {a}/{n} exact ({100 * share:.1f}%)"
                    f"{'' if share >= min_share else '  BELOW ' + str(100 * min_share) + '%'}")
    for t in missing:
        lines.append(f"MISSING {_desc(t)}")
    for o in extra:
        lines.append(f"EXTRA {_desc(o)}")
    return ok, "\n".join(head + lines)


def _desc(r):
    c, s = r.get("client") or {}, r.get("server") or {}
    what = {"dns": lambda: f"{r.get('transport')} id {r.get('id')} {r.get('qname')}",
            "tls": lambda: f"sni {r.get('sni')}",
            "http": lambda: f"{r.get('method')} {r.get('uri')}"}.get(r.get("kind"),
                                                                   lambda: "")()
    return (f"{r.get('kind')} {c.get('ip')}:{c.get('port')} -> {s.get('ip')}:{s.get('port')} "
            f"{what}")


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="tshark's DNS/TLS/HTTP transactions as records")
    ap.add_argument("pcap")
    ap.add_argument("--dns-port", type=int, action="append", default=[])
    ap.add_argument("--tls-port", type=int, action="append", default=[])
    ap.add_argument("--http-port", type=int, action="append", default=[])
    a = ap.parse_args(argv[1:])
    notes = []
    for r in records(a.pcap, tuple(a.dns_port) or (53, 5353), tuple(a.tls_port),
                     tuple(a.http_port), notes=notes):
        print(json.dumps(public(r)))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
