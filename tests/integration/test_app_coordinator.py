#!/usr/bin/env python3
"""Application records (DNS, TLS, HTTP; issue 15) from the bus to the APIs,
against a real coordinator (its embedded PostgreSQL, CURVE on its bus and RPC).

1. `appgen` publishes records of all three kinds in which every field has
   its own value, with nulls, hostile text (quotes, control bytes, bytes
   that are not UTF-8) and each kind's longest text, as a recorder does
   (AppBatch on topic "app", the recorder's own protobuf mapping). They are
   stored in day partitions of app_records, and `mscope dns|tls|http --json`
   gives back every record exactly as appgen printed it (the recorder's JSON
   writer); the filters select what the same filters select here.
2. The per-minute aggregates (`--top`, `--top --by-minute`): count, errors
   and the response-time sum per name, endpoint and server equal those
   computed here from the records sent; p50/p95/p99 equal the bucket the
   records' values fall in (the histogram rule of latency.h, written out
   here again).
3. Hostile input: a batch mixing records with one value out of range or too
   long (each dropped alone and counted) with good ones (written); a batch
   that does not decode and one without a node name (bad messages); a
   publisher whose key has the client role (refused on the bus, counted),
   while a good publisher's batches go through meanwhile.
4. A recorder's own records of the committed captures (tests/data/app_*.pcap):
   its --app-json equals what the coordinator gives back.
5. A batch PostgreSQL refuses (a CHECK constraint added for the test) is set
   aside (*.bad) and counted; the batches after it are written. Retention
   drops old days of app_records.
6. REST: /api/v1/app/{dns,tls,http} and their /top answer the same records
   and aggregates, valid against the served openapi.json, with the read
   token; no token, bad parameters and unknown kinds are refused.
"""
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
import restclient  # noqa: E402
from cluster import Coordinator  # noqa: E402

KINDS = ("dns", "tls", "http")


def appgen(co, appgen_bin, *args, key=None):
    keys = co.flowgen_keys() if key is None else ["--key-file", key, "--server-key",
                                                   os.path.join(co.dir, "curve.pub")]
    return subprocess.run([appgen_bin, "--to", f"tcp://127.0.0.1:{co.port}", *keys, *map(str, args)],
                          capture_output=True, timeout=120)


def sent_records(p):
    h.check(p.returncode == 0, f"appgen failed: {p.stderr.decode(errors='replace')}")
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


def mscope_app(co, kind, *args):
    since = [] if "--from" in args else ["--since", "2h"]
    p = h.run(co.cli(kind, "--json", *since, *args))
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


def key(r):
    return (r["node"], r["flow_id"])


def by_key(recs):
    return {key(r): r for r in recs}


# ---- what the aggregates must say, from the records ------------------------

def name_of(r):
    v = r.get("qname") if r["kind"] == "dns" else r.get("sni") if r["kind"] == "tls" else r.get("host")
    return v if v is not None else ""


def endpoint_of(r):
    return r["uri"].split("?", 1)[0] if r["kind"] == "http" else ""


def is_error(r):
    if r["kind"] == "dns":
        return r["rcode"] is None or r["rcode"] != 0
    if r["kind"] == "tls":
        return r["version"] is None
    return r["status"] is None or r["status"] >= 500


def response_of(r):
    return r["hello_rtt_ns"] if r["kind"] == "tls" else r["response_ns"]


def bucket(ns):
    """latency_bucket() (coordinator/latency.c): log-linear, 4 per power of two, in µs."""
    if ns < 1000:
        return 0
    us = ns // 1000
    e = us.bit_length() - 1
    sub = (us >> (e - 2)) & 3 if e >= 2 else (us << (2 - e)) & 3
    return min(1 + 4 * e + sub, 108)


def quantile(values, q):
    """mscope_hist_quantile() (schema v7) of the values' histogram."""
    hist = collections.Counter(bucket(v) for v in values)
    cum = 0
    for b in sorted(hist):
        cum += hist[b]
        if cum >= q * len(values):
            i = b + 1
            if i == 1:
                return 0
            return round(1000 * ((4 + (i - 2) % 4) * 2 ** ((i - 2) // 4) / 4.0 + 2 ** ((i - 2) // 4) / 8.0))
    return None


def expected_aggregates(recs, by_minute):
    groups = collections.defaultdict(list)
    for r in recs:
        minute = r["ts_ns"] // 60_000_000_000 * 60_000_000_000 if by_minute else None
        groups[(minute, name_of(r), endpoint_of(r), r["server"]["ip"], r["server"]["port"])].append(r)
    out = {}
    for k, rs in groups.items():
        resp = [response_of(r) for r in rs if response_of(r) is not None]
        out[k] = {"count": len(rs), "errors": sum(map(is_error, rs)), "response_count": len(resp),
                  "response_sum_ns": sum(resp),
                  "p50_ns": quantile(resp, 0.5) if resp else None,
                  "p95_ns": quantile(resp, 0.95) if resp else None,
                  "p99_ns": quantile(resp, 0.99) if resp else None}
    return out


def agg_key(a, by_minute):
    return (a["minute_ns"] if by_minute else None, a["name"], a["endpoint"], a["server"]["ip"],
            a["server"]["port"])


def check_aggregates(got, recs, kind, by_minute, what):
    want = expected_aggregates(recs, by_minute)
    gotd = {agg_key(a, by_minute): a for a in got}
    h.check(len(gotd) == len(got), f"{what}: duplicate aggregate rows")
    h.check(set(gotd) == set(want), f"{what}: groups differ: only stored "
            f"{sorted(set(gotd) - set(want))[:3]}, only sent {sorted(set(want) - set(gotd))[:3]}")
    for k, w in want.items():
        g = gotd[k]
        h.check(g["kind"] == kind, f"{what} {k}: kind {g['kind']}")
        for f, v in w.items():
            h.check(g[f] == v, f"{what} {k}: {f} stored {g[f]!r}, from the records {v!r}")


# ---- the checks ---------------------------------------------------------------

def check_round_trip(co, sent, node):
    for kind in KINDS:
        want = by_key(r for r in sent if r["kind"] == kind)
        got = mscope_app(co, kind, "--node", node, "--limit", 10000)
        h.check(len(got) == len(want), f"{kind}: {len(got)} records back of {len(want)}")
        gotd = by_key(got)
        for k, w in want.items():
            h.check(gotd.get(k) == w, f"{kind} {k}:\n sent {json.dumps(w)[:600]}\n back "
                    f"{json.dumps(gotd.get(k))[:600]}")
        times = [r["ts_ns"] for r in got]
        h.check(times == sorted(times, reverse=True), f"{kind}: not newest first")
    nulls = sum(v is None for r in sent for v in r.values())
    h.check(nulls > 50, f"only {nulls} nulls sent")
    print(f"ok  {len(sent)} records of 3 kinds ({nulls} null values, hostile and longest text) "
          "come back from PostgreSQL through mscope --json unchanged")


def check_filters(co, sent, node):
    """Each filter selects what the same filter selects here."""
    recs = [r for r in sent if r["node"] == node]
    dns = [r for r in recs if r["kind"] == "dns"]
    http = [r for r in recs if r["kind"] == "http"]
    tls = [r for r in recs if r["kind"] == "tls"]
    some = dns[4]
    cases = [
        ("dns", ["--name", "q\"uote"], [r for r in dns if "q\"uote" in r["qname"]]),
        ("dns", ["--name", "tab*.dns.example"], [r for r in dns if r["qname"].startswith("tab")
                                                 and r["qname"].endswith(".dns.example")]),
        ("dns", ["--code", "3"], [r for r in dns if r["rcode"] == 3]),
        ("dns", ["--errors"], [r for r in dns if is_error(r)]),
        ("dns", ["--client", some["client"]["ip"]], [r for r in dns if r["client"]["ip"] == some["client"]["ip"]]),
        ("dns", ["--port", 5353], [r for r in dns if 5353 in (r["client"]["port"], r["server"]["port"])]),
        ("dns", ["--server", "172.16.0.0/16"], [r for r in dns if r["server"]["ip"].startswith("172.16.")]),
        ("tls", ["--errors"], [r for r in tls if r["version"] is None]),
        ("tls", ["--name", "caf"], [r for r in tls if r["sni"] and "caf" in r["sni"]]),
        ("http", ["--code", "5xx"], [r for r in http if r["status"] and 500 <= r["status"] < 600]),
        ("http", ["--code", "404"], [r for r in http if r["status"] == 404]),
        ("http", ["--uri", "/p1/*"], [r for r in http if r["uri"].startswith("/p1/")]),
        ("http", ["--server", f"[{http[1]['server']['ip']}]:{http[1]['server']['port']}"],
         [r for r in http if r["server"] == http[1]["server"]]),
        ("http", ["--server", f"{http[0]['server']['ip']}"],
         [r for r in http if r["server"]["ip"] == http[0]["server"]["ip"]]),
    ]
    for kind, args, want in cases:
        h.check(want, f"{kind} {args}: the sample has no such record (test data)")
        got = mscope_app(co, kind, "--node", node, "--limit", 10000, *args)
        h.check(sorted(map(key, got)) == sorted(map(key, want)),
                f"{kind} {args}: {len(got)} records, expected {len(want)}")
    got = mscope_app(co, "http", "--node", node, "--limit", 3)
    h.check(len(got) == 3, f"--limit 3: {len(got)}")
    bad = subprocess.run(co.cli("tls", "--code", "3"), capture_output=True)
    h.check(bad.returncode == 2 and b"TLS has none" in bad.stderr, f"tls --code: {bad}")
    bad = subprocess.run(co.cli("dns", "--client", "not-an-address"), capture_output=True)
    h.check(bad.returncode == 2, f"a bad address: exit {bad.returncode} {bad.stderr}")
    print(f"ok  {len(cases)} filters select the records they name; bad filters exit 2")


def check_top(co, sent, node):
    for kind in KINDS:
        recs = [r for r in sent if r["kind"] == kind and r["node"] == node]
        for by_minute in (False, True):
            extra = ["--by-minute"] if by_minute else []
            got = mscope_app(co, kind, "--top", "--node", node, "--limit", 10000, *extra)
            check_aggregates(got, recs, kind, by_minute, f"{kind} --top {extra}")
            if not by_minute:
                counts = [a["count"] for a in got]
                h.check(counts == sorted(counts, reverse=True), f"{kind} --top: not by count")
        errs = mscope_app(co, kind, "--top", "--errors", "--node", node, "--limit", 10000)
        h.check(errs and all(a["errors"] > 0 for a in errs) and
                len(errs) == sum(1 for v in expected_aggregates(recs, False).values() if v["errors"]),
                f"{kind} --top --errors: {len(errs)} rows")
    table = h.run(co.cli("http", "--top", "--node", node)).stdout.decode()
    h.check(table.startswith("NAME") and "P99 ms" in table.splitlines()[0], f"--top table:\n{table}")
    print("ok  --top and --top --by-minute: count, errors, response sums and p50/p95/p99 equal "
          "those of the records sent")


def check_hostile(co, appgen_bin, before):
    st0 = co.stats()
    # A key with the client role (the CLI's kind): refused on the bus.
    key = os.path.join(co.dir, "intruder.key")
    h.run([cluster.CLI, "keygen", "--role", "client", key])
    shutil.move(os.path.join(co.dir, "intruder.pub"), os.path.join(co.dir, "allowed-keys", "intruder.pub"))
    intruder = {}
    t = threading.Thread(target=lambda: intruder.setdefault(
        "p", appgen(co, appgen_bin, "--records", 30, "--node", "intruder", key=key)))
    t.start()
    # meanwhile a recorder-role publisher's batches go through
    good = sent_records(appgen(co, appgen_bin, "--records", 90, "--node", "appgen-B", "--names", 2))
    p = appgen(co, appgen_bin, "--hostile", "--node", "appgen-H")
    h.check(p.returncode == 0, f"appgen --hostile: {p.stderr}")
    lines = p.stdout.decode().splitlines()
    counts = json.loads(lines[0])
    hostile_good = [json.loads(x) for x in lines[1:]]
    t.join()
    h.check(intruder["p"].returncode != 0, "a client-role key published on the bus")
    h.check(h.wait_for(lambda: co.stats()["bad_app_records"] - st0["bad_app_records"] == counts["bad_records"]
                       and co.stats()["bad_messages"] - st0["bad_messages"] >= counts["bad_messages"], 20),
            f"hostile records not counted: {co.stats()} (expected {counts})")
    h.check(co.stats()["bus_refused"] > st0["bus_refused"], f"the client-role key was not refused: {co.stats()}")
    for recs, node in ((good, "appgen-B"), (hostile_good, "appgen-H")):
        for kind in KINDS:
            want = by_key(r for r in recs if r["kind"] == kind)
            h.check(h.wait_for(lambda: len(mscope_app(co, kind, "--node", node, "--limit", 10000)) == len(want), 20),
                    f"{node} {kind}: records missing")
            h.check(by_key(mscope_app(co, kind, "--node", node, "--limit", 10000)) == want,
                    f"{node} {kind}: records differ")
    h.check(not mscope_app(co, "dns", "--node", "intruder"), "the intruder's records were stored")
    log = co.log_text()
    h.check("application record of flow" in log and "dropped" in log, "no log line for a dropped record")
    st = co.stats()
    h.check(st["records_dropped"] == before["records_dropped"] and st["app_records_dropped"] == 0,
            f"a batch was refused by PostgreSQL: {st}")
    print(f"ok  {counts['bad_records']} hostile records dropped alone and counted, "
          f"{counts['bad_messages']} bad messages counted, a client-role key refused; "
          f"{len(good) + len(hostile_good)} good records around them stored")
    return good


def check_rest(co, sent, node):
    """The REST endpoints: the same records and aggregates as the CLI's, every
    answer valid against the served OpenAPI document, the read token enough,
    no token refused, bad parameters named."""
    api = restclient.Api(co)
    api.call("GET", "/api/v1/app/dns", token=None, status=401)
    for kind in KINDS:
        want = by_key(r for r in sent if r["kind"] == kind and r["node"] == node)
        q = urllib.parse.urlencode({"from": "2h", "node": node, "limit": 10000})
        body = api.call("GET", f"/api/v1/app/{kind}?{q}", token="read", schema="AppRecordList")
        h.check(by_key(body["records"]) == want, f"REST {kind}: records differ from those sent")
        body = api.call("GET", f"/api/v1/app/{kind}/top?{q}", token="read", schema="AppAggregateList")
        check_aggregates(body["aggregates"], list(want.values()), kind, False, f"REST {kind}/top")
        q2 = urllib.parse.urlencode({"from": "2h", "node": node, "limit": 10000, "by_minute": "true",
                                     "errors": "true"})
        body = api.call("GET", f"/api/v1/app/{kind}/top?{q2}", token="read", schema="AppAggregateList")
        recs = [r for r in want.values()]
        errs = {k: v for k, v in expected_aggregates(recs, True).items() if v["errors"]}
        h.check(len(body["aggregates"]) == len(errs) and
                all(a["errors"] > 0 and "minute_ns" in a for a in body["aggregates"]),
                f"REST {kind}/top by_minute errors: {len(body['aggregates'])} rows, {len(errs)} expected")
    code = urllib.parse.urlencode({"from": "2h", "node": node, "code": "5xx", "limit": 10000})
    body = api.call("GET", f"/api/v1/app/http?{code}", token="read", schema="AppRecordList")
    h.check(body["records"] and all(500 <= r["status"] < 600 for r in body["records"]), "REST code=5xx")
    api.call("GET", "/api/v1/app/smtp", token="read", status=404)
    api.call("GET", "/api/v1/app/tls?code=3", token="read", status=400)
    api.call("GET", "/api/v1/app/dns?by_minute=true", token="read", status=400)
    api.call("GET", "/api/v1/app/dns?colour=red", token="read", status=400)
    api.call("GET", "/api/v1/app/dns?client=nonsense", token="read", status=400)
    print("ok  REST /api/v1/app/{dns,tls,http}[/top]: the same records and aggregates, valid "
          "against openapi.json; no token 401, bad parameters 400, an unknown kind 404")


def check_refused(co, appgen_bin):
    """A batch PostgreSQL refuses for what its rows are (here a CHECK
    constraint that wire.c cannot know) is set aside on disk (*.bad) and
    counted, not retried forever, and the batches after it are written."""
    co.sql("ALTER TABLE app_records ADD CONSTRAINT test_poison CHECK (node <> 'poison')")
    st0 = co.stats()
    sent_records(appgen(co, appgen_bin, "--records", 12, "--node", "poison"))
    h.check(h.wait_for(lambda: co.stats()["app_records_dropped"] - st0["app_records_dropped"] == 12, 20),
            f"the refused batch is not counted: {co.stats()}")
    after = sent_records(appgen(co, appgen_bin, "--records", 9, "--node", "after-poison"))
    for kind in KINDS:
        want = by_key(r for r in after if r["kind"] == kind)
        h.check(h.wait_for(lambda: by_key(mscope_app(co, kind, "--node", "after-poison")) == want, 20),
                f"{kind}: the batches after a refused one were not written")
    bad = [f for f in os.listdir(os.path.join(co.dir, "spool")) if f.endswith(".bad")]
    h.check(len(bad) == 1, f"set aside: {bad}")
    h.check("set aside as" in co.log_text(), "no log line for the batch set aside")
    h.check(not mscope_app(co, "dns", "--node", "poison"), "a refused record was stored")
    co.sql("ALTER TABLE app_records DROP CONSTRAINT test_poison")
    print("ok  a batch PostgreSQL refuses is set aside (*.bad) and counted; the next ones are written")


def check_retention(co, appgen_bin, d):
    """Old days of app_records are dropped whole and their minutes deleted by
    --retention-days, as the flows' are; today's stay."""
    old = 1_700_000_000_000_000_000  # 2023-11-14
    sent_records(appgen(co, appgen_bin, "--records", 30, "--node", "appgen-old", "--base-ns", old))
    h.check(h.wait_for(lambda: co.sql("SELECT count(*) FROM app_records WHERE node = 'appgen-old'")
                       == [["30"]], 20), "old records not written")
    h.check(co.sql("SELECT count(*) FROM app_records_20231114") == [["30"]],
            "old records not in their day's partition")
    h.check(co.stop() == 0, "coordinator stop before retention")
    co = Coordinator(d, reuse=co, extra=["--retention-days", "30"])
    gone = "SELECT count(*) FROM pg_class WHERE relname = 'app_records_20231114'"
    h.check(h.wait_for(lambda: co.sql(gone) == [["0"]], 20), "old app_records partition not dropped")
    # The pass drops the partition first, then deletes the minutes: wait for its end.
    old_minutes = "SELECT count(*) FROM app_minutes WHERE minute < '2024-01-01'"
    h.check(h.wait_for(lambda: co.sql(old_minutes) == [["0"]], 20), "old app_minutes rows kept")
    h.check(int(co.sql("SELECT count(*) FROM app_records")[0][0]) >= 600, "today's records dropped")
    h.check("retention: dropped partition app_records_20231114" in co.log_text(), "retention not logged")
    print("ok  --retention-days drops old app_records days and app_minutes rows, keeps today's")
    return co


def check_captures(co, d):
    """A recorder's own records of real captures (tests/data/app_*.pcap, made
    by tests/lib/apprig.py): what its --app-json printed is what the
    coordinator gives back, record by record and field by field."""
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    pcaps = sorted(glob.glob(os.path.join(data, "app_*.pcap")))
    h.check(pcaps, "no application captures in tests/data")
    total = 0
    for i, pcap in enumerate(pcaps):
        node = f"appcap-{i}"
        js = os.path.join(d, f"{node}.json")
        keys = co.enroll(os.path.join(d, node), node)
        h.run([h.RECORDER, "--read", pcap, *keys, "--node-id", node, "--app-json", js])
        want = [json.loads(line) for line in open(js)]
        h.check(want, f"{pcap}: no application records")
        for kind in KINDS:
            # pipelined requests of one packet share flow_id and ts_ns: whole records sort
            canon = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
            w = sorted((r for r in want if r["kind"] == kind), key=canon)
            h.check(h.wait_for(lambda: len(mscope_app(co, kind, "--node", node, "--limit", 10000,
                                                      "--from", "0")) == len(w), 20),
                    f"{pcap} {kind}: {len(mscope_app(co, kind, '--node', node, '--from', '0'))} "
                    f"stored of {len(w)}")
            g = sorted(mscope_app(co, kind, "--node", node, "--limit", 10000, "--from", "0"), key=canon)
            for a, b in zip(g, w):
                h.check(a == b, f"{pcap} {kind}:\n stored {a}\n recorder {b}")
        total += len(want)
    print(f"ok  {len(pcaps)} captures: {total} records of the recorder's --app-json equal "
          "mscope dns|tls|http --json, field by field")


def main():
    h.init()
    cluster.init()
    appgen_bin = h.binary("MSCOPE_APPGEN", "appgen")
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    co = Coordinator(d)
    try:
        node = "appgen-A"
        sent = sent_records(appgen(co, appgen_bin, "--records", 600, "--names", 10, "--node", node))
        h.check(len(sent) == 600 and {r["kind"] for r in sent} == set(KINDS), "appgen's records")
        h.check(h.wait_for(lambda: co.stats()["app_records_received"] == 600 and
                           co.stats()["app_records_written"] == 600 and
                           co.stats()["records_pending"] == 0, 20), f"not written: {co.stats()}")
        h.check(co.stats()["records_written"] == 0, "application records counted as flow records")
        h.check(h.wait_for(lambda: len(mscope_app(co, "http", "--node", node, "--limit", 10000)) == 200, 20),
                "records not written")
        days = co.sql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                      "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'app_records'")
        h.check(days and all(r[0].startswith("app_records_") for r in days), f"partitions: {days}")
        n = co.sql("SELECT count(*) FROM app_records")[0][0]
        h.check(n == "600", f"app_records holds {n} rows")
        before = co.stats()
        h.check(before["bad_app_records"] == 0 and before["bad_messages"] == 0, f"stats {before}")
        check_round_trip(co, sent, node)
        check_filters(co, sent, node)
        check_top(co, sent, node)
        check_rest(co, sent, node)
        check_captures(co, d)
        check_hostile(co, appgen_bin, before)
        st = co.stats()
        h.check(st["gaps"] == 0, f"sequence gaps: {st}")
        check_refused(co, appgen_bin)
        co = check_retention(co, appgen_bin, d)
        st = co.stats()
        h.check(st["gaps"] == 0, f"sequence gaps: {st}")
        h.check(co.stop() == 0, f"the coordinator did not stop cleanly:\n{co.log_text()[-3000:]}")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
