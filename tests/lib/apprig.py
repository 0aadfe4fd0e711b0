"""Real DNS, TLS and HTTP/1.x between two network namespaces, over the
userspace wire of tcprig.py (tapdelay: a one-way delay; loss from nftables
after the capture point), captured with
tcpdump: the traffic for the application analytics oracle (app_oracle.py,
tests/integration/test_app_oracle.py).

The topology is tcprig.Rig's (client namespace 10.203.0.1, server namespace
10.203.0.2, TAP devices joined by tapdelay, tcpdump on the client's TAP),
with interface and namespace names from a prefix of their own ("ap"), so a
run never meets tcprig's.  Each scenario builds its own Rig, runs real
programs in it and returns (pcap, log): `log` is what the rig itself did and
expects, from its own programs' configuration and output, never from
tshark.

  dns   dnsmasq (two instances: port 53 and 5353) serving a local zone
        example.test; `dig` queries over UDP and TCP (+tcp), each from a
        source port and with a query id the rig chose (-b, +qid): A with one
        and three answers, AAAA with none (NODATA), CNAME, MX, TXT, SRV, PTR,
        NXDOMAIN, a query repeated with another id, three queries on one TCP
        connection (+keepopen; ids dig's own) (22 queries; 7 over TCP, 3 to
        port 5353), and one query the server
        never answers (nftables in the server namespace drops UDP queries
        whose name starts with "drop"; dig +tries=1 gives up after 1 s).
        10 ms each way.
  tls   one Python ssl server (an ECDSA certificate for every name used,
        ALPN h2/http/1.1) on ports 443, 8443 and 9443 (the recorder detects
        TLS from the bytes; the oracle is told the ports); clients: Python ssl and openssl
        s_client, TLS 1.2 (three ECDHE-ECDSA ciphers) and 1.3 (three suites),
        several SNI names, none, ALPN lists of 0-3 names and one of 40 long
        names (a ClientHello of ~1.9 KB: two segments), some with an MSS of
        200 (a TLS 1.3 ClientHello split) or 100 (the ServerHello too).  31
        connections.  nftables in the server namespace drops every other
        segment that begins a
        ClientHello on port 8443 and the client namespace every other
        segment that begins a ServerHello from 8443, after the capture
        point: the capture holds the original and the retransmission.
        10 ms each way.
  tls_reorder
        the TLS connections whose hellos span segments (MSS 100 and 200,
        the 40-name ALPN list), twice: 24 connections, without the drops,
        over a wire that holds back 40% of the frames by 3 ms (tapdelay,
        seed 11): segments reach the capture point out of order, in the
        server's direction (the capture is on the client's side of the
        wire), so split ServerHellos arrive out of order.
  http  a threaded Python http.server (HTTP/1.1 keep-alive, pipelining) on
        ports 8080 and 9080: 200 with bodies of 0 B to 300 KB, chunked
        bodies, 404, 500, a HEAD (Content-Length but no body), POST bodies
        up to 70 KB; clients: curl (several
        URLs on one connection, a POST), and raw sockets: a keep-alive
        sequence, two pipelined batches (six and three requests in one
        send), HTTP/1.0 with Connection: close; 23 requests.  2% random
        loss each way on TCP (nftables, after the capture point), 5 ms each
        way.

Log entries (lists of dicts, in the order the rig made them):
  dns  {transport, client_port, server_port, qname, qtype, id, rcode (None
        when unanswered), answers}: rcode/answers as the zone defines them,
        checked against what dig printed
  tls  {tool, client_port, server_port, sni, alpn, version (negotiated, as
        the TLS number), cipher (number), cipher_name, mss, alpn_selected}
  http {tool, group, client_port, server_port, method, uri, host, status,
        request_body_bytes, response_body_bytes, pipelined, conn (a number
        per request group: one TCP connection each)}

    python3 apprig.py dns|tls|tls_reorder|http|all OUT.pcap|DIR [--tapdelay PATH]

writes the capture(s) and prints the log as JSON.  The programs inside the
namespaces are this file, run as `python3 apprig.py agent ...`.
"""
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tcprig  # noqa: E402
from tcprig import CLIENT_IP, SERVER_IP, RigError, find_tapdelay  # noqa: E402,F401

SCENARIOS = ("dns", "tls", "tls_reorder", "http")
SCRIPT = os.path.abspath(__file__)

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
          "AAAA": 28, "SRV": 33}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4,
          "REFUSED": 5}
# The ciphers the rig asks for, by OpenSSL's name (Python's ssl and s_client
# print these) and IANA number (what a ServerHello carries).
CIPHERS = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

DNS_PORTS = (53, 5353)
TLS_PORTS = (443, 8443, 9443)
TLS_DROP_PORT = 8443
HTTP_PORTS = (8080, 9080)


def _tag(scenario):
    letter = {"dns": "d", "tls": "t", "tls_reorder": "r", "http": "h"}[scenario]
    return f"ap{os.getpid() % 100000}{letter}"


# ---- DNS ------------------------------------------------------------------

# The zone dnsmasq serves (--local: names it does not know are NXDOMAIN).
DNSMASQ_CONF = """\
listen-address={ip}
bind-interfaces
port={port}
no-resolv
no-hosts
no-poll
local=/example.test/
host-record=www.example.test,10.9.0.1
host-record=multi.example.test,10.9.0.2
host-record=multi.example.test,10.9.0.3
host-record=multi.example.test,10.9.0.4
cname=alias.example.test,www.example.test
mx-host=example.test,mail.example.test,10
txt-record=txt.example.test,"hello world","second string"
srv-host=_http._tcp.example.test,www.example.test,80
ptr-record=1.0.9.10.in-addr.arpa,www.example.test
"""

# (transport, server port, qname, qtype, expected rcode or None (unanswered),
# expected answers); ids and source ports are assigned in order below.
DNS_QUERIES = [
    ("udp", 53, "www.example.test", "A", "NOERROR", 1),
    ("udp", 53, "multi.example.test", "A", "NOERROR", 3),
    ("udp", 53, "www.example.test", "AAAA", "NOERROR", 0),
    ("udp", 53, "alias.example.test", "A", "NOERROR", 2),
    ("udp", 53, "example.test", "MX", "NOERROR", 1),
    ("udp", 53, "txt.example.test", "TXT", "NOERROR", 1),
    ("udp", 53, "_http._tcp.example.test", "SRV", "NOERROR", 1),
    ("udp", 53, "1.0.9.10.in-addr.arpa", "PTR", "NOERROR", 1),
    ("udp", 53, "nx.example.test", "A", "NXDOMAIN", 0),
    ("udp", 53, "other-nx.example.test", "TXT", "NXDOMAIN", 0),
    ("udp", 53, "www.example.test", "A", "NOERROR", 1),      # again, another id
    ("udp", 53, "drop.example.test", "A", None, 0),          # never answered
    ("tcp", 53, "www.example.test", "A", "NOERROR", 1),
    ("tcp", 53, "multi.example.test", "A", "NOERROR", 3),
    ("tcp", 53, "nx.example.test", "A", "NXDOMAIN", 0),
    ("tcp", 53, "txt.example.test", "TXT", "NOERROR", 1),
    ("udp", 5353, "www.example.test", "A", "NOERROR", 1),
    ("udp", 5353, "nx.example.test", "AAAA", "NXDOMAIN", 0),
    ("tcp", 5353, "alias.example.test", "A", "NOERROR", 2),
]
DNS_DROP_RULES = """\
table inet apdrop {
  chain pre {
    type filter hook prerouting priority -300;
    udp dport { 53, 5353 } @ih,96,40 0x0464726f70 drop
  }
}
"""


def _spec_file(workdir, name, spec):
    """Writes a client agent's spec (JSON) into workdir; returns its path."""
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def _load_spec(path):
    with open(path) as f:
        return json.load(f)


def _dig_blocks(out):
    """dig's answers, one dict per message it printed: status, id, answers."""
    blocks = []
    for line in out.splitlines():
        if "->>HEADER<<-" in line:
            parts = dict(x.strip().split(": ", 1) for x in line.split(";;", 1)[1]
                         .replace("->>HEADER<<-", "").split(",") if ": " in x)
            blocks.append({"rcode": parts.get("status"),
                           "id": int(parts["id"]) if "id" in parts else None,
                           "answers": None})
        elif line.startswith(";; flags:") and "ANSWER:" in line and blocks:
            blocks[-1]["answers"] = int(line.split("ANSWER:")[1].split(",")[0])
    return blocks


def _agent_dns_client(server_ip, spec_path):
    """Runs dig once per entry of the spec (a JSON list of {transport, port,
    sport, queries: [[qname, qtype, id or null], ...]}; several queries in
    one entry go over one TCP connection, +keepopen, with ids dig picks)
    and prints one JSON line per query: what dig said."""
    for e in _load_spec(spec_path):
        cmd = ["dig", f"@{server_ip}", "-p", str(e["port"]), "-b", f"{CLIENT_IP}#{e['sport']}",
               "+tries=1", "+timeout=1", "+recurse", "+noedns",
               "+tcp" if e["transport"] == "tcp" else "+notcp"]
        if len(e["queries"]) > 1:
            cmd.append("+keepopen")
        for qname, qtype, qid in e["queries"]:
            cmd += ([f"+qid={qid}"] if qid is not None else []) + [qname, qtype]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        blocks = _dig_blocks(p.stdout)
        for i, _ in enumerate(e["queries"]):
            got = blocks[i] if i < len(blocks) else {"rcode": None, "id": None,
                                                      "answers": None}
            print(json.dumps({"dig": got, "dig_exit": p.returncode}), flush=True)


# Queries dig sends over one TCP connection (+keepopen): (qname, qtype,
# rcode, answers); their ids are dig's own (random), read from its output.
DNS_TCP_BATCH = [("www.example.test", "A", "NOERROR", 1),
                 ("txt.example.test", "TXT", "NOERROR", 1),
                 ("nx.example.test", "A", "NXDOMAIN", 0)]


def scenario_dns(pcap, tapdelay, workdir):
    """The DNS scenario (module doc); returns (pcap, log)."""
    spec, want = [], []
    for i, (tr, port, qname, qtype, rcode, answers) in enumerate(DNS_QUERIES):
        qid = 4100 + 7 * i
        spec.append({"transport": tr, "port": port, "sport": 41000 + i,
                     "queries": [[qname, qtype, qid]]})
        want.append((tr, port, 41000 + i, qname, qtype, rcode, answers, qid))
    spec.append({"transport": "tcp", "port": 53, "sport": 41100,
                 "queries": [[q, t, None] for q, t, _, _ in DNS_TCP_BATCH]})
    want += [("tcp", 53, 41100, q, t, rc, n, None) for q, t, rc, n in DNS_TCP_BATCH]
    with tcprig.Rig(workdir=workdir, tapdelay=tapdelay, delay_ms=10, tag=_tag("dns"),
                    capture_filter="udp or tcp") as rig:
        rig.nft(rig.S, DNS_DROP_RULES)
        for port in DNS_PORTS:
            conf = os.path.join(workdir, f"dnsmasq-{port}.conf")
            with open(conf, "w") as f:
                f.write(DNSMASQ_CONF.format(ip=SERVER_IP, port=port))
            # -k: stay in the foreground (a process of ours to stop);
            # --user=root: files of ours; no pid file, no log but errors.
            logf = open(os.path.join(workdir, f"dnsmasq-{port}.log"), "wb")
            rig.popen(rig.S, ["dnsmasq", "-k", f"--conf-file={conf}", "--pid-file=",
                              "--user=root", "--log-facility=-"], stdout=logf, stderr=logf)
            logf.close()
        _wait_dns(rig)
        rig.start_capture(pcap)
        cli = rig.popen(rig.C, [sys.executable, SCRIPT, "agent", "dns-client", SERVER_IP,
                                _spec_file(workdir, "dns", spec)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
        out = rig.finish(cli, timeout=120)
        rig.stop_capture()
    log, problems = [], []
    for w, line in zip(want, out.splitlines()):
        tr, port, sport, qname, qtype, rcode, answers, qid = w
        dig = json.loads(line)["dig"]
        if qid is None:
            qid = dig["id"]
        entry = {"transport": tr, "client_port": sport, "server_port": port, "qname": qname,
                 "qtype": QTYPES[qtype], "id": qid,
                 "rcode": RCODES[rcode] if rcode else None, "answers": answers}
        if rcode is None:
            if dig["rcode"] is not None:
                problems.append(f"{qname}: answered ({dig}) though it should be dropped")
        elif (dig["rcode"], dig["id"], dig["answers"]) != (rcode, qid, answers):
            problems.append(f"{qname} {qtype} over {tr}/{port}: dig says {dig}, "
                            f"the zone says {rcode} with {answers} answer(s), id {qid}")
        log.append(entry)
    if len(log) != len(want):
        problems.append(f"dig answered {len(log)} of {len(want)} queries")
    if len({(e["client_port"], e["id"]) for e in log}) != len(log):
        problems.append("two queries on one connection got the same id from dig")
    if problems:
        raise RigError("dns scenario: " + "; ".join(problems))
    return pcap, log


def _wait_dns(rig, timeout=10):
    """Until both dnsmasq instances answer (from the server namespace)."""
    end = time.time() + timeout
    while time.time() < end:
        ok = all(rig.ns(rig.S, "dig", f"@{SERVER_IP}", "-p", port, "+tries=1", "+timeout=1",
                        "+short", "www.example.test", check=False).stdout.strip() == b"10.9.0.1"
                 for port in DNS_PORTS)
        if ok:
            return
        time.sleep(0.1)
    raise RigError("dnsmasq did not answer")


# ---- TLS ------------------------------------------------------------------

SNI_NAMES = ("www.example.test", "api.example.test", "a-rather-long-name.shop.example.test",
             "example.test")
BIG_ALPN = [f"proto-{i:02d}-" + "x" * 32 for i in range(40)]
TLS_DROP_RULES = """\
table inet apdrop {{
  chain pre {{
    type filter hook prerouting priority -300;
    {rule}
  }}
}}
"""
# A segment that begins a TLS handshake record (0x16 0x03) holding a
# ClientHello (handshake type 1) or a ServerHello (2): every other one is
# dropped, after the capture point, so the capture holds it twice.
TLS_DROP_CH = (f"tcp dport {TLS_DROP_PORT} @ih,0,16 0x1603 @ih,40,8 0x01 "
               "numgen inc mod 2 == 0 drop")
TLS_DROP_SH = (f"tcp sport {TLS_DROP_PORT} @ih,0,16 0x1603 @ih,40,8 0x02 "
               "numgen inc mod 2 == 0 drop")


def _tls_connections():
    """The TLS connections the client makes: dicts of tool, port, sni,
    alpn, version ("1.2"/"1.3"), cipher (OpenSSL name to insist on), mss."""
    c12 = list(CIPHERS)[:3]
    c13 = list(CIPHERS)[3:]
    conns = []
    alpns = [[], ["h2"], ["h2", "http/1.1"], ["http/1.1"], ["h2", "http/1.1", "spdy/3.1"]]
    i = 0
    for port in TLS_PORTS:
        for ver in ("1.2", "1.3"):
            for k in range(3):
                conns.append({"tool": "py", "port": port, "sni": SNI_NAMES[i % len(SNI_NAMES)],
                              "alpn": alpns[i % len(alpns)], "version": ver,
                              # Python's ssl cannot pick TLS 1.3 suites
                              "cipher": c12[k] if ver == "1.2" else None,
                              "mss": 200 if i % 4 == 1 else None})
                i += 1
    # no SNI at all; a ClientHello of two full segments; openssl s_client
    conns.append({"tool": "py", "port": 443, "sni": None, "alpn": ["h2"], "version": "1.3",
                  "cipher": None, "mss": None})
    conns.append({"tool": "py", "port": 8443, "sni": None, "alpn": [], "version": "1.2",
                  "cipher": c12[0], "mss": 200})
    # MSS 100 (88 bytes of payload beside the timestamp option): the
    # ServerHello is split too
    conns.append({"tool": "py", "port": 9443, "sni": "www.example.test", "alpn": ["h2"],
                  "version": "1.3", "cipher": None, "mss": 100})
    conns.append({"tool": "py", "port": 8443, "sni": "api.example.test", "alpn": ["http/1.1"],
                  "version": "1.2", "cipher": c12[2], "mss": 100})
    for ver in ("1.2", "1.3"):
        conns.append({"tool": "py", "port": 9443, "sni": "big.example.test", "alpn": BIG_ALPN,
                      "version": ver, "cipher": None, "mss": None})
        conns.append({"tool": "py", "port": 8443, "sni": "big.example.test", "alpn": BIG_ALPN,
                      "version": ver, "cipher": None, "mss": None})
    for k, (port, ver, sni, alpn) in enumerate([
            (443, "1.3", "www.example.test", ["h2", "http/1.1"]),
            (443, "1.2", "api.example.test", ["http/1.1"]),
            (8443, "1.3", None, []),
            (8443, "1.2", "www.example.test", ["h2"]),
            (9443, "1.3", "example.test", ["h2", "http/1.1"])]):
        conns.append({"tool": "openssl", "port": port, "sni": sni, "alpn": alpn,
                      "version": ver, "cipher": (c12 if ver == "1.2" else c13)[k % 3],
                      "mss": None})
    return conns


def _make_cert(workdir):
    """A self-signed ECDSA P-256 certificate naming every SNI name."""
    key = os.path.join(workdir, "tls.key")
    crt = os.path.join(workdir, "tls.crt")
    san = ",".join(f"DNS:{n}" for n in SNI_NAMES + ("big.example.test",))
    tcprig._run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                 "-subj", "/CN=www.example.test", "-addext", f"subjectAltName={san}"])
    return crt, key


def _agent_tls_server(ip, ports, crt, key):
    """A TLS server on each port (comma list): handshake, read a line,
    answer "ok <version> <cipher>\\n", close.  Threads, until SIGTERM."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    socks = []
    for port in ports.split(","):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((ip, int(port)))
        ls.listen(64)
        ls.settimeout(0.1)
        socks.append(ls)

    def serve(c):
        try:
            c.settimeout(20)
            with ctx.wrap_socket(c, server_side=True) as s:
                s.recv(100)
                s.sendall(f"ok {s.version()} {s.cipher()[0]}\n".encode())
                s.unwrap()   # close_notify: s_client counts a bare EOF as an error
        except (OSError, ssl.SSLError) as e:
            print(f"server: {e!r}", file=sys.stderr, flush=True)

    def loop(ls):
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except (socket.timeout, InterruptedError):
                continue
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threads = [threading.Thread(target=loop, args=(ls,)) for ls in socks]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


def _tls_py(ip, c):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_2 if c["version"] == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ctx.maximum_version = v
    if c["version"] == "1.2" and c["cipher"]:
        ctx.set_ciphers(c["cipher"])
    if c["alpn"]:
        ctx.set_alpn_protocols(c["alpn"])
    raw = socket.socket()
    raw.settimeout(20)
    if c["mss"]:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, c["mss"])
    raw.connect((ip, c["port"]))
    sport = raw.getsockname()[1]
    with ctx.wrap_socket(raw, server_hostname=c["sni"]) as s:
        s.sendall(b"hello\n")
        answer = b""
        while not answer.endswith(b"\n"):
            x = s.recv(100)
            if not x:
                break
            answer += x
        return {"client_port": sport, "version": VERSIONS[s.version()],
                "cipher_name": s.cipher()[0], "alpn_selected": s.selected_alpn_protocol(),
                "answer": answer.decode().strip()}


def _tls_openssl(ip, c, sport):
    cmd = ["openssl", "s_client", "-connect", f"{ip}:{c['port']}", "-bind", f"{CLIENT_IP}:{sport}",
           "-tls1_2" if c["version"] == "1.2" else "-tls1_3", "-ign_eof"]
    if c["version"] == "1.2":
        cmd += ["-cipher", c["cipher"]]
    else:
        cmd += ["-ciphersuites", c["cipher"]]
    cmd += ["-servername", c["sni"]] if c["sni"] else ["-noservername"]
    if c["alpn"]:
        cmd += ["-alpn", ",".join(c["alpn"])]
    p = subprocess.run(cmd, input=b"hello\n", capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    got = {"client_port": sport, "version": None, "cipher_name": None, "alpn_selected": None,
           "answer": ""}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Protocol") and ":" in s:
            got["version"] = VERSIONS.get(s.split(":", 1)[1].strip())
        elif s.startswith("Cipher") and ":" in s and got["cipher_name"] is None:
            got["cipher_name"] = s.split(":", 1)[1].strip()
        elif s.startswith("New, ") and "Cipher is" in s:
            got["cipher_name"] = s.split("Cipher is", 1)[1].strip()
        elif s.startswith("ALPN protocol:"):
            got["alpn_selected"] = s.split(":", 1)[1].strip()
        elif s.startswith("ok "):
            got["answer"] = s
    if p.returncode != 0 or not got["answer"]:
        raise RuntimeError(f"s_client exited {p.returncode}: {p.stderr.decode()[-400:]}")
    return got


def _agent_tls_client(ip, spec_path):
    """Makes the connections of the spec one after the other (a retry when a
    connection fails: none is expected), one JSON line each."""
    for i, c in enumerate(_load_spec(spec_path)):
        for attempt in range(3):
            try:
                if c["tool"] == "py":
                    got = _tls_py(ip, c)
                else:
                    got = _tls_openssl(ip, c, 42000 + 10 * i + attempt)
                break
            except (OSError, ssl.SSLError, RuntimeError, subprocess.TimeoutExpired) as e:
                if attempt == 2:
                    raise SystemExit(f"tls client {c}: {e!r}")
                print(json.dumps({"failed": repr(e), "conn": i}), flush=True)
        print(json.dumps(dict(got, conn=i)), flush=True)


def _tls_reorder_connections():
    """tls_reorder: the connections whose hellos span segments, twice."""
    return [c for c in _tls_connections() if c["mss"] or len(c["alpn"]) > 10] * 2


def scenario_tls(pcap, tapdelay, workdir, reorder=False):
    """The TLS scenario (module doc), or with reorder tls_reorder; returns
    (pcap, log)."""
    conns = _tls_reorder_connections() if reorder else _tls_connections()
    crt, key = _make_cert(workdir)
    path = (dict(reorder_pct=40, reorder_gap_ms=3, seed=11) if reorder else {})
    with tcprig.Rig(workdir=workdir, tapdelay=tapdelay, delay_ms=10,
                    tag=_tag("tls_reorder" if reorder else "tls"), **path) as rig:
        if not reorder:
            rig.nft(rig.S, TLS_DROP_RULES.format(rule=TLS_DROP_CH))
            rig.nft(rig.C, TLS_DROP_RULES.format(rule=TLS_DROP_SH))
        rig.start_capture(pcap)
        srv = rig.agent(rig.S, "tls-server", SERVER_IP, ",".join(map(str, TLS_PORTS)), crt, key,
                        wait_ready=True, script=SCRIPT)
        cli = rig.agent(rig.C, "tls-client", SERVER_IP, _spec_file(workdir, "tls", conns),
                        script=SCRIPT)
        out = rig.finish(cli, timeout=120)
        srv.send_signal(signal.SIGTERM)
        rig.finish(srv)
        rig.stop_capture()
    log, problems = [], []
    for line in out.splitlines():
        d = json.loads(line)
        if "failed" in d:
            problems.append(f"connection {d['conn']} failed once: {d['failed']}")
            continue
        c = conns[d["conn"]]
        want_version = VERSIONS["TLSv1.2" if c["version"] == "1.2" else "TLSv1.3"]
        if d["version"] != want_version:
            raise RigError(f"tls connection {c}: negotiated {d['version']:#x}")
        if c["cipher"] and d["cipher_name"] != c["cipher"]:
            raise RigError(f"tls connection {c}: cipher {d['cipher_name']}")
        log.append({"tool": c["tool"], "client_port": d["client_port"],
                    "server_port": c["port"], "sni": c["sni"], "alpn": c["alpn"],
                    "version": d["version"], "cipher": CIPHERS.get(d["cipher_name"]),
                    "cipher_name": d["cipher_name"], "mss": c["mss"],
                    "alpn_selected": d["alpn_selected"]})
    if len(log) != len(conns):
        raise RigError(f"tls scenario: {len(log)} of {len(conns)} connections made")
    # A failed attempt is a connection in the capture too, without its log
    # entry: the scenario fails (the test runs it again).
    if problems:
        raise RigError("tls scenario: " + "; ".join(problems))
    return pcap, log


# ---- HTTP -----------------------------------------------------------------

HTTP_HOST = "www.example.test"


class _Handler(http.server.BaseHTTPRequestHandler):
    """/size/N: N bytes; /chunked/N: N bytes in chunks of up to 4000;
    /missing: 404; /fail: 500; POST anything: reads the body, answers its
    length.  HTTP/1.1 keep-alive, pipelining (requests are read in order
    from the connection's buffer)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, status, body, chunked=False):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 4000):
                part = body[i:i + 4000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] in ("size", "chunked") and parts[2].isdigit():
            self._reply(200, b"b" * int(parts[2]), chunked=parts[1] == "chunked")
        elif self.path.startswith("/fail"):
            self._reply(500, b"internal error\n")
        else:
            self._reply(404, b"not found: " + self.path.encode() + b"\n")

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        got = self.rfile.read(n)
        self._reply(200, f"got {len(got)}\n".encode())


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _agent_http_server(ip, ports):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    servers = [_Server((ip, int(p)), _Handler) for p in ports.split(",")]
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        time.sleep(0.1)
    for s in servers:
        s.shutdown()


def _read_response(f, head=False):
    """(status, body length) of one response from a buffered reader; a
    response to HEAD has no body whatever its headers say."""
    status_line = f.readline()
    if not status_line:
        raise RuntimeError("connection closed before a response")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if head:
        return status, 0
    if headers.get("transfer-encoding", "").lower() == "chunked":
        n = 0
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                f.readline()
                break
            n += len(f.read(size))
            f.readline()
        return status, n
    if "content-length" in headers:
        return status, len(f.read(int(headers["content-length"])))
    return status, len(f.read())


def _raw_request(method, uri, host, body=b"", version="HTTP/1.1", close=False):
    h = [f"{method} {uri} {version}", f"Host: {host}", "User-Agent: apprig/1",
         "Accept: */*"]
    if body or method == "POST":
        h.append(f"Content-Length: {len(body)}")
    if close:
        h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def _agent_http_client(ip, spec_path):
    """Runs the request groups of the spec (module doc); one JSON line per
    request: what was sent and what came back."""
    spec = _load_spec(spec_path)
    conn = 0
    for g in spec:
        conn += 1
        if g["tool"] == "curl":
            urls = [f"http://{ip}:{g['port']}{r['uri']}" for r in g["requests"]]
            cmd = ["curl", "-sS", "--max-time", "30", "-H", f"Host: {g['host']}", "-H", "Expect:",
                   "-w", "%{local_port} %{http_code} %{size_download} %{num_connects}\\n"]
            post = [r for r in g["requests"] if r["method"] == "POST"]
            if post:
                body = os.path.join(os.path.dirname(spec_path), f"post-{conn}.bin")
                with open(body, "wb") as f:
                    f.write(b"p" * post[0]["body"])
                cmd += ["--data-binary", f"@{body}"]
            for u in urls:
                cmd += ["-o", "/dev/null", u]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                raise SystemExit(f"curl {urls}: {p.stderr}")
            lines = p.stdout.split()
            for k, r in enumerate(g["requests"]):
                lport, code, size, nconn = lines[4 * k:4 * k + 4]
                print(json.dumps({"group": g["name"], "client_port": int(lport),
                                  "status": int(code), "response_body_bytes": int(size),
                                  "new_connection": int(nconn), "conn": conn}), flush=True)
            continue
        s = socket.create_connection((ip, g["port"]), timeout=30)
        sport = s.getsockname()[1]
        f = s.makefile("rb")
        reqs = [_raw_request(r["method"], r["uri"], g["host"], b"q" * r.get("body", 0),
                             r.get("version", "HTTP/1.1"), r.get("close", False))
                for r in g["requests"]]
        heads = [r["method"] == "HEAD" for r in g["requests"]]
        if g["tool"] == "pipelined":
            s.sendall(b"".join(reqs))
            results = [_read_response(f, head) for head in heads]
        else:
            results = []
            for req, head in zip(reqs, heads):
                s.sendall(req)
                results.append(_read_response(f, head))
        f.close()
        s.close()
        for status, n in results:
            print(json.dumps({"group": g["name"], "client_port": sport, "status": status,
                              "response_body_bytes": n, "conn": conn}), flush=True)


def _http_groups():
    """The request groups: each one TCP connection (curl may open more, it
    says so)."""
    def r(uri, method="GET", body=0, status=200, size=0, **kw):
        return dict(method=method, uri=uri, body=body, status=status, size=size, **kw)
    miss = len(b"not found: /nothing/here\n")
    fail = len(b"internal error\n")
    return [
        {"name": "curl-keepalive", "tool": "curl", "port": 8080, "host": HTTP_HOST,
         "requests": [r("/size/100", size=100), r("/size/300000", size=300000),
                      r("/nothing/here", status=404, size=miss), r("/fail", status=500, size=fail),
                      r("/chunked/12345", size=12345)]},
        {"name": "curl-post", "tool": "curl", "port": 9080, "host": "api.example.test",
         "requests": [r("/upload", method="POST", body=70000, size=len(b"got 70000\n"))]},
        {"name": "keepalive", "tool": "keepalive", "port": 8080, "host": HTTP_HOST,
         "requests": [r("/size/0", size=0), r("/size/5000", size=5000),
                      r("/upload", method="POST", body=3000, size=len(b"got 3000\n")),
                      r("/chunked/50000", size=50000), r("/nothing/here", status=404, size=miss),
                      r("/size/2000", method="HEAD", size=0), r("/size/1", size=1)]},
        {"name": "pipelined", "tool": "pipelined", "port": 9080, "host": "api.example.test",
         "requests": [r("/size/10", size=10), r("/nothing/here", status=404, size=miss),
                      r("/size/40000", size=40000), r("/chunked/9000", size=9000),
                      r("/fail", status=500, size=fail), r("/size/200", size=200)]},
        {"name": "pipelined-small", "tool": "pipelined", "port": 8080, "host": HTTP_HOST,
         "requests": [r("/size/20", size=20), r("/size/30", size=30), r("/size/40", size=40)]},
        {"name": "http10", "tool": "keepalive", "port": 8080, "host": HTTP_HOST,
         "requests": [r("/size/777", version="HTTP/1.0", close=True, size=777)]},
    ]


def scenario_http(pcap, tapdelay, workdir):
    """The HTTP scenario (module doc); returns (pcap, log)."""
    groups = _http_groups()
    with tcprig.Rig(workdir=workdir, tapdelay=tapdelay, delay_ms=5, nft_loss_pct=2,
                    tag=_tag("http")) as rig:
        rig.start_capture(pcap)
        srv = rig.agent(rig.S, "http-server", SERVER_IP, ",".join(map(str, HTTP_PORTS)),
                        wait_ready=True, script=SCRIPT)
        cli = rig.agent(rig.C, "http-client", SERVER_IP, _spec_file(workdir, "http", groups),
                        script=SCRIPT)
        out = rig.finish(cli, timeout=120)
        srv.send_signal(signal.SIGTERM)
        rig.finish(srv)
        rig.stop_capture()
    want = [(g, req) for g in groups for req in g["requests"]]
    got = [json.loads(x) for x in out.splitlines()]
    if len(got) != len(want):
        raise RigError(f"http scenario: {len(got)} answers to {len(want)} requests")
    log = []
    for (g, req), d in zip(want, got):
        if (d["status"], d["response_body_bytes"]) != (req["status"], req["size"]):
            raise RigError(f"http {g['name']} {req['uri']}: got {d}, expected "
                           f"{req['status']} with {req['size']} bytes")
        log.append({"tool": g["tool"], "group": g["name"], "client_port": d["client_port"],
                    "server_port": g["port"], "method": req["method"], "uri": req["uri"],
                    "host": g["host"], "status": req["status"],
                    "request_body_bytes": req["body"], "response_body_bytes": req["size"],
                    "pipelined": g["tool"] == "pipelined", "conn": d["conn"]})
    return pcap, log


SCENARIO_FUNCS = {"dns": scenario_dns, "tls": scenario_tls,
                  "tls_reorder": lambda *a: scenario_tls(*a, reorder=True),
                  "http": scenario_http}


def scenario(name, pcap, tapdelay, workdir):
    """Runs scenario `name` (one of SCENARIOS); returns (pcap, log)."""
    return SCENARIO_FUNCS[name](pcap, tapdelay, workdir)


AGENTS = {
    "dns-client": _agent_dns_client,
    "tls-server": _agent_tls_server,
    "tls-client": _agent_tls_client,
    "http-server": _agent_http_server,
    "http-client": _agent_http_client,
}


def main(argv):
    if len(argv) >= 2 and argv[1] == "agent":
        AGENTS[argv[2]](*argv[3:])
        return 0
    import argparse
    ap = argparse.ArgumentParser(description="Run DNS/TLS/HTTP scenarios between two "
                                 "namespaces and capture them (root needed).")
    ap.add_argument("scenario", choices=SCENARIOS + ("all",))
    ap.add_argument("out", help="pcap to write (a directory with 'all')")
    ap.add_argument("--tapdelay", help="tapdelay binary (default: found or compiled)")
    a = ap.parse_args(argv[1:])
    work = tempfile.mkdtemp(prefix="apprig-")
    try:
        td = a.tapdelay or find_tapdelay(work)
        names = SCENARIOS if a.scenario == "all" else (a.scenario,)
        for name in names:
            out = (os.path.join(a.out, f"app_{name}.pcap") if a.scenario == "all" else a.out)
            if a.scenario == "all":
                os.makedirs(a.out, exist_ok=True)
            _, log = scenario(name, os.path.abspath(out), td, work)
            print(json.dumps({"scenario": name, "pcap": out, "log": log}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
