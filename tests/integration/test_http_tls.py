#!/usr/bin/env python3
"""HTTPS on every daemon's HTTP port (--http-cert, --http-key).

- A recorder, a broker and a coordinator with a certificate answer
  /healthz over TLS to a client that trusts the certificate (curl
  --cacert: name and chain checked), and not over plain HTTP.
- The coordinator's REST API over HTTPS: no token 401, the read token 200
  with the flows; Prometheus's promtool reads /metrics fetched over TLS.
- TLS 1.1 is refused (1.2 at least).
- A missing key, a key that is not the certificate's, and a certificate
  without a key are errors at start that name the file.
"""
import os
import subprocess

import cluster
import harness as h
from cluster import Coordinator


def make_cert(d, name):
    cert, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    h.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
           "-keyout", key, "-out", cert])
    os.chmod(key, 0o600)
    return cert, key


def curl(addr, path, cert, *extra):
    p = h.run(["curl", "-sS", "--max-time", "10", "--cacert", cert, "-o", "-", "-w",
               "\n%{http_code}", *extra, f"https://{addr}{path}"], check_rc=False)
    body, _, code = p.stdout.decode(errors="replace").rpartition("\n")
    return p.returncode, code, body, p.stderr.decode(errors="replace")


def check_https(name, addr, cert):
    rc, code, body, err = curl(addr, "/healthz", cert)
    h.check(rc == 0 and code == "200" and '"status"' in body,
            f"{name}: /healthz over HTTPS: rc {rc} code {code} {err}")
    p = h.run(["curl", "-sS", "--max-time", "5", f"http://{addr}/healthz"], check_rc=False)
    h.check(p.returncode != 0 or b'"status"' not in p.stdout,
            f"{name}: plain HTTP answered on the HTTPS port: {p.stdout[:200]!r}")
    p = h.run(["curl", "-sS", "--max-time", "5", "--cacert", cert, "--tls-max", "1.1",
               f"https://{addr}/healthz"], check_rc=False)
    h.check(p.returncode != 0, f"{name}: TLS 1.1 accepted")
    print(f"ok  {name}: /healthz over HTTPS (certificate checked), not over plain HTTP or TLS 1.1")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    cert, key = make_cert(d, "server")
    other_cert, other_key = make_cert(d, "other")
    tls = ["--http-cert", cert, "--http-key", key]

    rec = h.Daemon(os.path.join(d, "rec"), *tls)
    try:
        check_https("recorder", rec.http, cert)
    finally:
        rec.stop()

    conf = h.write_conf(os.path.join(d, "broker.conf"), f"[tool ids]\ntype = pcap\ndir = {d}/ids\n")
    os.makedirs(os.path.join(d, "ids"))
    br = h.Broker(conf, d, *tls)
    try:
        check_https("broker", br.http, cert)
    finally:
        br.stop()

    co = Coordinator(d, extra=tls)
    try:
        check_https("coordinator", co.http, cert)
        read = open(os.path.join(co.dir, "api-read.token")).read().strip()
        rc, code, body, err = curl(co.http, "/api/v1/flows?from=0", cert)
        h.check(code == "401", f"REST over HTTPS without a token: {code} {body}")
        rc, code, body, err = curl(co.http, "/api/v1/flows?from=0", cert, "-H",
                                   f"Authorization: Bearer {read}")
        h.check(rc == 0 and code == "200" and '"flows"' in body,
                f"REST over HTTPS with the read token: {code} {body[:200]} {err}")
        rc, code, body, err = curl(co.http, "/metrics", cert)
        p = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                           capture_output=True)
        h.check(code == "200" and p.returncode == 0, f"/metrics over HTTPS: {code} {p.stderr!r}")
        print("ok  coordinator REST over HTTPS: 401 without a token, 200 with; /metrics passes promtool")
    finally:
        h.check(co.stop() == 0, f"coordinator exit:\n{co.log_text()}")

    # Bad files: clear errors at start, naming the file.
    for extra, says in ((["--http-cert", cert, "--http-key", os.path.join(d, "none.key")], "none.key"),
                        (["--http-cert", cert, "--http-key", other_key], "key values mismatch"),
                        (["--http-cert", cert], "both a certificate and a key")):
        p = h.run([h.RECORDER, "--data-dir", os.path.join(d, "bad"), "--listen",
                   f"127.0.0.1:{h.free_udp_port()}", "--http", f"127.0.0.1:{h.free_tcp_port()}",
                   "--search", "off", "--min-free", "0", "--drain-time", "0", *extra],
                  check_rc=False, timeout=20)
        h.check(p.returncode != 0 and says.encode() in p.stderr,
                f"recorder {extra}: exit {p.returncode} {p.stderr[-300:]!r}")
    print("ok  a missing key, a key of another certificate, a certificate alone: errors at start")


if __name__ == "__main__":
    main()
