#!/usr/bin/env python3
"""The recorder's HTTP side, as an NLB health check and Prometheus see it:
- /metrics passes promtool and counts exactly what was fed (packets in and
  stored, not-VXLAN messages as drops with their reason);
- /healthz and /readyz are 200 while it works; 503 with a reason when it
  drops packets now (a tiny socket buffer flooded), and when its capture
  interface disappears (the receive path stopped);
- SIGTERM drains: /readyz turns 503 at once while /healthz stays 200,
  packets sent during the drain are stored, then it exits 0;
- a --metrics-token-file that is missing or holds no token of 16 to 127
  printable characters stops the start with an error that names the option;
  white space around the token in the file is not part of it; SIGHUP
  reads the file again (a new token wanted at once, a file that holds no
  token keeps the one in use).
(The full-disk case is in test_disk_full; the token itself, with a real
Prometheus, in test_prometheus.)"""
import os
import signal
import socket
import time

import harness as h

NS = f"msh{os.getpid() % 100000}"


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def counting(d):
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 3000, "--flows", 50, "--seed", 5,
                "--mix", "clean")
    store = os.path.join(d, "store")
    rec = h.Daemon(store)
    try:
        code, body = h.http_json(rec.http, "/healthz")
        h.check(code == 200 and body["status"] == "ok", f"/healthz at start: {code} {body}")
        h.check(h.http_json(rec.http, "/readyz")[0] == 200, "/readyz at start")
        h.vxsend(src, rec.port, "--rate", 20000)
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(25):  # no I flag (RFC 7348), or too short for a header
            junk.sendto(b"\0" * (20 + i) if i % 2 else b"abc", ("127.0.0.1", rec.port))
        junk.close()
        h.check(rec.wait_rx(3025), f"rx {rec.stats()}")
        h.check(h.wait_for(lambda: rec.stats()["stored_packets"] >= 3000, 10),
                f"not stored: {rec.stats()}")
        m = h.scrape(rec.http)
        got = (metric(m, "mscope_recorder_packets_received_total"),
               metric(m, "mscope_recorder_packets_stored_total"),
               metric(m, "mscope_recorder_drops_total", reason="not_vxlan"),
               metric(m, "mscope_recorder_drops_total", reason="queue"),
               metric(m, "mscope_recorder_drops_total", reason="kernel"),
               metric(m, "mscope_recorder_drops_total", reason="disk_full"))
        h.check(got == (3025, 3000, 25, 0, 0, 0), f"metrics (rx, stored, drops...): {got}")
        st = rec.stats()
        h.check(st["stored_bytes"] == metric(m, "mscope_recorder_bytes_stored_total") and
                st["segments"] == metric(m, "mscope_recorder_store_segments"),
                "stats.json and /metrics disagree")
        h.check(sum(v for (n, _), v in m.items()
                    if n == "mscope_recorder_not_decapsulated_total") == 25,
                "not_decapsulated_total by reason does not add up to the drops")
        h.check(metric(m, "process_open_fds") > 0, "no process metrics")
        print("ok  /metrics passes promtool: 3025 received, 3000 stored, 25 not-VXLAN drops")
    finally:
        h.check(rec.stop() == 0, "recorder exit status")


def dropping(d):
    src = h.gen(os.path.join(d, "burst.pcap"), "--packets", 200000, "--flows", 100,
                "--seed", 6, "--mix", "clean")
    rec = h.Daemon(os.path.join(d, "store2"), "--rcvbuf", "64K")
    try:
        h.vxsend(src, rec.port, "--rate", 0)
        st = rec.stats()
        if not h.wait_for(lambda: rec.stats()["kernel_drops"] > 0, 5):
            h.skip(f"could not make the kernel drop (receiver kept up): {rec.stats()}")
        code, body = h.http_json(rec.http, "/healthz")
        h.check(code == 503 and any("dropping" in r for r in body["reasons"]),
                f"/healthz while dropping: {code} {body}")
        h.check(h.wait_for(lambda: h.http_json(rec.http, "/healthz")[0] == 200, 12),
                "/healthz did not recover once the drops stopped")
        print(f"ok  dropping now ({rec.stats()['kernel_drops']} kernel drops): 503, then 200")
    finally:
        h.check(rec.stop() == 0, "recorder exit status")


def interface_gone(d):
    if os.geteuid() != 0:
        print("skip: the vanishing interface needs root (network namespaces)")
        return
    h.netns_create(NS)
    try:
        h.ns_exec(NS, "ip", "link", "add", "cap0", "type", "veth", "peer", "name", "cap1")
        h.ns_exec(NS, "ip", "link", "set", "cap0", "up")
        h.ns_exec(NS, "ip", "link", "set", "cap1", "up")
        rec = h.Daemon(os.path.join(d, "store3"), "--interface", "cap0", ns=NS)
        try:
            code, body = h.ns_http_json(NS, rec.http, "/healthz")
            h.check(code == 200, f"/healthz capturing: {code} {body}")
            h.ns_exec(NS, "ip", "link", "del", "cap0")
            ok = h.wait_for(lambda: h.ns_http_json(NS, rec.http, "/healthz")[0] == 503, 10)
            code, body = h.ns_http_json(NS, rec.http, "/healthz")
            h.check(ok and any("receive thread" in r for r in body["reasons"]),
                    f"/healthz after the interface vanished: {code} {body}")
            print(f"ok  capture interface deleted: 503 ({body['reasons'][0]})")
        finally:
            rec.stop()
    finally:
        h.netns_delete(NS)


def token_file(d):
    def tok(name, text):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path
    for path in (os.path.join(d, "missing.token"), tok("short.token", "tooshort\n"),
                 tok("long.token", "x" * 128 + "\n"), tok("two.token", "a" * 20 + " " + "b" * 20),
                 tok("lines.token", "a" * 20 + "\n" + "b" * 20 + "\n")):
        p = h.run([h.RECORDER, "--data-dir", os.path.join(d, "store-tok"), "--listen",
                   f"127.0.0.1:{h.free_udp_port()}", "--http", f"127.0.0.1:{h.free_tcp_port()}",
                   "--search", "off", "--metrics-token-file", path], check_rc=False)
        err = p.stderr.decode(errors="replace")
        says = "cannot read token file" if "missing" in path else "holds no token of 16 to 127"
        h.check(p.returncode != 0 and "ERROR: metrics-token-file: " in err and says in err and
                "listening" not in err, f"--metrics-token-file {path}: exit {p.returncode}, "
                f"said (it must stop before it listens):\n{err[-1500:]}")
    print("ok  --metrics-token-file missing, too short, too long, two words or two lines: exit 1 "
          "before listening, the error names the option")
    # White space around the token is not part of it: Prometheus's
    # credentials_file trims it too.
    token = "t0k3n-" + "z" * 30
    rec = h.Daemon(os.path.join(d, "store-tok"), "--metrics-token-file",
                   tok("spaced.token", f"  \t{token} \n\n"))
    try:
        for sent, want in ((token, 200), (f"  {token}", 200), (token + "x", 401), (None, 401)):
            st, _, _ = h.http_get(rec.http, "/metrics", sent)
            h.check(st == want, f"/metrics with the token {sent!r}: {st}, want {want}")
        print("ok  a token file with white space around the token: the token alone is accepted")

        # Rotation: a new token put in the file as an operator would (a new
        # file renamed over it), SIGHUP, and the old one is refused at once;
        # a file that holds no token then keeps the one in use.
        def rotate(text, says):
            before = rec.log_text().count("SIGHUP: ")
            with open(path + ".new", "w") as f:
                f.write(text)
            os.rename(path + ".new", path)
            rec.proc.send_signal(signal.SIGHUP)
            h.check(h.wait_for(lambda: rec.log_text().count("SIGHUP: ") > before and
                               says in rec.log_text(), 5),
                    f"SIGHUP: the log does not say '{says}':\n{rec.log_text()[-1500:]}")
        path = os.path.join(d, "spaced.token")
        new = "n3w-" + "y" * 30
        rotate(new + "\n", "SIGHUP: token files read again: 1 of 1 changed")
        for sent, want in ((new, 200), (token, 401)):
            st, _, _ = h.http_get(rec.http, "/metrics", sent)
            h.check(st == want, f"after the rotation, /metrics with {sent}: {st}, want {want}")
        rotate("short\n", "SIGHUP: token files read again: 0 of 1 changed; the token in use kept")
        h.check("; the token in use stays" in rec.log_text(),
                f"the bad file is not named in the log:\n{rec.log_text()[-1500:]}")
        for sent, want in ((new, 200), ("short", 401)):
            st, _, _ = h.http_get(rec.http, "/metrics", sent)
            h.check(st == want, f"after a bad file, /metrics with {sent}: {st}, want {want}")
        print("ok  SIGHUP reads the token file again: the new token at once, the old one refused; "
              "a file with no token keeps the one in use, logged")
    finally:
        h.check(rec.stop() == 0, "recorder exit status")


def drain(d):
    src = h.gen(os.path.join(d, "late.pcap"), "--packets", 500, "--flows", 10, "--seed", 7,
                "--mix", "clean")
    rec = h.Daemon(os.path.join(d, "store4"), "--drain-time", "3s")
    rec.proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    h.check(h.wait_for(lambda: h.http_json(rec.http, "/readyz")[0] == 503, 2),
            "/readyz did not turn 503 on SIGTERM")
    code, body = h.http_json(rec.http, "/readyz")
    h.check(any("draining" in r for r in body["reasons"]), f"/readyz reasons: {body}")
    h.check(h.http_json(rec.http, "/healthz")[0] == 200, "/healthz must stay 200 while draining")
    h.vxsend(src, rec.port, "--rate", 5000)
    rc = rec.proc.wait(30)
    took = time.time() - t0
    h.check(rc == 0 and 2.5 < took < 10, f"drain: exit {rc} after {took:.1f} s (want ~3 s)")
    st = rec.stats()
    h.check(st["stored_packets"] == 500, f"packets sent while draining not stored: {st}")
    print(f"ok  SIGTERM: /readyz 503 at once, 500 packets stored while draining, exit 0 "
          f"after {took:.1f} s")


def main():
    h.init()
    d = h.tmpdir()
    counting(d)
    drain(d)
    interface_gone(d)
    dropping(d)
    token_file(d)


if __name__ == "__main__":
    main()
