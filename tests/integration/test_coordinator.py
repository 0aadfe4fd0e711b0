#!/usr/bin/env python3
"""The coordinator against a real PostgreSQL (its embedded one): two real
recorders fed from pcaps publish to it; the flows table then holds exactly
the records `mscope-recorder --read ... --flows-json` gives for the same
pcaps; the node registry knows both; PostgreSQL stopped for 15 s while
records flow loses and duplicates nothing. Needs the postgresql package
(scripts/deps.sh) and root or a user that may run it.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402

COORD = None
PGPORT = 5400 + os.getpid() % 500


def free_tcp_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Coordinator:
    def __init__(self, d):
        self.dir = os.path.join(d, "coord")
        self.port = free_tcp_port()
        self.log = open(os.path.join(d, "coord.log"), "ab+")
        self.proc = subprocess.Popen([COORD, "--data-dir", self.dir, "--bus",
                                      f"tcp://127.0.0.1:{self.port}", "--pg-port", str(PGPORT)],
                                     stdout=self.log, stderr=self.log)
        ok = h.wait_for(lambda: self.stats() is not None or self.proc.poll() is not None, 60)
        if self.proc.poll() is not None or not ok:
            h.fail(f"coordinator did not start:\n{self.log_text()}")

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stats(self):
        return h.read_stats(os.path.join(self.dir, "stats.json"))

    def sql(self, query):
        p = h.run(["psql", "-h", os.path.join(self.dir, "pgrun"), "-p", str(PGPORT), "-U",
                   "mscope", "-d", "postgres", "-At", "-F", "\t", "-c", query])
        return [line.split("\t") for line in p.stdout.decode().splitlines() if line]

    def pg_ctl(self, action):
        pgdata = os.path.join(self.dir, "pgdata")
        bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        cmd = [f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", pgdata, "-w", "-l",
               os.path.join(self.dir, "postgresql.log"), "-m", "fast", action]
        if action == "start":
            cmd[-1:-1] = ["-o", f"-k {os.path.join(self.dir, 'pgrun')} -c listen_addresses='' "
                                f"-p {PGPORT}"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        h.run(cmd)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        return self.proc.returncode


def recorder_read(pcap, node, port, js):
    return subprocess.Popen([h.RECORDER, "--read", pcap, "--coordinator", f"tcp://127.0.0.1:{port}",
                             "--node-id", node, "--flows-json", js],
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


def main():
    global COORD
    h.init()
    COORD = h.binary("MSCOPE_COORDINATOR", "mscope-coordinator")
    if not shutil.which("psql") or not os.path.isdir("/usr/lib/postgresql"):
        h.fail("PostgreSQL is not installed (run scripts/deps.sh)")
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    a = h.gen(os.path.join(d, "a.pcap"), "--packets", 20000, "--flows", 200, "--seed", 31)
    b = h.gen(os.path.join(d, "b.pcap"), "--packets", 15000, "--flows", 150, "--seed", 32)
    co = Coordinator(d)
    try:
        ja, jb = os.path.join(d, "a.json"), os.path.join(d, "b.json")
        ra = recorder_read(a, "rec-a", co.port, ja)
        rb = recorder_read(b, "rec-b", co.port, jb)
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

        # PostgreSQL away for 15 s while a recorder publishes: nothing lost or doubled.
        co.pg_ctl("stop")
        jc = os.path.join(d, "c.json")
        c = h.gen(os.path.join(d, "c.pcap"), "--packets", 10000, "--flows", 100, "--seed", 33)
        rc = recorder_read(c, "rec-c", co.port, jc)
        h.check(rc.wait(60) == 0, "recorder c failed")
        time.sleep(15)
        h.check(co.stats()["records_pending"] > 0, f"records should wait: {co.stats()}")
        co.pg_ctl("start")
        more = expected_rows(jc, "rec-c")
        h.check(h.wait_for(lambda: co.stats()["records_pending"] == 0, 20),
                f"pending records not written after PostgreSQL came back: {co.stats()}")
        got = sorted(co.sql(f"SELECT {', '.join(COLUMNS)} FROM flows WHERE node = 'rec-c'"))
        h.check(got == sorted(more), f"after the outage: {len(got)} rows of {len(more)}")
        dup = co.sql("SELECT count(*) FROM (SELECT node, flow_id FROM flows GROUP BY 1, 2 "
                     "HAVING count(*) > 1) x")
        h.check(dup == [["0"]], f"duplicated flows: {dup}")
        check_minutes(co)
        print(f"ok  PostgreSQL stopped 15 s: {len(more)} records waited and were written once")
    finally:
        rc = co.stop()
    h.check(rc == 0, f"coordinator exit {rc}:\n{co.log_text()}")
    h.check("embedded PostgreSQL stopped" in co.log_text(), "embedded server not stopped")


if __name__ == "__main__":
    main()
