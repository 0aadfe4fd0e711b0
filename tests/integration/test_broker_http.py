#!/usr/bin/env python3
"""The broker's HTTP side.

- A broker on loopback with three tools (a pcap tool with a filter, a VXLAN
  tool whose datagrams this test receives, and a group of two pcap members)
  is fed a known capture over VXLAN/UDP. /metrics passes promtool; each
  tool's packets_total{result="sent"} equals what the tool really received
  (files on disk, datagrams on the socket) and tcpdump's reading of the
  capture; every counter of stats.json has the same value in /metrics; each
  tool's results add up to what it was offered.
- /healthz and /readyz: 200 with no reasons; an unknown path: a JSON 404.
- SIGHUP reloads the file on the control loop: a tool added appears in
  /metrics and reloads_total counts it.
- /metrics behind a token (metrics-token-file in the file): SIGHUP reads
  the token file again, so a new token works at once and the old one is
  refused, even when the reload of the configuration itself is refused.
- SIGTERM ends the broker promptly (exit 0) while an HTTP client holds an
  idle keep-alive connection.
- A tool whose output cannot open: /healthz and /readyz 503 naming it;
  back to 200 once it opens (the output retries every 5 s).
- As root, in a network namespace of its own: a broker capturing a veth
  whose link is then deleted. /healthz turns 503 naming the input, the
  broker stays up to say so, and exits 1 on SIGTERM.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402

# stats.json's key in each tool -> the metric (after mscope_broker_tool_) and its result label.
TOOL_KEYS = {
    "in": ("offered_packets_total", None), "matched": ("matched_packets_total", None),
    "filtered": ("packets_total", "filtered"), "sliced": ("sliced_packets_total", None),
    "masked": ("masked_packets_total", None),
    "deduplicated": ("deduplicated_packets_total", None), "sent": ("packets_total", "sent"),
    "sent_bytes": ("bytes_total", None), "files": ("files_total", None),
    "files_deleted": ("files_deleted_total", None),
}
TOP_KEYS = {
    "rx_packets": "received_packets_total", "rx_bytes": "received_bytes_total",
    "frames": "frames_total", "kernel_drops": "kernel_drops_total",
    "truncated": "truncated_total", "deduplicated": "duplicates_total",
    "vlan_stripped": "vlan_stripped_total", "reloads": "reloads_total",
}


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def tool_results(m, tool):
    return {dict(k[1])["result"]: v for k, v in m.items()
            if k[0] == "mscope_broker_tool_packets_total" and dict(k[1]).get("tool") == tool}


def compare_stats(m, st):
    """Every counter of stats.json against /metrics."""
    n = 0
    for key, name in TOP_KEYS.items():
        h.check(metric(m, f"mscope_broker_{name}") == st[key],
                f"{key}: stats.json {st[key]}, /metrics {metric(m, f'mscope_broker_{name}')}")
        n += 1
    for group, name in (("not_decapsulated", "not_decapsulated_total"),
                        ("anomalies", "anomalies_total")):
        for reason, v in st[group].items():
            h.check(metric(m, f"mscope_broker_{name}", reason=reason) == v, f"{group}.{reason}")
            n += 1
    for tool, ts in st["tools"].items():
        for key, (name, result) in TOOL_KEYS.items():
            labels = {"tool": tool, **({"result": result} if result else {})}
            got = metric(m, f"mscope_broker_tool_{name}", **labels)
            h.check(got == ts[key], f"tool {tool} {key}: stats.json {ts[key]}, /metrics {got}")
            n += 1
        for reason, v in ts["send_errors"].items():
            h.check(metric(m, "mscope_broker_tool_packets_total", tool=tool, result=reason) == v,
                    f"tool {tool} send_errors.{reason}")
            n += 1
        h.check(sum(ts["send_errors"].values()) == ts["send_errors_total"], f"{tool} errors")
        if "up" in ts:
            h.check(metric(m, "mscope_broker_tool_up", tool=tool) == int(ts["up"]), f"{tool} up")
        for member, ms in ts.get("members", {}).items():
            for key, (name, result) in TOOL_KEYS.items():
                if key not in ms:
                    continue
                labels = {"group": tool, "tool": member, **({"result": result} if result else {})}
                got = metric(m, f"mscope_broker_group_member_{name}", **labels)
                h.check(got == ms[key], f"member {member} {key}: stats.json {ms[key]}, /metrics {got}")
                n += 1
    return n


def drain(sock):
    """Datagrams received until none came for a second."""
    got = 0
    sock.settimeout(1.0)
    while True:
        try:
            sock.recv(65536)
            got += 1
        except socket.timeout:
            return got


def fed_and_counted(d):
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 6000, "--flows", 300, "--nsec",
                "--mix", "clean", "--seed", 11)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    rx.bind(("127.0.0.1", 0))
    text = f"""
[tool web]
type = pcap
dir = {d}/web
filter = tcp port 443

[tool all]
type = vxlan
dest = 127.0.0.1:{rx.getsockname()[1]}
vni = 7

[tool m0]
type = pcap
dir = {d}/m0

[tool m1]
type = pcap
dir = {d}/m1

[group lb]
filter = udp
members = m0, m1
"""
    conf = h.write_conf(os.path.join(d, "broker.conf"), text)
    b = h.Broker(conf, d)
    try:
        for path in ("/healthz", "/readyz"):
            st, body = h.http_json(b.http, path)
            h.check(st == 200 and body["status"] == "ok" and body["reasons"] == [],
                    f"{path} at start: {st} {body}")
        print("ok  /healthz and /readyz: 200, no reasons")

        # Received while it is sent: a socket buffer alone may be too small.
        counted = []
        reader = threading.Thread(target=lambda: counted.append(drain(rx)))
        reader.start()
        n = int(h.vxsend(src, b.port, "--rate", 30000)["sent"])
        reader.join()
        got = counted[0]
        h.check(h.wait_for(lambda: (b.stats() or {}).get("frames") == n, 10), f"stats: {b.stats()}")
        st = b.stats()
        m = h.scrape(b.http)
        web, _ = h.pcap_dir(f"{d}/web")
        m0, _ = h.pcap_dir(f"{d}/m0")
        m1, _ = h.pcap_dir(f"{d}/m1")
        want_web = len(h.tcpdump(src, "tcp port 443"))
        want_udp = len(h.tcpdump(src, "udp"))
        h.check(metric(m, "mscope_broker_received_packets_total") == n, f"received != fed {n}")
        sent = {t: metric(m, "mscope_broker_tool_packets_total", tool=t, result="sent")
                for t in ("web", "all", "lb")}
        h.check(sent == {"web": want_web, "all": n, "lb": want_udp},
                f"sent per tool {sent}, want web {want_web} all {n} lb {want_udp}")
        h.check(len(web) == want_web and got == n and len(m0) + len(m1) == want_udp,
                f"the tools received: web {len(web)}, all {got}, lb {len(m0)}+{len(m1)}")
        members = {t: metric(m, "mscope_broker_group_member_packets_total", group="lb", tool=t,
                             result="sent") for t in ("m0", "m1")}
        h.check(members == {"m0": len(m0), "m1": len(m1)}, f"members {members}")
        for t in ("web", "all", "lb"):
            res = tool_results(m, t)
            offered = metric(m, "mscope_broker_tool_offered_packets_total", tool=t)
            h.check(offered == n and sum(res.values()) == offered,
                    f"tool {t}: results {res} do not add up to offered {offered}")
        compared = compare_stats(m, st)
        h.check(metric(m, "process_resident_memory_bytes", ) > 1 << 20, "no process metrics")
        print(f"ok  /metrics passes promtool; {n} packets fed: web {want_web}, all {n}, "
              f"lb {want_udp} ({len(m0)}+{len(m1)}) sent, as the tools received and tcpdump "
              f"selects; {compared} counters equal in stats.json and /metrics")

        st, hdr, body = h.http_get(b.http, "/no/such/thing")
        err = json.loads(body)
        h.check(st == 404 and err["status"] == 404 and "error" in err and
                hdr["content-type"] == "application/json", f"404: {st} {hdr} {body!r}")
        print("ok  unknown path: JSON 404")

        h.write_conf(conf, text + f"\n[tool late]\ntype = pcap\ndir = {d}/late\n")
        b.signal(signal.SIGHUP)
        h.check(h.wait_for(lambda: metric(h.scrape(b.http), "mscope_broker_reloads_total") == 1, 10),
                f"no reload: {b.log_text()}")
        m = h.scrape(b.http)
        h.check(metric(m, "mscope_broker_tool_up", tool="late") == 1 and
                metric(m, "mscope_broker_tools") == 4, "the tool added by the reload is missing")
        h.check("SIGHUP: configuration reloaded" in b.log_text(), b.log_text())
        h.vxsend(src, b.port, "--rate", 30000)
        h.check(h.wait_for(lambda: metric(h.scrape(b.http), "mscope_broker_tool_packets_total",
                                          tool="late", result="sent") == n, 10),
                "the tool added by the reload got no packets")
        print("ok  SIGHUP on the loop: reloads_total 1, the tool added gets every packet")

        host, port = b.http.rsplit(":", 1)
        keep = http.client.HTTPConnection(host, int(port), timeout=5)
        keep.request("GET", "/healthz")
        keep.getresponse().read()
        t0 = time.time()
        b.proc.terminate()
        rc = b.proc.wait(30)
        took = time.time() - t0
        keep.close()
        h.check(rc == 0 and took < 5, f"SIGTERM with a keep-alive client: rc {rc} in {took:.1f} s")
        print(f"ok  SIGTERM with an idle keep-alive client: exit 0 in {took:.1f} s")
    finally:
        b.kill()


def output_down(d):
    blocker = os.path.join(d, "a-file")
    open(blocker, "w").close()
    conf = h.write_conf(os.path.join(d, "down.conf"), f"""
[tool fine]
type = pcap
dir = {d}/fine

[tool nodir]
type = pcap
dir = {blocker}/sub
""")
    b = h.Broker(conf, d)
    try:
        for path in ("/healthz", "/readyz"):
            st, body = h.http_json(b.http, path)
            h.check(st == 503 and body["status"] == "unavailable" and
                    any("tool nodir" in r and "down" in r for r in body["reasons"]) and
                    not any("fine" in r for r in body["reasons"]), f"{path}: {st} {body}")
        h.check(metric(h.scrape(b.http), "mscope_broker_tool_up", tool="nodir") == 0, "tool_up")
        os.unlink(blocker)
        ok = h.wait_for(lambda: h.http_json(b.http, "/healthz")[0] == 200, 15, step=0.2)
        h.check(ok, f"did not recover: {h.http_json(b.http, '/healthz')}")
        print("ok  a tool's output down: 503 naming it; 200 once it opens")
    finally:
        rc = b.stop()
    h.check(rc == 0, f"exit {rc}")


def ns_http(ns, addr, path):
    """GET from inside namespace ns: (status, parsed JSON or text)."""
    code = ("import http.client, sys\n"
            f"c = http.client.HTTPConnection('{addr.split(':')[0]}', {addr.split(':')[1]}, timeout=5)\n"
            f"c.request('GET', '{path}')\n"
            "r = c.getresponse()\n"
            "sys.stdout.write(str(r.status) + '\\n' + r.read().decode())\n")
    p = h.ns_exec(ns, "python3", "-c", code)
    status, body = p.stdout.decode().split("\n", 1)
    return int(status), (json.loads(body) if body.startswith("{") else body)


def input_failure(d):
    if os.geteuid() != 0:
        print("skip input failure: needs root for a network namespace")
        return
    ns = f"mbh{os.getpid() % 100000}"
    b = None
    try:
        h.netns_create(ns)
        h.ns_exec(ns, "ip", "link", "add", "cap0", "type", "veth", "peer", "name", "feed0")
        h.link_up_plain(ns, "cap0")
        h.link_up_plain(ns, "feed0")
        conf = h.write_conf(os.path.join(d, "iface.conf"), f"[tool cap]\ntype = pcap\ndir = {d}/cap\n")
        b = h.Broker(conf, d, "--interface", "cap0", ns=ns, listen=False)
        st, body = ns_http(ns, b.http, "/healthz")
        h.check(st == 200, f"/healthz capturing cap0: {st} {body}")
        frame = (b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" +
                 bytes.fromhex("4500001c000000004011f97e0a0000010a000002") +
                 bytes.fromhex("3039303900080000"))
        h.ns_exec(ns, "python3", "-c",
                  "import socket\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
                  "s.bind(('feed0', 0))\n"
                  f"for _ in range(100): s.send({frame!r})\n")
        h.check(b.wait_rx(100, 10), f"nothing captured on cap0: {b.stats()}")
        h.ns_exec(ns, "ip", "link", "del", "cap0")
        ok = h.wait_for(lambda: ns_http(ns, b.http, "/healthz")[0] == 503, 10, step=0.2)
        st, body = ns_http(ns, b.http, "/healthz")
        h.check(ok and any("interface cap0" in r and "failed" in r for r in body["reasons"]),
                f"/healthz after the link was deleted: {st} {body}")
        h.check(ns_http(ns, b.http, "/readyz")[0] == 503, "/readyz should be 503 too")
        _, text = ns_http(ns, b.http, "/metrics")
        m = h.parse_metrics(text)
        h.check(metric(m, "mscope_broker_input_running") == 0, "input_running should be 0")
        h.check(b.proc.poll() is None, "the broker should stay up to report the failure")
        t0 = time.time()
        rc = b.stop()
        h.check(rc == 1 and time.time() - t0 < 5, f"exit {rc} after the input failed, want 1")
        print(f"ok  captured interface deleted: 503 naming the input ({body['reasons'][0]!r}); "
              "the broker stays up to say so, exits 1 on SIGTERM")
    finally:
        if b:
            b.kill()
        h.netns_delete(ns)


def token_reload(d):
    tok = os.path.join(d, "metrics.token")
    old, new = "0ld-metrics-" + "o" * 20, "n3w-metrics-" + "n" * 20
    h.write_conf(tok, old + "\n")
    text = f"metrics-token-file = {tok}\n\n[tool t]\ntype = pcap\ndir = {d}/tok\n"
    conf = h.write_conf(os.path.join(d, "tok.conf"), text)
    b = h.Broker(conf, d)

    def status(token):
        return h.http_get(b.http, "/metrics", token)[0]
    try:
        h.check(status(old) == 200 and status(new) == 401, "at start: the old token")
        for conf_text in (text, "this is not a broker configuration\n"):
            h.write_conf(conf, conf_text)
            with open(tok + ".new", "w") as f:
                f.write(new + "\n")
            os.rename(tok + ".new", tok)
            before = b.log_text().count("SIGHUP: token files read again: 1 of 1 changed")
            b.signal(signal.SIGHUP)
            h.check(h.wait_for(lambda: b.log_text().count("SIGHUP: token files read again: 1 of 1 "
                                                          "changed") > before, 10),
                    f"no token reload in the log:\n{b.log_text()[-1500:]}")
            h.check(status(new) == 200 and status(old) == 401,
                    f"after SIGHUP: new {status(new)}, old {status(old)}")
            old, new = new, old
        h.check("keeping the running configuration" in b.log_text(), "the broken file was taken")
    finally:
        rc = b.stop()
    h.check(rc == 0, f"exit {rc}")
    print("ok  SIGHUP reads metrics-token-file again: the new token at once, the old one refused "
          "(also when the configuration file itself is refused)")


def main():
    h.init()
    d = h.tmpdir()
    fed_and_counted(d)
    output_down(d)
    token_reload(d)
    input_failure(d)


if __name__ == "__main__":
    main()
