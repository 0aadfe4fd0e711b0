#!/usr/bin/env python3
"""Monitors: their definitions through REST, the RPC and `mscope monitors`, and
their per-minute series against sums over the matching flow rows.

- CRUD: create (REST and CLI), list, show, set, delete; 400 (bad name,
  network, port, protocol, filter - libpcap's words -, unknown field), 404,
  405, 409, 401/403; the REST API and the CLI refuse with the same words; every
  JSON answer validates against docs/openapi.json.
- Series: flow records from flowgen and from recorders reading the captures
  in tests/data; for every monitor, every minute of its series (REST and
  `mscope monitors series --json`) equals what SQL over `flows` gives for the
  rows that match its filter - sums, flows started/finished/active, and the
  latency histograms' percentiles. Records received before a monitor was
  created are not counted (node fg-before); a changed filter applies from
  the change on (m-change: port 80 for the records before the change, 22
  after).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402
from restclient import Api  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
MIN = 60_000_000_000
BUCKETS = 109


def cli(co, *args, rc=0):
    p = h.run(co.cli(*args), check_rc=False)
    h.check(p.returncode == rc, f"mscope {' '.join(map(str, args))}: exit {p.returncode}, want {rc}: "
                                f"{p.stderr.decode()}")
    return p


def crud_checks(api, co):
    m = api.call("POST", "/api/v1/monitors", {"name": "m-all"}, status=201, schema="Monitor")
    h.check(m["server"] == "" and m["nodes"] == [] and m["proto"] == 0, f"m-all: {m}")
    api.call("POST", "/api/v1/monitors",
             {"name": "m-https", "server": "172.16.0.0/16", "server_port": 443, "proto": "tcp",
              "filter": "tcp port 443"}, status=201, schema="Monitor")
    cli(co, "monitors", "create", "m-srv", "server=172.16.0.3", "nodes=fg-after,rec-z")
    cli(co, "monitors", "create", "m-client", "client=10.128.0.0/9", "proto=6")
    cli(co, "monitors", "create", "m-recs", "nodes=rec-z,rec-s,rec-l")
    cli(co, "monitors", "create", "m-change", "port=80")
    cli(co, "monitors", "create", "m-gone")
    shown = json.loads(cli(co, "monitors", "show", "m-srv", "--json").stdout)
    api.validate(shown, "Monitor")
    h.check(shown["server"] == "172.16.0.3/32" and shown["nodes"] == ["fg-after", "rec-z"], f"m-srv: {shown}")
    h.check(api.call("GET", "/api/v1/monitors/m-srv", token="read", schema="Monitor") == shown,
            "REST and CLI show differ")
    names = [x["name"] for x in api.call("GET", "/api/v1/monitors", token="read", schema="MonitorList")["monitors"]]
    h.check(names == sorted(["m-all", "m-https", "m-srv", "m-client", "m-recs", "m-change", "m-gone"]),
            f"list: {names}")
    listed = json.loads(cli(co, "monitors", "list", "--json").stdout)
    h.check([x["name"] for x in listed] == names, f"CLI list: {listed}")
    h.check(b"m-https" in cli(co, "monitors", "list").stdout, "CLI table lacks m-https")
    # PUT replaces the definition; a read back Monitor can be sent again
    back = api.call("GET", "/api/v1/monitors/m-https", token="read", schema="Monitor")
    again = api.call("PUT", "/api/v1/monitors/m-https", back, schema="Monitor")
    h.check(again["server"] == "172.16.0.0/16" and again["filter"] == "tcp port 443", f"PUT: {again}")
    gone = api.call("DELETE", "/api/v1/monitors/m-gone", schema="Monitor")
    h.check(gone["name"] == "m-gone", f"DELETE: {gone}")
    api.call("GET", "/api/v1/monitors/m-gone", token="read", status=404)
    cli(co, "monitors", "delete", "m-gone", rc=2)

    # Refusals: the same words from both APIs.
    bad = [
        ({"name": "bad name"}, ["create", "bad name"], "name: 'bad name' is not a monitor name"),
        ({"name": "x1", "server": "10.0.0.300"}, ["create", "x1", "server=10.0.0.300"],
         "server: '10.0.0.300' is not an address or network"),
        ({"name": "x1", "client": "10.0.0.0/33"}, ["create", "x1", "client=10.0.0.0/33"],
         "client: '10.0.0.0/33' is not an address or network"),
        ({"name": "x1", "filter": "tcp port"}, ["create", "x1", "filter=tcp port"], "filter: "),
        ({"name": "x1", "nodes": [""]}, ["create", "x1", "nodes=,"], None),
    ]
    for body, words, want in bad:
        e = api.call("POST", "/api/v1/monitors", body, status=400)
        if want:
            h.check(e["error"].startswith(want), f"POST {body}: {e}")
            p = cli(co, "monitors", *words, rc=2)
            if body.get("nodes") is None:
                h.check(p.stderr.decode().strip() == f"mscope: {e['error']}",
                        f"CLI words differ: {p.stderr!r} vs {e['error']!r}")
    e = api.call("POST", "/api/v1/monitors", {"name": "x1", "filter": "tcp port"}, status=400)
    h.check("syntax error" in e["error"] or "port" in e["error"], f"libpcap's words: {e}")
    e = api.call("POST", "/api/v1/monitors", {"name": "x1", "colour": "red"}, status=400)
    h.check("unknown field 'colour'" in e["error"], f"unknown field: {e}")
    api.call("POST", "/api/v1/monitors", {"name": "x1", "server_port": 70000}, status=400)
    api.call("POST", "/api/v1/monitors", b"not json", status=400)
    e = api.call("POST", "/api/v1/monitors", {"name": "m-all"}, status=409)
    h.check(e["error"] == "a monitor named 'm-all' exists already", f"409: {e}")
    p = cli(co, "monitors", "create", "m-all", rc=2)
    h.check(e["error"] in p.stderr.decode(), f"CLI 409 words: {p.stderr!r}")
    e = api.call("PUT", "/api/v1/monitors/nope", {"server_port": 1}, status=404)
    h.check(e["error"] == "no monitor named 'nope'", f"404: {e}")
    api.call("PUT", "/api/v1/monitors/m-all", {"name": "other"}, status=400)
    api.call("GET", "/api/v1/monitors/nope/series", token="read", status=404)
    api.call("GET", "/api/v1/monitors/m-all/series?from=1h&to=2h", token="read", status=400)
    api.call("GET", "/api/v1/monitors/m-all/series?bogus=1", token="read", status=400)
    api.call("GET", "/api/v1/monitors/m-all/other", token="read", status=404)
    api.call("PATCH", "/api/v1/monitors/m-all", {}, status=405)
    api.call("POST", "/api/v1/monitors", {"name": "x2"}, token="read", status=403)
    api.call("DELETE", "/api/v1/monitors/m-all", token=None, status=401)
    api.call("GET", "/api/v1/monitors", token="wrong", status=401)
    cli(co, "monitors", "frobnicate", rc=2)
    cli(co, "monitors", "create", "x1", "colour=red", rc=2)
    print("ok  monitors: create, list, show, set, delete; refusals with the same words in REST and CLI")


def wait_written(co, n, what):
    h.check(h.wait_for(lambda: co.stats()["records_written"] >= n, 60), f"{what}: not written: {co.stats()}")


def wait_quiet(co):
    """Until the coordinator has written every record it received."""
    last = -1
    for _ in range(100):
        st = co.stats()
        if st["records_written"] == last and st["records_pending"] == 0:
            return
        last = st["records_written"]
        time.sleep(0.5)
    h.fail(f"records keep coming: {co.stats()}")


def recorder_read(co, pcap, node):
    keys = co.enroll(os.path.join(os.path.dirname(co.dir), node), node)
    p = subprocess.Popen([h.RECORDER, "--read", pcap, *keys, "--node-id", node],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=120)
    h.check(p.returncode == 0, f"recorder {node}: {err.decode()}")


def where(m, nodes):
    """The monitor's filter as the test's own SQL over `flows`."""
    w = [f"node = ANY(ARRAY[{','.join(repr(n) for n in nodes)}]::text[])"]
    if m["server"]:
        w.append(f"server_ip <<= '{m['server']}'::cidr")
    if m["client"]:
        w.append(f"client_ip <<= '{m['client']}'::cidr")
    if m["server_port"]:
        w.append(f"server_port = {m['server_port']}")
    if m["proto"]:
        w.append(f"proto = {m['proto']}")
    if m["nodes"]:
        w.append(f"node = ANY(ARRAY[{','.join(repr(n) for n in m['nodes'])}]::text[])")
    return " AND ".join(w)


def bucket(ns):
    if ns < 1000:
        return 0
    us = ns // 1000
    e = us.bit_length() - 1
    sub = (us >> (e - 2)) & 3 if e >= 2 else (us << (2 - e)) & 3
    return min(1 + 4 * e + sub, BUCKETS - 1)


def quantile(hist, q):
    total = sum(hist)
    if not total:
        return 0
    cum = 0
    for i, c in enumerate(hist):
        cum += c
        if cum >= q * total:
            if i == 0:
                return 0
            e, s = (i - 1) // 4, (i - 1) % 4
            return round(1000 * ((4 + s) * 2 ** e / 4 + 2 ** e / 8))
    return 0


SUMS = {
    "c2s_bytes": "c2s_ip_bytes", "s2c_bytes": "s2c_ip_bytes", "c2s_packets": "c2s_packets",
    "s2c_packets": "s2c_packets", "flows_started": "1",
    "retransmissions": "c2s_retransmissions + s2c_retransmissions",
    "zero_windows": "c2s_zero_windows + s2c_zero_windows", "resets": "c2s_rsts + s2c_rsts",
    "handshakes_failed": "CASE WHEN proto = 6 AND hs_seen & 1 = 1 AND hs_seen & 7 <> 7 THEN 1 ELSE 0 END",
}


def expected(co, parts):
    """parts: [(monitor definition, nodes whose records it saw)]. The minutes
    as REST renders them, computed from `flows` with SQL (sums) and the
    flows' own latencies (histograms)."""
    mins = {}

    def row(minute):
        return mins.setdefault(minute, {
            "minute_ns": str(minute), **{k: 0 for k in SUMS}, "flows_finished": 0, "flows_active": 0,
            "lat": {k: [0, 0, [0] * BUCKETS] for k in ("handshake_rtt", "ack_rtt", "app_response")}})

    for m, nodes in parts:
        w = where(m, nodes)
        cols = ", ".join(f"sum({v})" for v in SUMS.values())
        for r in co.sql(f"SELECT first_ns / {MIN} * {MIN}, {cols} FROM flows WHERE {w} GROUP BY 1"):
            x = row(int(r[0]))
            for k, v in zip(SUMS, r[1:]):
                x[k] += int(v)
        for r in co.sql(f"SELECT last_ns / {MIN} * {MIN}, count(*) FROM flows WHERE {w} GROUP BY 1"):
            row(int(r[0]))["flows_finished"] += int(r[1])
        for r in co.sql(f"SELECT t, count(*) FROM flows, generate_series(first_ns / {MIN} * {MIN}, "
                        f"greatest(last_ns, first_ns) / {MIN} * {MIN}, {MIN}) t WHERE {w} GROUP BY 1"):
            row(int(r[0]))["flows_active"] += int(r[1])
        for r in co.sql(f"SELECT first_ns / {MIN} * {MIN}, hs_seen & 8, initial_rtt_ns, "
                        f"c2s_rtt_count + s2c_rtt_count, c2s_rtt_sum + s2c_rtt_sum, app_count, app_sum "
                        f"FROM flows WHERE {w}"):
            lat = row(int(r[0]))["lat"]
            v = [int(x) for x in r[1:]]
            for key, n, s, have, per_flow in (("handshake_rtt", 1, v[1], v[0], v[1]),
                                             ("ack_rtt", v[2], v[3], v[2] > 0, v[3] // max(v[2], 1)),
                                             ("app_response", v[4], v[5], v[4] > 0, v[5] // max(v[4], 1))):
                if have:
                    lat[key][0] += n
                    lat[key][1] += s
                    lat[key][2][bucket(per_flow)] += 1
    out = {}
    for minute, x in mins.items():
        lat = x.pop("lat")
        y = {k: str(v) if k != "minute_ns" else v for k, v in x.items()}
        for key, (n, s, hist) in lat.items():
            y[key] = {"count": str(n), "sum": str(s), "mean": str(s // n if n else 0),
                      "flows": str(sum(hist)), "p50": str(quantile(hist, 0.5)),
                      "p90": str(quantile(hist, 0.9)), "p99": str(quantile(hist, 0.99))}
        out[str(minute)] = y
    return out


def series(api, name):
    got = api.call("GET", f"/api/v1/monitors/{name}/series?from=0", token="read", schema="MonitorMinuteList")
    return {m["minute_ns"]: m for m in got["minutes"]}


def diff(got, want):
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            return f"minute {k}: got {got.get(k)} want {want.get(k)}"
    return None


def series_checks(api, co):
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    fg = lambda node, n, seed: h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(),
                                      "--node", node, "--records", str(n), "--servers", "24",
                                      "--seed", str(seed)])
    # Before any monitor: received and written, never counted.
    fg("fg-before", 2000, 1)
    wait_written(co, 2000, "fg-before")
    wait_quiet(co)
    crud_checks(api, co)
    after = ["fg-after", "rec-z", "rec-s", "rec-l"]
    fg("fg-after", 3000, 2)
    recorder_read(co, os.path.join(DATA, "tcp_zerowin.pcap"), "rec-z")
    recorder_read(co, os.path.join(DATA, "tcp_short_conns.pcap"), "rec-s")
    recorder_read(co, os.path.join(DATA, "tcp_loss1.pcap"), "rec-l")
    wait_quiet(co)
    # m-change's filter changes now: port 22 for what comes next.
    before_change = api.call("GET", "/api/v1/monitors/m-change", token="read", schema="Monitor")
    changed = json.loads(cli(co, "monitors", "set", "m-change", "port=22", "--json").stdout)
    h.check(changed["server_port"] == 22 and int(changed["changed_ns"]) > int(changed["created_ns"]),
            f"set: {changed}")
    fg("fg-late", 1000, 3)
    wait_quiet(co)

    mons = {m["name"]: m for m in api.call("GET", "/api/v1/monitors", token="read",
                                            schema="MonitorList")["monitors"]}
    plan = {name: [(m, after + ["fg-late"])] for name, m in mons.items() if name != "m-change"}
    plan["m-change"] = [(before_change, after), (mons["m-change"], ["fg-late"])]
    want = {name: expected(co, parts) for name, parts in plan.items()}
    counts = {name: sum(int(x["flows_started"]) for x in w.values()) for name, w in want.items()}
    h.check(all(counts.values()), f"a monitor matches nothing, the test tests little: {counts}")
    feats = {k: sum(int(x[k]) for x in want["m-recs"].values())
             for k in ("zero_windows", "resets", "retransmissions", "handshakes_failed")}
    h.check(feats["zero_windows"] and feats["resets"] and feats["retransmissions"],
            f"the captures give no zero windows / resets / retransmissions: {feats}")
    deadline = time.time() + 30
    while True:
        problems = {name: diff(series(api, name), w) for name, w in want.items()}
        problems = {k: v for k, v in problems.items() if v}
        if not problems:
            break
        if time.time() > deadline:
            h.fail(f"series differ from SQL over flows: {problems}")
        time.sleep(0.5)
    all_rows = int(co.sql("SELECT count(*) FROM flows")[0][0])
    h.check(counts["m-all"] == all_rows - 2000,
            f"m-all counted {counts['m-all']} flows of {all_rows}, 2000 of them before it existed")
    via_cli = json.loads(cli(co, "monitors", "series", "m-https", "--from", "0", "--json").stdout)
    h.check({m["minute_ns"]: m for m in via_cli} == series(api, "m-https"), "CLI series differ from REST")
    h.check(b"MINUTE" in cli(co, "monitors", "series", "m-recs", "--from", "0").stdout, "CLI series table")
    print(f"ok  series of {len(want)} monitors equal SQL over flows ({counts}); "
          f"records before creation not counted; m-change's new filter from the change on")
    # A deleted monitor takes its series along.
    api.call("DELETE", "/api/v1/monitors/m-client", schema="Monitor")
    h.check(co.sql("SELECT count(*) FROM monitor_minutes mm LEFT JOIN monitors m ON m.id = mm.monitor_id "
                   "WHERE m.id IS NULL")[0][0] == "0", "series of a deleted monitor left behind")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d)
    try:
        api = Api(co)
        series_checks(api, co)
        # A restart keeps the monitors and goes on counting.
        h.check(co.stop() == 0, "coordinator exit status")
        co = Coordinator(d, reuse=co)
        h.check(h.wait_for(lambda: "monitors: 5 loaded" in co.log_text(), 20), "monitors not loaded at start")
        print("ok  monitors loaded at start")
        h.check(co.stop() == 0, "coordinator exit status")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
