#!/usr/bin/env python3
"""The coordinator against a real PostgreSQL (its embedded one): two real
recorders fed from pcaps publish to it; the flows table then holds exactly
the records `mscope-recorder --read ... --flows-json` gives for the same
pcaps, and the per-minute aggregates sum to them; the node registry knows
both; gaps in a node's sequence are counted, restarts are not; the RPC API
answers every request type (through the `mscope` CLI and a Python client
generated from proto/), refuses garbage, bad tokens and injection attempts,
and survives a client that vanishes mid-request; PostgreSQL stopped for
15 s while records flow loses and duplicates nothing.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator, load_pb  # noqa: E402

try:
    import zmq
except ImportError:
    h.fail("python3-zmq is not installed (scripts/deps.sh installs it)")

def recorder_read(pcap, node, co, js):
    keys = co.enroll(os.path.join(os.path.dirname(co.dir), node), node)
    return subprocess.Popen([h.RECORDER, "--read", pcap, *keys, "--node-id", node, "--flows-json", js],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


COLUMNS = ["node", "flow_id", "proto", "host(client_ip)", "client_port", "host(server_ip)",
           "server_port", "first_ns", "last_ns", "c2s_packets", "s2c_packets", "c2s_payload_bytes",
           "s2c_payload_bytes", "c2s_retransmissions", "s2c_retransmissions", "conn_state",
           "history", "final"]


def expected_rows(js, node):
    rows = []
    for line in open(js):
        j = json.loads(line)
        rows.append([node, str(j["flow_id"] - (1 << 64) if j["flow_id"] >= 1 << 63 else j["flow_id"]),
                     str(j["proto"]), j["client"]["ip"], str(j["client"]["port"]),
                     j["server"]["ip"], str(j["server"]["port"]), str(j["first_ns"]),
                     str(j["last_ns"]), str(j["c2s"]["packets"]), str(j["s2c"]["packets"]),
                     str(j["c2s"]["payload_bytes"]), str(j["s2c"]["payload_bytes"]),
                     str(j["c2s"]["retransmissions"]), str(j["s2c"]["retransmissions"]),
                     j["conn_state"], j["history"], "t"])
    return rows


def check_minutes(co):
    """The per-minute aggregates sum to the flows they summarise."""
    agg = co.sql("SELECT sum(flows), sum(packets), sum(bytes), sum(retransmissions), "
                 "sum(rtt_count), sum(app_count), " +
                 " + ".join(f"sum(rtt_h{i})" for i in range(16)) + " FROM flow_minutes")
    flows = co.sql("SELECT count(*), sum(c2s_packets + s2c_packets), sum(c2s_ip_bytes + s2c_ip_bytes), "
                   "sum(c2s_retransmissions + s2c_retransmissions), "
                   "sum(c2s_rtt_count + s2c_rtt_count), sum(app_count), "
                   "count(*) FILTER (WHERE c2s_rtt_count + s2c_rtt_count > 0) "
                   "FROM flows WHERE final AND server_ip IS NOT NULL")
    h.check(agg == flows, f"per-minute aggregates {agg} do not sum to the flows {flows}")
    per_node = co.sql("SELECT node, sum(flows) FROM flow_minutes GROUP BY 1 ORDER BY 1")
    per_node_flows = co.sql("SELECT node, count(*) FROM flows WHERE final AND server_ip IS NOT NULL "
                            "GROUP BY 1 ORDER BY 1")
    h.check(per_node == per_node_flows, f"per node: {per_node} vs {per_node_flows}")
    print(f"ok  per-minute aggregates sum to the flows ({agg[0][0]} flows)")


def mscope(co, *args, check_rc=True):
    p = h.run(co.cli("--timeout", "5s", *args), check_rc=check_rc)
    return p


def test_rpc(co, d, want_final):
    # The CLI: every command, JSON for scripts, exit codes scripts can trust.
    p = mscope(co, "flows", "--from", "0", "--limit", "10000", "--json")
    rows = json.loads(p.stdout)
    h.check(len(rows) == len(want_final), f"mscope flows: {len(rows)} of {len(want_final)}")
    got = sorted((r["node"], r["flow_id"], r["c2s"]["packets"], r["s2c"]["packets"],
                  r["conn_state"]) for r in rows)
    h.check(got == want_final, "mscope flows --json differs from the recorders' --flows-json")
    nodes = json.loads(mscope(co, "nodes", "--json").stdout)
    h.check(sorted(n["node"] for n in nodes) == ["rec-a", "rec-b"] and
            all(n["state"] == "alive" for n in nodes), f"mscope nodes: {nodes}")
    top = json.loads(mscope(co, "top", "--from", "0", "--metric", "flows", "--json").stdout)
    h.check(top and top[0]["flows"] >= top[-1]["flows"], f"mscope top: {top}")
    series = json.loads(mscope(co, "series", "--from", "0", "--json").stdout)
    finals = co.sql("SELECT count(*) FROM flows WHERE final AND server_ip IS NOT NULL")[0][0]
    h.check(sum(m["flows"] for m in series) == int(finals), f"series {series} vs {finals} flows")
    h.check("10.0.2.2" in mscope(co, "flows", "--from", "0", "--host", "10.0.2.2",
                                 "--port", "443").stdout.decode(), "filtered flows")
    rc = mscope(co, "flows", "--host", "not-an-address", check_rc=False).returncode
    h.check(rc == 2, f"a bad filter value should exit 2, got {rc}")
    for args, says in ((("--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"),
                        b"empty time range"), (("--since", "100000000000h"), b"bad time")):
        p = mscope(co, "flows", *args, check_rc=False)
        h.check(p.returncode != 0 and says in p.stderr, f"flows {args}: {p.returncode} {p.stderr!r}")
    wrong = os.path.join(d, "wrong.token")
    with open(wrong, "w") as f:
        f.write("0123456789abcdef" * 3 + "\n")
    p = h.run(co.cli("--token-file", wrong, "nodes"), check_rc=False)
    h.check(p.returncode == 3, f"a wrong token should exit 3, got {p.returncode}")
    # A file that holds no token at all is refused before anything is sent.
    p = h.run(co.cli("--token-file", os.path.join(d, "a.json"), "nodes"), check_rc=False)
    h.check(p.returncode == 2 and b"holds no token" in p.stderr,
            f"a token file of JSON: exit {p.returncode} {p.stderr[-300:]!r}")
    # Nothing listening: said at once (connections refused), not after the
    # timeout; something listening that never answers: the timeout.
    p = h.run(co.cli("--coordinator", f"tcp://127.0.0.1:{h.free_tcp_port()}", "--timeout",
                     "20s", "nodes"), check_rc=False)
    h.check(p.returncode == 1 and b"cannot connect" in p.stderr,
            f"no coordinator: {p.returncode} {p.stderr!r}")
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        p = h.run(co.cli("--coordinator", f"tcp://127.0.0.1:{mute.getsockname()[1]}", "--timeout",
                         "500ms", "nodes"), check_rc=False)
    h.check(p.returncode == 1 and b"no answer" in p.stderr, f"mute coordinator: {p.returncode} {p.stderr!r}")
    print("ok  mscope nodes/flows/top/series, JSON, exit codes 0/1/2/3")

    # A client in another language: Python, code generated from proto/ now.
    pb = load_pb(d)
    token = open(os.path.join(co.dir, "rpc.token")).read().strip()
    ctx = zmq.Context()

    def call(req_bytes, timeout=5000):
        s = co.curve(ctx.socket(zmq.DEALER))
        s.setsockopt(zmq.LINGER, 0)
        s.connect(co.rpc)
        s.send(req_bytes)
        if not s.poll(timeout):
            h.fail("no RPC answer")
        resp = pb.Response()
        resp.ParseFromString(s.recv())
        s.close()
        return resp

    req = pb.Request(id=7, token=token, list_nodes=pb.ListNodes())
    r = call(req.SerializeToString())
    h.check(r.id == 7 and r.status == pb.Response.OK and len(r.nodes) == 2, f"python nodes: {r}")
    req = pb.Request(id=8, token=token, query_flows=pb.QueryFlows(from_ns=0, limit=5, order_by="bytes"))
    r = call(req.SerializeToString())
    h.check(r.status == pb.Response.OK and len(r.flows) == 5 and
            r.flows[0].record.c2s.ip_bytes + r.flows[0].record.s2c.ip_bytes >=
            r.flows[4].record.c2s.ip_bytes + r.flows[4].record.s2c.ip_bytes, "python flows by bytes")
    print("ok  Python client (protoc-generated) lists nodes and queries flows")

    # Garbage, unknown requests, bad tokens: an error response, never a hang.
    for junk in (b"", os.urandom(300), b"\xff" * 50):
        r = call(junk)
        # Undecodable: BAD_REQUEST; decodable but token-less (b""): UNAUTHENTICATED.
        h.check(r.status in (pb.Response.BAD_REQUEST, pb.Response.UNAUTHENTICATED) and r.error
                and not r.nodes and not r.flows, f"garbage {junk[:8]!r}: {r.status}")
    r = call(pb.Request(id=9, token=token).SerializeToString())
    h.check(r.status == pb.Response.BAD_REQUEST and "unknown" in r.error, f"empty request: {r}")
    r = call(pb.Request(id=10, token="x" * 48, list_nodes=pb.ListNodes()).SerializeToString())
    h.check(r.status == pb.Response.UNAUTHENTICATED and not r.nodes, f"bad token: {r}")
    # A client that disconnects mid-request: the coordinator carries on.
    s = co.curve(ctx.socket(zmq.DEALER))
    s.setsockopt(zmq.LINGER, 0)
    s.connect(co.rpc)
    s.send(pb.Request(id=11, token=token, query_flows=pb.QueryFlows(limit=10000)).SerializeToString())
    s.close()
    r = call(pb.Request(id=12, token=token, list_nodes=pb.ListNodes()).SerializeToString())
    h.check(r.status == pb.Response.OK, "coordinator unhappy after a vanished client")
    print("ok  garbage and unknown requests, bad token, vanished client")

    # SQL injection through every filter field is inert.
    before = co.sql("SELECT count(*) FROM flows")
    evil = "x' OR '1'='1'; DROP TABLE flows; --"
    attempts = [
        pb.QueryFlows(host=evil), pb.QueryFlows(node=evil), pb.QueryFlows(order_by=evil),
        pb.QueryFlows(host="10.0.2.2/0"), pb.TopTalkers(by=evil), pb.TopTalkers(metric=evil),
        pb.TimeSeries(node=evil), pb.TimeSeries(server_ip=evil),
    ]
    for a in attempts:
        field = {pb.QueryFlows: "query_flows", pb.TopTalkers: "top_talkers",
                 pb.TimeSeries: "time_series"}[type(a)]
        r = call(pb.Request(id=13, token=token, **{field: a}).SerializeToString())
        h.check(r.status in (pb.Response.BAD_REQUEST, pb.Response.OK), f"{a}: {r.status}")
        h.check(not r.flows and not r.talkers and not r.minutes, f"injection returned rows: {a}")
    h.check(co.sql("SELECT count(*) FROM flows") == before, "the flows table changed")
    print(f"ok  {len(attempts)} injection attempts inert")
    ctx.term()


def test_gaps(co, pb):
    """A dropped batch is a gap; a restart (new start time) is not."""
    ctx = zmq.Context()
    pub = co.curve(ctx.socket(zmq.PUB), co.publisher_key())
    pub.connect(f"tcp://127.0.0.1:{co.port}")
    time.sleep(0.5)  # let the subscription reach us

    def batch(seq, start):
        b = pb.FlowBatch(node="fake", start_ns=start, seq=seq)
        pub.send_multipart([b"flow", b.SerializeToString()])

    g0, r0 = co.stats()["gaps"], co.stats()["restarts"]
    for seq in (1, 2, 5, 6):
        batch(seq, 111)
    batch(1, 222)  # the recorder restarted
    pub.send_multipart([b"flow", b"\x08garbage"])
    pub.send_multipart([b"weird", b"x"])
    h.check(h.wait_for(lambda: co.stats()["gaps"] == g0 + 2 and co.stats()["restarts"] == r0 + 1, 5),
            f"gaps/restarts not counted right: {co.stats()}")
    h.check(h.wait_for(lambda: co.stats()["bad_messages"] >= 2, 5), f"garbage not counted: {co.stats()}")
    pub.close(0)
    # A frame far over the bus's size limit: the sender is cut off before the
    # coordinator allocates it; others go on.
    big = co.curve(ctx.socket(zmq.PUB), co.publisher_key())
    big.connect(f"tcp://127.0.0.1:{co.port}")
    time.sleep(0.5)
    def peak_rss():
        with open(f"/proc/{co.proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) << 10
    hwm0 = peak_rss()
    big.send_multipart([b"flow", b"\x0a" + b"\xff" * (256 << 20)])
    time.sleep(2)
    big.close(0)
    h.check(peak_rss() - hwm0 < (64 << 20),
            f"a 256 MiB frame raised the coordinator's peak memory by {(peak_rss() - hwm0) >> 20} MiB")
    b0 = co.stats()["batches"]
    pub = co.curve(ctx.socket(zmq.PUB), co.publisher_key())
    pub.connect(f"tcp://127.0.0.1:{co.port}")
    time.sleep(0.5)
    batch(2, 222)  # the next after the restart: no gap
    h.check(h.wait_for(lambda: co.stats()["batches"] == b0 + 1, 5) and co.proc.poll() is None,
            f"a good batch after an oversized one: {co.stats()}")
    pub.close(0)
    ctx.term()
    print("ok  gap of 2 batches counted, a restart not, garbage counted, an oversized frame cut off")


def test_live(co):
    """Interim records of long flows are visible (flows_live, flows_all, the
    API) until their final record replaces them: one row per flow."""
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    g = subprocess.Popen([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", "3000",
                          "--node", "live-test", "--interim-every", "10", "--interims-first", "4000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    live = lambda: int(co.sql("SELECT count(*) FROM flows_live WHERE node = 'live-test'")[0][0])
    fin = lambda: int(co.sql("SELECT count(*) FROM flows WHERE node = 'live-test'")[0][0])
    h.check(h.wait_for(lambda: live() == 300, 10), f"interim rows: {live()} of 300 in flows_live")
    h.check(fin() == 0, "a final row before any final record was sent")
    p = h.run(co.cli("flows", "--node", "live-test", "--since", "1h", "--limit", "1000", "--json"))
    rows = json.loads(p.stdout)
    h.check(len(rows) == 300 and not any(r["final"] for r in rows),
            f"the API shows {len(rows)} rows for the interim flows")
    out, err = g.communicate(timeout=60)
    h.check(g.returncode == 0, f"flowgen failed: {err.decode()}")
    h.check(h.wait_for(lambda: fin() == 3000 and live() == 0, 10),
            f"after the finals: flows {fin()}, flows_live {live()} (want 3000, 0)")
    dup = co.sql("SELECT count(*) FROM (SELECT flow_id FROM flows_all WHERE node = 'live-test' "
                 "GROUP BY 1 HAVING count(*) > 1) x")[0][0]
    h.check(dup == "0", f"{dup} flows have two rows")
    print("ok  300 interim rows visible until their finals replaced them; 3000 flows, one row each")


def main():
    global CLI
    h.init()
    cluster.init()
    CLI = cluster.CLI
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    a = h.gen(os.path.join(d, "a.pcap"), "--packets", 20000, "--flows", 200, "--seed", 31)
    b = h.gen(os.path.join(d, "b.pcap"), "--packets", 15000, "--flows", 150, "--seed", 32)
    co = Coordinator(d)
    try:
        ja, jb = os.path.join(d, "a.json"), os.path.join(d, "b.json")
        ra = recorder_read(a, "rec-a", co, ja)
        rb = recorder_read(b, "rec-b", co, jb)
        h.check(ra.wait(60) == 0 and rb.wait(60) == 0, "a recorder failed")
        want = sorted(expected_rows(ja, "rec-a") + expected_rows(jb, "rec-b"))
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= len(want), 20),
                f"coordinator wrote {co.stats()} of {len(want)}")
        got = sorted(co.sql(f"SELECT {', '.join(COLUMNS)} FROM flows"))
        h.check(len(got) == len(want), f"flows table has {len(got)} rows, JSON {len(want)}")
        for g, w in zip(got, want):
            h.check(g == w, f"row differs:\n db   {g}\n json {w}")
        nodes = co.sql("SELECT node, rx_packets, gaps FROM nodes ORDER BY node")
        h.check(h.wait_for(lambda: sorted(r[0] for r in co.sql("SELECT node FROM nodes")) ==
                           ["rec-a", "rec-b"], 5), f"nodes: {nodes}")
        st = co.stats()
        h.check(st["gaps"] == 0 and st["bad_messages"] == 0, f"stats {st}")
        print(f"ok  two recorders: flows table == --flows-json ({len(want)} records); nodes known")
        check_minutes(co)
        want_final = sorted((r[0], int(r[1]) % (1 << 64), int(r[9]), int(r[10]), r[15])
                            for r in want)
        test_rpc(co, d, want_final)
        test_gaps(co, load_pb(d))
        test_live(co)

        # PostgreSQL away for 15 s while a recorder publishes: nothing lost or doubled.
        co.pg_ctl("stop")
        jc = os.path.join(d, "c.json")
        c = h.gen(os.path.join(d, "c.pcap"), "--packets", 10000, "--flows", 100, "--seed", 33)
        rc = recorder_read(c, "rec-c", co, jc)
        h.check(rc.wait(60) == 0, "recorder c failed")
        time.sleep(15)
        st = co.stats()
        h.check(st["records_spooled"] > 0 and st["records_pending"] == 0,
                f"records should wait in the spool: {st}")
        co.pg_ctl("start")
        more = expected_rows(jc, "rec-c")
        h.check(h.wait_for(lambda: co.stats()["records_spooled"] == 0 and
                           co.stats()["records_pending"] == 0, 20),
                f"spooled records not written after PostgreSQL came back: {co.stats()}")
        got = sorted(co.sql(f"SELECT {', '.join(COLUMNS)} FROM flows WHERE node = 'rec-c'"))
        h.check(got == sorted(more), f"after the outage: {len(got)} rows of {len(more)}")
        dup = co.sql("SELECT count(*) FROM (SELECT node, flow_id FROM flows GROUP BY 1, 2 "
                     "HAVING count(*) > 1) x")
        h.check(dup == [["0"]], f"duplicated flows: {dup}")
        check_minutes(co)
        print(f"ok  PostgreSQL stopped 15 s: {len(more)} records waited and were written once")

        # The coordinator killed (-9) while PostgreSQL is away, then restarted:
        # what reached the spool is written once it is back.
        co.pg_ctl("stop")
        jd = os.path.join(d, "d.json")
        dd = h.gen(os.path.join(d, "dd.pcap"), "--packets", 8000, "--flows", 80, "--seed", 34)
        h.check(recorder_read(dd, "rec-d", co, jd).wait(60) == 0, "recorder d failed")
        spooled = expected_rows(jd, "rec-d")
        h.check(h.wait_for(lambda: co.stats()["records_spooled"] == len(spooled), 10),
                f"not everything reached the spool: {co.stats()} of {len(spooled)}")
        co.proc.kill()
        co.proc.wait()
        spool_dir = os.path.join(co.dir, "spool")
        kept = os.path.join(d, "spool-copy")
        shutil.copytree(spool_dir, kept)
        co.pg_ctl("start")
        co = Coordinator(d, reuse=co)
        h.check(h.wait_for(lambda: (co.stats() or {}).get("records_spooled", 1) == 0, 20),
                f"spool not replayed after restart: {co.stats()}")
        got = sorted(co.sql(f"SELECT {', '.join(COLUMNS)} FROM flows WHERE node = 'rec-d'"))
        h.check(got == sorted(spooled), f"after kill -9 and restart: {len(got)} of {len(spooled)}")
        print(f"ok  coordinator killed during an outage: {len(spooled)} spooled records written "
              f"after its restart")
        # A spool file written to the database but not deleted (a crash between
        # the commit and the unlink): the batch ledger skips it.
        h.check(co.stop() == 0, "coordinator stop")
        for f in os.listdir(kept):
            shutil.copy(os.path.join(kept, f), spool_dir)
        co = Coordinator(d, reuse=co)
        h.check(h.wait_for(lambda: (co.stats() or {}).get("records_spooled", 1) == 0, 20),
                f"spool copy not taken: {co.stats()}")
        got = sorted(co.sql(f"SELECT {', '.join(COLUMNS)} FROM flows WHERE node = 'rec-d'"))
        h.check(got == sorted(spooled) and "was written before: skipped" in co.log_text(),
                f"a replayed spool file was written twice: {len(got)} rows of {len(spooled)}")
        check_minutes(co)
        print("ok  a spool file replayed after it was written: skipped by the batch ledger")
        # Retention: the pcaps' data is from 2023 (flowgen's is from today);
        # keep 30 days and the old goes, the recent stays.
        h.check(co.stop() == 0, "coordinator stop before retention")
        co = Coordinator(d, reuse=co, extra=["--retention-days", "30"])
        h.check(h.wait_for(lambda: co.sql("SELECT count(*) FROM flows WHERE node <> 'live-test'") ==
                           [["0"]], 10), "old partitions not dropped by --retention-days 30")
        # The pass drops the partitions first, then deletes the minutes: wait for its end.
        h.wait_for(lambda: co.sql("SELECT count(*) FROM flow_minutes WHERE node <> 'live-test'") ==
                   [["0"]], 10)
        parts = co.sql("SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
                       "WHERE p.relname = 'flows'")
        h.check(parts == [["1"]] and co.sql("SELECT count(*) FROM flow_minutes WHERE node <> "
                                           "'live-test'") == [["0"]] and
                co.sql("SELECT count(*) FROM flows") == [["3000"]],
                f"retention left {parts} partitions, or took today's")
        h.check("retention: dropped partition flows_2023" in co.log_text(), "retention not logged")
        print("ok  --retention-days drops old day partitions and minutes")
    finally:
        rc = co.stop()
        # Never leave a server behind, whatever failed above.
        pgdata = os.path.join(co.dir, "pgdata")
        if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
            bindir = sorted(os.listdir("/usr/lib/postgresql"))[-1]
            cmd = [f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", pgdata, "-m", "immediate", "stop"]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "postgres", "--"] + cmd
            subprocess.run(cmd, capture_output=True)
    h.check(rc == 0, f"coordinator exit {rc}:\n{co.log_text()}")
    h.check("embedded PostgreSQL stopped" in co.log_text(), "embedded server not stopped")


if __name__ == "__main__":
    main()
