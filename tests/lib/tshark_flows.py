"""Per-flow TCP metrics as Wireshark sees them: the oracle for the recorder's
`--flows-json` output (tests/integration/test_tcp_analytics.py).

    flows(pcap)           -> [flow dict, ...] in the shape of `mscope-recorder
                             --read PCAP --flows-json -`, one per tshark TCP
                             stream, ordered by first packet
    compare(ours, theirs) -> (ok, report): per flow and field, exact fields,
                             tolerant fields, informational fields

    python3 tshark_flows.py FILE.pcap      prints tshark's flows as JSON lines
    python3 tshark_flows.py FILE.pcap OURS.jsonl
                                           compares; exit 0 equal, 1 not

Where every number comes from (tshark 4.0, default TCP preferences forced on
the command line so a user's preferences file cannot change them):

  packets, ip_bytes,      frames per direction; sum of ip.len (IPv6: plen+40);
  payload_bytes           sum of tcp.len (retransmitted bytes count again)
  retransmissions         frames with any of tcp.analysis.retransmission,
                          .fast_retransmission, .spurious_retransmission (tshark
                          4.0 also sets .retransmission on fast and spurious ones)
  fast_/spurious_retr..   frames with that flag
  out_of_order, dup_acks, frames with tcp.analysis.out_of_order, .duplicate_ack,
  lost_segments,          .lost_segment, .zero_window, .window_full, .keep_alive,
  zero_windows,           counted in the direction of the frame that carries the
  window_full,            flag (a zero window or a dup ACK counts for the side
  keep_alives             that advertises it; window_full for the data sender)
  rsts, fins              frames with RST / FIN set
  rtt_ns                  tcp.analysis.ack_rtt samples.  tshark puts the sample on
                          the ACK frame; it is attributed to the direction of the
                          DATA segment being acknowledged (the frame named by
                          tcp.analysis.acks_frame, i.e. the other direction), so
                          c2s.rtt_ns is "how long the client's segments took to be
                          acknowledged" seen from the capture point.  That is the
                          sender's RTT, which is what RTT means per direction;
                          attributing it to the ACK's direction would read as
                          the reverse.  mean = floor(sum / count).
                          {"count": 0} when there is no sample.
  first_ns, last_ns       the pcap's own timestamps of the stream's first and last
                          frame (read with pcapfile.py by frame number, never
                          from tshark's text: exact nanoseconds)

Client and server: the client is the sender of the first SYN (without ACK); if
the capture holds no SYN, the receiver of the first SYN-ACK; if neither (a
capture that starts mid-connection), the endpoint with the higher port
(servers listen on low ports), and with equal ports the first sender.  The
same rule as docs/TCP_ANALYTICS.md.

Handshake (times from the pcap, by frame number; a key is absent when not seen):
  syn_ns      the client's most recent SYN before the handshake completed
              (after a retransmitted SYN, the last one: Wireshark's ts_mru_syn)
  synack_ns   the server's most recent SYN-ACK before the handshake completed
              (so that server_setup_ns pairs a SYN with the SYN-ACK that can
              answer it: after SYN, SYN-ACK lost, SYN again, SYN-ACK again,
              the first SYN-ACK would precede the SYN and give a negative time)
  ack_ns      the first client frame with ACK and without SYN/RST after a SYN-ACK;
              it completes the handshake and freezes the three times
  complete    SYN, SYN-ACK and that ACK all seen
  server_setup_ns = synack_ns - syn_ns; client_setup_ns = ack_ns - synack_ns
  initial_rtt_ns  tcp.analysis.initial_rtt, first value in the stream.  tshark
              computes it at the first frame with ACK and without SYN in EITHER
              direction after a SYN: on a complete handshake it equals ack_ns -
              syn_ns, but a refused connection (SYN, RST/ACK) gets one too (RST
              time - SYN time), with complete false.

Fields tshark has no equivalent for, computed here for information only
(never fail a comparison), with docs/TCP_ANALYTICS.md's definitions:
app_response_ns = {"count","min","mean","max"} over request/response turns,
each sample the time from the client's last payload segment of a request to
the server's first payload segment after it; conn_state and history in the
manner of Zeek's conn.log (history: one letter per event kind, first
occurrence order, upper case for the client: S syn, H syn-ack, A pure ack,
D data, F fin, R rst, T retransmission, W zero window).  flow_id is tshark's
stream number; node, vni and observer are null; final is true (the file ended).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapfile  # noqa: E402

DIR_FIELDS = ("packets", "ip_bytes", "payload_bytes", "retransmissions",
              "fast_retransmissions", "spurious_retransmissions", "out_of_order", "dup_acks",
              "lost_segments", "zero_windows", "window_full", "keep_alives", "rsts", "fins")
HANDSHAKE_FIELDS = ("complete", "syn_ns", "synack_ns", "ack_ns", "server_setup_ns",
                    "client_setup_ns", "initial_rtt_ns")

# ---- what compare() demands ---------------------------------------------
# Exact: the list (packets, bytes, handshake times, initial RTT, RSTs,
# zero windows, retransmissions of all kinds together) plus the counters
# whose Wireshark rule is a plain test on one frame against per-direction
# state, with no clock in it: FINs, keep-alives, lost segments, window full.
DIR_EXACT = ("packets", "ip_bytes", "payload_bytes", "retransmissions", "rsts", "fins",
             "zero_windows", "keep_alives", "lost_segments", "window_full")
# Tolerant: |ours - tshark| <= max(TOL_ABS, TOL_REL * tshark), per flow and
# direction.  Not because tshark is unsteady: single-pass tshark is a
# deterministic function of the capture, and a faithful implementation matches
# it exactly.  But these four are the classification heuristics of Wireshark's
# analysis, where a frame that satisfies several tests gets the first one in
# Wireshark's order, and that order and its thresholds change between
# releases (the out-of-order threshold, for one, was a fixed 3 ms before it
# became the initial RTT), so an exact demand would pin the quirks of one
# tshark release (this one is 4.0, Debian 12's).  The issue demands exactness for the other
# counters only.
#  * out_of_order: a segment below the highest sequence seen, arriving less
#    than the initial RTT (3 ms without a handshake) after the highest-sequence
#    segment, and not a fast retransmission.  A clock threshold against two
#    frames' timestamps: with capture at the receiver, most loss repairs that
#    arrive while new data still flows are "out-of-order", not "retransmission".
#    A frame moving between out-of-order and a retransmission kind still fails
#    through the exact retransmission total.
#  * dup_acks: zero length, same seq, ack AND window as that side's previous
#    segment, window not 0, no SYN/FIN/RST, and not an ACK of a keep-alive or
#    window probe.  Linux grows its receive window during loss recovery, so
#    most repeated ACKs are "window updates" rather than dup ACKs; the count
#    hinges on that boundary, and it also feeds "fast retransmission" (>= 2 dup
#    ACKs within 20 ms).
#  * fast_/spurious_retransmissions: sub-kinds of the exact retransmission
#    total, chosen by the same ordered tests.
# TOL_ABS = 2 lets a borderline frame or two through on small flows; TOL_REL =
# 10% scales with flows of hundreds of events.  Anything systematic (a missing
# rule, a wrong direction) is far outside it.
DIR_TOLERANT = ("out_of_order", "dup_acks", "fast_retransmissions", "spurious_retransmissions")
TOL_ABS = 2
TOL_REL = 0.10
# RTT samples (rtt_ns): a subset of Wireshark's.  Wireshark keeps every
# unacknowledged segment (up to 1000 per direction) and takes a sample when an
# ACK equals one's end; the recorder may keep fewer (docs/TCP_ANALYTICS.md: the
# oldest 8, bounded memory for a million flows), so it can miss samples but
# never invent one.  Demanded: count <= tshark's and >= 1 when tshark has any;
# min >= tshark's min, max <= tshark's max, min <= mean <= max; and when the
# counts are equal the sets are equal, so min, max and mean (floor of
# sum/count, to 1 ns) must be exactly tshark's.
TOP_EXACT = ("proto", "first_ns", "last_ns")
INFO = ("app_response_ns", "conn_state", "history")
IGNORED = ("flow_id", "node", "vni", "observer", "final")

TH_FIN, TH_SYN, TH_RST, TH_ACK = 0x01, 0x02, 0x04, 0x10

_FLAG_FIELDS = ("retransmission", "fast_retransmission", "spurious_retransmission",
                "out_of_order", "duplicate_ack", "lost_segment", "zero_window", "window_full",
                "keep_alive")
TSHARK_FIELDS = (["frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst",
                  "ipv6.dst", "tcp.dstport", "ip.len", "ipv6.plen", "tcp.len", "tcp.flags",
                  "tcp.analysis.ack_rtt", "tcp.analysis.acks_frame", "tcp.analysis.initial_rtt"]
                 + [f"tcp.analysis.{f}" for f in _FLAG_FIELDS])
TSHARK_PREFS = ["-o", "tcp.analyze_sequence_numbers:TRUE",
                "-o", "tcp.relative_sequence_numbers:TRUE",
                "-o", "tcp.track_bytes_in_flight:TRUE",
                "-o", "tcp.calculate_timestamps:TRUE",
                "-o", "tcp.try_heuristic_first:FALSE",
                "-o", "tcp.desegment_tcp_streams:FALSE"]


class OracleError(RuntimeError):
    """tshark failed or its output could not be read."""


def _ns(text):
    """'0.020383582' (seconds, as tshark prints relative times) -> 20383582,
    exactly, without going through a float."""
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    v = int(whole or 0) * 1000000000 + int((frac + "000000000")[:9])
    return -v if neg else v


def _timestamps(pcap):
    """ts_ns of every frame, index = frame number - 1 (pcap or pcapng)."""
    try:
        _, recs = pcapfile.iter_pcap(pcap)
        return [r[0] for r in recs]
    except pcapfile.PcapError:
        with tempfile.TemporaryDirectory() as d:
            conv = os.path.join(d, "conv.pcap")
            p = subprocess.run(["editcap", "-F", "nsecpcap", pcap, conv], capture_output=True)
            if p.returncode != 0:
                raise OracleError(f"editcap cannot convert {pcap}: {p.stderr.decode()}")
            _, recs = pcapfile.iter_pcap(conv)
            return [r[0] for r in recs]


def run_tshark(cmd, pcap, error=None):
    """tshark's standard output for cmd (reading pcap), or error (default
    OracleError) naming what it said on failure. Run with an empty personal
    configuration: a user's preferences (or an unreadable ~/.config/wireshark,
    as under sudo or setpriv) cannot change the answer."""
    with tempfile.TemporaryDirectory(prefix="tshark-conf-") as conf:
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=conf)
        p = subprocess.run(cmd, capture_output=True, env=env)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise (error or OracleError)(f"tshark exited {p.returncode} on {pcap}: " + "\n".join(err[-5:]))
    return p.stdout


def tshark_rows(pcap):
    """tshark's reading of every TCP frame: a list of dicts (frame, stream,
    src, sport, dst, dport, ip_len, tcp_len, flags, ack_rtt, acks_frame,
    initial_rtt, and one boolean per analysis flag)."""
    cmd = ["tshark", "-n", "-r", pcap, *TSHARK_PREFS, "-Y", "tcp && !icmp && !icmpv6",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=l"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = run_tshark(cmd, pcap)
    rows = []
    for line in out.decode().splitlines():
        v = dict(zip(TSHARK_FIELDS, line.split("\t")))
        if not v.get("tcp.stream"):
            continue
        v6 = bool(v["ipv6.src"]) and not v["ip.src"]
        row = {
            "frame": int(v["frame.number"]),
            "stream": int(v["tcp.stream"]),
            "src": v["ipv6.src"] if v6 else v["ip.src"],
            "dst": v["ipv6.dst"] if v6 else v["ip.dst"],
            "sport": int(v["tcp.srcport"]),
            "dport": int(v["tcp.dstport"]),
            "ip_len": int(v["ipv6.plen"]) + 40 if v6 else int(v["ip.len"] or 0),
            "tcp_len": int(v["tcp.len"] or 0),
            "flags": int(v["tcp.flags"], 16),
            "ack_rtt": _ns(v["tcp.analysis.ack_rtt"]) if v["tcp.analysis.ack_rtt"] else None,
            "acks_frame": (int(v["tcp.analysis.acks_frame"])
                           if v["tcp.analysis.acks_frame"] else None),
            "initial_rtt": (_ns(v["tcp.analysis.initial_rtt"])
                            if v["tcp.analysis.initial_rtt"] else None),
        }
        for f in _FLAG_FIELDS:
            row[f] = bool(v[f"tcp.analysis.{f}"])
        rows.append(row)
    return rows


def _new_dir():
    d = {k: 0 for k in DIR_FIELDS}
    d["_rtt"] = []
    return d


def _history_add(fl, is_client, letter):
    ch = letter if is_client else letter.lower()
    if ch not in fl["history"]:
        fl["history"] += ch


def _conn_state(f):
    """Zeek's conn_state from what was seen (informational)."""
    hs = f["_seen"]
    c, s = f["c2s"], f["s2c"]
    syn, synack = hs["syn"], hs["synack"]
    established = syn and synack and f["handshake"].get("complete", False)
    if not syn and not synack:
        return "OTH"
    if c["rsts"] or s["rsts"]:
        first_rst_client = hs["first_rst"] == "c"
        if syn and not synack:
            return "RSTOS0" if first_rst_client else "REJ"
        if synack and not syn:
            return "RSTRH" if not first_rst_client else "OTH"
        return "RSTO" if first_rst_client else "RSTR"
    if syn and not synack:
        return "SH" if c["fins"] else "S0"
    if synack and not syn:
        return "SHR" if s["fins"] else "OTH"
    if not established:
        return "S1" if not (c["fins"] or s["fins"]) else "OTH"
    if c["fins"] and s["fins"]:
        return "SF"
    if c["fins"]:
        return "S2"
    if s["fins"]:
        return "S3"
    return "S1"


def _stat(samples):
    """{"count","min","mean","max"} of integer samples; mean = floor(sum/count);
    only "count" when there is none."""
    if not samples:
        return {"count": 0}
    return {"count": len(samples), "min": min(samples), "mean": sum(samples) // len(samples),
            "max": max(samples)}


def flows(pcap):
    """tshark's per-stream metrics of `pcap`, as flow dicts (module doc)."""
    ts = _timestamps(pcap)
    rows = tshark_rows(pcap)
    by_stream = {}
    for r in rows:
        by_stream.setdefault(r["stream"], []).append(r)
    out = []
    for stream, frames in by_stream.items():
        frames.sort(key=lambda r: r["frame"])
        first = frames[0]
        # client = sender of the first SYN; else receiver of the first SYN-ACK;
        # else the higher port; else the first sender
        syn = next((r for r in frames if r["flags"] & (TH_SYN | TH_ACK) == TH_SYN), None)
        synack = next((r for r in frames if r["flags"] & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK),
                      None)
        if syn:
            client = (syn["src"], syn["sport"])
            server = (syn["dst"], syn["dport"])
        elif synack:
            client = (synack["dst"], synack["dport"])
            server = (synack["src"], synack["sport"])
        elif first["sport"] < first["dport"]:
            client = (first["dst"], first["dport"])
            server = (first["src"], first["sport"])
        else:
            client = (first["src"], first["sport"])
            server = (first["dst"], first["dport"])
        fl = {
            "flow_id": stream, "node": None, "vni": None, "observer": None, "proto": 6,
            "client": {"ip": client[0], "port": client[1]},
            "server": {"ip": server[0], "port": server[1]},
            "first_ns": ts[frames[0]["frame"] - 1], "last_ns": ts[frames[-1]["frame"] - 1],
            "c2s": _new_dir(), "s2c": _new_dir(), "handshake": {}, "history": "",
            "_seen": {"syn": False, "synack": False, "first_rst": None},
        }
        dir_of_frame = {}
        hs = {}
        last_req_ns = None   # the client's last payload of a request not yet answered
        app_samples = []
        for r in frames:
            t = ts[r["frame"] - 1]
            is_c = (r["src"], r["sport"]) == client
            dir_of_frame[r["frame"]] = "c2s" if is_c else "s2c"
            d = fl["c2s" if is_c else "s2c"]
            fset = r["flags"]
            d["packets"] += 1
            d["ip_bytes"] += r["ip_len"]
            d["payload_bytes"] += r["tcp_len"]
            retrans = (r["retransmission"] or r["fast_retransmission"]
                       or r["spurious_retransmission"])
            d["retransmissions"] += retrans
            d["fast_retransmissions"] += r["fast_retransmission"]
            d["spurious_retransmissions"] += r["spurious_retransmission"]
            d["out_of_order"] += r["out_of_order"]
            d["dup_acks"] += r["duplicate_ack"]
            d["lost_segments"] += r["lost_segment"]
            d["zero_windows"] += r["zero_window"]
            d["window_full"] += r["window_full"]
            d["keep_alives"] += r["keep_alive"]
            d["rsts"] += bool(fset & TH_RST)
            d["fins"] += bool(fset & TH_FIN)
            if r["ack_rtt"] is not None:
                # the sample belongs to the data segment's direction: the other one
                (fl["s2c"] if is_c else fl["c2s"])["_rtt"].append(r["ack_rtt"])
            if r["initial_rtt"] is not None and "initial_rtt_ns" not in hs:
                hs["initial_rtt_ns"] = r["initial_rtt"]
            # handshake, streaming rule (module doc)
            if "ack_ns" not in hs:
                if fset & (TH_SYN | TH_ACK) == TH_SYN and is_c:
                    hs["syn_ns"] = t
                elif fset & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK and not is_c:
                    hs["synack_ns"] = t
                elif (is_c and fset & TH_ACK and not fset & (TH_SYN | TH_RST)
                      and "synack_ns" in hs):
                    hs["ack_ns"] = t   # freezes the three times
                    hs["complete"] = "syn_ns" in hs
            # information only
            if fset & TH_SYN:
                fl["_seen"]["synack" if fset & TH_ACK else "syn"] = True
            if fset & TH_RST and fl["_seen"]["first_rst"] is None:
                fl["_seen"]["first_rst"] = "c" if is_c else "s"
            if fset & (TH_SYN | TH_ACK) == TH_SYN:
                _history_add(fl, is_c, "S")
            elif fset & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK:
                _history_add(fl, is_c, "H")
            elif fset & TH_ACK and r["tcp_len"] == 0 and not fset & (TH_FIN | TH_RST):
                _history_add(fl, is_c, "A")
            if r["tcp_len"]:
                _history_add(fl, is_c, "D")
            if fset & TH_FIN:
                _history_add(fl, is_c, "F")
            if fset & TH_RST:
                _history_add(fl, is_c, "R")
            if retrans:
                _history_add(fl, is_c, "T")
            if r["zero_window"]:
                _history_add(fl, is_c, "W")
            if r["tcp_len"]:
                if is_c:
                    last_req_ns = t
                elif last_req_ns is not None:
                    app_samples.append(t - last_req_ns)
                    last_req_ns = None
        hs.setdefault("complete", False)
        if "syn_ns" in hs and "synack_ns" in hs:
            hs["server_setup_ns"] = hs["synack_ns"] - hs["syn_ns"]
        if "synack_ns" in hs and "ack_ns" in hs:
            hs["client_setup_ns"] = hs["ack_ns"] - hs["synack_ns"]
        fl["handshake"] = {k: hs[k] for k in HANDSHAKE_FIELDS if k in hs}
        for dname in ("c2s", "s2c"):
            fl[dname]["rtt_ns"] = _stat(fl[dname].pop("_rtt"))
        fl["app_response_ns"] = _stat(app_samples)
        fl["conn_state"] = _conn_state(fl)
        fl["final"] = True
        del fl["_seen"]
        out.append(fl)
    out.sort(key=lambda f: (f["first_ns"], f["flow_id"]))
    return out


# ---- comparison ------------------------------------------------------------

def _ep(e):
    return f"{e.get('ip')}:{e.get('port')}" if isinstance(e, dict) else str(e)


def _key(f):
    return (_ep(f.get("client")), _ep(f.get("server")))


def _name(f):
    return f"{_ep(f.get('client'))} -> {_ep(f.get('server'))}"


def _fmt(v):
    return "absent" if v is _ABSENT else json.dumps(v)


_ABSENT = object()


def _tolerance(theirs):
    return max(TOL_ABS, int(TOL_REL * theirs))


def _match(ours, theirs):
    """Pairs flows by (client, server) endpoints, several flows on the same
    endpoints in time order.  Returns (pairs, unmatched ours, unmatched theirs,
    notes); a flow of ours whose client and server are swapped is paired and
    reported as such."""
    pending = {}
    for f in ours:
        pending.setdefault(_key(f), []).append(f)
    for k in pending:
        pending[k].sort(key=lambda f: f.get("first_ns") or 0)
    pairs, missing, notes = [], [], []
    for t in theirs:
        k = _key(t)
        rk = (k[1], k[0])
        if pending.get(k):
            pairs.append((pending[k].pop(0), t))
        elif pending.get(rk):
            o = pending[rk].pop(0)
            notes.append((t, "client and server are swapped: ours says client "
                             f"{_ep(o.get('client'))}, tshark (sender of the first SYN) "
                             f"{_ep(t['client'])}; directions compared as on the wire"))
            # compare the same wire direction, so the report shows the real
            # differences and not every counter twice
            o = dict(o, c2s=o.get("s2c"), s2c=o.get("c2s"), client=o.get("server"),
                     server=o.get("client"))
            pairs.append((o, t))
        else:
            missing.append(t)
    extra = [f for v in pending.values() for f in v]
    return pairs, extra, missing, notes


def _compare_rtt(name, o, t):
    """rtt_ns: ours must be a subset of tshark's samples (see RTT above)."""
    diffs = []
    oc, tc = o.get("count", _ABSENT), t["count"]
    if not isinstance(oc, int):
        return [("FAIL", f"{name}.count", oc, tc, "missing")]
    if oc > tc:
        diffs.append(("FAIL", f"{name}.count", oc, tc, "more samples than tshark: "
                      "not a subset"))
    elif tc and not oc:
        diffs.append(("FAIL", f"{name}.count", oc, tc, "no sample where tshark has some"))
    elif oc == tc:
        for k in ("min", "max"):
            if tc and o.get(k, _ABSENT) != t[k]:
                diffs.append(("FAIL", f"{name}.{k}", o.get(k, _ABSENT), t[k],
                              "same count, so the same samples: must be equal"))
        m = o.get("mean", _ABSENT)
        if tc and (not isinstance(m, (int, float)) or abs(m - t["mean"]) > 1):
            diffs.append(("FAIL", f"{name}.mean", m, t["mean"],
                          "same samples: must be equal to 1 ns (floor of sum/count)"))
        return diffs
    else:
        diffs.append(("tolerated", f"{name}.count", oc, tc, "fewer samples (a subset)"))
    if oc and tc:
        lo, hi, m = o.get("min", _ABSENT), o.get("max", _ABSENT), o.get("mean", _ABSENT)
        if not all(isinstance(v, (int, float)) for v in (lo, hi, m)):
            diffs.append(("FAIL", name, o, t, "min/mean/max missing"))
        else:
            if lo < t["min"]:
                diffs.append(("FAIL", f"{name}.min", lo, t["min"],
                              "below tshark's smallest sample: not a subset"))
            if hi > t["max"]:
                diffs.append(("FAIL", f"{name}.max", hi, t["max"],
                              "above tshark's largest sample: not a subset"))
            if not lo <= m <= hi:
                diffs.append(("FAIL", f"{name}.mean", m, t["mean"], "outside our min..max"))
    return diffs


def compare_flow(o, t):
    """Differences between one flow of ours and tshark's.  Returns a list of
    (severity, field, ours, theirs, note), severity "FAIL", "tolerated" or
    "info"."""
    diffs = []

    def exact(field, a, b):
        if a != b:
            diffs.append(("FAIL", field, a, b, "must be equal"))

    for k in TOP_EXACT:
        exact(k, o.get(k, _ABSENT), t.get(k, _ABSENT))
    for dname in ("c2s", "s2c"):
        od, td = o.get(dname) or {}, t[dname]
        for k in DIR_EXACT:
            exact(f"{dname}.{k}", od.get(k, _ABSENT), td[k])
        for k in DIR_TOLERANT:
            a, b = od.get(k, _ABSENT), td[k]
            if a is _ABSENT or not isinstance(a, int):
                diffs.append(("FAIL", f"{dname}.{k}", a, b, "missing"))
            elif abs(a - b) > _tolerance(b):
                diffs.append(("FAIL", f"{dname}.{k}", a, b,
                              f"differs by {a - b:+d}, tolerance ±{_tolerance(b)}"))
            elif a != b:
                diffs.append(("tolerated", f"{dname}.{k}", a, b,
                              f"differs by {a - b:+d}, within ±{_tolerance(b)}"))
        diffs += _compare_rtt(f"{dname}.rtt_ns", od.get("rtt_ns") or {}, td["rtt_ns"])
    oh, th = o.get("handshake") or {}, t["handshake"]
    for k in HANDSHAKE_FIELDS:
        exact(f"handshake.{k}", oh.get(k, _ABSENT), th.get(k, _ABSENT))
    for k in INFO:
        a, b = o.get(k, _ABSENT), t.get(k, _ABSENT)
        if a != b:
            diffs.append(("info", k, a, b, "no tshark equivalent; computed here, never fails"))
    return diffs


def compare(ours, theirs, show_info=True):
    """Compares our flows (dicts parsed from --flows-json, any protocol; only
    proto 6 is looked at) with tshark's (flows()).  Returns (ok, report):
    ok is False when a flow is missing or extra, or a field is out of its
    class's bound (exact, tolerant); the report names each flow and field."""
    ours = [f for f in ours if f.get("proto") == 6]
    pairs, extra, missing, notes = _match(ours, theirs)
    note_of = {id(t): n for t, n in notes}
    lines, fails, tolerated = [], 0, 0
    for t in missing:
        fails += 1
        lines.append(f"MISSING flow {_name(t)} (tshark stream {t['flow_id']}, "
                     f"{t['c2s']['packets']}+{t['s2c']['packets']} packets): not in our output")
    for o in extra:
        fails += 1
        lines.append(f"EXTRA flow {_name(o)} (flow_id {o.get('flow_id')}): tshark has no such "
                     f"TCP stream")
    for o, t in pairs:
        diffs = compare_flow(o, t)
        if id(t) in note_of:
            # o's endpoints were swapped back by _match; show them as ours said
            ours_said = f"{_ep(o.get('server'))} -> {_ep(o.get('client'))}"
            diffs.insert(0, ("FAIL", "client/server", ours_said, _name(t), note_of[id(t)]))
        shown = [d for d in diffs if show_info or d[0] != "info"]
        if not shown:
            continue
        nf = sum(1 for d in diffs if d[0] == "FAIL")
        fails += nf
        tolerated += sum(1 for d in diffs if d[0] == "tolerated")
        lines.append(f"flow {_name(t)} (tshark stream {t['flow_id']}, ours {o.get('flow_id')}): "
                     f"{nf} failing field(s)")
        for sev, field, a, b, why in shown:
            lines.append(f"  {sev:9} {field:34} ours {_fmt(a):>14}  tshark {_fmt(b):>14}  ({why})")
    head = (f"{len(pairs)} flows paired of {len(theirs)} tshark streams and {len(ours)} TCP "
            f"flows of ours; {fails} failure(s), {tolerated} tolerated difference(s)")
    return fails == 0, "\n".join([head] + lines)


def selfcheck(theirs):
    """Checks compare() itself on real flows: identical flows pass; a flow
    with one packet more, a missing handshake time, swapped endpoints, or left
    out fails naming that field or flow; a dup-ACK count one off is tolerated.
    Returns a list of problems (empty when compare() behaves)."""
    import copy
    problems = []
    ok, rep = compare(theirs, theirs)
    if not ok or "0 failure(s), 0 tolerated" not in rep.splitlines()[0]:
        problems.append(f"identical flows do not compare equal:\n{rep}")
    if not theirs:
        return problems
    tcp = [i for i, f in enumerate(theirs) if f["handshake"].get("syn_ns") is not None]
    i = tcp[0] if tcp else 0

    def mutated(fn):
        ours = copy.deepcopy(theirs)
        fn(ours[i])
        return compare(ours, theirs)

    def expect(label, fn, want_ok, needle):
        ok, rep = mutated(fn)
        if ok != want_ok or needle not in rep:
            problems.append(f"{label}: expected ok={want_ok} and '{needle}' in the report, "
                            f"got ok={ok}:\n{rep}")

    expect("packets + 1", lambda f: f["c2s"].__setitem__("packets", f["c2s"]["packets"] + 1),
           False, "c2s.packets")
    expect("dup_acks + 1", lambda f: f["s2c"].__setitem__("dup_acks", f["s2c"]["dup_acks"] + 1),
           True, "tolerated")
    expect("dup_acks + 100", lambda f: f["s2c"].__setitem__("dup_acks",
                                                           f["s2c"]["dup_acks"] + 100),
           False, "s2c.dup_acks")
    if tcp:
        expect("no syn_ns", lambda f: f["handshake"].pop("syn_ns"), False, "handshake.syn_ns")
    expect("swapped", lambda f: f.update(client=f["server"], server=f["client"]), False,
           "swapped")
    expect("rtt count + 1", lambda f: f["c2s"]["rtt_ns"].__setitem__(
        "count", f["c2s"]["rtt_ns"]["count"] + 1), False, "c2s.rtt_ns.count")
    d = next((d for d in ("c2s", "s2c") if theirs[i][d]["rtt_ns"]["count"] >= 2), None)
    if d:
        def fewer(f, lower_min):
            r = f[d]["rtt_ns"]
            r["count"] -= 1
            r["min"] -= lower_min
        expect("rtt subset", lambda f: fewer(f, 0), True, f"{d}.rtt_ns.count")
        expect("rtt not a subset", lambda f: fewer(f, 1), False, f"{d}.rtt_ns.min")
    expect("history", lambda f: f.__setitem__("history", "x"), True, "info")
    ok, rep = compare(theirs[:i] + theirs[i + 1:], theirs)
    if ok or "MISSING" not in rep:
        problems.append(f"a left-out flow is not reported missing:\n{rep}")
    ok, rep = compare(theirs + [dict(copy.deepcopy(theirs[i]), client={"ip": "192.0.2.1",
                                                                      "port": 1})], theirs)
    if ok or "EXTRA" not in rep:
        problems.append(f"an extra flow is not reported:\n{rep}")
    return problems


def load_jsonl(text):
    """Flow dicts from JSON lines (blank lines skipped); raises ValueError
    naming the line that is not JSON."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"line {i} is not JSON ({e}): {line[:120]}") from None
    return out


def main(argv):
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print("usage: tshark_flows.py FILE.pcap [OURS.jsonl]\n"
              "Prints tshark's per-flow TCP metrics as JSON lines, or compares them with\n"
              "OURS.jsonl (mscope-recorder --flows-json output): exit 0 equal, 1 not.")
        return 0 if len(argv) == 2 else 2
    theirs = flows(argv[1])
    if len(argv) == 2:
        for f in theirs:
            print(json.dumps(f))
        return 0
    with open(argv[2]) as fh:
        ours = load_jsonl(fh.read())
    ok, report = compare(ours, theirs)
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
