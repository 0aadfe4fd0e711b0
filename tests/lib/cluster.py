"""A coordinator for integration tests: its own embedded PostgreSQL, bus and
RPC on free loopback ports, stopped by pid; and the Python client code
generated from proto/ with protoc at test time.
"""
import os
import shutil
import subprocess
import sys

import harness as h

COORD = None
CLI = None


def publisher_key(coord_dir):
    """A pair for test publishers on the bus of the coordinator whose data
    directory is coord_dir (flowgen, pyzmq PUB sockets, benchmarks): role
    recorder, as the bus refuses the local CLI's client.key.
    coord_dir/flowgen.key, allowed as flowgen.pub; made at the first call."""
    key = os.path.join(coord_dir, "flowgen.key")
    if not os.path.exists(key):
        h.run([CLI or h.binary("MSCOPE_CLI", "mscope"), "keygen", "--role", "recorder", key])
        shutil.move(os.path.join(coord_dir, "flowgen.pub"),
                    os.path.join(coord_dir, "allowed-keys", "flowgen.pub"))
    return key


def init():
    global COORD, CLI
    COORD = h.binary("MSCOPE_COORDINATOR", "mscope-coordinator")
    CLI = h.binary("MSCOPE_CLI", "mscope")
    if not shutil.which("psql") or not os.path.isdir("/usr/lib/postgresql"):
        h.fail("PostgreSQL is not installed (run scripts/deps.sh)")


PGPORT = 5400 + os.getpid() % 500


class Coordinator:
    def __init__(self, d, reuse=None, extra=()):
        self.dir = os.path.join(d, "coord")
        self.extra = list(extra)
        self.port = reuse.port if reuse else h.free_tcp_port()
        self.rpc = reuse.rpc if reuse else f"tcp://127.0.0.1:{h.free_tcp_port()}"
        self.http = reuse.http if reuse else f"127.0.0.1:{h.free_tcp_port()}"
        if reuse:  # a restart on the same directory: ready = a fresh stats file
            os.unlink(os.path.join(self.dir, "stats.json"))
        self.log = open(os.path.join(d, "coord.log"), "ab+")
        self.proc = subprocess.Popen([COORD, "--data-dir", self.dir, "--bus",
                                      f"tcp://127.0.0.1:{self.port}", "--rpc", self.rpc,
                                      "--http", self.http, "--pg-port", str(PGPORT), *extra],
                                     stdout=self.log, stderr=self.log)
        ok = h.wait_for(lambda: self.stats() is not None or self.proc.poll() is not None, 60)
        if self.proc.poll() is not None or not ok:
            h.fail(f"coordinator did not start:\n{self.log_text()}")

    @property
    def insecure(self):
        return "--insecure" in self.extra

    def keys(self):
        """CURVE arguments of a client of ours (mscope), with the pair this
        coordinator made for its local CLI."""
        if self.insecure:
            return ["--insecure"]
        return ["--key-file", os.path.join(self.dir, "client.key"),
                "--coordinator-key", os.path.join(self.dir, "curve.pub")]

    def cli(self, *args):
        """An mscope command line for this coordinator."""
        return [CLI, "--coordinator", self.rpc, "--token-file", os.path.join(self.dir, "rpc.token"),
                *self.keys(), *map(str, args)]

    def publisher_key(self):
        return publisher_key(self.dir)

    def flowgen_keys(self):
        if self.insecure:
            return []
        return ["--key-file", self.publisher_key(),
                "--server-key", os.path.join(self.dir, "curve.pub")]

    def enroll(self, datadir, name):
        """What an operator does for a new recorder: its key pair made and
        allowed here; our public key and the search token copied there.
        Returns the recorder's arguments for this coordinator's bus."""
        bus = ["--coordinator", f"tcp://127.0.0.1:{self.port}"]
        os.makedirs(datadir, exist_ok=True)
        shutil.copy(os.path.join(self.dir, "search.token"), os.path.join(datadir, "search.token"))
        if self.insecure:
            return bus + ["--insecure"]
        if not os.path.exists(os.path.join(datadir, "curve.key")):
            h.run([CLI, "keygen", "--role", "recorder", os.path.join(datadir, "curve")])
        shutil.copy(os.path.join(datadir, "curve.pub"),
                    os.path.join(self.dir, "allowed-keys", f"{name}.pub"))
        shutil.copy(os.path.join(self.dir, "curve.pub"), os.path.join(datadir, "coordinator.pub"))
        # Named, though they are the defaults of a recorder on datadir: an
        # import without a data directory needs them too.
        return bus + ["--key-file", os.path.join(datadir, "curve.key"),
                      "--coordinator-key", os.path.join(datadir, "coordinator.pub")]

    def curve(self, sock, key_file=None, server_pub=None):
        """CURVE on a pyzmq client socket (before connect): the local CLI's
        pair (role client: the RPC only) or the pair in key_file (for the
        bus: publisher_key()), to us or to the server whose public key is
        in server_pub."""
        if self.insecure:
            return sock
        pair = read_key(key_file or os.path.join(self.dir, "client.key"))
        sock.curve_publickey = pair["public-key"].encode()
        sock.curve_secretkey = pair["secret-key"].encode()
        server = read_key(server_pub or os.path.join(self.dir, "curve.pub"))
        sock.curve_serverkey = server["public-key"].encode()
        return sock

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def get(self, path, token=None):
        """GET http://self.http/path: (status, headers, body bytes)."""
        return h.http_get(self.http, path, token)

    def stats(self):
        return h.read_stats(os.path.join(self.dir, "stats.json"))

    def sql(self, query):
        p = h.run(["psql", "-h", os.path.join(self.dir, "pgrun"), "-p", str(PGPORT), "-U",
                   "mscope", "-d", "postgres", "-At", "-F", "\t", "-c", query])
        return [line.split("\t") for line in p.stdout.decode().splitlines() if line]

    def pg_ctl(self, action):
        pgdata = os.path.join(self.dir, "pgdata")
        bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        cmd = [f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", pgdata, "-w", "-l",
               os.path.join(self.dir, "postgresql.log"), "-m", "fast", action]
        if action == "start":
            cmd[-1:-1] = ["-o", f"-k {os.path.join(self.dir, 'pgrun')} -c listen_addresses='' "
                                f"-p {PGPORT}"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        h.run(cmd)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        return self.proc.returncode


def read_key(path):
    """A key file's fields ("public-key", "secret-key")."""
    out = {}
    for line in open(path):
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def load_pb(d):
    out = os.path.join(d, "pb")
    os.makedirs(out, exist_ok=True)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    h.run(["protoc", "--python_out", out, "--proto_path", os.path.join(root, "proto"),
           os.path.join(root, "proto", "mirrorscope.proto")])
    if out not in sys.path:
        sys.path.insert(0, out)
    import mirrorscope_pb2
    return mirrorscope_pb2
