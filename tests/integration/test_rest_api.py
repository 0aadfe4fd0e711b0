#!/usr/bin/env python3
"""The coordinator's REST API against a real PostgreSQL and real recorders.

- Every endpoint answers, and every JSON answer validates against the
  OpenAPI document the coordinator serves (jsonschema, Draft 2020-12).
- flows: more than 10 000 flows paged with the cursor come back exactly once
  each (in two orders), and the NDJSON export streams every one of them.
- search: the pcap a REST search streams is byte for byte what `mscope
  search` writes; its per-recorder status is there when it ends; a slow HTTP
  reader keeps the coordinator's and the recorders' buffers bounded; a
  client that vanishes mid-stream frees the search everywhere.
- nodes: each recorder's drops by reason and storage (REST and mscope
  nodes) equal its own stats file.
- Errors: bad parameters (400 naming them), no or a wrong token (401), the
  read token on an admin endpoint (403), unknown paths (404), wrong methods
  (405), PostgreSQL away (503); the coordinator survives them all.
- Tokens rotated without a restart: new files, SIGHUP, and the REST API and
  the RPC want the new tokens at once; a new search token taken by the
  coordinator alone is refused by the recorders (the search says so, per
  node), and works once they have read it too (SIGHUP).
"""
import http.client
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402
from restclient import Api  # noqa: E402

MiB = 1 << 20
NFLOWS = 12000


def page_all(api, order, limit):
    seen, cursor, pages = [], None, 0
    while True:
        q = f"/api/v1/flows?from=0&order={order}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(q, "FlowList")
        seen += [(f["node"], f["record"]["flow_id"]) for f in page["flows"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return seen, pages


def flows_checks(api, co):
    api.get("/api/v1/nodes", "NodeList")
    top = api.get("/api/v1/top?from=0&by=server&metric=bytes&limit=5", "TalkerList")
    h.check(len(top["talkers"]) == 5, f"top: {top}")
    series = api.get("/api/v1/series?from=0", "MinuteList")
    h.check(sum(int(m["flows"]) for m in series["minutes"]) == NFLOWS,
            f"series flows do not add up to {NFLOWS}")
    want = int(co.sql("SELECT count(*) FROM flows_all")[0][0])
    h.check(want == NFLOWS, f"database has {want} flows, fed {NFLOWS}")
    for order, limit in (("newest", 5000), ("bytes", 3333)):
        seen, pages = page_all(api, order, limit)
        h.check(len(seen) == NFLOWS and len(set(seen)) == NFLOWS,
                f"order={order}: {len(seen)} rows, {len(set(seen))} distinct, want {NFLOWS}")
        print(f"ok  flows order={order}: {NFLOWS} flows in {pages} pages, each exactly once")
    # An empty answer still names its rows (it once came back as "nodes").
    for path, schema, key in (("flows", "FlowList", "flows"), ("top", "TalkerList", "talkers"),
                              ("series", "MinuteList", "minutes")):
        empty = api.get(f"/api/v1/{path}?from=1000000000&to=1000000001", schema)
        h.check(empty.get(key) == [], f"empty {path}: {empty}")
    newest = api.get("/api/v1/flows?from=0&limit=50", "FlowList")["flows"]
    firsts = [int(f["record"]["first_ns"]) for f in newest]
    h.check(firsts == sorted(firsts, reverse=True), "default order is not newest first")
    # Filters reach the query layer: a host filter equals the same SQL.
    host = newest[0]["record"]["server"]["ip"]
    got = api.get(f"/api/v1/flows?from=0&host={host}&limit=10000", "FlowList")["flows"]
    sql = co.sql(f"SELECT count(*) FROM flows_all WHERE client_ip = '{host}' OR server_ip = '{host}'")
    h.check(len(got) == int(sql[0][0]), f"host={host}: {len(got)} rows, SQL says {sql}")
    # NDJSON: every flow, one JSON object per line, paced by the reader.
    st, hdr, body = h.http_get(co.http, "/api/v1/flows?from=0", api.read,
                               headers={"Accept": "application/x-ndjson"})
    lines = body.decode().splitlines()
    h.check(st == 200 and hdr["content-type"] == "application/x-ndjson", f"ndjson: {st} {hdr}")
    rows = [json.loads(x) for x in lines]
    for r in rows[:50]:
        api.validate(r, "FlowRow")
    keys = {(r["node"], r["record"]["flow_id"]) for r in rows}
    h.check(len(rows) == NFLOWS and len(keys) == NFLOWS,
            f"ndjson export: {len(rows)} lines, {len(keys)} distinct, want {NFLOWS}")
    print(f"ok  NDJSON export: {NFLOWS} flows, one per line; answers validate against OpenAPI")


def error_checks(api, co):
    bad = [("/api/v1/flows?host=not-an-ip", "host"), ("/api/v1/flows?port=0", "port"),
           ("/api/v1/flows?order=sideways", "order"), ("/api/v1/flows?limit=0", "limit"),
           ("/api/v1/flows?from=yesterday-ish", "from"), ("/api/v1/flows?colour=red", "colour"),
           ("/api/v1/flows?cursor=garbage", "cursor"), ("/api/v1/top?by=planet", "by"),
           ("/api/v1/series?server=300.1.1.1", "server"), ("/api/v1/flows?min_rtt=fast", "min_rtt"),
           ("/api/v1/flows?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "empty time range"),
           ("/api/v1/top?from=1700000100&to=1700000000", "empty time range"),
           ("/api/v1/flows?from=100000000000h", "from")]
    for path, name in bad:
        e = api.get(path, status=400)
        h.check(name in e["error"], f"{path}: the error does not name '{name}': {e}")
    api.get("/api/v1/flows", token=None, status=401)
    api.get("/api/v1/flows", token="x" * 40, status=401)
    st, _, body = h.http_get(co.http, "/api/v1/search", api.read, method="POST", body=b"{}")
    h.check(st == 403, f"read token on search: {st} {body!r}")
    api.get("/api/v1/nothing-here", status=404)
    st, _, body = h.http_get(co.http, "/api/v1/flows", api.read, method="DELETE")
    h.check(st == 405, f"DELETE flows: {st}")
    for body in (b"not json", b"[1,2]", b'{"filter": 7}', b'{"colour": "red"}',
                 b'{"filter": "tcp and and"}', b'{"nodes": ["nobody"]}',
                 b'{"filter": "tcp", "from": "1700000100", "to": "1700000000"}'):
        st, _, ans = h.http_get(co.http, "/api/v1/search", api.admin, method="POST", body=body)
        h.check(st == 400, f"search body {body!r}: {st} {ans!r}")
        api.validate(json.loads(ans), "Error")
    # Garbage on the HTTP port, and a request line that is not HTTP.
    s = socket.create_connection(tuple([co.http.rsplit(":", 1)[0], int(co.http.rsplit(":", 1)[1])]))
    s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n" * 100)
    s.close()
    h.check(co.proc.poll() is None, "the coordinator died of garbage on its HTTP port")
    print("ok  errors: 400 naming the parameter, 401, 403, 404, 405; garbage survived")


def outage_check(api, co):
    co.pg_ctl("stop")
    try:
        h.check(h.wait_for(lambda: h.http_get(co.http, "/api/v1/flows", api.read)[0] == 503, 15),
                "no 503 with PostgreSQL stopped")
        api.get("/api/v1/nodes", status=503)
    finally:
        co.pg_ctl("start")
    h.check(h.wait_for(lambda: h.http_get(co.http, "/api/v1/nodes", api.read)[0] == 200, 15),
            "the API did not come back with PostgreSQL")
    print("ok  PostgreSQL away: 503; back to 200 when it returns")


def nodes_check(api, co, recs):
    """Each recorder's drops by reason and storage, in the REST nodes row and
    mscope nodes --json, are what its own stats file says (a few short UDP
    messages first, so one reason counts something)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(7):
        s.sendto(b"abc", ("127.0.0.1", recs[0].port))
    s.close()

    def want(rec):
        st = rec.stats()
        drops = {"queue": st["queue_drops"], "kernel": st["kernel_drops"],
                 "disk_full": st["drop_disk_full"], **st["not_decapsulated"]}
        return {"drops": {k: str(v) for k, v in drops.items()}, "disk_used": str(st["disk_used"]),
                "oldest_ns": str(st["oldest_ns"]), "newest_ns": str(st["newest_ns"])}

    def got():
        rows = {n["node"]: n for n in api.get("/api/v1/nodes", "NodeList")["nodes"]}
        return {f"r{i}": {k: rows[f"r{i}"][k] for k in ("drops", "disk_used", "oldest_ns", "newest_ns")}
                for i in range(len(recs)) if f"r{i}" in rows}

    h.check(h.wait_for(lambda: sum(int(v) for v in want(recs[0])["drops"].values()) >= 7, 10),
            f"the short messages not counted: {recs[0].stats()}")
    expect = {f"r{i}": want(r) for i, r in enumerate(recs)}
    h.check(sum(int(v) for v in expect["r0"]["drops"].values()) >= 7 and
            int(expect["r0"]["disk_used"]) > 0 and int(expect["r0"]["oldest_ns"]) > 0,
            f"the recorder's stats: {expect['r0']}")
    h.check(h.wait_for(lambda: got() == {f"r{i}": want(r) for i, r in enumerate(recs)}, 10),
            f"REST nodes {got()} vs the recorders' stats {expect}")
    cli = {n["node"]: n for n in json.loads(h.run(co.cli("nodes", "--json")).stdout)}
    for name, w in expect.items():
        c = cli[name]
        h.check({k: str(v) for k, v in c["drops"].items()} == w["drops"] and
                [str(c[k]) for k in ("disk_used", "oldest_ns", "newest_ns")] ==
                [w[k] for k in ("disk_used", "oldest_ns", "newest_ns")],
                f"mscope nodes --json {name}: {c} vs {w}")
    text = h.run(co.cli("nodes")).stdout.decode()
    h.check("DROPS" in text and "DISK" in text and "r0 dropped" in text, f"mscope nodes:\n{text}")
    print(f"ok  drops by reason and storage per recorder (REST, mscope nodes) == the recorders' stats")


def slow_search(co, api, timeout):
    """A search of everything over REST whose client has read its first
    64 KiB and reads no more for now: (connection, response, those bytes)."""
    host, port = co.http.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    c.request("POST", "/api/v1/search", body=json.dumps({"from": "0"}),
              headers={"Authorization": f"Bearer {api.admin}"})
    r = c.getresponse()
    return c, r, r.read(64 * 1024)


def put_token(path, token):
    """A token into its file as an operator would: a new file renamed over it."""
    with open(path + ".new", "w") as f:
        f.write(token + "\n")
    os.chmod(path + ".new", 0o600)
    os.rename(path + ".new", path)


def sighup(proc, says):
    """SIGHUP to a daemon, then wait for its log to say what the reload did."""
    before = proc.log_text().count(says)
    proc.proc.send_signal(signal.SIGHUP)
    h.check(h.wait_for(lambda: proc.log_text().count(says) > before, 10),
            f"SIGHUP: the log does not say '{says}':\n{proc.log_text()[-2000:]}")


def rotation_check(api, co, recs):
    # REST and RPC: three new tokens, one SIGHUP.
    old_read, old_admin = api.read, api.admin
    old_rpc = open(os.path.join(co.dir, "rpc.token")).read().strip()
    api.read, api.admin = "r0tated-read-" + "r" * 20, "r0tated-admin-" + "a" * 20
    put_token(os.path.join(co.dir, "api-read.token"), api.read)
    put_token(os.path.join(co.dir, "api-admin.token"), api.admin)
    put_token(os.path.join(co.dir, "rpc.token"), "r0tated-rpc-" + "p" * 20)
    sighup(co, "SIGHUP: token files read again: 3 of 4 changed")
    api.get("/api/v1/nodes", "NodeList", token="read")
    api.get("/api/v1/nodes", "NodeList", token="admin")
    api.get("/api/v1/nodes", token=old_read, status=401)
    api.get("/api/v1/nodes", token=old_admin, status=401)
    h.run(co.cli("nodes"))  # the new rpc.token
    old_file = os.path.join(co.dir, "..", "old-rpc.token")
    put_token(old_file, old_rpc)
    cmd = co.cli("nodes")
    cmd[cmd.index("--token-file") + 1] = old_file
    p = h.run(cmd, check_rc=False)
    h.check(p.returncode != 0 and b"token" in p.stderr, f"the old RPC token still works: {p.returncode} "
            f"{p.stderr!r}")
    print("ok  SIGHUP: new REST read and admin tokens and a new RPC token at once, the old ones refused")

    # The search token. A search running meanwhile goes on: it holds the
    # HTTP answer half read while both ends change tokens, then reads on.
    slow, resp, head = slow_search(co, api, 60)
    # The coordinator's alone first: every recorder refuses a new search,
    # and the search says so, per node.
    new = "r0tated-search-" + "s" * 20
    put_token(os.path.join(co.dir, "search.token"), new)
    sighup(co, "SIGHUP: token files read again: 1 of 4 changed")
    body = json.dumps({"filter": "udp", "from": "0"}).encode()
    st, hdr, _ = h.http_get(co.http, "/api/v1/search", api.admin, method="POST", body=body, timeout=120)
    status = api.get(f"/api/v1/searches/{hdr['x-mscope-search-id']}", "SearchStatus", token="admin")
    h.check(all("search token" in (n.get("error") or "") for n in status["trailer"]["nodes"]) and
            status["trailer"]["partial"], f"a search token the recorders do not have: {status}")
    for x in recs:
        put_token(os.path.join(x.datadir, "search.token"), new)
        sighup(x, "SIGHUP: token files read again: 1 of 1 changed")
    st, hdr, _ = h.http_get(co.http, "/api/v1/search", api.admin, method="POST", body=body, timeout=120)
    status = api.get(f"/api/v1/searches/{hdr['x-mscope-search-id']}", "SearchStatus", token="admin")
    h.check(st == 200 and status["state"] == "done" and not status["trailer"]["partial"],
            f"search after the recorders took the new token: {st} {status}")
    # The search begun with the old token reads on to its end, whole.
    got = len(head) + len(resp.read())
    sid = resp.getheader("x-mscope-search-id")
    slow.close()
    status = api.get(f"/api/v1/searches/{sid}", "SearchStatus", token="admin")
    st, _, whole = h.http_get(co.http, "/api/v1/search", api.admin, method="POST",
                              body=json.dumps({"from": "0"}).encode(), timeout=120)
    h.check(status["state"] == "done" and not status["trailer"]["partial"] and st == 200 and
            got == len(whole), f"the search running across the change: {got} bytes read, the same "
            f"search now {len(whole)}; {status}")
    print("ok  SIGHUP: a new search token on the coordinator alone is refused by every recorder "
          "(named in the search's status); once they read it too, searches are whole again; a "
          f"search running across both changes read on to its end ({got} bytes)")


def search_checks(api, co, d):
    data = h.gen(os.path.join(d, "data.pcap"), "--packets", 20000, "--flows", 200, "--seed", 61)
    big = h.gen(os.path.join(d, "big.pcap"), "--bytes", "24m", "--flows", 100, "--seed", 62,
                "--start", 1800000000)
    recs = []
    for i in range(2):
        dd = os.path.join(d, f"rec{i}")
        h.import_file(dd, data if i == 0 else big)
        ep = f"tcp://127.0.0.1:{h.free_tcp_port()}"
        recs.append(h.Daemon(dd, "--node-id", f"r{i}", *co.enroll(dd, f"r{i}"), "--search", ep))
    try:
        h.check(h.wait_for(lambda: co.stats()["nodes"] >= 2, 15), "recorders not known")
        time.sleep(1.5)
        api.get("/api/v1/nodes", "NodeList")
        nodes_check(api, co, recs)
        for expr in ("tcp port 443", "udp", ""):
            want = os.path.join(d, "cli.pcap")
            p = h.run(co.cli("search", "--from", "0", "-q", "-w", want, expr))
            body = json.dumps({"filter": expr, "from": "0"}).encode()
            st, hdr, got = h.http_get(co.http, "/api/v1/search", api.admin, method="POST",
                                      body=body, timeout=120)
            h.check(st == 200 and hdr["content-type"] == "application/vnd.tcpdump.pcap",
                    f"search {expr!r}: {st} {hdr}")
            h.check(got == open(want, "rb").read(),
                    f"search {expr!r}: REST gave {len(got)} bytes, mscope search "
                    f"{os.path.getsize(want)}")
            sid = hdr["x-mscope-search-id"]
            status = api.get(f"/api/v1/searches/{sid}", "SearchStatus", token="admin")
            h.check(status["state"] == "done" and not status["trailer"]["partial"] and
                    {n["node"] for n in status["trailer"]["nodes"]} == {"r0", "r1"},
                    f"search status: {status}")
        print("ok  REST search == mscope search, byte for byte (3 expressions); status per node")

        # A slow reader: read a little, stall; nobody buffers the whole answer.
        c, _, _ = slow_search(co, api, 30)
        time.sleep(3)
        st = co.stats()["search"]
        bound = 2 * 4 * MiB + 2 * MiB
        h.check(st["active"] == 1 and st["bytes_held_max"] <= bound,
                f"slow HTTP reader: coordinator {st} (bound {bound})")
        for x in recs:
            s = x.stats()["search"]
            h.check(s["buffered_bytes_max"] <= MiB, f"recorder buffered {s}")
        # ... then vanish: the search stops everywhere.
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        h.check(h.wait_for(lambda: co.stats()["search"]["active"] == 0 and
                           all(x.stats()["search"]["active"] == 0 for x in recs), 10),
                f"search not freed after the client vanished: {co.stats()['search']}")
        h.check(co.stats()["rest_streams"] == 0, f"REST stream still counted: {co.stats()}")
        print(f"ok  slow HTTP reader: coordinator held <= {st['bytes_held_max'] // 1024} KiB; "
              f"client gone: freed everywhere")

        # An NDJSON export whose client vanishes after the first bytes.
        host, port = co.http.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/api/v1/flows?from=0&limit=100",
                  headers={"Authorization": f"Bearer {api.read}", "Accept": "application/x-ndjson"})
        r = c.getresponse()
        r.read(1000)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        h.check(h.wait_for(lambda: co.stats()["rest_streams"] == 0, 10),
                f"export stream not freed: {co.stats()}")
        print("ok  NDJSON client gone mid-stream: freed")
        rotation_check(api, co, recs)
    finally:
        for x in recs:
            x.stop()


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d)
    try:
        api = Api(co)
        flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
        h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", str(NFLOWS)])
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= NFLOWS, 60),
                f"records not written: {co.stats()}")
        flows_checks(api, co)
        error_checks(api, co)
        search_checks(api, co, d)
        outage_check(api, co)
        h.check(co.stop() == 0, "coordinator exit status")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
