#!/usr/bin/env python3
"""Least privilege (common/sandbox.h).

- The recorder and the broker run under their seccomp filter by default
  (every other test runs them so); a forbidden system call kills them with
  SIGSYS and the log names the call (MSCOPE_SANDBOX_SELFTEST makes one).
- The coordinator: with its embedded PostgreSQL no filter, and the log
  says why; with an external database (--db) under its filter it writes
  flow records, answers the RPC and REST, serves a distributed search and
  stops cleanly, and a forbidden call kills it likewise.
- --user (as root): the recorder becomes that user before it creates
  anything (its files belong to the user) with no capability left, or only
  CAP_NET_RAW with --interface, which it can still capture on; the broker
  likewise; the coordinator becomes the user and its embedded PostgreSQL
  runs as that user too.
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import time

import cluster
import harness as h
import pcapfile
from cluster import Coordinator

SWAPOFF = 168  # x86_64: the self-test's forbidden call (swapoff)
CAP_NET_RAW = 1 << 13


def proc_status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def selftest(cmd, name, d):
    log = os.path.join(d, f"{name}-selftest.log")
    with open(log, "wb") as f:
        p = subprocess.run(cmd, stdout=f, stderr=f, timeout=30,
                           env=dict(os.environ, MSCOPE_SANDBOX_SELFTEST="1"))
    text = open(log, errors="replace").read()
    h.check(p.returncode == -signal.SIGSYS,
            f"{name}: a forbidden call should kill it with SIGSYS, got {p.returncode}:\n{text}")
    h.check(f"seccomp: forbidden system call {SWAPOFF}" in text and "filter installed" in text,
            f"{name}: the log does not name the forbidden call:\n{text}")
    print(f"ok  {name}: a forbidden system call kills it (SIGSYS), the log names it")


def coordinator(d, src):
    """With its embedded PostgreSQL the coordinator runs under its filter too
    (the server's processes were started before it) and stops the server at
    exit by a signal, the one it may send; with an external database (here
    that same server, started by hand) it runs under its filter and does its
    job: flow records written, the RPC and REST APIs answered, a distributed
    search served."""
    base = os.path.join(d, "co-embedded")
    os.makedirs(base)
    co = Coordinator(base)
    try:
        h.check("seccomp filter installed" in co.log_text(), f"embedded: no filter:\n{co.log_text()}")
        p = h.run(co.cli("nodes"), check_rc=False)
        h.check(p.returncode == 0, f"mscope nodes under the filter: {p.stderr.decode()}")
        h.check(os.path.exists(os.path.join(co.dir, "pgdata", "postmaster.pid")), "no server running")
    finally:
        rc = co.stop()
    text = co.log_text()
    h.check(rc == 0 and "forbidden system call" not in text and "embedded PostgreSQL stopped" in text,
            f"coordinator with the embedded server: exit {rc}:\n{text}")
    h.check(not os.path.exists(os.path.join(co.dir, "pgdata", "postmaster.pid")),
            "the embedded server still runs after the coordinator stopped")
    print("ok  mscope-coordinator with its embedded PostgreSQL: filtered, stops its server by a signal")

    co.pg_ctl("start")  # the same server, now external to the coordinators below
    try:
        db = f"host={os.path.join(co.dir, 'pgrun')} port={cluster.PGPORT} user=mscope dbname=postgres"
        sd = os.path.join(d, "co-selftest")
        selftest([cluster.COORD, "--data-dir", sd, "--db", db, "--http", "off",
                  "--bus", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                  "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}"], "mscope-coordinator", d)
        filtered_coordinator(d, src, db)
    finally:
        co.pg_ctl("stop")


def filtered_coordinator(d, src, db):
    base = os.path.join(d, "co-db")
    os.makedirs(base)
    co = Coordinator(base, extra=["--db", db])
    rec_dir = os.path.join(base, "rec")
    rec = None
    try:
        h.check("seccomp filter installed" in co.log_text(), f"--db: no filter:\n{co.log_text()}")
        h.import_file(rec_dir, src)
        ep = f"tcp://127.0.0.1:{h.free_tcp_port()}"
        rec = h.Daemon(rec_dir, "--node-id", "sandboxed", *co.enroll(rec_dir, "sandboxed"),
                       "--search", ep)
        h.vxsend(src, rec.port, "--rate", 20000)
        h.check(rec.wait_rx(3000), f"recorder: {rec.stats()}")
        h.check(h.wait_for(lambda: co.stats()["nodes"] == 1, 15), f"not registered: {co.stats()}")
        time.sleep(1.5)  # a heartbeat with the search endpoint
        # The RPC.
        p = h.run(co.cli("nodes"))
        h.check(b"sandboxed" in p.stdout, f"mscope nodes: {p.stdout!r}")
        # A distributed search, by the RPC and by REST: all 6000 packets.
        want = os.path.join(base, "cli.pcap")
        h.run(co.cli("search", "--from", "0", "-q", "-w", want, ""))
        got = pcapfile.read_pcap(want)[1]
        h.check(len(got) == 6000, f"mscope search under the filter: {len(got)} packets of 6000")
        admin = open(os.path.join(co.dir, "api-admin.token")).read().strip()
        st, _, body = h.http_get(co.http, "/api/v1/search", admin, method="POST",
                                 body=json.dumps({"filter": "", "from": "0"}).encode(), timeout=60)
        h.check(st == 200 and body == open(want, "rb").read(),
                f"REST search under the filter: {st}, {len(body)} bytes")
        # The recorder's flow records, written to PostgreSQL.
        rec_rc = rec.stop()
        rec = None
        h.check(rec_rc == 0, "recorder exit")
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= 30, 15),
                f"flow records not written under the filter: {co.stats()}")
        read = open(os.path.join(co.dir, "api-read.token")).read().strip()
        st, _, body = co.get("/api/v1/flows?from=0&limit=1000", read)
        flows = json.loads(body)["flows"] if st == 200 else []
        h.check(st == 200 and len(flows) >= 30, f"REST flows: {st} {len(flows)}")
        st, _, body = co.get("/metrics")
        h.check(st == 200 and b"mscope_coordinator_records_written_total" in body, f"/metrics: {st}")
    finally:
        if rec:
            rec.stop()
        rc = co.stop()
    text = co.log_text()
    h.check(rc == 0 and "forbidden system call" not in text,
            f"coordinator under the filter exit {rc}:\n{text}")
    print(f"ok  mscope-coordinator --db: under its filter it writes flows ({len(flows)}), answers "
          f"the RPC and REST, serves a distributed search ({len(got)} packets), stops cleanly")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    if os.uname().machine != "x86_64":
        h.skip("the self-test's system call number is x86_64's")
    rec_dir = os.path.join(d, "rec")
    selftest([h.RECORDER, "--data-dir", rec_dir, "--listen", f"127.0.0.1:{h.free_udp_port()}",
              "--http", "off", "--search", "off", "--min-free", "0"], "mscope-recorder", d)
    conf = h.write_conf(os.path.join(d, "broker.conf"),
                        f"listen = 127.0.0.1:{h.free_udp_port()}\nhttp = off\n\n"
                        f"[tool ids]\ntype = pcap\ndir = {d}/ids\n")
    os.makedirs(os.path.join(d, "ids"))
    selftest([h.broker_binary(), "--config", conf], "mscope-broker", d)

    # Under the filter, a recorder does its job (the other tests do all of it).
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 3000, "--flows", 30, "--seed", 81)
    rec = h.Daemon(os.path.join(d, "plain"))
    try:
        h.vxsend(src, rec.port, "--rate", 20000)
        h.check(rec.wait_rx(3000), f"under seccomp: {rec.stats()}")
        h.check("seccomp filter installed" in rec.log_text(), "no filter by default")
    finally:
        h.check(rec.stop() == 0, f"recorder under seccomp exit:\n{rec.log_text()}")
    got, _ = h.search(os.path.join(d, "plain"), "")
    h.check(len(got) == 3000, f"stored under seccomp: {len(got)} of 3000")
    print("ok  a recorder under its filter receives, stores and stops cleanly")

    coordinator(d, src)

    if os.geteuid() != 0:
        print("skip  --user (needs root)")
        return
    nobody = pwd.getpwnam("nobody")

    def nobodys(path):
        """A data directory for nobody, as the package's postinst makes them."""
        os.makedirs(path)
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
        return path

    # The recorder as nobody: its files are nobody's, no capabilities.
    store = nobodys(os.path.join(d, "as-nobody"))
    rec = h.Daemon(store, "--user", "nobody")
    try:
        st = proc_status(rec.proc.pid)
        h.check(st["Uid"].split()[:2] == [str(nobody.pw_uid)] * 2 and int(st["CapEff"], 16) == 0
                and int(st["CapPrm"], 16) == 0, f"recorder --user nobody: {st['Uid']} "
                f"CapEff {st['CapEff']} CapPrm {st['CapPrm']}")
        h.vxsend(src, rec.port, "--rate", 20000)
        h.check(rec.wait_rx(3000), f"recorder as nobody: {rec.stats()}")
    finally:
        h.check(rec.stop() == 0, f"recorder as nobody exit:\n{rec.log_text()}")
    owners = {os.stat(os.path.join(store, f)).st_uid for f in os.listdir(store)}
    h.check(owners == {nobody.pw_uid}, f"files in the data directory belong to {owners}")
    print("ok  recorder --user nobody: runs as nobody with no capabilities, its files are nobody's")

    # A live interface: only CAP_NET_RAW kept, and capture works with it.
    store = nobodys(os.path.join(d, "live"))
    rec = h.Daemon(store, "--user", "nobody", "--interface", "lo", "--capture-filter",
                   "udp port 9")
    try:
        st = proc_status(rec.proc.pid)
        h.check(int(st["CapEff"], 16) == CAP_NET_RAW and int(st["CapPrm"], 16) == CAP_NET_RAW and
                int(st["CapBnd"], 16) == CAP_NET_RAW, f"--interface as nobody: CapEff "
                f"{st['CapEff']} CapPrm {st['CapPrm']} CapBnd {st['CapBnd']}")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(50):
            s.sendto(b"x" * 32, ("127.0.0.1", 9))
        s.close()
        h.check(rec.wait_rx(50, 10), f"capture on lo as nobody: {rec.stats()}")
    finally:
        h.check(rec.stop() == 0, f"live recorder as nobody exit:\n{rec.log_text()}")
    print("ok  recorder --user nobody --interface lo: only CAP_NET_RAW kept, capture works")

    # The coordinator as nobody, on a directory nobody owns: PostgreSQL too.
    base = os.path.join(d, "co-nobody")
    nobodys(os.path.join(base, "coord"))
    co = Coordinator(base, extra=["--user", "nobody", "--pg-port", str(cluster.PGPORT + 2)])
    try:
        st = proc_status(co.proc.pid)
        h.check(st["Uid"].split()[0] == str(nobody.pw_uid) and int(st["CapEff"], 16) == 0,
                f"coordinator --user nobody: {st['Uid']} {st['CapEff']}")
        pid = open(os.path.join(co.dir, "pgdata", "postmaster.pid")).readline().strip()
        h.check(os.stat(f"/proc/{pid}").st_uid == nobody.pw_uid,
                "the embedded PostgreSQL does not run as nobody")
        h.check(h.run(co.cli("nodes")).returncode == 0, "the CLI cannot talk to it")
    finally:
        rc = co.stop()
    h.check(rc == 0, f"coordinator as nobody exit {rc}:\n{co.log_text()}")
    print("ok  coordinator --user nobody: it and its embedded PostgreSQL run as nobody")


if __name__ == "__main__":
    main()
