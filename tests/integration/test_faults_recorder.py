#!/usr/bin/env python3
"""Faults of recorders under a real coordinator; each asserts what is promised
(test_faults.py has the coordinator's faults and the bad VXLAN flood).

- Two recorders whose clocks are 5 minutes ahead and 5 minutes behind (the
  test hook MSCOPE_CLOCK_OFFSET_S: their wall clock and the kernel's receive
  times of their packets read that far off), fed over UDP/VXLAN: every flow
  record they publish is written, with their times, and found by a default
  `mscope flows`; both stay alive past --dead-after; `mscope nodes` (text
  and --json), the REST nodes row and /metrics give each clock's offset
  (+300 s / -300 s, within 2 s); the coordinator's log warns once for each.
- A recorder killed (-9) while it ingests and publishes: its store holds
  every packet fully written (a search after the restart equals tcpdump -r of
  the segments the crash left, the open one repaired); the coordinator calls
  it stale, then dead after --dead-after, alive again after the restart;
  the records published before are written once, no flow is doubled (not in
  `flows`, not in `flows` and `flows_live` at once); the flows open at the
  crash keep their last interim record (at most --flow-interval behind the
  crash) and get no final; records after the restart are all written.
"""
import glob
import json
import os
import re
import signal
import struct
import subprocess
import time

import cluster
import harness as h
import pcapfile
from cluster import Coordinator

STALE_S, DEAD_S = 2, 5


def rec_args():
    """Each recorder's own search endpoint, and flows that end soon."""
    return ("--search", f"tcp://127.0.0.1:{h.free_tcp_port()}", "--flow-idle", "1s",
            "--flow-grace", "0")


def flows_json(co, node):
    p = h.run(co.cli("flows", "--json", "--node", node, "--limit", 10000))
    return json.loads(p.stdout)


def nodes_json(co):
    return {n["node"]: n for n in json.loads(h.run(co.cli("nodes", "--json")).stdout)}


def settled(rec):
    """Every flow finished and its record handed to the bus."""
    st = rec.stats() or {}
    return (st.get("flows_active", 1) == 0 and st.get("records_queued", 1) == 0 and
            st.get("flow_records", 0) > 0 and
            st["records_published"] + st["records_shed"] == st["flow_records"])


def db_rows(co, node, where="TRUE"):
    return int(co.sql(f"SELECT count(*) FROM flows_all WHERE node = '{node}' AND {where}")[0][0])


def doubled(co, table):
    return co.sql(f"SELECT count(*) FROM (SELECT node, flow_id FROM {table} GROUP BY 1, 2 "
                  "HAVING count(*) > 1) x")


def test_clock_skew(co, d):
    skews = {"ahead": 300, "behind": -300}
    recs = {}
    t0 = time.time_ns()
    try:
        for name, s in skews.items():
            dd = os.path.join(d, name)
            recs[name] = h.Daemon(dd, "--node-id", name, *co.enroll(dd, name), *rec_args(),
                                  env={"MSCOPE_CLOCK_OFFSET_S": str(s)})
            h.check(f"this recorder's wall clock reads {s:+.3f} s off" in recs[name].log_text(),
                    f"{name}: the test hook is not announced")
        for i, (name, rec) in enumerate(recs.items()):
            src = h.gen(os.path.join(d, f"{name}.pcap"), "--packets", 20000, "--flows", 200,
                        "--seed", 141 + i, "--mix", "clean")
            h.vxsend(src, rec.port, "--rate", 20000)
        for name, rec in recs.items():
            h.check(h.wait_for(lambda: settled(rec), 30), f"{name}: records not out: {rec.stats()}")
        # Beyond --dead-after: a heartbeat whose send time looks 5 minutes
        # old (or 5 minutes ahead) is no reason to call a node dead.
        time.sleep(DEAD_S + 1)
        now = time.time_ns()
        for name, rec in recs.items():
            st = rec.stats()
            h.check(st["records_shed"] == 0, f"{name}: records shed: {st}")
            n = st["records_published"]
            h.check(h.wait_for(lambda: db_rows(co, name) == n, 20),
                    f"{name}: {db_rows(co, name)} rows for {n} records published")
            # A default query (the last hour up to now, by the coordinator's
            # clock) finds them all, those 5 minutes in the future too.
            got = flows_json(co, name)
            h.check(len(got) == n and all(f["final"] for f in got),
                    f"{name}: mscope flows gives {len(got)} records of {n}")
            # They keep the recorder's times: its packets' receive times by its clock.
            lo, hi = min(f["first_ns"] for f in got), max(f["last_ns"] for f in got)
            off = skews[name] * 10**9
            h.check(t0 + off - 2e9 <= lo and hi <= now + off + 2e9,
                    f"{name}: record times {lo}..{hi} not within {t0 + off}..{now + off}")
        nodes = nodes_json(co)
        st, rest = h.http_json(co.http, "/api/v1/nodes",
                               open(os.path.join(co.dir, "api-read.token")).read().strip())
        h.check(st == 200, f"/api/v1/nodes: {st}")
        rest = {n["node"]: n for n in rest["nodes"]}
        metrics = h.scrape(co.http)
        text = h.run(co.cli("nodes")).stdout.decode()
        log = co.log_text()
        for name, s in skews.items():
            n = nodes.get(name, {})
            h.check(n.get("state") == "alive", f"{name} is not alive: {n}")
            got = n.get("clock_offset_ns")
            h.check(got is not None and abs(got - s * 10**9) < 2 * 10**9,
                    f"{name}: clock offset {got} ns, its clock is {s} s off")
            r = rest.get(name, {})
            h.check(r.get("clock_offset_known") is True and
                    abs(int(r.get("clock_offset_ns", 0)) - s * 10**9) < 2 * 10**9,
                    f"{name}: REST row {r}")
            g = metrics.get(("mscope_coordinator_node_clock_offset_seconds", (("node", name),)))
            h.check(g is not None and abs(g - s) < 2, f"{name}: /metrics clock offset {g}")
            line = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
            col = re.findall(r" ([+-][0-9]+\.[0-9])s ", line[0] if line else "")
            h.check(len(col) == 1 and abs(float(col[0]) - s) < 2, f"{name}: mscope nodes says {line}")
            warned = re.findall(rf"node {name}: its clock is ([+-][0-9.]+) s off", log)
            h.check(len(warned) == 1 and abs(float(warned[0]) - s) < 2,
                    f"{name}: clock warnings in the coordinator's log: {warned} (one is due, "
                    f"rate-limited)")
    finally:
        for rec in recs.values():
            h.check(rec.stop() == 0, "recorder exit")
    print("ok  recorders 5 minutes ahead and behind: every record written with their times and "
          "found by a default query, both alive, offsets +300/-300 s in nodes, REST and "
          "/metrics, one warning each")


def node_state(co, name):
    return nodes_json(co).get(name, {}).get("state")


def test_recorder_killed(co, d):
    running = []
    try:
        return recorder_killed(co, d, running)
    finally:
        for rec in running:  # a failed check must not leave one behind
            if rec.proc.poll() is None:
                rec.proc.kill()
                rec.proc.wait()


def recorder_killed(co, d, running):
    name = "killed"
    dd = os.path.join(d, name)
    args = ("--node-id", name, *co.enroll(dd, name), *rec_args(), "--flow-interval", "1s",
            "--segment-size", "256M", "--segment-age", "1h")
    rec = h.Daemon(dd, *args)
    running.append(rec)
    # Before: a capture whose flows all end; their records are written.
    p1 = h.gen(os.path.join(d, "k1.pcap"), "--packets", 10000, "--flows", 100, "--seed", 151,
               "--mix", "clean")
    h.vxsend(p1, rec.port, "--rate", 20000)
    h.check(h.wait_for(lambda: settled(rec), 30), f"records not out: {rec.stats()}")
    n1 = rec.stats()["records_published"]
    h.check(h.wait_for(lambda: db_rows(co, name) == n1, 20), f"{db_rows(co, name)} rows of {n1}")
    t2 = time.time_ns()
    restarts = co.stats()["restarts"]
    # During: flows that last seconds (2000 at once, ~16 packets each, at
    # 5000 packets/s), so interim records come every second; killed mid-stream.
    p2 = h.gen(os.path.join(d, "k2.pcap"), "--packets", 80000, "--flows", 2000, "--seed", 152,
               "--mix", "clean")
    sender = subprocess.Popen([h.VXSEND, "--to", f"127.0.0.1:{rec.port}", "--rate", "5000", p2],
                              stdout=subprocess.DEVNULL)
    try:
        # (One segment: the open one, unsealed at the crash, has them.)
        h.check(h.wait_for(lambda: rec.stats()["stored_packets"] > 10000 + 30000 and
                           rec.stats()["flow_records_interim"] > 0 and
                           len(pcapfile.whole_records(glob.glob(os.path.join(dd, "seg-*.pcap"))[0])[0]) >
                           10000 + 20000, 30),
                f"not ingesting: {rec.stats()}")
        rec.proc.send_signal(signal.SIGKILL)
        rec.proc.wait()
        t_kill = time.time_ns()
        t_mono = time.monotonic()
    finally:
        sender.kill()
        sender.wait()
    before = []
    for s in sorted(glob.glob(os.path.join(dd, "seg-*.pcap"))):
        before += pcapfile.whole_records(s)[0]
    h.check(len(before) > 10000 + 20000, f"only {len(before)} packets on disk after the kill")

    # Stale, then dead after --dead-after (heartbeats come each second).
    h.check(h.wait_for(lambda: node_state(co, name) == "stale", DEAD_S + 5),
            f"not stale after the kill: {nodes_json(co).get(name)}")
    h.check(h.wait_for(lambda: node_state(co, name) == "dead", DEAD_S + 5),
            f"not dead after the kill: {nodes_json(co).get(name)}")
    took = time.monotonic() - t_mono
    h.check(DEAD_S - 1.5 <= took <= DEAD_S + 3, f"dead {took:.1f} s after the kill "
                                                 f"(--dead-after {DEAD_S}s)")

    # What the database holds of it: the records published before, once;
    # the flows open at the crash, their last interim record.
    h.check(db_rows(co, name, f"first_ns < {t2} AND final") == n1,
            f"records before the kill: {db_rows(co, name, f'first_ns < {t2}')} of {n1}")
    h.check(doubled(co, "flows") == [["0"]] and doubled(co, "flows_all") == [["0"]],
            f"flows doubled: {doubled(co, 'flows')} {doubled(co, 'flows_all')}")
    live = co.sql(f"SELECT count(*), max(last_ns) FROM flows_live WHERE node = '{name}'")[0]
    open_flows, newest = int(live[0]), int(live[1] or 0)
    h.check(open_flows > 0 and t_kill - newest < 3 * 10**9 and newest <= t_kill,
            f"interim records of the flows open at the crash: {open_flows}, the newest "
            f"{(t_kill - newest) / 1e9:.1f} s before the kill")

    # Restarted on the same directory: repaired, alive again, and records flow.
    rec = h.Daemon(dd, *args)
    running.append(rec)
    try:
        st = rec.stats()
        h.check(st["recovered_segments"] == 1, f"repair at start-up: {st}")
        h.check(h.wait_for(lambda: node_state(co, name) == "alive", 10),
                f"not alive after the restart: {nodes_json(co).get(name)}")
        h.check(h.wait_for(lambda: co.stats()["restarts"] == restarts + 1, 10),
                f"restart not seen: {co.stats()}")
        t3 = time.time_ns()
        p3 = h.gen(os.path.join(d, "k3.pcap"), "--packets", 10000, "--flows", 100, "--seed", 153,
                   "--mix", "clean")
        h.vxsend(p3, rec.port, "--rate", 20000)
        h.check(h.wait_for(lambda: settled(rec), 30), f"records not out: {rec.stats()}")
        n3 = rec.stats()["records_published"]
        h.check(h.wait_for(lambda: db_rows(co, name, f"first_ns >= {t3}") == n3, 20),
                f"after the restart: {db_rows(co, name, f'first_ns >= {t3}')} rows of {n3}")
    finally:
        h.check(rec.stop() == 0, "recorder exit")
    # The open flows' interim rows stay as they were: no final will come.
    h.check(int(co.sql(f"SELECT count(*) FROM flows_live WHERE node = '{name}' AND "
                       f"first_ns < {t3}")[0][0]) == open_flows,
            "the interim rows of the flows open at the crash changed")
    h.check(doubled(co, "flows_all") == [["0"]], "flows doubled after the restart")

    # The store: every packet on disk at the crash, then those after.
    got, _ = h.search(dd, "")
    h.check(pcapfile.compare(got[:len(before)], sorted(before, key=lambda r: r[0])) is None,
            f"search after the restart: {pcapfile.compare(got[:len(before)], before)}")
    h.check(len(got) == len(before) + 10000, f"{len(got)} packets, {len(before)} + 10000 stored")
    allp = os.path.join(d, "stored.pcap")
    pcapfile.write_pcap(allp, sorted(before, key=lambda r: r[0]))
    for expr in ("", "host 10.0.1.1 and tcp"):
        sel, _ = h.search(dd, expr, t_to=h.ns_str(t3))
        h.check(pcapfile.compare(sel, h.tcpdump(allp, expr)) is None,
                f"search '{expr}' != tcpdump -r of what was stored")
    # Their times are when they came: the bytes are the capture's.
    h.check([bytes(r[3]) for r in got if r[0] < t2] == [bytes(r[3]) for r in h.tcpdump(p1, "")],
            "the packets sent before the kill are not all there as sent")
    print(f"ok  recorder killed (-9) mid-ingest: {len(before)} packets kept and searchable "
          f"(== tcpdump), dead after {took:.1f} s, alive after the restart; {n1} records before "
          f"written once, {open_flows} open flows kept their last interim record, nothing "
          f"doubled, {n3} records after the restart written")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d, extra=["--stale-after", f"{STALE_S}s", "--dead-after", f"{DEAD_S}s"])
    try:
        test_clock_skew(co, d)
        test_recorder_killed(co, d)
    finally:
        co.stop()


if __name__ == "__main__":
    main()
