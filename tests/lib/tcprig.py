"""Real Linux TCP between two network namespaces, over a path with delay,
loss and reordering, captured with tcpdump: the traffic for the TCP analytics
oracle tests (tests/integration/test_tcp_analytics.py).

Topology (one per scenario, built and torn down by Rig):

    namespace C (client)                             namespace S (server)
    10.203.0.1  TAP "<tag>c"  <== tapdelay ==>  TAP "<tag>s"  10.203.0.2
        ^ tcpdump here (the client-side interface)

tapdelay (tests/tools/tapdelay.c) is a userspace program that owns both TAP
devices and forwards every Ethernet frame after a one-way delay, dropping or
holding back (reordering) a seeded random share of them; the kernels on both
sides are untouched, so the TCP is the real one.  Random loss can also come
from an nftables `numgen random mod 100 < K drop` rule at the prerouting
hook of both namespaces (the test kernel has no netem).  The two kinds of loss
differ in what the capture sees: nftables drops after tcpdump saw the frame
(both directions), tapdelay drops on the wire, so a lost server segment is a
hole in the capture (Wireshark's "previous segment not captured").

Offloads are off on both TAP devices and neighbours are static, so the
capture holds wire-sized frames and TCP only (no ARP, no IPv6).

Each scenario returns the path of one pcap (nanosecond timestamps):

    clean          ~20 ms RTT (10 ms each way); 4 KB request, 256 KB response
    loss1          same path, 1% random loss each way (nftables, after the
                   capture point); 128 KB request, 512 KB response
    loss5_reorder  5% loss each way and 5% of frames held back 4 ms (tapdelay,
                   seed 5); 64 KB request, 256 KB response
    zerowin        the client's receive buffer is 4 KB and its reader sleeps
                   0.6 s, then sips 1 KB every 60 ms: zero windows, window
                   full, zero-window probes; 48 KB response
    short_conns    100 short request/response connections from 8 threads
                   (replies 100..3000 B; every third one the client closes
                   first), 20 connections to a closed port (RST), 4 aborted by
                   the client with a RST, one idle connection with 1 s TCP
                   keep-alives that lasts 2.5 s

Each takes 1-4 s.  Run one, or all of them into a directory as
tcp_<scenario>.pcap (root needed):

    python3 tcprig.py SCENARIO OUT.pcap [--snaplen N] [--tapdelay PATH]
    python3 tcprig.py all DIR [--snaplen N] [--tapdelay PATH]
  The client and server programs are this same file,
run inside the namespaces as `python3 tcprig.py agent ...`.
"""
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLIENT_IP = "10.203.0.1"
SERVER_IP = "10.203.0.2"
CLIENT_MAC = "02:00:0a:cb:00:01"
SERVER_MAC = "02:00:0a:cb:00:02"
PORT_BULK = 5001
PORT_SHORT = 6000
PORT_CLOSED = 6001

SCENARIOS = ("clean", "loss1", "loss5_reorder", "zerowin", "short_conns")


class RigError(RuntimeError):
    """The rig could not be built or a traffic program failed."""


def find_tapdelay(workdir=None):
    """Path of the tapdelay binary: $MSCOPE_TAPDELAY, the build tree beside
    $MSCOPE_RECORDER or $MSCOPE_BUILD/build, else compiled from source into
    workdir (gcc or cc).  Raises RigError when none of these works."""
    path = os.environ.get("MSCOPE_TAPDELAY")
    if path:
        return path
    cands = []
    rec = os.environ.get("MSCOPE_RECORDER")
    if rec:
        cands.append(os.path.join(os.path.dirname(os.path.abspath(rec)), "tests", "tools",
                                  "tapdelay"))
    build = os.environ.get("MSCOPE_BUILD", os.path.join(ROOT, "build"))
    cands.append(os.path.join(build, "tests", "tools", "tapdelay"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    src = os.path.join(ROOT, "tests", "tools", "tapdelay.c")
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc or not os.path.exists(src):
        raise RigError("tapdelay not built and no C compiler to build it")
    out = os.path.join(workdir or tempfile.mkdtemp(prefix="tapdelay-"), "tapdelay")
    p = subprocess.run([cc, "-std=c11", "-O2", "-D_GNU_SOURCE", "-o", out, src],
                       capture_output=True)
    if p.returncode != 0:
        raise RigError(f"cannot compile {src}: {p.stderr.decode(errors='replace')}")
    return out


def _run(cmd, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, **kw)
    if check and p.returncode != 0:
        raise RigError(f"{' '.join(map(str, cmd))} exited {p.returncode}: "
                       f"{p.stderr.decode(errors='replace').strip()}")
    return p


class Rig:
    """Two namespaces joined through tapdelay, captured on the client side.

    Use as a context manager; everything it started (tapdelay, tcpdump,
    agents, namespaces) is stopped by its own pid or name on exit, also after
    an exception.
    """

    def __init__(self, workdir, tapdelay, delay_ms=10.0, jitter_ms=0.0, reorder_pct=0.0,
                 reorder_gap_ms=4.0, tap_loss_pct=0.0, nft_loss_pct=0, seed=1, snaplen=0,
                 tag=None, capture_filter="tcp"):
        self.workdir = workdir
        self.tapdelay = tapdelay
        self.opts = dict(delay=delay_ms, jitter=jitter_ms, reorder=reorder_pct,
                         reorder_gap=reorder_gap_ms, loss=tap_loss_pct, seed=seed)
        self.nft_loss = int(nft_loss_pct)
        self.snaplen = snaplen
        self.capture_filter = capture_filter
        self.tag = tag or f"tr{os.getpid() % 100000}"
        self.C, self.S = f"{self.tag}C", f"{self.tag}S"
        self.tapc, self.taps = f"{self.tag}c", f"{self.tag}s"
        self.procs = []
        self.td = None
        self.dump = None
        self.pcap = None
        self.namespaces = []

    # ---- plumbing -------------------------------------------------------
    def ns(self, name, *cmd, check=True, timeout=60):
        return _run(["ip", "netns", "exec", name, *map(str, cmd)], check=check, timeout=timeout)

    def popen(self, name, cmd, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", name, *map(str, cmd)], **kw)
        self.procs.append(p)
        return p

    def __enter__(self):
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _setup(self):
        for n in (self.C, self.S):
            _run(["ip", "netns", "add", n])
            self.namespaces.append(n)
            self.ns(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self.ns(n, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            self.ns(n, "ip", "link", "set", "lo", "up")
        o = self.opts
        cmd = [self.tapdelay, "--tap-a", self.tapc, "--netns-a", self.C,
               "--tap-b", self.taps, "--netns-b", self.S,
               "--delay", o["delay"], "--jitter", o["jitter"], "--reorder", o["reorder"],
               "--reorder-gap", o["reorder_gap"], "--loss", o["loss"], "--seed", o["seed"]]
        self.td_log = open(os.path.join(self.workdir, f"tapdelay-{self.tag}.log"), "wb")
        self.td = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE,
                                   stderr=self.td_log)
        r, _, _ = select.select([self.td.stdout], [], [], 10)
        line = self.td.stdout.readline().decode() if r else ""
        if not line.startswith("ready"):
            self.td.wait(5)
            raise RigError(f"tapdelay did not start: {self._td_text()}")
        for n, dev, ip, mac, peer_ip, peer_mac in (
                (self.C, self.tapc, CLIENT_IP, CLIENT_MAC, SERVER_IP, SERVER_MAC),
                (self.S, self.taps, SERVER_IP, SERVER_MAC, CLIENT_IP, CLIENT_MAC)):
            self.ns(n, "ip", "link", "set", dev, "address", mac)
            # Wire-sized frames: without this tcpdump may see GSO super-packets
            # and checksums still to be filled in.  Fixed features refuse; fine.
            self.ns(n, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                    "tx", "off", check=False)
            self.ns(n, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            self.ns(n, "ip", "link", "set", dev, "up")
            self.ns(n, "ip", "neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", dev,
                    "nud", "permanent")
        if self.nft_loss:
            rules = ("table inet mscope_loss {\n"
                     "  chain pre { type filter hook prerouting priority -300;\n"
                     f"    meta l4proto tcp numgen random mod 100 < {self.nft_loss} drop\n"
                     "  }\n}\n")
            for n in (self.C, self.S):
                self.nft(n, rules)

    def nft(self, name, rules):
        """Loads an nftables ruleset (text for `nft -f -`) into namespace
        `name`; raises RigError with nft's message if it refuses."""
        p = subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"],
                           input=rules.encode(), capture_output=True)
        if p.returncode != 0:
            raise RigError(f"nft rules in {name}: {p.stderr.decode(errors='replace')}")

    def _td_text(self):
        self.td_log.flush()
        with open(self.td_log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def start_capture(self, pcap):
        """tcpdump on the client-side TAP, nanosecond pcap, of what the
        capture filter (default "tcp") lets through; returns once it is
        listening."""
        self.pcap = pcap
        self.dump_log = os.path.join(self.workdir, f"tcpdump-{self.tag}.log")
        log = open(self.dump_log, "wb")
        # --immediate-mode: otherwise frames waiting in libpcap's TPACKET_V3 block
        # (retired every second) are lost when tcpdump is stopped.
        # -Z root: keep the file ours (tcpdump otherwise drops to its own user).
        cmd = ["tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-i", self.tapc,
               "--time-stamp-precision=nano", "-s", str(self.snaplen or 262144), "-w", pcap,
               self.capture_filter]
        self.dump = self.popen(self.C, cmd, stdout=log, stderr=log)
        log.close()
        end = time.time() + 10
        while time.time() < end:
            with open(self.dump_log, "rb") as f:
                if b"listening on" in f.read():
                    time.sleep(0.1)
                    return
            if self.dump.poll() is not None:
                break
            time.sleep(0.02)
        raise RigError(f"tcpdump did not start: {open(self.dump_log).read()}")

    def stop_capture(self, settle=0.3):
        """Waits `settle` seconds for frames in flight, then stops tcpdump."""
        time.sleep(settle)
        if self.dump and self.dump.poll() is None:
            self.dump.send_signal(signal.SIGINT)
            try:
                self.dump.wait(10)
            except subprocess.TimeoutExpired:
                self.dump.kill()
                self.dump.wait()
        with open(self.dump_log) as f:
            self.capture_summary = f.read().strip()
        return self.pcap

    def agent(self, name, *args, wait_ready=False, script=None):
        """Starts `tcprig.py agent ARGS` (or `SCRIPT agent ARGS`: another rig
        module with agents of its own) in namespace `name`; with wait_ready,
        returns once it printed its "ready" line."""
        p = self.popen(name, [sys.executable, script or os.path.abspath(__file__), "agent",
                              *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if wait_ready:
            r, _, _ = select.select([p.stdout], [], [], 10)
            line = p.stdout.readline().decode() if r else ""
            if not line.startswith("ready"):
                p.kill()
                _, err = p.communicate()
                raise RigError(f"agent {args} did not start: {line} {err.decode(errors='replace')}")
        return p

    def finish(self, p, timeout=60):
        """Waits for an agent; raises RigError with its stderr if it failed."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise RigError(f"agent {p.args[6:]} timed out: {err.decode(errors='replace')}")
        if p.returncode != 0:
            raise RigError(f"agent {p.args[6:]} exited {p.returncode}: "
                           f"{err.decode(errors='replace')}")
        return out.decode()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        if self.td is not None and self.td.poll() is None:
            self.td.terminate()
            try:
                self.td.wait(10)
            except subprocess.TimeoutExpired:
                self.td.kill()
                self.td.wait()
        if self.td is not None:
            self.tapdelay_summary = self._td_text().strip()
            self.td.stdout.close()
            self.td_log.close()
            self.td = None
        for n in self.namespaces:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.namespaces = []


# ---- scenarios ------------------------------------------------------------

# name -> (Rig options, request bytes, response bytes, client mode); the
# request goes client -> server before the response, so data flows both ways.
BULK = {
    "clean": ({}, 4096, 256 * 1024, "fast"),
    "loss1": ({"nft_loss_pct": 1}, 128 * 1024, 512 * 1024, "fast"),
    "loss5_reorder": ({"tap_loss_pct": 5, "reorder_pct": 5, "reorder_gap_ms": 4, "seed": 5},
                      64 * 1024, 256 * 1024, "fast"),
    "zerowin": ({}, 4096, 48 * 1024, "slow"),
}


def scenario(name, pcap, tapdelay, workdir, snaplen=0, tag=None):
    """Runs scenario `name` (one of SCENARIOS) and writes its capture to
    `pcap`.  Returns a one-line summary of what the agents, tcpdump and
    tapdelay reported."""
    kw = dict(workdir=workdir, tapdelay=tapdelay, snaplen=snaplen, tag=tag, delay_ms=10)
    if name in BULK:
        opts, request, size, mode = BULK[name]
        with Rig(**opts, **kw) as rig:
            rig.start_capture(pcap)
            srv = rig.agent(rig.S, "bulk-server", SERVER_IP, PORT_BULK, request, size, 5,
                            wait_ready=True)
            cli = rig.agent(rig.C, "bulk-client", SERVER_IP, PORT_BULK, request, size, mode)
            out = rig.finish(cli) + rig.finish(srv)
            rig.stop_capture()
    elif name == "short_conns":
        with Rig(**kw) as rig:
            rig.start_capture(pcap)
            srv = rig.agent(rig.S, "short-server", SERVER_IP, PORT_SHORT, wait_ready=True)
            cli = rig.agent(rig.C, "short-clients", SERVER_IP, PORT_SHORT, PORT_CLOSED,
                            100, 20, 4)
            out = rig.finish(cli)
            srv.send_signal(signal.SIGTERM)
            out += rig.finish(srv)
            rig.stop_capture()
    else:
        raise ValueError(f"unknown scenario {name}; one of {', '.join(SCENARIOS)}")
    dumped = rig.capture_summary.splitlines()[-1:] if rig.capture_summary else []
    return "; ".join(out.strip().splitlines() + dumped +
                     getattr(rig, "tapdelay_summary", "").splitlines())


# ---- agents: the programs that run inside the namespaces ------------------

def _recv_exact(s, n):
    got = 0
    while got < n:
        x = s.recv(min(65536, n - got))
        if not x:
            break
        got += len(x)
    return got


def _agent_bulk_server(ip, port, request, size, think_ms):
    """One connection: read `request` bytes, think, send `size` bytes, close
    after the client's FIN (so the client closes first)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, int(port)))
    ls.listen(8)
    print("ready", flush=True)
    c, _ = ls.accept()
    got = _recv_exact(c, int(request))
    time.sleep(float(think_ms) / 1000)
    c.sendall(b"r" * int(size))
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()
    ls.close()
    print(f"server: request {got} B, sent {size} B")


def _agent_bulk_client(ip, port, request, size, mode="fast"):
    """Send the request, read the answer to EOF.  mode "slow": a tiny receive
    buffer and a reader that sleeps first and then sips, so the window closes
    (zero window, window full, zero-window probes) before the rest is read."""
    c = socket.socket()
    if mode == "slow":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(30)
    c.connect((ip, int(port)))
    c.sendall(b"q" * int(request))
    got = 0
    if mode == "slow":
        time.sleep(0.6)            # window fills, stays shut: probes
        for _ in range(12):        # sip 1 KB every 60 ms: window opens and shuts
            x = c.recv(1024)
            got += len(x)
            time.sleep(0.06)
    while True:
        x = c.recv(65536)
        if not x:
            break
        got += len(x)
    c.close()
    if got != int(size):
        raise SystemExit(f"client: got {got} of {size} bytes")
    print(f"client: got {got} B")


def _agent_short_server(ip, port):
    """Answers each connection with a reply whose size the request names;
    "close:client" waits for the client to close first; "idle:S" answers
    after S seconds (keep-alive).  Threads, until SIGTERM."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, int(port)))
    ls.listen(256)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())

    def serve(c):
        try:
            req = c.recv(1024).decode()
            verb, _, arg = req.partition(":")
            if verb == "idle":
                time.sleep(float(arg))
                c.sendall(b"k" * 100)
            elif verb in ("get", "getc"):
                c.sendall(b"s" * int(arg))
                if verb == "getc":   # client closes first
                    while c.recv(4096):
                        pass
            c.close()
        except OSError:
            c.close()

    print("ready", flush=True)
    ls.settimeout(0.1)
    n = 0
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        n += 1
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    ls.close()
    print(f"server: {n} connections")


def _agent_short_clients(ip, port, closed_port, n_ok, n_refused, n_abort):
    """n_ok request/response connections (8 threads; reply sizes 100..3000 B
    from a fixed seed; every third one the client closes first), n_refused
    connections to a closed port (RST), n_abort connections the client resets
    (SO_LINGER 0) after the reply, and one idle connection with 1 s
    keep-alives that lasts 2.5 s."""
    n_ok, n_refused, n_abort = int(n_ok), int(n_refused), int(n_abort)
    rnd = random.Random(7)
    jobs = [("ok", rnd.randrange(100, 3000), i % 3 == 0) for i in range(n_ok)]
    jobs += [("refused", 0, False)] * n_refused
    jobs += [("abort", rnd.randrange(100, 3000), False) for _ in range(n_abort)]
    rnd.shuffle(jobs)
    lock = threading.Lock()
    results = {"ok": 0, "refused": 0, "abort": 0, "errors": []}

    def keepalive():
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        c.settimeout(10)
        c.connect((ip, int(port)))
        c.sendall(b"idle:2.5")
        _recv_exact(c, 100)
        c.close()

    def worker():
        while True:
            with lock:
                if not jobs:
                    return
                kind, size, client_first = jobs.pop()
            try:
                c = socket.socket()
                c.settimeout(10)
                if kind == "refused":
                    try:
                        c.connect((ip, int(closed_port)))
                        raise RuntimeError("connection to the closed port succeeded")
                    except ConnectionRefusedError:
                        c.close()
                        with lock:
                            results["refused"] += 1
                        continue
                c.connect((ip, int(port)))
                c.sendall(f"{'getc' if client_first else 'get'}:{size}".encode())
                got = _recv_exact(c, size)
                if got != size:
                    raise RuntimeError(f"got {got} of {size}")
                if kind == "abort":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                with lock:
                    results[kind] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    results["errors"].append(repr(e))

    ka = threading.Thread(target=keepalive)
    ka.start()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ka.join()
    if results["errors"]:
        raise SystemExit(f"clients: {len(results['errors'])} errors: {results['errors'][:3]}")
    print(f"clients: {results['ok']} ok, {results['refused']} refused, "
          f"{results['abort']} aborted, 1 keep-alive")


AGENTS = {
    "bulk-server": _agent_bulk_server,
    "bulk-client": _agent_bulk_client,
    "short-server": _agent_short_server,
    "short-clients": _agent_short_clients,
}


def main(argv):
    if len(argv) >= 2 and argv[1] == "agent":
        AGENTS[argv[2]](*argv[3:])
        return 0
    import argparse
    ap = argparse.ArgumentParser(description="Run TCP scenarios between two namespaces "
                                 "and capture them (root needed).")
    ap.add_argument("scenario", choices=SCENARIOS + ("all",))
    ap.add_argument("out", help="pcap to write (a directory with 'all')")
    ap.add_argument("--snaplen", type=int, default=0, help="tcpdump -s (0: whole frames)")
    ap.add_argument("--tapdelay", help="tapdelay binary (default: found or compiled)")
    a = ap.parse_args(argv[1:])
    work = tempfile.mkdtemp(prefix="tcprig-")
    try:
        td = a.tapdelay or find_tapdelay(work)
        if a.scenario == "all":
            os.makedirs(a.out, exist_ok=True)
            for name in SCENARIOS:
                out = os.path.abspath(os.path.join(a.out, f"tcp_{name}.pcap"))
                print(f"{name}: {scenario(name, out, td, work, snaplen=a.snaplen)}")
        else:
            print(scenario(a.scenario, os.path.abspath(a.out), td, work, snaplen=a.snaplen))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
