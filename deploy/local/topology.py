#!/usr/bin/env python3
"""The AWS topology of deploy/terraform on one machine, with network namespaces
(root only). See deploy/local/README.md.

  topology.py up [--dir DIR] [--recorders N]   build it, start everything, print how to look around
  topology.py status [--dir DIR]               what runs, the NLB's targets, where each instance lands
  topology.py traffic [--dir DIR] [--count N]  run the traffic generator once more
  topology.py add-recorder [--dir DIR]         one more recorder, enrolled, behind the NLB
  topology.py down [--dir DIR]                 stop what up started (by pid) and remove its namespaces
  topology.py demo [--dir DIR]                 up, traffic, where it landed, flows, a search (make demo as root)

DIR (default /tmp/mscope-local) holds every file, logs and topology.json, the
record of what was made, which `down` reads - also after a failed `up`.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

DATA_NET = "10.201.1"      # the VPC subnet the instances talk on (mirrored)
MIRROR_NET = "10.201.2"    # where the NLB, recorders, coordinator, broker and tool live
USERS_IP = f"{DATA_NET}.5"
NLB_IP = f"{MIRROR_NET}.100"
COORD_IP = f"{MIRROR_NET}.10"
BROKER_IP = f"{MIRROR_NET}.40"
TOOL_IP = f"{MIRROR_NET}.50"
TOOL_VNI = 300
# name, server kind, port; instance i gets DATA_NET.1i and MIRROR_NET.1i,
# mirror session VNI 100+i to the NLB and 200+i to the broker.
INSTANCES = [("i1", "http", 80), ("i2", "tcp", 7000), ("i3", "udp", 5353)]


def rec_ip(k):
    return f"{MIRROR_NET}.{20 + k}"


def binary(env, name, build):
    p = os.environ.get(env)
    if p:
        return p
    for cand in (os.path.join(build, name), os.path.join(build, "tests", "tools", name)):
        if os.path.exists(cand):
            return cand
    raise SystemExit(f"cannot find {name}: set {env} or build into {build}")


def _starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


class Topology:
    def __init__(self, d, build=None, tag=None, drain_time="5s"):
        self.dir = os.path.abspath(d)
        self.state_file = os.path.join(self.dir, "topology.json")
        if os.path.exists(self.state_file):
            self.st = json.load(open(self.state_file))
        else:
            self.st = {"tag": tag or f"msl-{os.getpid()}", "namespaces": [], "procs": {},
                       "recorders": [], "drain_time": drain_time,
                       "build": os.path.abspath(build or os.environ.get("MSCOPE_BUILD",
                                                                        os.path.join(ROOT, "build")))}
        b = self.st["build"]
        self.REC = binary("MSCOPE_RECORDER", "mscope-recorder", b)
        self.COORD = binary("MSCOPE_COORDINATOR", "mscope-coordinator", b)
        self.CLI = binary("MSCOPE_CLI", "mscope", b)
        self.BROKER = binary("MSCOPE_BROKER", "mscope-broker", b)
        # The embedded PostgreSQL's port names its socket (6700-6899: the tests' other ranges are lower).
        self.pgport = 6700 + int("".join(ch for ch in self.tag if ch.isdigit()) or "0") % 200
        self.children = {}

    @property
    def tag(self):
        return self.st["tag"]

    def save(self):
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.st, f, indent=1)
        os.replace(tmp, self.state_file)

    def ns(self, role):
        return f"{self.tag}-{role}"

    # ---- commands --------------------------------------------------------
    def run(self, cmd, check=True, **kw):
        kw.setdefault("capture_output", True)
        p = subprocess.run([str(c) for c in cmd], **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {p.returncode}: "
                               f"{(p.stderr or b'').decode(errors='replace')}")
        return p

    def x(self, role, *cmd, check=True, **kw):
        return self.run(["ip", "netns", "exec", self.ns(role), *cmd], check=check, **kw)

    def nft(self, role, rules):
        self.x(role, "nft", "-f", "-", input=rules.encode())

    def start(self, name, role, cmd, cwd=None):
        """Start cmd in role's namespace, detached, its output in DIR/logs/NAME.log."""
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        log = open(os.path.join(self.dir, "logs", f"{name}.log"), "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *map(str, cmd)],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=cwd)
        self.children[name] = p
        self.st["procs"][name] = {"pid": p.pid, "start": _starttime(p.pid), "ns": role,
                                  "cmd": [str(c) for c in cmd]}
        self.save()
        return p

    def pid(self, name):
        """The pid of a process we started, if it is still that process."""
        pr = self.st["procs"].get(name)
        if pr and pr["start"] and _starttime(pr["pid"]) == pr["start"]:
            return pr["pid"]
        return None

    def alive(self, name):
        p = self.children.get(name)
        if p is not None:
            return p.poll() is None
        return self.pid(name) is not None

    def send(self, name, sig):
        pid = self.pid(name)
        if pid:
            os.kill(pid, sig)

    def wait_gone(self, name, timeout):
        end = time.time() + timeout
        while time.time() < end:
            p = self.children.get(name)
            if p is not None:
                if p.poll() is not None:
                    return True
            elif self.pid(name) is None:
                return True
            time.sleep(0.05)
        return False

    def stop(self, name, sig=signal.SIGTERM, timeout=30):
        if self.alive(name):
            self.send(name, sig)
            if not self.wait_gone(name, timeout):
                self.send(name, signal.SIGKILL)
                self.wait_gone(name, 5)

    def log(self, name):
        try:
            return open(os.path.join(self.dir, "logs", f"{name}.log"), errors="replace").read()
        except OSError:
            return ""

    # ---- building ---------------------------------------------------------
    def netns(self, role):
        n = self.ns(role)
        self.st["namespaces"].append(n)
        self.save()
        self.run(["ip", "netns", "add", n])
        for k in ("all", "default"):
            self.x(role, "sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1")
        self.x(role, "ip", "link", "set", "lo", "up")

    def plain(self, role, dev):
        # No offloads: frames as a wire carries them (see tests/lib/harness.py link_up_plain).
        self.x(role, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
               check=False)
        self.x(role, "ip", "link", "set", dev, "up")

    def attach(self, role, dev, bridge, port, addr, mtu):
        """A veth from role's namespace (dev, addr/24) to a bridge of the VPC."""
        self.run(["ip", "link", "add", dev, "netns", self.ns(role), "type", "veth",
                  "peer", port, "netns", self.ns("vpc")])
        self.x("vpc", "ip", "link", "set", port, "mtu", mtu)
        self.x(role, "ip", "link", "set", dev, "mtu", mtu)
        self.x("vpc", "ip", "link", "set", port, "master", bridge)
        self.plain("vpc", port)
        self.x(role, "ip", "addr", "add", f"{addr}/24", "dev", dev)
        self.plain(role, dev)

    def wait(self, what, pred, timeout, name=None):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return
            if name and not self.alive(name):
                raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}" +
                           (f"; {name} log:\n{self.log(name)[-3000:]}" if name else ""))

    def up(self, recorders=3):
        if os.geteuid() != 0:
            raise SystemExit("topology.py up needs root (network namespaces)")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)  # the embedded PostgreSQL runs as postgres
        self.save()
        try:
            self._up(recorders)
        except BaseException:
            self.down()
            raise

    def _up(self, recorders):
        self.netns("vpc")
        for br in ("bdata", "bmirror"):
            self.x("vpc", "ip", "link", "add", br, "type", "bridge")
            self.x("vpc", "ip", "link", "set", br, "up")
        self.netns("users")
        self.attach("users", "eth0", "bdata", "usersd", USERS_IP, 1500)
        for role, ip, mtu in (("nlb", NLB_IP, 9000), ("coord", COORD_IP, 9000),
                              ("broker", BROKER_IP, 9000), ("tool", TOOL_IP, 9000)):
            self.netns(role)
            self.attach(role, "eth0", "bmirror", f"{role}m", ip, mtu)
        for i, (role, kind, port) in enumerate(INSTANCES, 1):
            self.instance(i, role, kind, port)
        self.tool()
        self.coordinator()
        self.nlb()
        for k in range(1, recorders + 1):
            self.recorder(k)
        self.broker()
        self.wait("the NLB to put every recorder in service",
                  lambda: len(self.nlb_status().get("in_service", [])) == recorders and
                  all(self.nlb_status().get("health", {}).values()), 30, "nlb")
        self.wait("every recorder in mscope nodes",
                  lambda: len(self.nodes()) == recorders, 30, "coordinator")
        self.wait("every recorder's search endpoint",
                  lambda: all(n.get("search_endpoint") for n in self.nodes()), 10)

    def instance(self, i, role, kind, port):
        self.netns(role)
        self.attach(role, "eth0", "bdata", f"{role}d", f"{DATA_NET}.{10 + i}", 1500)
        self.attach(role, "eth1", "bmirror", f"{role}m", f"{MIRROR_NET}.{10 + i}", 9000)
        # Two mirror sessions on eth0: VNI 100+i to the NLB (recorders), 200+i to the broker.
        for dev, vni, remote in (("vxnlb", 100 + i, NLB_IP), ("vxbrk", 200 + i, BROKER_IP)):
            self.x(role, "ip", "link", "add", dev, "type", "vxlan", "id", vni, "dstport", "4789",
                   "remote", remote, "local", f"{MIRROR_NET}.{10 + i}", "dev", "eth1")
            self.x(role, "ip", "link", "set", dev, "up")
        self.nft(role, f"""
table netdev mirror {{
  chain in {{ type filter hook ingress device "eth0" priority 0; dup to "vxnlb"; dup to "vxbrk"; }}
  chain out {{ type filter hook egress device "eth0" priority 0; dup to "vxnlb"; dup to "vxbrk"; }}
}}
""")
        # tcpdump on the mirrored interface: the oracle of what crossed it.
        # --immediate-mode: else frames wait in libpcap's TPACKET_V3 block (retired
        # every second) and a test reading the file right after its traffic
        # misses them (a loaded make check saw 84 of 15 624 bytes).
        os.makedirs(os.path.join(self.dir, role), exist_ok=True)
        self.start(f"tcpdump-{role}", role, ["tcpdump", "-n", "-U", "--immediate-mode", "-s", "0", "-i", "eth0",
                                             "--time-stamp-precision=nano", "-w",
                                             os.path.join(self.dir, role, "eth0.pcap")])
        self.start(f"server-{role}", role, [sys.executable, os.path.join(HERE, "traffic.py"),
                                            "serve", kind, f"{DATA_NET}.{10 + i}", port])
        self.wait(f"tcpdump on {role}",
                  lambda: "listening on" in self.log(f"tcpdump-{role}"), 10, f"tcpdump-{role}")

    def tool(self):
        self.x("tool", "ip", "link", "add", "vxids", "type", "vxlan", "id", TOOL_VNI, "dstport",
               "4789", "local", TOOL_IP, "dev", "eth0", "nolearning")
        self.x("tool", "ip", "link", "set", "vxids", "up")
        os.makedirs(os.path.join(self.dir, "tool"), exist_ok=True)
        self.start("tcpdump-tool", "tool", ["tcpdump", "-n", "-U", "--immediate-mode", "-s", "0", "-i", "vxids",
                                            "--time-stamp-precision=nano", "-w",
                                            os.path.join(self.dir, "tool", "ids.pcap")])
        self.wait("tcpdump in the tool namespace",
                  lambda: "listening on" in self.log("tcpdump-tool"), 10, "tcpdump-tool")

    @property
    def coord_dir(self):
        return os.path.join(self.dir, "coord")

    def coordinator(self):
        self.start("coordinator", "coord", [
            self.COORD, "--data-dir", self.coord_dir, "--bus", f"tcp://{COORD_IP}:5556",
            "--rpc", "tcp://127.0.0.1:5555", "--http", "127.0.0.1:8080",
            "--pg-port", self.pgport, "--stale-after", "3s", "--dead-after", "8s",
            "--search-node-timeout", "3s"])
        self.wait("the coordinator's tokens",
                  lambda: os.path.exists(os.path.join(self.coord_dir, "search.token")) and
                  os.path.exists(os.path.join(self.coord_dir, "stats.json")), 90, "coordinator")
        # DIR/mscope: the CLI in the coordinator's namespace, with its keys.
        w = os.path.join(self.dir, "mscope")
        with open(w, "w") as f:
            f.write("#!/bin/sh\n# mscope for this topology's coordinator (run as root)\nexec " +
                    " ".join(f"'{a}'" for a in self.cli()) + ' "$@"\n')
        os.chmod(w, 0o755)

    def enroll(self, datadir, name):
        """What an operator does for a new recorder (docs/OPERATIONS.md, Keys)."""
        os.makedirs(datadir, exist_ok=True)
        shutil.copy(os.path.join(self.coord_dir, "search.token"), os.path.join(datadir, "search.token"))
        if not os.path.exists(os.path.join(datadir, "curve.key")):
            self.run([self.CLI, "keygen", "--role", "recorder", os.path.join(datadir, "curve")])
        shutil.copy(os.path.join(datadir, "curve.pub"),
                    os.path.join(self.coord_dir, "allowed-keys", f"{name}.pub"))
        shutil.copy(os.path.join(self.coord_dir, "curve.pub"), os.path.join(datadir, "coordinator.pub"))

    def targets_file(self):
        return os.path.join(self.dir, "nlb", "targets.json")

    def write_targets(self):
        t = {"targets": [{"name": f"rec-{k}", "ip": rec_ip(k)} for k in self.st["recorders"]],
             "sources": [f"{MIRROR_NET}.{10 + i}" for i in range(1, len(INSTANCES) + 1)]}
        tmp = self.targets_file() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(t, f)
        os.replace(tmp, self.targets_file())

    def nlb(self):
        os.makedirs(os.path.join(self.dir, "nlb"), exist_ok=True)
        for k, v in (("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.send_redirects", 0),
                     ("net.ipv4.conf.eth0.send_redirects", 0), ("net.ipv4.conf.all.rp_filter", 0),
                     ("net.ipv4.conf.eth0.rp_filter", 0)):
            self.x("nlb", "sysctl", "-qw", f"{k}={v}")
        self.write_targets()
        self.start("nlb", "nlb", [sys.executable, os.path.join(HERE, "nlb.py"), "--vip", NLB_IP,
                                  "--targets", self.targets_file(),
                                  "--status", os.path.join(self.dir, "nlb", "status.json"),
                                  "--interval", "1", "--healthy", "2", "--unhealthy", "2"])

    def nlb_status(self):
        try:
            return json.load(open(os.path.join(self.dir, "nlb", "status.json")))
        except (OSError, ValueError):
            return {}

    def rec_dir(self, k):
        return os.path.join(self.dir, f"rec-{k}")

    def recorder(self, k):
        name = f"rec-{k}"
        role = f"r{k}"
        self.netns(role)
        self.attach(role, "eth0", "bmirror", f"{role}m", rec_ip(k), 9000)
        d = self.rec_dir(k)
        self.enroll(d, name)
        if k not in self.st["recorders"]:
            self.st["recorders"].append(k)
        self.save()
        self.start(name, role, [
            self.REC, "--data-dir", d, "--listen", "0.0.0.0:4789", "--min-free", "0",
            "--segment-size", "64M", "--http", "0.0.0.0:8081",
            "--search", "tcp://0.0.0.0:5557", "--search-endpoint", f"tcp://{rec_ip(k)}:5557",
            "--coordinator", f"tcp://{COORD_IP}:5556", "--node-id", name,
            "--flow-idle", "2s", "--flow-grace", "1s", "--drain-time", self.st["drain_time"]])
        self.wait(f"{name}'s stats", lambda: os.path.exists(os.path.join(d, "stats.json")), 15, name)
        self.write_targets()

    def add_recorder(self):
        k = max(self.st["recorders"]) + 1
        self.recorder(k)
        return k

    def broker(self):
        os.makedirs(os.path.join(self.dir, "broker"), exist_ok=True)
        conf = os.path.join(self.dir, "broker", "broker.conf")
        with open(conf, "w") as f:
            f.write(f"# The IDS gets the instances' TCP, as VXLAN VNI {TOOL_VNI}.\n"
                    f"[tool ids]\ntype = vxlan\ndest = {TOOL_IP}\nvni = {TOOL_VNI}\nfilter = tcp\n")
        self.start("broker", "broker", [self.BROKER, "--config", conf, "--listen", "0.0.0.0:4789",
                                        "--http", "0.0.0.0:8082", "--stats-file",
                                        os.path.join(self.dir, "broker", "stats.json")])
        self.wait("the broker's stats",
                  lambda: os.path.exists(os.path.join(self.dir, "broker", "stats.json")), 15, "broker")

    # ---- using it ----------------------------------------------------------
    def cli(self, *args):
        """An mscope command line run in the coordinator's namespace."""
        return ["ip", "netns", "exec", self.ns("coord"), self.CLI,
                "--coordinator", "tcp://127.0.0.1:5555",
                "--token-file", os.path.join(self.coord_dir, "rpc.token"),
                "--key-file", os.path.join(self.coord_dir, "client.key"),
                "--coordinator-key", os.path.join(self.coord_dir, "curve.pub"), *map(str, args)]

    def nodes(self):
        p = self.run(self.cli("nodes", "--json"), check=False)
        try:
            return json.loads(p.stdout) if p.returncode == 0 else []
        except ValueError:
            return []

    def sql(self, query):
        p = self.run(["psql", "-h", os.path.join(self.coord_dir, "pgrun"), "-p", self.pgport,
                      "-U", "mscope", "-d", "postgres", "-At", "-F", "\t", "-c", query])
        return [line.split("\t") for line in p.stdout.decode().splitlines() if line]

    def psql_command(self):
        pgrun = os.path.join(self.coord_dir, "pgrun")
        if os.path.islink(os.path.join(self.coord_dir, "pgdata")):
            pgrun = os.path.join(os.path.dirname(os.readlink(os.path.join(self.coord_dir, "pgdata"))), "pgrun")
        return f"psql -h {pgrun} -p {self.pgport} -U mscope -d postgres"

    def traffic(self, count=5, seed=1, pause=0.02):
        """Connections from the users namespace to every instance's server;
        returns them (the generator's JSON lines)."""
        servers = {kind: f"{DATA_NET}.{10 + i}:{port}"
                   for i, (_, kind, port) in enumerate(INSTANCES, 1)}
        p = self.x("users", sys.executable, os.path.join(HERE, "traffic.py"), "client",
                   "--http", servers["http"], "--tcp", servers["tcp"], "--udp", servers["udp"],
                   "--count", count, "--seed", seed, "--pause", pause)
        return [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]

    def rec_stats(self, k):
        try:
            return json.load(open(os.path.join(self.rec_dir(k), "stats.json")))
        except (OSError, ValueError):
            return {}

    def status(self):
        print(f"topology {self.tag} in {self.dir}")
        for n in self.st["namespaces"]:
            print(f"  netns {n}")
        for name in self.st["procs"]:
            print(f"  {name:16} {'running pid ' + str(self.pid(name)) if self.pid(name) else 'stopped'}")
        st = self.nlb_status()
        print(f"  NLB {NLB_IP}: in service {st.get('in_service')}, health {st.get('health')}")
        for src, rec in (st.get("sources") or {}).items():
            print(f"    mirror source {src} -> {rec}")

    def look_around(self):
        t = self.tag
        m = os.path.join(self.dir, "mscope")
        return f"""How to look around ({self.dir}):
  ip netns list | grep {t}                       the namespaces (vpc bridges, users, i1-i3, nlb, r1.., coord, broker, tool)
  ip netns exec {t}-nlb nft list ruleset          the NLB: jhash ip saddr over the healthy recorders
  cat {self.dir}/nlb/status.json                  its health checks, and which recorder each instance lands on
  ip netns exec {t}-i1 nft list ruleset           Traffic Mirroring in miniature: dup to the vxlan devices
  ip netns exec {t}-i1 tcpdump -ni eth0           an instance's interface
  ip netns exec {t}-r1 tcpdump -ni eth0 udp port 4789   the VXLAN a recorder receives
  tcpdump -nr {self.dir}/tool/ids.pcap | head     what the broker gave the IDS
  {m} nodes
  {m} flows --since 10m
  {m} search --since 10m 'tcp port 80' -w /tmp/http.pcap
  {self.psql_command()} -c 'select node, count(*) from flows group by 1'
  python3 {os.path.join(HERE, 'topology.py')} traffic --dir {self.dir}
  python3 {os.path.join(HERE, 'topology.py')} down --dir {self.dir}   (when done)"""

    # ---- tearing down -------------------------------------------------------
    def down(self):
        """Stop every process we started (by pid, coordinator last: it stops its
        PostgreSQL), then delete our namespaces (their nft tables and links go
        with them)."""
        names = list(self.st["procs"])
        order = [n for n in names if n != "coordinator"] + [n for n in names if n == "coordinator"]
        for n in order:
            if self.alive(n):
                # Recorders: SIGINT stops at once (SIGTERM would drain first).
                self.send(n, signal.SIGINT if n.startswith("rec-") else signal.SIGTERM)
        for n in order:
            if not self.wait_gone(n, 60 if n == "coordinator" else 20):
                self.send(n, signal.SIGKILL)
                self.wait_gone(n, 5)
            p = self.children.get(n)
            if p is not None:
                p.poll()
        for n in reversed(self.st["namespaces"]):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.st["namespaces"] = []
        self.save()


def sh(cmd, indent="   "):
    """Run a command line, show its output indented."""
    p = subprocess.run(cmd, capture_output=True, shell=isinstance(cmd, str))
    for line in (p.stdout + p.stderr).decode(errors="replace").splitlines():
        print(indent + line)
    return p.returncode


def demo(d, build):
    """What `make demo` shows as root: the topology up, real traffic landing
    on the recorders the NLB picks, flows in PostgreSQL, a distributed search
    equal to tcpdump on the instance; then it stays up for a look around."""
    if os.path.exists(os.path.join(d, "topology.json")):
        Topology(d).down()
    shutil.rmtree(d, ignore_errors=True)
    t = Topology(d, build=build)
    print(f"== 1. the topology in network namespaces {t.tag}-* ({d})")
    t.up(3)
    t.status()
    print("== 2. traffic: HTTP to i1, TCP to i2, UDP to i3, from the users namespace")
    since = time.time_ns()
    conns = t.traffic(count=5)
    for kind in ("http", "tcp", "udp"):
        cs = [c for c in conns if c["kind"] == kind]
        print(f"   {len(cs)} {kind} connections, {sum(c['c2s'] for c in cs)} bytes up, "
              f"{sum(c['s2c'] for c in cs)} bytes down")
    print("== 3. where it landed: each instance's mirror session -> the NLB -> one recorder")
    where = t.nlb_status().get("sources", {})
    time.sleep(1.2)  # the recorders' stats.json is refreshed every second
    for k in t.st["recorders"]:
        st = t.rec_stats(k)
        srcs = [s for s, r in where.items() if r == f"rec-{k}"]
        print(f"   rec-{k} ({rec_ip(k)}): {st.get('rx_packets', 0)} packets received, "
              f"{st.get('stored_packets', 0)} stored; mirror sources {srcs}")
    ids = os.path.join(d, "tool", "ids.pcap")
    n = subprocess.run(["tcpdump", "-r", ids, "-nq"], capture_output=True).stdout.count(b"\n")
    print(f"   the IDS (broker -> kernel vxlan {TOOL_VNI} -> tcpdump {ids}): {n} TCP packets")
    print("== 4. flows in PostgreSQL (final records; recorders close a flow 1 s after its FIN)")
    end = time.time() + 20
    while time.time() < end:
        try:
            if int(t.sql(f"SELECT count(*) FROM flows WHERE final AND first_ns >= {since}")[0][0]) >= len(conns):
                break
        except RuntimeError:
            pass
        time.sleep(0.5)
    q = ("SELECT node, vni, host(observer) AS mirrored, host(server_ip) AS server, server_port, "
         "count(*) AS flows, sum(c2s_payload_bytes) AS bytes_up, sum(s2c_payload_bytes) AS bytes_down "
         "FROM flows WHERE final GROUP BY 1, 2, 3, 4, 5 ORDER BY 1")
    print(f"   $ {t.psql_command()} -c '{q}'")
    sh(t.psql_command().split() + ["-c", q])
    m = os.path.join(d, "mscope")
    print(f"   $ {m} flows --since 10m --order bytes --limit 5")
    sh(t.cli("flows", "--since", "10m", "--order", "bytes", "--limit", "5"))
    c = [c for c in conns if c["kind"] == "http"][0]
    expr = f"host {c['client']} and tcp port {c['cport']}"
    out = os.path.join(d, "http.pcap")
    print(f"== 5. a distributed search for one HTTP connection: the coordinator asks every recorder")
    print(f"   $ {m} search --since 10m -w {out} '{expr}'")
    sh(t.cli("search", "--since", "10m", "-w", out, expr))
    sh(["tcpdump", "-nr", out, "-c", "6"])
    na = subprocess.run(["tcpdump", "-r", out, "-nq"], capture_output=True).stdout.count(b"\n")
    nb = subprocess.run(["tcpdump", "-r", os.path.join(d, "i1", "eth0.pcap"), "-nq", expr],
                        capture_output=True).stdout.count(b"\n")
    print(f"   {na} packets; tcpdump on i1's eth0 captured {nb} of this connection "
          f"(tests/integration/test_local_topology.py checks they are the same packets)")
    print(f"== 6. $ {m} nodes")
    sh(t.cli("nodes"))
    print()
    print("It stays up. " + t.look_around())


def main():
    ap = argparse.ArgumentParser(description="The AWS topology on one machine (network namespaces).")
    ap.add_argument("command", choices=["up", "down", "status", "traffic", "add-recorder", "demo"])
    ap.add_argument("--dir", default="/tmp/mscope-local")
    ap.add_argument("--build", default=None, help="where the binaries are (default: build/)")
    ap.add_argument("--recorders", type=int, default=3)
    ap.add_argument("--count", type=int, default=5, help="traffic: connections per server")
    a = ap.parse_args()
    if a.command == "demo":
        demo(os.path.abspath(a.dir), a.build)
        return
    if a.command == "up":
        if os.path.exists(os.path.join(a.dir, "topology.json")):
            old = Topology(a.dir)
            if any(old.pid(n) for n in old.st["procs"]) or old.st["namespaces"]:
                raise SystemExit(f"{a.dir} holds a topology that is up: run down first")
            shutil.rmtree(a.dir)
        t = Topology(a.dir, build=a.build)
        t.up(a.recorders)
        t.status()
        print(t.look_around())
        return
    if not os.path.exists(os.path.join(a.dir, "topology.json")):
        raise SystemExit(f"no topology in {a.dir}")
    t = Topology(a.dir)
    if a.command == "down":
        t.down()
        print(f"down: {t.tag} stopped and its namespaces removed")
    elif a.command == "status":
        t.status()
    elif a.command == "traffic":
        for c in t.traffic(a.count):
            print(json.dumps(c))
    elif a.command == "add-recorder":
        k = t.add_recorder()
        print(f"rec-{k} at {rec_ip(k)}, enrolled; the NLB takes it in after 2 good health checks")


if __name__ == "__main__":
    main()
