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
A recorder killed: the health checker drops it within the NLB's interval, new
traffic goes to the others, a search exits 4 naming it, its heartbeats stop and
the coordinator marks it dead. A recorder added: enrolled, it appears in
`mscope nodes`, the NLB takes it in and it receives traffic. A recorder stopped
with SIGTERM while traffic flows drains: out of the NLB, it records on for
--drain-time and exits 0; every packet tcpdump saw on every instance's
interface over the whole run is stored by some recorder, and the connections
the draining recorder alone saw have their exact flows in PostgreSQL.
A failed `up` leaves no namespace or process behind, nor does `down`.
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


def wire(t, since):
    """From tcpdump on every instance's interface: per connection (gen_key),
    payload bytes each way as they crossed the wire, keyed by the sending
    (ip, port), and whether TCP sent some sequence number twice (a
    retransmission: the mirror sees its bytes twice, and so does the flow)."""
    out = collections.defaultdict(lambda: {"bytes": collections.Counter(), "retrans": False,
                                           "seqs": set()})
    for role, _, _ in topology.INSTANCES:
        for r in h.tcpdump(os.path.join(t.dir, role, "eth0.pcap"), "ip"):
            f = bytes(r[3])
            ck = conn_key(f)
            if not ck or r[0] < since:
                continue
            ihl = (f[14] & 15) * 4
            l4 = 14 + ihl
            total = int.from_bytes(f[16:18], "big")
            src = (".".join(map(str, f[26:30])), int.from_bytes(f[l4:l4 + 2], "big"))
            if f[23] == 6:
                n = total - ihl - (f[l4 + 12] >> 4) * 4
                seq = int.from_bytes(f[l4 + 4:l4 + 8], "big")
                w = out[ck[0]]
                if n > 0:
                    if (src, seq) in w["seqs"]:
                        w["retrans"] = True
                    w["seqs"].add((src, seq))
            else:
                n = int.from_bytes(f[l4 + 4:l4 + 6], "big") - 8
            out[ck[0]]["bytes"][src] += n
    return out


def expected(t, conns, since):
    """The flow each connection should have: the generator's 5-tuple, and its
    bytes each way as the wire carried them - which are the generator's unless
    TCP retransmitted. Also how many connections retransmitted."""
    w = wire(t, since)
    exp, retrans = [], 0
    for c in conns:
        x = w[gen_key(c)]
        c2s, s2c = x["bytes"][(c["client"], c["cport"])], x["bytes"][(c["server"], c["sport"])]
        if x["retrans"]:
            retrans += 1
        else:
            h.check((c2s, s2c) == (c["c2s"], c["s2c"]),
                    f"tcpdump on the instance saw {c2s}/{s2c} payload bytes of {c}")
        exp.append(dict(c, c2s=c2s, s2c=s2c))
    return exp, retrans


def gen_key(c):
    a, b = (c["client"], c["cport"]), (c["server"], c["sport"])
    return (c["proto"], min(a, b), max(a, b))


def final_flows(t, since=0):
    rows = t.sql("SELECT proto, host(client_ip), client_port, host(server_ip), server_port, "
                 "c2s_payload_bytes, s2c_payload_bytes, node, vni, host(observer) "
                 f"FROM flows WHERE final AND first_ns >= {since}")
    out = []
    for r in rows:
        out.append({"proto": {"6": "tcp", "17": "udp"}.get(r[0], r[0]), "client": r[1],
                    "cport": int(r[2]), "server": r[3], "sport": int(r[4]), "c2s": int(r[5]),
                    "s2c": int(r[6]), "node": r[7], "vni": int(r[8]), "observer": r[9]})
    return out


def flow_tuple(f):
    return (f["proto"], f["client"], f["cport"], f["server"], f["sport"], f["c2s"], f["s2c"])


def wait_flows(t, conns, since, timeout=30):
    """Wait until every connection of conns (made after since, ns) has its
    final flow record; return them. (UDP client ports come again in later
    rounds: every look is limited to the round's time.)"""
    want = {gen_key(c) for c in conns}
    h.wait_for(lambda: want <= {gen_key(f) for f in final_flows(t, since)}, timeout, 0.5)
    return [f for f in final_flows(t, since) if gen_key(f) in want]


def instance_of(server_ip):
    i = int(server_ip.rsplit(".", 1)[1]) - 10
    return i, topology.INSTANCES[i - 1][0], f"{topology.MIRROR_NET}.{10 + i}"


def first_checks(t, d):
    st = t.nlb_status()
    where = st["sources"]
    h.check(sorted(set(where.values())) == ["rec-1", "rec-2", "rec-3"],
            f"the NLB does not spread the 3 instances over the 3 recorders: {st}")
    since = time.time_ns()
    conns = t.traffic(count=6, seed=1)
    h.check(len(conns) == 18, f"traffic generator made {len(conns)} connections")
    flows = wait_flows(t, conns, since)
    say(f"traffic: {len(conns)} connections (HTTP, TCP, UDP); final flows in PostgreSQL")

    # Flows == connections made: 5-tuple and payload bytes each way, nothing more.
    exp, retrans = expected(t, conns, since)
    got = collections.Counter(flow_tuple(f) for f in final_flows(t))
    want = collections.Counter(flow_tuple(c) for c in exp)
    h.check(got == want, f"flows in PostgreSQL differ from the connections made:\n"
                         f"  missing {list((want - got).elements())}\n"
                         f"  extra {list((got - want).elements())}")
    for f in flows:
        i, role, observer = instance_of(f["server"])
        h.check(f["vni"] == 100 + i and f["observer"] == observer and f["node"] == where[observer],
                f"flow {f} should be VNI {100 + i}, observer {observer}, on {where[observer]}")
    say(f"ok  {len(flows)} final flows in PostgreSQL == the connections made (bytes each way; "
        f"{retrans} retransmitted, counted as on the wire), each on its instance's recorder "
        f"with its session's VNI and outer source")

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


def node_state(t, name):
    for n in t.nodes():
        if n["node"] == name:
            return n
    return {}


def kill_checks(t, d):
    """A recorder killed: out of the NLB within its health-check interval, new
    traffic to the others, searches say it is missing, the coordinator marks it
    dead."""
    where = t.nlb_status()["sources"]
    _, _, src = instance_of(f"{topology.DATA_NET}.11")
    victim = where[src]
    t.send(victim, 9)
    t_kill = time.time()
    h.check(t.wait_gone(victim, 5), f"{victim} did not die of SIGKILL")
    out = h.wait_for(lambda: victim not in t.nlb_status().get("in_service", [victim]), 15, 0.05)
    dropped = time.time() - t_kill
    h.check(out, f"the NLB still sends to {victim}: {t.nlb_status()}")
    # 2 failed checks 1 s apart (each waiting at most 0.5 s): about 2-3 s.
    h.check(dropped <= 4.5, f"the NLB took {dropped:.1f} s to drop {victim}")
    say(f"ok  {victim} killed: the health checker dropped it after {dropped:.1f} s "
        f"(interval 1 s, unhealthy after 2)")
    since = time.time_ns()
    conns = t.traffic(count=3, seed=2)
    flows = wait_flows(t, conns, since)
    h.check(collections.Counter(flow_tuple(f) for f in flows) ==
            collections.Counter(flow_tuple(c) for c in expected(t, conns, since)[0]),
            f"after the kill: flows {flows} != connections {conns}")
    now = t.nlb_status()["sources"]
    h.check(all(f["node"] != victim and f["node"] == now[instance_of(f["server"])[2]] for f in flows),
            f"new traffic reached {victim} or not its NLB target: {[(f['server'], f['node']) for f in flows]}")
    say(f"ok  new traffic ({len(conns)} connections) all on the others: {sorted(set(now.values()))}")
    p = h.run(t.cli("search", "--since", "10m", "--node-timeout", "3s", "-w",
                    os.path.join(d, "partial.pcap"), "tcp"),
              check_rc=False)
    err = p.stderr.decode(errors="replace")
    h.check(p.returncode == 4 and victim in err, f"search without {victim}: exit {p.returncode}: {err}")
    say(f"ok  mscope search exits 4 and names {victim}: "
        f"{[line for line in err.splitlines() if victim in line][:1]}")
    last = node_state(t, victim).get("last_seen_ns")
    dead = h.wait_for(lambda: node_state(t, victim).get("state") == "dead", 20, 0.5)
    took = time.time() - t_kill
    h.check(dead and node_state(t, victim).get("last_seen_ns") == last,
            f"{victim} not marked dead 20 s after the kill: {node_state(t, victim)}")
    say(f"ok  its heartbeats stopped; the coordinator marked it dead (seen {took:.1f} s after the kill, "
        f"--dead-after 8s)")
    return victim


def add_checks(t):
    """A recorder added: enrolled, in mscope nodes, taken in by the NLB, fed."""
    t0 = time.time()
    k = t.add_recorder()
    name = f"rec-{k}"
    ok = h.wait_for(lambda: node_state(t, name).get("state") == "alive", 15, 0.2)
    h.check(ok, f"{name} not alive in mscope nodes: {t.nodes()}")
    ok = h.wait_for(lambda: name in t.nlb_status().get("in_service", []), 15, 0.1)
    h.check(ok, f"the NLB did not take {name} in: {t.nlb_status()}")
    took = time.time() - t0
    where = t.nlb_status()["sources"]
    mine = [s for s, r in where.items() if r == name]
    h.check(mine, f"no instance lands on {name}: {where}")
    since = time.time_ns()
    conns = t.traffic(count=2, seed=3)
    flows = wait_flows(t, conns, since)
    on = [f for f in flows if f["observer"] in mine]
    h.check(on and all(f["node"] == name for f in on), f"{name} got no flows: {flows}")
    h.check(t.rec_stats(k).get("rx_packets", 0) > 0, f"{name} received nothing")
    say(f"ok  {name} added: in mscope nodes and in service {took:.1f} s after start; "
        f"{len(on)} new flows of {mine} on it, {t.rec_stats(k)['rx_packets']} packets")
    return name


def drain_checks(t, killed):
    """SIGTERM while traffic flows: /readyz 503, the NLB moves the traffic,
    the recorder keeps recording for --drain-time; nothing it got is lost."""
    where = t.nlb_status()["sources"]
    src = f"{topology.MIRROR_NET}.12"  # i2 (TCP)
    victim = where[src]
    since = time.time_ns()
    bg = subprocess.Popen(["ip", "netns", "exec", t.ns("users"), sys.executable,
                           os.path.join(topology.HERE, "traffic.py"), "client",
                           "--http", f"{topology.DATA_NET}.11:80", "--tcp",
                           f"{topology.DATA_NET}.12:7000", "--udp", f"{topology.DATA_NET}.13:5353",
                           "--count", "25", "--seed", "4", "--pause", "0.1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    t.send(victim, 15)
    t_term = time.time()
    out = h.wait_for(lambda: victim not in t.nlb_status().get("in_service", [victim]), 10, 0.05)
    dropped = time.time() - t_term
    h.check(out, f"the NLB still sends to draining {victim}")
    stdout, stderr = bg.communicate(timeout=60)
    h.check(bg.returncode == 0, f"traffic generator: {stderr.decode()}")
    conns = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    h.check(t.wait_gone(victim, 30), f"{victim} did not stop after draining")
    rc = t.children[victim].returncode
    h.check(rc == 0, f"{victim} exited {rc} after SIGTERM:\n{t.log(victim)[-2000:]}")
    st = t.rec_stats(int(victim.split("-")[1]))
    h.check(st["rx_packets"] == st["stored_packets"] and st["queue_drops"] == 0 and
            st["kernel_drops"] == 0, f"{victim} stats at exit: {st}")
    after = t.nlb_status()["sources"][src]
    say(f"ok  {victim} drained on SIGTERM: out of the NLB after {dropped:.1f} s, "
        f"i2's traffic moved to {after}, exit 0 after --drain-time")
    wait_flows(t, conns, since)
    # Nothing lost, whole run: every packet tcpdump saw on each instance's
    # interface is stored by some recorder (the killed one included).
    stored = collections.Counter()
    holders = collections.defaultdict(set)
    for k in t.st["recorders"]:
        recs, _ = h.search(t.rec_dir(k), "ip")
        for r in recs:
            f = bytes(r[3])
            stored[f] += 1
            ck = conn_key(f)
            if ck and r[0] >= since:
                holders[ck[0]].add(f"rec-{k}")
    for i, (role, _, _) in enumerate(topology.INSTANCES, 1):
        expr = f"ip and host {topology.DATA_NET}.{10 + i}"
        want = collections.Counter(bytes(r[3]) for r in h.tcpdump(os.path.join(t.dir, role, "eth0.pcap"), expr))
        missing = want - stored
        h.check(not missing, f"{role}: {sum(missing.values())} of {sum(want.values())} packets "
                             f"tcpdump saw on eth0 are in no recorder")
    # Flows of connections that reached only the drained recorder: in PostgreSQL, exact.
    flows = {gen_key(f): f for f in final_flows(t, since) if f["node"] == victim}
    only = [c for c in expected(t, conns, since)[0] if holders[gen_key(c)] == {victim}]
    h.check(only, f"no connection reached {victim} alone while it drained")
    bad = [c for c in only if gen_key(c) not in flows or
           flow_tuple(flows[gen_key(c)]) != flow_tuple(c)]
    h.check(not bad, f"{len(bad)} connections recorded by {victim} before it left have no exact "
                     f"final flow in PostgreSQL: {bad[:3]}")
    say(f"ok  nothing lost: every packet tcpdump saw on the 3 instances (whole run, {killed} "
        f"killed, {victim} drained) is stored; {len(only)} connections {victim} recorded "
        f"while draining have their flows")


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
    # A failed `up` (the broker, started last, cannot run) removes what it made.
    bad = topology.Topology(os.path.join(d, "bad"), tag=f"msl-{os.getpid()}x")
    bad.BROKER = "/bin/false"
    try:
        bad.up(1)
        h.fail("topology up with a broken broker succeeded")
    except RuntimeError as e:
        h.check("broker" in str(e), f"up failed for another reason: {e}")
    left, procs = leftovers(bad)
    h.check(not left and not procs and len(bad.st["procs"]) >= 8,
            f"a failed up left namespaces {left}, processes {procs}")
    say(f"ok  a failed up (broker cannot start) stopped its {len(bad.st['procs'])} processes "
        f"and removed its namespaces")
    t = topology.Topology(os.path.join(d, "topo"), tag=f"msl-{os.getpid()}")
    try:
        try:
            t.up(3)
        except RuntimeError as e:
            h.fail(f"topology up: {e}")
        say(f"up: {len(t.st['namespaces'])} namespaces, {len(t.st['procs'])} processes")
        first_checks(t, d)
        killed = kill_checks(t, d)
        add_checks(t)
        drain_checks(t, killed)
    finally:
        t.down()
        left, procs = leftovers(t)
        if left or procs:
            h.fail(f"down left namespaces {left}, processes {procs}")
    say("ok  down: every namespace and process gone")


if __name__ == "__main__":
    main()
