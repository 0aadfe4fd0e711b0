#!/usr/bin/env python3
"""Who may talk to the cluster's ZeroMQ sockets (CURVE with an allow-list).

- A recorder whose key is not allowed publishes: nothing of it reaches the
  database, the coordinator counts and logs the refusal, the recorder's log
  says its key was refused. Its key put in the allowed-keys directory (no
  restart): its records arrive.
- The CLI with a key that is not allowed exits 3 at once and says so; with
  a wrong coordinator key it fails at once too; a plain (non-CURVE) client
  of the RPC or the bus gets nothing and changes nothing.
- A recorder's search port lets in only the coordinator's key.
- Key roles (the role line of a .pub file): a client key (the coordinator's
  own client.key among them) is refused on the bus - nothing reaches the
  database, the refusal is counted and the log says the key is known but
  needs role recorder; a recorder key (keygen --role recorder, or the one a
  recorder makes itself) is refused on the RPC - mscope exits 3; a key
  without a role line gets in on both, named in one warning; the keys the
  code paths make (a recorder's curve.pub, client.key) work where they
  belong.
- Bad key files: a secret key readable by others, a missing coordinator key,
  a .pub given as a pair - each a clear error at start.
- A captured bus stream (tcpdump on loopback) holds no plaintext flow fields;
  the same capture of an --insecure cluster does (so the check can fail).
"""
import os
import shutil
import subprocess
import time

import cluster
import harness as h
from cluster import Coordinator, load_pb

try:
    import zmq
except ImportError:
    h.fail("python3-zmq is not installed (scripts/deps.sh installs it)")

SECRET_NODE = "node-name-that-must-not-be-seen"


def flows_of(co, node):
    return int(co.sql(f"SELECT count(*) FROM flows WHERE node = '{node}'")[0][0])


def recorder_import(pcap, node, *args):
    return h.run([h.RECORDER, "--read", pcap, "--node-id", node, *args], check_rc=False)


def test_recorder_refused_then_allowed(co, d, pcap):
    rd = os.path.join(d, "intruder")
    os.makedirs(rd)
    h.run([cluster.CLI, "keygen", "--role", "recorder", os.path.join(rd, "curve")])
    shutil.copy(os.path.join(co.dir, "curve.pub"), os.path.join(rd, "coordinator.pub"))
    refused0 = co.stats()["bus_refused"]
    batches0 = co.stats()["batches"]
    args = ["--coordinator", f"tcp://127.0.0.1:{co.port}", "--key-file",
            os.path.join(rd, "curve.key"), "--coordinator-key", os.path.join(rd, "coordinator.pub")]
    took = time.monotonic()
    p = recorder_import(pcap, "intruder", *args)
    took = time.monotonic() - took
    log = p.stderr.decode(errors="replace")
    h.check("refused our key" in log, f"the recorder does not say its key was refused:\n{log}")
    # Refused is final for an import: no 5 s wait for a subscriber, nor 5 s
    # more for its records at the end.
    h.check(took < 4.5 and "not published" in log,
            f"a refused import took {took:.1f} s or does not say its records stay unpublished:\n{log}")
    h.check(h.wait_for(lambda: co.stats()["bus_refused"] > refused0, 5),
            f"refusal not counted: {co.stats()}")
    time.sleep(1)
    h.check(flows_of(co, "intruder") == 0 and co.stats()["batches"] == batches0,
            f"records of a refused key reached the coordinator: {co.stats()}")
    h.check("bus: refused a peer" in co.log_text() and "key not allowed" in co.log_text(),
            "the coordinator does not log the refusal")
    print(f"ok  a recorder with an unknown key: refused ({co.stats()['bus_refused'] - refused0} "
          f"handshakes counted), nothing written, both logs say so; the import ended in {took:.1f} s")

    # Allowed now, without a restart: the next connection gets in.
    shutil.copy(os.path.join(rd, "curve.pub"), os.path.join(co.dir, "allowed-keys", "intruder.pub"))
    p = recorder_import(pcap, "intruder", *args)
    h.check(p.returncode == 0, f"allowed recorder failed: {p.stderr.decode(errors='replace')}")
    h.check(h.wait_for(lambda: flows_of(co, "intruder") > 0, 10),
            f"the allowed recorder's records did not arrive: {co.stats()}")
    print(f"ok  its key added to allowed-keys (no restart): {flows_of(co, 'intruder')} flows written")


def test_cli(co, d):
    other = os.path.join(d, "stranger")
    h.run([cluster.CLI, "keygen", "--role", "client", other])
    r0 = co.stats()["rpc_refused"]
    t0 = time.monotonic()
    p = h.run(co.cli("--key-file", other + ".key", "--timeout", "20s", "nodes"), check_rc=False)
    took = time.monotonic() - t0
    h.check(p.returncode == 3 and b"refused our key" in p.stderr,
            f"CLI with an unknown key: exit {p.returncode} {p.stderr!r}")
    h.check(took < 15, f"the refusal took {took:.1f} s (should not wait for --timeout)")
    h.check(h.wait_for(lambda: co.stats()["rpc_refused"] > r0, 5), "RPC refusal not counted")
    p = h.run(co.cli("--key-file", other + ".key", "search", "--from", "0", "-q", "-w",
                     os.path.join(d, "x.pcap"), "tcp"), check_rc=False)
    h.check(p.returncode == 3 and b"refused our key" in p.stderr,
            f"search with an unknown key: exit {p.returncode} {p.stderr!r}")
    # The coordinator's key given as the wrong one (ours): the handshake fails.
    p = h.run(co.cli("--coordinator-key", other + ".pub", "--timeout", "20s", "nodes"),
              check_rc=False)
    h.check(p.returncode == 3 and b"handshake failed" in p.stderr,
            f"CLI with a wrong coordinator key: exit {p.returncode} {p.stderr!r}")
    # A plain (--insecure) CLI against this CURVE coordinator: no handshake
    # can succeed; said at once, naming --insecure, not after --timeout.
    plain = [cluster.CLI, "--coordinator", co.rpc, "--token-file",
             os.path.join(co.dir, "rpc.token"), "--insecure", "--timeout", "20s"]
    for cmd in (["nodes"], ["search", "--from", "0", "-q", "-w", os.path.join(d, "x.pcap"), "tcp"]):
        t0 = time.monotonic()
        p = h.run(plain + cmd, check_rc=False)
        took = time.monotonic() - t0
        h.check(p.returncode == 3 and b"handshake failed" in p.stderr and b"--insecure" in p.stderr,
                f"--insecure {cmd[0]} against CURVE: exit {p.returncode} {p.stderr!r}")
        h.check(took < 15, f"--insecure {cmd[0]} against CURVE took {took:.1f} s (not --timeout)")
    # A secret key readable by others, a .pub as a pair, no key at all.
    loose = os.path.join(d, "loose")
    h.run([cluster.CLI, "keygen", "--role", "client", loose])
    os.chmod(loose + ".key", 0o644)
    for key, says in ((loose + ".key", b"readable by others"), (other + ".pub", b"no secret-key"),
                      (os.path.join(d, "nothing.key"), b"No such file")):
        p = h.run(co.cli("--key-file", key, "nodes"), check_rc=False)
        h.check(p.returncode == 2 and says in p.stderr, f"--key-file {key}: {p.returncode} {p.stderr!r}")
    h.check(h.run(co.cli("nodes")).returncode == 0, "the allowed CLI fails")
    print("ok  CLI: unknown key exit 3 at once, wrong server key exit 3, --insecure against CURVE "
          "exit 3 at once, bad key files exit 2 with the reason; the allowed key works")


def logged_while_trying(co, sock_type, endpoint, key_file, says, timeout=15):
    """Connect a CURVE client with key_file to endpoint again and again
    (libzmq does not soon retry a refused handshake by itself) until the
    coordinator's log holds says: refusals are logged at most every 10 s per
    socket, and an earlier part of this test may have just been logged."""
    ctx = zmq.Context()

    def attempt():
        s = co.curve(ctx.socket(sock_type), key_file)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        time.sleep(0.5)
        s.close()
        return says in co.log_text()

    try:
        return h.wait_for(attempt, timeout, 0)
    finally:
        ctx.term()


def test_roles_bus(co, d, pcap):
    """Client keys are refused on the bus."""
    # The coordinator's own client.key: it says role = client.
    client_pub = cluster.read_key(os.path.join(co.dir, "allowed-keys", "client.pub"))
    h.check(client_pub.get("role") == "client", f"allowed-keys/client.pub: {client_pub}")
    # And one from mscope keygen --role client, allowed.
    ck = os.path.join(d, "analyst")
    p = h.run([cluster.CLI, "keygen", "--role", "client", ck])
    h.check(b"role client" in p.stdout, f"keygen output: {p.stdout!r}")
    shutil.copy(ck + ".pub", os.path.join(co.dir, "allowed-keys", "analyst.pub"))
    h.check(h.run(co.cli("--key-file", ck + ".key", "nodes")).returncode == 0,
            "a client-role key cannot use the RPC")
    for key, node in ((os.path.join(co.dir, "client.key"), "as-local-cli"), (ck + ".key", "as-analyst")):
        refused0, batches0 = co.stats()["bus_refused"], co.stats()["batches"]
        p = recorder_import(pcap, node, "--coordinator", f"tcp://127.0.0.1:{co.port}", "--key-file",
                            key, "--coordinator-key", os.path.join(co.dir, "curve.pub"))
        log = p.stderr.decode(errors="replace")
        h.check("refused our key" in log, f"a recorder with a client key is not told:\n{log}")
        h.check(h.wait_for(lambda: co.stats()["bus_refused"] > refused0, 5),
                f"client key on the bus: refusal not counted: {co.stats()}")
        time.sleep(1)
        h.check(flows_of(co, node) == 0 and co.stats()["batches"] == batches0,
                f"records published with a client key reached the coordinator: {co.stats()}")
    # flowgen with the same key: nothing taken either.
    b0 = co.stats()["batches"]
    p = h.run([h.binary("MSCOPE_FLOWGEN", "flowgen"), "--to", f"tcp://127.0.0.1:{co.port}", "--key-file", ck + ".key", "--server-key",
               os.path.join(co.dir, "curve.pub"), "--records", "50", "--node", "fg-client"],
              check_rc=False)
    h.check(p.returncode != 0 and flows_of(co, "fg-client") == 0 and co.stats()["batches"] == b0,
            f"flowgen with a client key: exit {p.returncode}, {co.stats()}")
    # The first of them was logged (the bus's last logged refusal is > 10 s
    # old by now: see logged_while_trying).
    says = ("bus: refused a peer at 127.0.0.1 (key known as client.pub but not allowed on this "
            "socket: it would need role = recorder, its file says role = client")
    h.check(logged_while_trying(co, zmq.PUB, f"tcp://127.0.0.1:{co.port}",
                                os.path.join(co.dir, "client.key"), says),
            f"the coordinator does not log why a client key is refused on the bus:\n"
            f"{co.log_text()[-3000:]}")
    print("ok  client keys (client.key, keygen --role client) on the bus: refused, counted, "
          "nothing written; the log names the file and the role needed")


def test_roles_rpc(co, d, pcap):
    """Recorder keys are refused on the RPC; a recorder's own key says so."""
    # A recorder's key as the recorder makes it (its data directory): role recorder.
    rd = os.path.join(d, "selfmade")
    os.makedirs(rd)
    shutil.copy(os.path.join(co.dir, "curve.pub"), os.path.join(rd, "coordinator.pub"))
    # (Not allowed yet: refused; the key is made all the same.)
    h.run([h.RECORDER, "--data-dir", rd, "--read", pcap, "--min-free", "0", "--node-id", "selfmade",
           "--coordinator", f"tcp://127.0.0.1:{co.port}"], check_rc=False)
    made = cluster.read_key(os.path.join(rd, "curve.pub"))
    h.check(made.get("role") == "recorder", f"a recorder's own curve.pub: {made}")
    shutil.copy(os.path.join(rd, "curve.pub"), os.path.join(co.dir, "allowed-keys", "selfmade.pub"))
    p = recorder_import(pcap, "selfmade2", "--coordinator", f"tcp://127.0.0.1:{co.port}",
                        "--key-file", os.path.join(rd, "curve.key"), "--coordinator-key",
                        os.path.join(rd, "coordinator.pub"))
    h.check(p.returncode == 0 and h.wait_for(lambda: flows_of(co, "selfmade2") > 0, 10),
            f"a recorder's own key, allowed, does not publish: {p.stderr.decode(errors='replace')}")
    # ... and keygen --role recorder, as the AWS recorders' shared pair is made.
    rk = os.path.join(d, "recorders")
    h.run([cluster.CLI, "keygen", "--role", "recorder", rk])
    shutil.copy(rk + ".pub", os.path.join(co.dir, "allowed-keys", "recorders.pub"))
    for key in (os.path.join(rd, "curve.key"), rk + ".key"):
        r0 = co.stats()["rpc_refused"]
        for args in (("nodes",), ("search", "--from", "0", "-q", "-w", os.path.join(d, "r.pcap"), "tcp"),
                     ("flows", "--from", "0")):
            p = h.run(co.cli("--key-file", key, "--timeout", "20s", *args), check_rc=False)
            h.check(p.returncode == 3 and b"refused our key" in p.stderr and b"recorder key" in p.stderr,
                    f"mscope {args[0]} with a recorder key: exit {p.returncode} {p.stderr!r}")
        h.check(h.wait_for(lambda: co.stats()["rpc_refused"] >= r0 + 3, 5),
                f"recorder key on the RPC: refusals not counted: {co.stats()}")
    # The first of them was logged (the RPC's last logged refusal, test_cli's,
    # is > 10 s old by now).
    says = ("rpc: refused a peer at 127.0.0.1 (key known as selfmade.pub but not allowed on this "
            "socket: it would need role = client, its file says role = recorder")
    h.check(logged_while_trying(co, zmq.DEALER, co.rpc, os.path.join(rd, "curve.key"), says),
            f"the coordinator does not log why a recorder key is refused on the RPC:\n"
            f"{co.log_text()[-3000:]}")
    print("ok  recorder keys (a recorder's own curve.pub, keygen --role recorder) publish, and on "
          "the RPC are refused: mscope exits 3 saying so, counted, logged with the role needed")


def test_roleless(co, d, pcap):
    """A key file without a role line: let in on both, one warning."""
    old = os.path.join(d, "oldkey")
    p = h.run([cluster.CLI, "keygen", "--role", "none", old])
    h.check(b"role none" in p.stdout, f"keygen --role none: {p.stdout!r}")
    h.check("role" not in cluster.read_key(old + ".pub"), "keygen --role none wrote a role line")
    shutil.copy(old + ".pub", os.path.join(co.dir, "allowed-keys", "legacy.pub"))
    key = cluster.read_key(old + ".pub")["public-key"]
    for i in range(2):
        p = recorder_import(pcap, f"legacy{i}", "--coordinator", f"tcp://127.0.0.1:{co.port}",
                            "--key-file", old + ".key", "--coordinator-key",
                            os.path.join(co.dir, "curve.pub"))
        h.check(p.returncode == 0 and h.wait_for(lambda: flows_of(co, f"legacy{i}") > 0, 10),
                f"a key without a role does not publish: {p.stderr.decode(errors='replace')}")
        p = h.run(co.cli("--key-file", old + ".key", "nodes"), check_rc=False)
        h.check(p.returncode == 0, f"a key without a role cannot use the RPC: {p.stderr!r}")
    warnings = [line for line in co.log_text().splitlines() if "has no role line" in line]
    mine = [line for line in warnings if key in line]
    h.check(len(mine) == 1 and "legacy.pub" in mine[0] and "role = recorder" in mine[0],
            f"want one warning naming legacy.pub, got: {mine}")
    print(f"ok  a key without a role line: let in on the bus and the RPC (twice each), one warning: "
          f"{mine[0].split(': ', 1)[-1][:100]}...")


def test_plain_clients(co, pb):
    """Clients without CURVE get no answer and change nothing."""
    ctx = zmq.Context()
    token = open(os.path.join(co.dir, "rpc.token")).read().strip()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(co.rpc)
    s.send(pb.Request(id=1, token=token, list_nodes=pb.ListNodes()).SerializeToString())
    h.check(not s.poll(2000), "a plain RPC client got an answer")
    s.close()
    b0 = co.stats()["batches"]
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{co.port}")
    time.sleep(0.5)
    for seq in range(1, 20):
        pub.send_multipart([b"flow", pb.FlowBatch(node="plain", start_ns=1, seq=seq).SerializeToString()])
    time.sleep(1)
    pub.close()
    ctx.term()
    h.check(co.stats()["batches"] == b0, f"a plain publisher's batches were taken: {co.stats()}")
    print("ok  plain ZeroMQ clients: no RPC answer, no batch taken")


def test_search_port(co, d, rec, rec_dir, pb):
    """Only the coordinator's key may search a recorder."""
    ctx = zmq.Context()
    token = open(os.path.join(co.dir, "search.token")).read().strip()
    other = os.path.join(d, "searcher")
    h.run([cluster.CLI, "keygen", "--role", "client", other])

    def ask(key_file):
        s = co.curve(ctx.socket(zmq.DEALER), key_file, os.path.join(rec_dir, "curve.pub"))
        s.setsockopt(zmq.LINGER, 0)
        s.connect(rec.endpoint)
        req = pb.NodeSearchRequest(id=7, token=token)
        req.start.CopyFrom(pb.SearchQuery(filter="tcp", credit=1))
        s.send(req.SerializeToString())
        got = s.poll(3000)
        s.close()
        return got

    h.check(not ask(other + ".key"), "a stranger's key searched a recorder")
    h.check(h.wait_for(lambda: rec.stats()["search"]["refused_peers"] >= 1, 5),
            f"the recorder did not count the refusal: {rec.stats()['search']}")
    h.check(ask(os.path.join(co.dir, "curve.key")), "the coordinator's key got no answer")
    ctx.term()
    print("ok  recorder search port: a stranger's key refused (counted), the coordinator's answered")


def test_start_errors(d, pcap, co):
    bare = os.path.join(d, "bare")
    p = h.run([h.RECORDER, "--data-dir", bare, "--read", pcap, "--coordinator",
               f"tcp://127.0.0.1:{co.port}"], check_rc=False)
    h.check(p.returncode != 0 and b"coordinator.pub" in p.stderr and b"--insecure" in p.stderr,
            f"recorder without the coordinator's key: {p.returncode} {p.stderr!r}")
    p = h.run([h.RECORDER, "--read", pcap, "--flows-json", os.devnull, "--coordinator",
               f"tcp://127.0.0.1:{co.port}"], check_rc=False)
    h.check(p.returncode != 0 and b"--key-file" in p.stderr,
            f"import without a data dir or key: {p.returncode} {p.stderr!r}")
    print("ok  recorder start errors name the missing key and the way out")


def capture_bus(d, port, name, action):
    """tcpdump on loopback of the bus port while action() runs; the bytes."""
    out = os.path.join(d, f"{name}.pcap")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", out, f"tcp port {port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)
    try:
        action()
        time.sleep(1)
    finally:
        td.terminate()
        td.wait(10)
    return open(out, "rb").read()


def test_wire(d, pcap, co):
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        print("skip  bus capture (needs root and tcpdump)")
        return
    enrolled = co.enroll(os.path.join(d, "wire"), "wire")
    js = os.path.join(d, "wire.json")
    secure = capture_bus(d, co.port, "secure", lambda: h.run(
        [h.RECORDER, "--read", pcap, "--node-id", SECRET_NODE, *enrolled, "--flows-json", js]))
    h.check(h.wait_for(lambda: flows_of(co, SECRET_NODE) > 0, 10), "the wire test's flows missing")
    h.check(len(secure) > 10000 and SECRET_NODE.encode() not in secure,
            f"the CURVE bus capture ({len(secure)} bytes) shows the node name in plaintext")
    # The server addresses of the flows, as the protobuf carries them.
    import json
    ips = {json.loads(line)["server"]["ip"] for line in open(js)}
    raw = [bytes(map(int, ip.split("."))) for ip in ips if "." in ip]
    seen = sum(1 for b in raw if b in secure)
    h.check(seen <= len(raw) // 10, f"{seen} of {len(raw)} server addresses visible on the wire")
    # The control: an --insecure coordinator's bus carries them in clear.
    plain_dir = os.path.join(d, "plain")
    os.makedirs(plain_dir)
    pco = Coordinator(plain_dir, extra=["--insecure", "--pg-port", str(cluster.PGPORT + 1)])
    try:
        plain = capture_bus(d, pco.port, "plain", lambda: h.run(
            [h.RECORDER, "--read", pcap, "--node-id", SECRET_NODE, "--insecure", "--coordinator",
             f"tcp://127.0.0.1:{pco.port}"]))
        h.check(SECRET_NODE.encode() in plain, "the control failed: the plain bus hides the name?")
        h.check("--insecure" in pco.log_text(), "an --insecure coordinator does not warn")
        # Plain clients watch their connections too: a CURVE CLI against the
        # plain coordinator, and a plain one where nothing listens, are told
        # at once, not after --timeout.
        for args, rc, says in (
                (["--coordinator", pco.rpc, *co.keys()], 3, b"handshake failed"),
                (["--coordinator", f"tcp://127.0.0.1:{h.free_tcp_port()}", "--insecure"], 1,
                 b"cannot connect")):
            t0 = time.monotonic()
            p = h.run([cluster.CLI, "--token-file", os.path.join(co.dir, "rpc.token"), *args,
                       "--timeout", "20s", "nodes"], check_rc=False)
            took = time.monotonic() - t0
            h.check(p.returncode == rc and says in p.stderr and took < 15,
                    f"{args}: exit {p.returncode} after {took:.1f} s: {p.stderr!r}")
    finally:
        pco.stop()
    print(f"ok  bus capture: CURVE hides node names and addresses ({seen}/{len(raw)} addresses "
          f"seen by chance); the same capture of an --insecure bus shows them; CURVE against "
          f"plain and plain against nothing said at once")


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    pcap = h.gen(os.path.join(d, "in.pcap"), "--packets", 20000, "--flows", 200, "--seed", 71)
    co = Coordinator(d)
    rec = None
    try:
        pb = load_pb(d)
        test_recorder_refused_then_allowed(co, d, pcap)
        test_cli(co, d)
        test_plain_clients(co, pb)
        rec_dir = os.path.join(d, "rec")
        h.import_file(rec_dir, pcap)
        search_ep = f"tcp://127.0.0.1:{h.free_tcp_port()}"
        rec = h.Daemon(rec_dir, "--node-id", "rec", *co.enroll(rec_dir, "rec"), "--search", search_ep)
        rec.endpoint = search_ep
        h.check(h.wait_for(lambda: co.stats()["nodes"] >= 2, 15), "recorder not known")
        time.sleep(1.5)  # its heartbeat names its search service
        p = h.run(co.cli("search", "--nodes", "rec", "--from", "0", "-q", "-w",
                         os.path.join(d, "all.pcap"), "tcp"))
        h.check(p.returncode == 0 and len(h.tcpdump(os.path.join(d, "all.pcap"), "")) ==
                len(h.tcpdump(pcap, "tcp")), "an encrypted search does not return every TCP packet")
        print("ok  an encrypted distributed search returns what tcpdump finds")
        test_search_port(co, d, rec, rec_dir, pb)
        test_roles_bus(co, d, pcap)
        test_roles_rpc(co, d, pcap)
        test_roleless(co, d, pcap)
        test_start_errors(d, pcap, co)
        test_wire(d, pcap, co)
    finally:
        if rec:
            rec.stop()
        rc = co.stop()
    h.check(rc == 0, f"coordinator exit {rc}")


if __name__ == "__main__":
    main()
