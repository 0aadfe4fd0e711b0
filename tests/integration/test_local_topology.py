#!/usr/bin/env python3
"""The AWS topology emulated on one machine (deploy/local, issue 13): three
instances whose interfaces are mirrored by nftables `dup to` into kernel vxlan
devices, an NLB (stateless jhash DNAT by outer source address, kept current by
a health checker polling /readyz), three recorders enrolled with a coordinator
(embedded PostgreSQL), a broker feeding an IDS namespace.

Checked on real traffic (HTTP, TCP, UDP from a users namespace):
  - the final flows in PostgreSQL equal the connections the generator made
    (5-tuple, payload bytes each way), each on the recorder the NLB sends its
    instance to, with the session's VNI and the instance's address as observer;
  - a distributed search for one HTTP connection returns exactly the packets
    tcpdump captured on that instance's interface;
  - both directions of every connection reached one recorder, and only one;
  - the broker's IDS (kernel vxlan device + tcpdump) got the TCP packets.
Needs root (namespaces); skipped visibly otherwise.
"""
import collections
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "deploy", "local"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402
import topology  # noqa: E402

T0 = time.time()


def say(msg):
    print(f"[{time.time() - T0:5.1f}s] {msg}", flush=True)


def conn_key(frame):
    """(proto, (ip, port), (ip, port)) sorted, and the direction, of an IPv4
    TCP/UDP Ethernet frame; None for anything else."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 15) * 4
    proto = frame[23]
    if proto not in (6, 17):
        return None
    src = ".".join(map(str, frame[26:30]))
    dst = ".".join(map(str, frame[30:34]))
    l4 = 14 + ihl
    sp = int.from_bytes(frame[l4:l4 + 2], "big")
    dp = int.from_bytes(frame[l4 + 2:l4 + 4], "big")
    a, b = (src, sp), (dst, dp)
    return ("tcp" if proto == 6 else "udp", min(a, b), max(a, b)), a < b


def gen_key(c):
    a, b = (c["client"], c["cport"]), (c["server"], c["sport"])
    return (c["proto"], min(a, b), max(a, b))


def final_flows(t):
    rows = t.sql("SELECT proto, host(client_ip), client_port, host(server_ip), server_port, "
                 "c2s_payload_bytes, s2c_payload_bytes, node, vni, host(observer) "
                 "FROM flows WHERE final")
    out = []
    for r in rows:
        out.append({"proto": {"6": "tcp", "17": "udp"}.get(r[0], r[0]), "client": r[1],
                    "cport": int(r[2]), "server": r[3], "sport": int(r[4]), "c2s": int(r[5]),
                    "s2c": int(r[6]), "node": r[7], "vni": int(r[8]), "observer": r[9]})
    return out


def flow_tuple(f):
    return (f["proto"], f["client"], f["cport"], f["server"], f["sport"], f["c2s"], f["s2c"])


def wait_flows(t, conns, timeout=30):
    """Wait until every connection of conns has its final flow record."""
    want = {gen_key(c) for c in conns}
    h.wait_for(lambda: want <= {gen_key(f) for f in final_flows(t)}, timeout, 0.5)
    return [f for f in final_flows(t) if gen_key(f) in want]


def instance_of(server_ip):
    i = int(server_ip.rsplit(".", 1)[1]) - 10
    return i, topology.INSTANCES[i - 1][0], f"{topology.MIRROR_NET}.{10 + i}"


def first_checks(t, d):
    st = t.nlb_status()
    where = st["sources"]
    h.check(sorted(set(where.values())) == ["rec-1", "rec-2", "rec-3"],
            f"the NLB does not spread the 3 instances over the 3 recorders: {st}")
    conns = t.traffic(count=6, seed=1)
    h.check(len(conns) == 18, f"traffic generator made {len(conns)} connections")
    flows = wait_flows(t, conns)
    say(f"traffic: {len(conns)} connections (HTTP, TCP, UDP); final flows in PostgreSQL")

    # Flows == connections made: 5-tuple and payload bytes each way, nothing more.
    got = collections.Counter(flow_tuple(f) for f in final_flows(t))
    want = collections.Counter(flow_tuple(c) for c in conns)
    h.check(got == want, f"flows in PostgreSQL differ from the connections made:\n"
                         f"  missing {list((want - got).elements())}\n"
                         f"  extra {list((got - want).elements())}")
    for f in flows:
        i, role, observer = instance_of(f["server"])
        h.check(f["vni"] == 100 + i and f["observer"] == observer and f["node"] == where[observer],
                f"flow {f} should be VNI {100 + i}, observer {observer}, on {where[observer]}")
    say(f"ok  {len(flows)} final flows in PostgreSQL == the connections made (bytes each way), "
        f"each on its instance's recorder with its session's VNI and outer source")

    # Both directions of every connection on one recorder, and on one only.
    seen = collections.defaultdict(lambda: collections.defaultdict(set))
    for k in t.st["recorders"]:
        recs, _ = h.search(t.rec_dir(k), "ip")
        for r in recs:
            ck = conn_key(bytes(r[3]))
            if ck:
                seen[ck[0]][f"rec-{k}"].add(ck[1])
    for c in conns:
        on = seen.get(gen_key(c), {})
        h.check(len(on) == 1 and list(on.values())[0] == {True, False},
                f"connection {c}: packets on {dict(on)} (want both directions on one recorder)")
    say(f"ok  both directions of each of the {len(conns)} connections on one recorder, only one")

    # A distributed search for one HTTP connection == tcpdump on i1's eth0.
    c = [c for c in conns if c["kind"] == "http"][2]
    expr = f"host {c['client']} and tcp port {c['cport']}"
    out = os.path.join(d, "one.pcap")
    p = h.run(t.cli("search", "--since", "10m", "-w", out, expr), check_rc=False)
    h.check(p.returncode == 0, f"mscope search exited {p.returncode}: {p.stderr.decode()}")
    got = [bytes(r[3]) for r in pcapfile.read_pcap(out)[1]]
    want = [bytes(r[3]) for r in h.tcpdump(os.path.join(t.dir, "i1", "eth0.pcap"), expr)]
    h.check(len(want) >= 6, f"tcpdump on i1 saw only {len(want)} packets of {expr}")
    h.check(collections.Counter(got) == collections.Counter(want),
            f"search '{expr}': {len(got)} packets, tcpdump on i1's eth0 {len(want)}")
    order = "in the same order" if got == want else "(same packets, order differs)"
    say(f"ok  mscope search '{expr}' == tcpdump on i1's interface: {len(got)} packets {order}")

    # The IDS: the broker sent the instances' TCP to the tool's kernel vxlan device.
    ids = os.path.join(t.dir, "tool", "ids.pcap")
    tcp = [c for c in conns if c["proto"] == "tcp"]
    ok = h.wait_for(lambda: len(h.tcpdump(ids, "tcp")) >= 4 * len(tcp), 5)
    h.check(ok and len(h.tcpdump(ids, "udp")) == 0,
            f"IDS capture: {len(h.tcpdump(ids, 'tcp'))} TCP packets for {len(tcp)} connections")
    say(f"ok  the broker's IDS (kernel vxlan VNI {topology.TOOL_VNI} + tcpdump) got "
        f"{len(h.tcpdump(ids, 'tcp'))} TCP packets, no UDP")
    return conns


def leftovers(t):
    names = subprocess.run(["ip", "netns", "list"], capture_output=True).stdout.decode()
    left = [n for n in names.split() if n.startswith(t.tag + "-")]
    procs = [n for n in t.st["procs"] if t.pid(n)]
    return left, procs


def main():
    if os.geteuid() != 0:
        h.skip("needs root for network namespaces, veth, vxlan and nftables")
    h.init()
    for tool in ("nft", "ethtool", "psql"):
        if not subprocess.run(["which", tool], capture_output=True).stdout:
            h.fail(f"{tool} is not installed (run scripts/deps.sh)")
    d = h.tmpdir("msl-")
    os.chmod(d, 0o755)  # the embedded PostgreSQL runs as postgres
    t = topology.Topology(os.path.join(d, "topo"), tag=f"msl-{os.getpid()}")
    try:
        try:
            t.up(3)
        except RuntimeError as e:
            h.fail(f"topology up: {e}")
        say(f"up: {len(t.st['namespaces'])} namespaces, {len(t.st['procs'])} processes")
        first_checks(t, d)
    finally:
        t.down()
        left, procs = leftovers(t)
        if left or procs:
            h.fail(f"down left namespaces {left}, processes {procs}")
    say("ok  down: every namespace and process gone")


if __name__ == "__main__":
    main()
