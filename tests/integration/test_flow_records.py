#!/usr/bin/env python3
"""Flow records on a real ZeroMQ bus: a real SUB socket (bound, as the
coordinator's) receives protobuf flow batches and heartbeats from a
recorder; sequence numbers are gap-free; decoding gives back exactly the
records of --flows-json. The flow table: interim then final records of the
same flow, idle timeout, a full table (evictions counted, no packet lost
from the records), and the flush of every flow at shutdown. Application
records of flows that a live daemon ends by the wall clock, with no packet
coming after (the analysis hands those ends to the application thread on
their own).
"""
import json
import os
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402

try:
    import zmq
except ImportError:
    h.fail("python3-zmq is not installed (scripts/deps.sh installs it)")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
S = 1000000000


def load_pb(d):
    h.run(["protoc", "--python_out", d, "--proto_path", os.path.join(ROOT, "proto"),
           os.path.join(ROOT, "proto", "mirrorscope.proto")])
    sys.path.insert(0, d)
    import mirrorscope_pb2
    return mirrorscope_pb2


class BusKeys:
    """CURVE key files for the bus: a stand-in coordinator's pair (its
    public half where a recorder reads it) and a recorder's pair."""

    def __init__(self, d):
        self.dir = os.path.join(d, "bus-keys")
        os.makedirs(self.dir, exist_ok=True)
        self.server_pub, self.server_sec = zmq.curve_keypair()
        self.write("coordinator.pub", self.server_pub)
        self.write("recorder.key", *zmq.curve_keypair())

    def write(self, name, pub, sec=None):
        fd = os.open(os.path.join(self.dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"public-key = {pub.decode()}\n")
            if sec:
                f.write(f"secret-key = {sec.decode()}\n")

    def recorder_args(self, port):
        """A recorder's arguments for the bus at port."""
        return ["--coordinator", f"tcp://127.0.0.1:{port}",
                "--key-file", os.path.join(self.dir, "recorder.key"),
                "--coordinator-key", os.path.join(self.dir, "coordinator.pub")]


KEYS = None


class Sub:
    """The coordinator's side of the bus, bound, with CURVE (no allow-list:
    any recorder may publish here); collects everything."""

    def __init__(self, pb, port=None):
        self.pb = pb
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.curve_server = True
        self.sock.curve_secretkey = KEYS.server_sec
        if port:
            self.sock.bind(f"tcp://127.0.0.1:{port}")
            self.port = port
        else:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.batches, self.hbs, self.apps = [], [], []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stop:
            if not poller.poll(50):
                continue
            topic, data = self.sock.recv_multipart()
            if topic == b"flow":
                b = self.pb.FlowBatch()
                b.ParseFromString(data)
                self.batches.append(b)
            elif topic == b"hb":
                m = self.pb.Heartbeat()
                m.ParseFromString(data)
                self.hbs.append(m)
            elif topic == b"app":  # application records (issue 15): the same bus, their test
                m = self.pb.AppBatch()  # is test_app_coordinator's; here they must parse
                m.ParseFromString(data)
                self.apps.append(m)
            else:
                h.fail(f"unknown topic {topic!r}")

    def records(self):
        return [r for b in self.batches for r in b.records]

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close(0)
        self.ctx.term()


def ip_str(b):
    import ipaddress
    return str(ipaddress.ip_address(bytes(b)))


def as_json(r):
    """A protobuf FlowRecord in the --flows-json shape (for comparison)."""
    def stat(s):
        d = {"count": s.count}
        if s.count:
            d.update(min=s.min, mean=int(s.sum / s.count) if s.sum >= 0 else -((-s.sum) // s.count), max=s.max)
        return d

    def direction(x):
        d = {k: getattr(x, k) for k in (
            "packets", "ip_bytes", "payload_bytes", "retransmissions", "fast_retransmissions",
            "spurious_retransmissions", "out_of_order", "dup_acks", "lost_segments",
            "zero_windows", "window_full", "keep_alives", "rsts", "fins")}
        d["rtt_ns"] = stat(x.rtt_ns)
        return d

    j = {"flow_id": r.flow_id, "vni": r.vni, "observer": ip_str(r.observer), "proto": r.proto,
         "client": {"ip": ip_str(r.client.ip), "port": r.client.port},
         "server": {"ip": ip_str(r.server.ip), "port": r.server.port},
         "first_ns": r.first_ns, "last_ns": r.last_ns,
         "c2s": direction(r.c2s), "s2c": direction(r.s2c),
         "app_response_ns": stat(r.app_response_ns),
         "conn_state": r.conn_state, "history": r.history, "final": r.final}
    if r.proto == 6:
        hs = {"complete": r.handshake.complete}
        for bit, name in ((1, "syn_ns"), (2, "synack_ns"), (4, "ack_ns"), (8, "initial_rtt_ns")):
            if r.handshake.seen & bit:
                hs[name] = getattr(r.handshake, name)
        if r.handshake.seen & 3 == 3:
            hs["server_setup_ns"] = r.handshake.server_setup_ns
        if r.handshake.seen & 6 == 6:
            hs["client_setup_ns"] = r.handshake.client_setup_ns
        j["handshake"] = hs
    return j


def udp_frame(src, dst, sport, dport, payload=b"x" * 20):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp + payload


def test_bus_equals_json(pb, d):
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 30000, "--flows", 300, "--seed", 17)
    sub = Sub(pb)
    js = os.path.join(d, "flows.json")
    h.run([h.RECORDER, "--read", src, *KEYS.recorder_args(sub.port),
           "--flows-json", js, "--node-id", "rec-a"])
    time.sleep(0.5)
    sub.close()
    want = [json.loads(l) for l in open(js)]
    got = [as_json(r) for r in sub.records()]
    h.check(len(want) > 200, f"only {len(want)} flows")
    seqs = [b.seq for b in sub.batches]
    h.check(seqs == list(range(1, len(seqs) + 1)), f"batch sequence has gaps: {seqs[:10]}...")
    h.check(len({b.start_ns for b in sub.batches}) == 1, "start_ns changed within one run")
    h.check(all(b.node == "rec-a" for b in sub.batches), "node id")
    h.check(sub.hbs and sub.hbs[-1].counters.rx_packets == 30000, "final heartbeat counters")
    # An import serves no searches, so it announces none (the daemon does: test_distributed_search).
    h.check(all(not m.search_endpoint for m in sub.hbs), "an import announces a search endpoint")
    for w in want:
        w.pop("node")
    got_final = [g for g in got if g["final"]]
    h.check(len(got_final) == len(want), f"{len(got_final)} final records on the bus, {len(want)} in JSON")
    bykey = {g["flow_id"]: g for g in got_final}
    for w in want:
        g = bykey.get(w["flow_id"])
        h.check(g == w, f"record {w['flow_id']} differs:\n bus  {g}\n json {w}")
    print(f"ok  {len(want)} records: bus == --flows-json; {len(seqs)} batches gap-free; "
          f"{len(sub.hbs)} heartbeats")


def test_interim_idle_and_full(pb, d):
    t0 = 1700000000 * S
    recs = []
    # flow A: a packet every second for 25 s (interim records at 10 s, 20 s)
    for i in range(26):
        recs.append((t0 + i * S, udp_frame("10.1.0.1", "10.1.0.2", 40000, 53)))
    # flow B: a packet at 0.5 s, then again at 100 s (idle in between: two records)
    recs.append((t0 + S // 2, udp_frame("10.1.0.3", "10.1.0.4", 40001, 53)))
    recs.append((t0 + 100 * S, udp_frame("10.1.0.3", "10.1.0.4", 40001, 53)))
    recs.sort(key=lambda r: r[0])
    path = os.path.join(d, "timed.pcap")
    pcapfile.write_pcap(path, [(ts, len(f), len(f), f) for ts, f in recs])
    sub = Sub(pb)
    js = os.path.join(d, "timed.json")
    h.run([h.RECORDER, "--read", path, *KEYS.recorder_args(sub.port),
           "--flows-json", js, "--flow-interval", "10s", "--flow-idle", "30s"])
    time.sleep(0.3)
    sub.close()
    rs = sub.records()
    a = [r for r in rs if r.client.port == 40000]
    h.check([r.final for r in a] == [False, False, True],
            f"flow A: expected interim, interim, final; got {[r.final for r in a]}")
    h.check(len({r.flow_id for r in a}) == 1, "interim and final of one flow must share flow_id")
    h.check([r.c2s.packets for r in a] == [11, 21, 26], f"flow A counts {[r.c2s.packets for r in a]}")
    b = [r for r in rs if r.client.port == 40001]
    h.check(len(b) == 2 and all(r.final for r in b) and b[0].flow_id != b[1].flow_id,
            f"flow B: idle timeout should split it in two final records, got {len(b)}")
    print("ok  interim records then final; idle timeout")

    # A table of 20 flows for a capture of hundreds: evictions, no packet lost.
    src = os.path.join(d, "in.pcap")
    js = os.path.join(d, "small.json")
    stats = os.path.join(d, "small-stats.json")
    h.run([h.RECORDER, "--read", src, "--flows-json", js, "--max-flows", "20",
           "--stats-file", stats])
    st = h.read_stats(stats)
    rows = [json.loads(l) for l in open(js)]
    total = sum(r["c2s"]["packets"] + r["s2c"]["packets"] for r in rows)
    h.check(st["flows_evicted_full"] > 0, f"no evictions with --max-flows 20: {st}")
    h.check(total + st["flows_unusable_packets"] == 30000,
            f"packets in records {total} + unusable {st['flows_unusable_packets']} != 30000")
    print(f"ok  full table: {st['flows_evicted_full']} early closes counted, every packet in a record")


def test_shutdown_flush(pb, d):
    sub = Sub(pb)
    store = os.path.join(d, "store")
    rec = h.Daemon(store, *KEYS.recorder_args(sub.port), "--flow-idle", "1h")
    src = os.path.join(d, "in.pcap")
    h.vxsend(src, rec.port, "--rate", 50000)
    h.check(rec.wait_rx(30000), "daemon did not receive the feed")
    time.sleep(0.5)
    before = len([r for r in sub.records() if r.final])
    rc = rec.stop()
    time.sleep(0.5)
    sub.close()
    h.check(rc == 0, f"daemon exit {rc}")
    finals = [r for r in sub.records() if r.final]
    h.check(len(finals) > before, "no records flushed at shutdown")
    total = sum(r.c2s.packets + r.s2c.packets for r in finals)
    st = rec.stats()
    h.check(total + st["flows_unusable_packets"] == 30000,
            f"after shutdown the final records hold {total} packets (+{st['flows_unusable_packets']} unusable) of 30000")
    h.check(st["records_shed"] == 0, f"records shed: {st}")
    print(f"ok  shutdown flush: {len(finals) - before} flows closed at SIGTERM, all packets accounted")


def test_coordinator_away(pb, d):
    """No coordinator yet: records wait (bounded), the overflow is shed and
    counted; when the coordinator appears it gets what waited."""
    port = h.free_tcp_port()
    store = os.path.join(d, "away")
    rec = h.Daemon(store, *KEYS.recorder_args(port), "--bus-queue", "300",
                   "--flow-grace", "0", "--flow-idle", "1s")
    try:
        h.vxsend(os.path.join(d, "in.pcap"), rec.port, "--rate", 50000)
        h.check(h.wait_for(lambda: (rec.stats() or {}).get("records_shed", 0) > 0, 20),
                f"nothing shed with no coordinator and a 300-record queue: {rec.stats()}")
        st = rec.stats()
        h.check(st["records_published"] == 0 and st["records_queued"] == 300,
                f"records must wait, not vanish, while nobody subscribes: {st}")
        sub = Sub(pb, port)
        h.check(h.wait_for(lambda: (rec.stats() or {}).get("records_published", 0) >= 300, 10),
                f"queued records not delivered once the coordinator came: {rec.stats()}")
        time.sleep(2.5)  # the last flows close (idle 1 s) and are published
        st = rec.stats()
        sub.close()
        got = len(sub.records())
        h.check(got == st["records_published"],
                f"coordinator received {got}, recorder says {st['records_published']} published")
        h.check(st["flow_records"] == st["records_published"] + st["records_shed"] + st["records_queued"],
                f"records unaccounted for: {st}")
    finally:
        rec.stop()
    print(f"ok  coordinator away: {st['records_shed']} shed and counted, {st['records_published']} "
          f"delivered once it came")


def test_app_idle_ends(pb, d):
    """HTTP connections cut off mid-exchange (the first 560 packets of
    tests/data/app_http.pcap) sent to a live daemon: their flows end by
    the wall clock after --flow-idle with nothing more arriving, and the
    application records they held (requests without a response among them)
    reach the bus while the daemon runs - the same transactions as an import
    of the same packets gives at its end."""
    _, recs = pcapfile.read_pcap(os.path.join(ROOT, "tests", "data", "app_http.pcap"))
    cut = os.path.join(d, "http_cut.pcap")
    pcapfile.write_pcap(cut, recs[:560], nsec=True)
    js = os.path.join(d, "http_cut.json")
    h.run([h.RECORDER, "--read", cut, "--app-json", js, "--log-level", "warn"])

    def content(method, uri, status, body):
        return (method, uri, status, body)
    want = sorted((content(r["method"], r["uri"], r["status"], r["response_body_bytes"])
                   for r in map(json.loads, open(js))), key=repr)
    h.check(any(w[2] is None for w in want), f"no request left without a response: {want}")
    sub = Sub(pb)
    rec = h.Daemon(os.path.join(d, "appidle"), *KEYS.recorder_args(sub.port), "--flow-idle", "1s",
                   "--flow-grace", "0")
    try:
        h.vxsend(cut, rec.port, "--rate", 20000)

        def got():
            return sorted((content(a.http.method.decode(), a.http.uri.decode(),
                                   a.http.status if a.http.has_response else None,
                                   a.http.response_body_bytes if a.http.has_response else None)
                           for b in sub.apps for a in b.records if a.WhichOneof("app") == "http"),
                          key=repr)
        h.check(h.wait_for(lambda: len(got()) >= len(want), 20),
                f"{len(got())} of {len(want)} application records on the bus while the daemon "
                f"runs: {rec.stats()}")
        h.check(got() == want, f"application records of flows ended by the clock:\n bus "
                f"{got()}\n import {want}")
    finally:
        rec.stop()
        sub.close()
    print(f"ok  {len(want)} application records of flows ended by the wall clock, "
          f"{sum(w[2] is None for w in want)} of them without a response, as the import's")


def main():
    global KEYS
    h.init()
    d = h.tmpdir()
    pb = load_pb(d)
    KEYS = BusKeys(d)
    test_bus_equals_json(pb, d)
    test_interim_idle_and_full(pb, d)
    test_shutdown_flush(pb, d)
    test_coordinator_away(pb, d)
    test_app_idle_ends(pb, d)


if __name__ == "__main__":
    main()
