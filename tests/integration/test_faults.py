#!/usr/bin/env python3
"""Faults injected into a running cluster; each asserts what is promised.

- A flood of bad VXLAN (random bytes, wrong flags, short headers) mixed with
  good traffic: every good packet stored (search == tcpdump), every bad one
  counted, the recorder healthy.
- A coordinator that stops reading (SIGSTOP: a slow subscriber) while a
  recorder publishes: the recorder's ingest is untouched (nothing dropped),
  its records wait (bounded, shedding counted) and flow again on SIGCONT.
- The coordinator killed (-9) during a search: the CLI ends within its
  timeout with a clear message, its partial capture is readable; restarted,
  it knows the recorders again and the same search is complete.
- The coordinator killed (-9) under write load: restarted, no flow row is
  doubled and new records are written.
- The coordinator's spool on a full disk while PostgreSQL is away: what
  cannot be spooled is dropped and counted (received = written + dropped),
  the coordinator stays up, and the spooled records are written when
  PostgreSQL returns.
Needs root for the tmpfs; that part is skipped visibly otherwise.
"""
import os
import random
import signal
import socket
import subprocess
import time

import cluster
import harness as h
import pcapfile
from cluster import Coordinator


def bad_vxlan_flood(rec, n):
    """n datagrams no VXLAN parser may accept, each kind counted."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rnd = random.Random(7)
    for i in range(n):
        kind = i % 3
        if kind == 0:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
            data = b"\x00" + data  # never the I flag
        elif kind == 1:
            data = b"\x08\x00"  # shorter than a VXLAN header
        else:
            data = b"\x00\x00\x00\x00\x00\x00\x07\x00" + b"x" * 60  # I flag missing
        s.sendto(data, ("127.0.0.1", rec.port))
    s.close()


def test_flood(d):
    src = h.gen(os.path.join(d, "good.pcap"), "--packets", 20000, "--flows", 100, "--seed", 91,
                "--mix", "clean")
    rec = h.Daemon(os.path.join(d, "flood"))
    try:
        sender = subprocess.Popen([h.VXSEND, "--to", f"127.0.0.1:{rec.port}", "--rate", "20000",
                                   "--count", src], stdout=subprocess.PIPE)
        bad_vxlan_flood(rec, 6000)
        sender.wait(60)
        h.check(rec.wait_rx(26000, 20), f"flood: {rec.stats()}")
        st = rec.stats()
        h.check(st["stored_packets"] == 20000 and st["not_vxlan"] == 6000 and
                st["queue_drops"] == 0 and st["kernel_drops"] == 0, f"flood counters: {st}")
    finally:
        h.check(rec.stop() == 0, "recorder exit after the flood")
    got, _ = h.search(os.path.join(d, "flood"), "")
    want = h.tcpdump(src, "")
    h.check(len(got) == len(want) and [r[3] for r in got] == [r[3] for r in want],
            f"stored {len(got)} packets, tcpdump reads {len(want)} from the good capture")
    print("ok  6000 bad VXLAN datagrams in 20000 good: every good one stored as sent, every "
          "bad one counted")


def enrolled_recorder(co, d, name, pcap):
    dd = os.path.join(d, name)
    h.import_file(dd, pcap)
    ep = f"tcp://127.0.0.1:{h.free_tcp_port()}"
    rec = h.Daemon(dd, "--node-id", name, *co.enroll(dd, name), "--search", ep)
    return rec


def test_slow_subscriber(co, d):
    src = h.gen(os.path.join(d, "slow.pcap"), "--packets", 30000, "--flows", 3000, "--seed", 92,
                "--mix", "clean")
    dd = os.path.join(d, "slowrec")
    rec = h.Daemon(dd, "--node-id", "slowrec", *co.enroll(dd, "slowrec"), "--bus-queue", "500",
                   "--flow-idle", "1s", "--flow-grace", "0")
    try:
        time.sleep(1.5)
        co.proc.send_signal(signal.SIGSTOP)
        try:
            h.vxsend(src, rec.port, "--rate", 30000)
            h.check(rec.wait_rx(30000), f"ingest while the coordinator is stopped: {rec.stats()}")
            h.check(h.wait_for(lambda: rec.stats()["records_shed"] > 0, 20),
                    f"nothing shed with a stopped coordinator and a 500-record queue: {rec.stats()}")
            st = rec.stats()
            h.check(st["stored_packets"] == 30000 and st["queue_drops"] == 0 and
                    st["kernel_drops"] == 0, f"ingest suffered from a slow subscriber: {st}")
        finally:
            co.proc.send_signal(signal.SIGCONT)
        h.check(h.wait_for(lambda: rec.stats()["records_queued"] == 0, 20),
                f"records did not flow again after SIGCONT: {rec.stats()}")
    finally:
        h.check(rec.stop() == 0, "recorder exit")
    # Every record is either written or counted as shed.
    st = rec.stats()
    rows = lambda: int(co.sql("SELECT count(*) FROM flows_all WHERE node = 'slowrec'")[0][0])
    h.check(h.wait_for(lambda: rows() == st["records_published"], 20),
            f"written {rows()} of {st['records_published']} published: {st}")
    h.check(st["records_published"] + st["records_shed"] == st["flow_records"],
            f"published + shed != records made: {st}")
    print(f"ok  coordinator stopped (SIGSTOP) under load: ingest untouched (30000 stored), "
          f"{st['records_shed']} records shed and counted, the rest written after SIGCONT "
          f"({rows()} rows)")


def test_coordinator_killed_in_search(co, d, recs, pcaps):
    out = os.path.join(d, "cut.pcap")
    search = subprocess.Popen(co.cli("--timeout", "5s", "search", "--from", "0", "-q",
                                     "--node-timeout", "2s", "-w", out),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    co.proc.kill()
    co.proc.wait()
    t0 = time.monotonic()
    _, err = search.communicate(timeout=60)
    took = time.monotonic() - t0
    h.check(search.returncode not in (0, 4) and b"cannot connect" in err,
            f"search with a killed coordinator: exit {search.returncode} {err!r}")
    h.check(took < 30, f"the CLI took {took:.0f} s to give up")
    ok, why = h.capinfos_ok(out)
    h.check(ok, f"the partial capture is not a valid pcap: {why}")
    print(f"ok  coordinator killed mid-search: the CLI gave up after {took:.1f} s saying why; "
          f"its capture so far is valid")
    return took


def test_restart_and_search(d, co, recs, pcaps):
    co = Coordinator(d, reuse=co)
    h.check(h.wait_for(lambda: (co.stats() or {}).get("nodes", 0) >= len(recs), 15),
            f"recorders not known again after the restart: {co.stats()}")
    time.sleep(1.5)
    out = os.path.join(d, "after.pcap")
    p = h.run(co.cli("search", "--nodes", ",".join(r.name for r in recs), "--from", "0", "-q",
                     "-w", out), check_rc=False)
    want = sum(len(h.tcpdump(pc, "")) for pc in pcaps)
    got = len(pcapfile.read_pcap(out)[1])
    h.check(p.returncode == 0 and got == want, f"search after the restart: exit {p.returncode}, "
            f"{got} of {want} packets: {p.stderr!r}")
    print(f"ok  restarted coordinator: recorders known again, the search is complete ({got} packets)")
    return co


def test_killed_under_load(d, co):
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    g = subprocess.Popen([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(),
                          "--records", "400000", "--node", "load", "--rate", "100000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.check(h.wait_for(lambda: (co.stats() or {}).get("records_written", 0) > 50000, 30),
            f"load not written: {co.stats()}")
    co.proc.kill()
    co.proc.wait()
    g.kill()
    g.wait()
    co = Coordinator(d, reuse=co)
    h.check(h.wait_for(lambda: (co.stats() or {}).get("records_spooled", 1) == 0, 30),
            f"spool not replayed: {co.stats()}")
    dup = co.sql("SELECT count(*) FROM (SELECT node, flow_id FROM flows GROUP BY 1, 2 "
                 "HAVING count(*) > 1) x")
    h.check(dup == [["0"]], f"rows doubled after kill -9 under load: {dup}")
    before = int(co.sql("SELECT count(*) FROM flows WHERE node = 'load2'")[0][0])
    h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records",
           "5000", "--node", "load2"])
    h.check(h.wait_for(lambda: int(co.sql("SELECT count(*) FROM flows WHERE node = 'load2'")[0][0])
                       == before + 5000, 20), "new records not written after the restart")
    print("ok  coordinator killed (-9) under write load: restarted, no row doubled, new records "
          "written")
    return co


def test_spool_full(d):
    if os.geteuid() != 0:
        print("skip  spool on a full disk (needs root for a tmpfs)")
        return
    base = os.path.join(d, "spoolfull")
    os.makedirs(os.path.join(base, "coord"))
    mnt = os.path.join(d, "spoolmnt")
    os.makedirs(mnt)
    h.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt])
    try:
        os.symlink(mnt, os.path.join(base, "coord", "spool"))
        co = Coordinator(base)  # the first one has stopped: its port is free
        try:
            co.pg_ctl("stop")
            flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
            # In rounds, so that each becomes a batch of its own: some fit
            # the spool, the rest meet a full disk.
            n = 0
            for i in range(12):
                h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(),
                       "--records", "5000", "--node", "spool", "--seed", str(i)])
                n += 5000
                h.wait_for(lambda: co.stats()["records_pending"] == 0 and
                           co.stats()["records_received"] == n, 10)
            h.check(h.wait_for(lambda: co.stats()["records_received"] == n and
                               co.stats()["records_pending"] == 0, 30),
                    f"records not received: {co.stats()}")
            st = co.stats()
            h.check(st["records_dropped"] > 0 and st["records_spooled"] > 0 and
                    co.proc.poll() is None, f"spool on a full disk: {st}")
            h.check("spool" in co.log_text(), "the spool's trouble is not logged")
            spooled, dropped = st["records_spooled"], st["records_dropped"]
            co.pg_ctl("start")
            h.check(h.wait_for(lambda: co.stats()["records_spooled"] == 0, 30),
                    f"the spool was not written after PostgreSQL returned: {co.stats()}")
            rows = int(co.sql("SELECT count(*) FROM flows WHERE node = 'spool'")[0][0])
            st = co.stats()
            h.check(rows == spooled and rows + st["records_dropped"] == n,
                    f"received {n} = written {rows} + dropped {st['records_dropped']}? {st}")
        finally:
            co.stop()
        print(f"ok  spool on a full disk: {spooled} records spooled and written later, {dropped} "
              f"dropped and counted; received = written + dropped")
    finally:
        subprocess.run(["umount", "-l", mnt])


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    test_flood(d)
    co = Coordinator(d)
    recs = []
    try:
        test_slow_subscriber(co, d)
        pcaps = [h.gen(os.path.join(d, f"r{i}.pcap"), "--bytes", "16m", "--flows", 100,
                       "--seed", 93 + i) for i in range(2)]
        for i, pc in enumerate(pcaps):
            r = enrolled_recorder(co, d, f"fr{i}", pc)
            r.name = f"fr{i}"
            recs.append(r)
        h.check(h.wait_for(lambda: co.stats()["nodes"] >= 3, 15), f"recorders: {co.stats()}")
        time.sleep(1.5)
        test_coordinator_killed_in_search(co, d, recs, pcaps)
        co = test_restart_and_search(d, co, recs, pcaps)
        co = test_killed_under_load(d, co)
    finally:
        for r in recs:
            r.stop()
        co.stop()
    test_spool_full(d)


if __name__ == "__main__":
    main()
