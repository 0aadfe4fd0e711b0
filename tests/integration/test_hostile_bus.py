#!/usr/bin/env python3
"""Decodable but absurd bus messages from an allowed peer (wire.h).

- A flow batch whose node name is a megabyte, or not UTF-8: ignored and
  counted; the batches of other recorders - ordered ones (interim records
  and the finals that replace them) included - are written as usual and
  without delay.
- Records with values no recorder sends (times before 1970 or past int64,
  reversed, counters beyond bigint, ports and protocols out of range, an RTT
  minimum above its maximum, a history of a kilobyte): each dropped alone
  and counted; the good records of the same batch are written.
- A heartbeat with counters of 2^64-1 and times at the int64 limits: the
  node registers, its counters clamped to what a bigint holds.
- Random bytes and a flood of bad messages mixed with good batches: the
  coordinator stays up and every good record is written.
"""
import os
import time

import cluster
import harness as h
from cluster import Coordinator, load_pb

try:
    import zmq
except ImportError:
    h.fail("python3-zmq is not installed (scripts/deps.sh installs it)")

NOW = int(time.time()) * 10**9
U64 = (1 << 64) - 1
I64 = (1 << 63) - 1


def record(pb, fid, final=True, **kw):
    r = pb.FlowRecord(flow_id=fid, proto=6, first_ns=NOW, last_ns=NOW + 10**6, final=final,
                      conn_state="SF", history="ShADadFf")
    r.client.ip = bytes([10, 9, 0, 1])
    r.client.port = 40000
    r.server.ip = bytes([10, 9, 0, 2])
    r.server.port = 443
    r.c2s.packets, r.c2s.ip_bytes, r.s2c.packets, r.s2c.ip_bytes = 5, 500, 4, 4000
    for k, v in kw.items():
        obj = r
        *path, last = k.split("__")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, v)
    return r


def count(co, where):
    return int(co.sql(f"SELECT count(*) FROM flows_all WHERE {where}")[0][0])


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d)
    ctx = zmq.Context()
    try:
        pb = load_pb(d)
        pub = co.curve(ctx.socket(zmq.PUB), co.publisher_key())
        pub.setsockopt(zmq.LINGER, 1000)
        pub.connect(f"tcp://127.0.0.1:{co.port}")
        time.sleep(0.7)
        seqs = {}

        def send(node, records, raw_node=None):
            seqs[node] = seqs.get(node, 0) + 1
            b = pb.FlowBatch(node=node, start_ns=NOW, seq=seqs[node])
            b.records.extend(records)
            data = b.SerializeToString()
            if raw_node is not None:  # a name protobuf's Python would refuse to encode
                data = b"\x0a" + encode_varint(len(raw_node)) + raw_node + data[len(node) + 2:]
            pub.send_multipart([b"flow", data])

        st0 = co.stats()
        # The ordered path of a good recorder: interims now, finals later.
        send("good", [record(pb, i, final=False) for i in range(1, 51)])
        h.check(h.wait_for(lambda: count(co, "node = 'good' AND NOT final") == 50, 10),
                "interim records of 'good' not written")
        # A megabyte of node name, and one that is not UTF-8.
        send("x" * (1 << 20), [record(pb, 1)])
        send("bad", [record(pb, 1)], raw_node=b"rec\xff\xfe")
        # The finals of 'good' behind them must not wait.
        t0 = time.monotonic()
        send("good", [record(pb, i) for i in range(1, 51)])
        h.check(h.wait_for(lambda: count(co, "node = 'good' AND final") == 50 and
                           count(co, "node = 'good' AND NOT final") == 0, 10),
                f"the finals of 'good' did not replace its interims: {co.stats()}")
        took = time.monotonic() - t0
        h.check(h.wait_for(lambda: co.stats()["bad_messages"] - st0["bad_messages"] == 2, 5) and
                count(co, "node LIKE 'xxxx%'") == 0, f"bad node names: {co.stats()}")
        h.check("node name longer than 255 bytes" in co.log_text() and
                "node name not UTF-8 text" in co.log_text(), "the reasons are not logged")
        print(f"ok  node names of 1 MiB and of bad UTF-8 ignored and counted; another recorder's "
              f"finals replaced its interims {took:.2f} s later")

        # One batch: good records and one of each absurdity.
        bad = [
            record(pb, 101, first_ns=-5, last_ns=10),
            record(pb, 102, first_ns=I64, last_ns=I64),
            record(pb, 103, first_ns=9223372036 * 10**9, last_ns=9223372036 * 10**9),
            record(pb, 104, c2s__packets=U64),
            record(pb, 105, s2c__ip_bytes=1 << 63),
            record(pb, 106, server__port=70000),
            record(pb, 107, proto=300),
            record(pb, 108, history="H" * 1024),
            record(pb, 109, c2s__rtt_ns__count=2, c2s__rtt_ns__min=9, c2s__rtt_ns__max=3,
                   c2s__rtt_ns__sum=12),
            record(pb, 110, app_response_ns__count=2, app_response_ns__min=1,
                   app_response_ns__max=5, app_response_ns__sum=1 << 62),
            record(pb, 111, handshake__seen=1, handshake__syn_ns=-(1 << 62)),
        ]
        r0 = co.stats()["bad_records"]
        good = [record(pb, 200 + i) for i in range(20)]
        send("mixed", good[:10] + bad + good[10:])
        h.check(h.wait_for(lambda: count(co, "node = 'mixed'") == 20, 10),
                f"good records of a mixed batch: {count(co, 'node = ' + chr(39) + 'mixed' + chr(39))}")
        h.check(h.wait_for(lambda: co.stats()["bad_records"] - r0 == len(bad), 5),
                f"bad records counted: {co.stats()}")
        ids = co.sql("SELECT flow_id FROM flows WHERE node = 'mixed' ORDER BY 1")
        h.check([int(x[0]) for x in ids] == list(range(200, 220)), f"which were written: {ids}")
        h.check("dropped" in co.log_text(), "dropped records not logged")
        m = h.scrape(co.http)
        h.check(m.get(("mscope_coordinator_bad_records_total", ())) == co.stats()["bad_records"],
                "bad_records not in /metrics")
        print(f"ok  {len(bad)} absurd records dropped alone and counted; the 20 good ones of their "
              f"batch written")

        # What a capture whose clock steps back makes (Wireshark shows the
        # same): last before first, negative durations - kept.
        back = [record(pb, 300, last_ns=NOW - 10**6, handshake__seen=15,
                       handshake__initial_rtt_ns=-2000, c2s__rtt_ns__count=1,
                       c2s__rtt_ns__min=-5, c2s__rtt_ns__max=-5, c2s__rtt_ns__sum=-5)]
        send("backwards", back)
        h.check(h.wait_for(lambda: count(co, "node = 'backwards'") == 1, 10),
                "a record of a clock that stepped back was dropped")
        print("ok  a record of a capture whose clock stepped back (last before first, negative "
              "RTTs) is kept")

        # A heartbeat with a field numbered 0: ignored, the coordinator lives.
        b0 = co.stats()["bad_messages"]
        pub.send_multipart([b"hb", bytes.fromhex("0a0130800001")])
        h.check(h.wait_for(lambda: co.stats()["bad_messages"] == b0 + 1, 5) and
                co.proc.poll() is None, f"a heartbeat with field 0: {co.stats()}")
        print("ok  a heartbeat with a field numbered 0 (found by fuzzing) is ignored, not fatal")

        # A heartbeat at the limits: the node registers, clamped.
        hb = pb.Heartbeat(node="limits", start_ns=-1, seq=1, version="x", time_ns=I64)
        hb.counters.rx_packets = U64
        hb.counters.rx_bytes = U64
        hb.counters.oldest_ns = -(1 << 63)
        hb.counters.drops["queue"] = U64
        pub.send_multipart([b"hb", hb.SerializeToString()])
        h.check(h.wait_for(lambda: co.sql("SELECT rx_packets, rx_bytes FROM nodes WHERE node = "
                                          "'limits'") == [[str(I64), str(I64)]], 10),
                f"the node at the limits did not register: "
                f"{co.sql('SELECT node, rx_packets FROM nodes')}")
        print("ok  a heartbeat with counters of 2^64-1: the node registers, counters clamped")

        # A flood of garbage and bad batches mixed with good batches.
        b0 = co.stats()["bad_messages"]
        n_good = 0
        for i in range(300):
            pub.send_multipart([b"flow", os.urandom(200 + i)])
            pub.send_multipart([b"hb", os.urandom(50)])
            send("z" * 300, [record(pb, 1)])
            send("flood-good", [record(pb, 1000 + 10 * i + k) for k in range(10)])
            n_good += 10
        h.check(h.wait_for(lambda: count(co, "node = 'flood-good'") == n_good, 20),
                f"good records during a flood: {count(co, chr(110) + 'ode = ' + chr(39) + 'flood-good' + chr(39))} of {n_good}")
        h.check(co.proc.poll() is None, "the coordinator died in the flood")
        h.check(h.wait_for(lambda: co.stats()["bad_messages"] - b0 >= 300, 5),
                f"flood not counted: {co.stats()}")
        print(f"ok  a flood of 900 bad messages mixed with good batches: all {n_good} good "
              f"records written, the bad counted")
        pub.close()
    finally:
        ctx.term()
        rc = co.stop()
    h.check(rc == 0, f"coordinator exit {rc}")


def encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


if __name__ == "__main__":
    main()
