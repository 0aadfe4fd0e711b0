"""Shared helpers for the integration tests: find the binaries, run them,
ask the outside oracles (tcpdump, capinfos), and fail or skip loudly.

Exit status follows CTest's convention here: 0 pass, 1 fail, 77 skipped.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pcapfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MSCOPE_BUILD", os.path.join(ROOT, "build"))


def binary(env, name):
    path = os.environ.get(env)
    if path:
        return path
    for cand in (os.path.join(BUILD, name), os.path.join(BUILD, "tests", "tools", name)):
        if os.path.exists(cand):
            return cand
    fail(f"cannot find {name}: set {env} or build into {BUILD}")


RECORDER = None
PCAPGEN = None
VXSEND = None


def init():
    global RECORDER, PCAPGEN, VXSEND
    RECORDER = binary("MSCOPE_RECORDER", "mscope-recorder")
    PCAPGEN = binary("MSCOPE_PCAPGEN", "pcapgen")
    VXSEND = binary("MSCOPE_VXSEND", "vxsend")
    for tool in ("tcpdump", "capinfos"):
        if not shutil.which(tool):
            fail(f"{tool} is not installed (run scripts/deps.sh)")


def sanitized():
    """True when the binaries under test run under a sanitizer (make
    check's ASan and TSan builds, see tests/CMakeLists.txt): their shadow
    memory inflates every resident size, so memory bounds are not checked."""
    return os.environ.get("MSCOPE_SANITIZED") == "1"


_TMPDIRS = []
_KEEP = False


def _cleanup():
    """Remove the test's scratch directories - unless it failed: then they
    stay for a look, and their paths are printed."""
    for d in _TMPDIRS:
        if _KEEP:
            print(f"kept for inspection: {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def fail(msg):
    global _KEEP
    _KEEP = True
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print(f"SKIP: {msg}", file=sys.stderr)
    sys.exit(77)


def check(cond, msg):
    if not cond:
        fail(msg)


# How long run() lets a command take: a hung child then fails its test, named,
# with what it said so far, instead of holding the suite until CTest's
# timeout kills the test and says nothing of which command hung.
RUN_TIMEOUT = float(os.environ.get("MSCOPE_RUN_TIMEOUT") or "300")


def run(cmd, check_rc=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", RUN_TIMEOUT)
    try:
        p = subprocess.run(cmd, **kw)
    except subprocess.TimeoutExpired as e:
        out = e.stderr or e.stdout or b""  # stdout: when the caller sent stderr there
        said = (out.decode(errors="replace") if isinstance(out, bytes) else out)[-2000:]
        fail(f"{' '.join(map(str, cmd))} did not finish in {kw['timeout']:g} s (killed); "
             f"its stderr so far:\n{said}")
    if check_rc and p.returncode != 0:
        fail(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr.decode(errors='replace')}")
    return p


def tmpdir(prefix="mscope-test-"):
    base = os.environ.get("MSCOPE_TMP")
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _TMPDIRS.append(d)
    return d


def gen(path, *args):
    run([PCAPGEN, "-w", path, *map(str, args)])
    return path


def import_file(datadir, pcap, *args):
    return run([RECORDER, "--data-dir", datadir, "--read", pcap, "--min-free", "0", *map(str, args)])


def search(datadir, expr, t_from=None, t_to=None, extra=()):
    cmd = [RECORDER, "search", "--data-dir", datadir, "-w", "-"]
    if t_from is not None:
        cmd += ["--from", t_from]
    if t_to is not None:
        cmd += ["--to", t_to]
    cmd += list(extra)
    if expr:
        cmd.append(expr)
    p = run(cmd)
    return pcapfile.read_pcap(p.stdout)[1], p.stdout


def tcpdump(pcap, expr):
    """The oracle: tcpdump's own reading of a file with a filter."""
    # Nanosecond precision, or tcpdump rounds nanosecond files to microseconds.
    p = run(["tcpdump", "--time-stamp-precision=nano", "-r", pcap, "-w", "-"] +
            ([expr] if expr else []))
    return pcapfile.read_pcap(p.stdout)[1]


def window(records, from_ns=None, to_ns=None):
    return [r for r in records
            if (from_ns is None or r[0] >= from_ns) and (to_ns is None or r[0] < to_ns)]


def capinfos_ok(path):
    p = run(["capinfos", path], check_rc=False)
    return p.returncode == 0, p.stderr.decode(errors="replace")


def ns_str(ns):
    return f"{ns // 1000000000}.{ns % 1000000000:09d}"


def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def free_udp_port():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_tcp_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_stats(path):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class _Process:
    """A daemon started with its log in a file and its counters in a JSON
    stats file it rewrites; ready once that file exists; stopped by pid."""

    what = "daemon"

    def _start(self, cmd, ns, env=None):
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        # Ready means a fresh stats file: the daemon writes it once it is up.
        if os.path.exists(self.stats_file):
            os.unlink(self.stats_file)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **env) if env else None)
        wait_for(lambda: self.stats() is not None or self.proc.poll() is not None, 10)
        if self.proc.poll() is not None:
            fail(f"{self.what} exited at start:\n{self.log_text()}")

    def stats(self):
        return read_stats(self.stats_file)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_rx(self, n, timeout=30):
        return wait_for(lambda: (self.stats() or {}).get("rx_packets", 0) >= n, timeout)

    def stop(self, sig=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                fail(f"{self.what} did not stop on SIGTERM within 30 s")
        return self.proc.returncode


class Daemon(_Process):
    """A recorder daemon on loopback."""

    what = "recorder"

    def __init__(self, datadir, *args, ns=None, stats_file=None, env=None):
        """args come after our defaults, so they override them (e.g. a
        --drain-time for the tests of draining); env adds to the
        environment (e.g. a test hook)."""
        self.datadir = datadir
        self.port = free_udp_port()
        self.http = f"127.0.0.1:{free_tcp_port()}"
        self.stats_file = stats_file or os.path.join(datadir, "stats.json")
        self.log = open(os.path.join(os.path.dirname(datadir.rstrip("/")),
                                     os.path.basename(datadir.rstrip("/")) + ".log"), "ab+")
        self._start([RECORDER, "--data-dir", datadir, "--listen", f"127.0.0.1:{self.port}",
                     "--min-free", "0", "--stats-file", self.stats_file, "--http", self.http,
                     "--drain-time", "0", *map(str, args)], ns, env)


def vxsend(pcap, port, *args):
    p = run([VXSEND, "--to", f"127.0.0.1:{port}", "--count", *map(str, args), pcap])
    out = dict(kv.split("=") for kv in p.stdout.decode().split())
    return out


# ---- the broker ------------------------------------------------------------

def broker_binary():
    return binary("MSCOPE_BROKER", "mscope-broker")


def write_conf(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def broker_read(conf, pcap, *args, check_rc=True):
    """Run mscope-broker --read over a file to the end; returns the process
    result (stdout, stderr, returncode)."""
    return run([broker_binary(), "--config", conf, "--read", pcap, *map(str, args)],
               check_rc=check_rc)


def pcap_dir(d):
    """Every record of a pcap tool's file set, files in name order (which
    must be time order), as pcapfile records; also the file names."""
    names = sorted(n for n in os.listdir(d) if n.endswith(".pcap")) if os.path.isdir(d) else []
    recs = []
    for n in names:
        recs += pcapfile.read_pcap(os.path.join(d, n))[1]
    return recs, names


class Broker(_Process):
    """A broker daemon (UDP input on loopback unless listen=False)."""

    what = "broker"

    def __init__(self, conf, workdir, *args, ns=None, listen=True):
        self.port = free_udp_port()
        # Its own HTTP port, so brokers of tests running at once do not
        # collide on the default 8082 (args may still say --http).
        self.http = f"127.0.0.1:{free_tcp_port()}"
        self.stats_file = os.path.join(workdir, f"broker-{self.port}.json")
        self.log = open(os.path.join(workdir, f"broker-{self.port}.log"), "ab+")
        cmd = [broker_binary(), "--config", conf, "--stats-file", self.stats_file,
               "--http", self.http, *map(str, args)]
        if listen:
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        self._start(cmd, ns)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- network namespaces (tests that need root) -------------------------------

def ns_exec(name, *cmd, check=True):
    return run(["ip", "netns", "exec", name, *cmd], check_rc=check)


def netns_create(*names):
    """Create namespaces with loopback up and IPv6 off (no stray router
    solicitations or MLD reports in the captures)."""
    for n in names:
        run(["ip", "netns", "add", n])
        ns_exec(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ns_exec(n, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        ns_exec(n, "ip", "link", "set", "lo", "up")


def netns_delete(*names):
    for n in names:
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


def link_up_plain(n, dev):
    """Bring dev up in namespace n with no offloads, as a real NIC mirrors
    wire-sized frames: without this, tcpdump sees 64 KB GSO super-packets and
    checksums still to be filled in, and a receiver may merge frames (GRO)."""
    ns_exec(n, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
            check=False)
    ns_exec(n, "ip", "link", "set", dev, "up")


def http_get(addr, path, token=None, method="GET", body=None, timeout=10, headers=None):
    """One HTTP request to addr ("HOST:PORT"): (status, headers, body bytes).
    Headers are keyed in lower case."""
    import http.client
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_json(addr, path, token=None):
    """GET path and parse its JSON body: (status, value)."""
    import json
    status, _, body = http_get(addr, path, token)
    return status, json.loads(body)


def parse_metrics(text):
    """Prometheus text exposition into {(name, ((label, value), ...)): float}."""
    import re
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            fail(f"not a metrics line: {line!r}")
        labels = tuple(sorted(label_re.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric_sum(m, name):
    """The sum of every sample of a metric, whatever its labels (0 when none)."""
    return sum(v for (n, _), v in m.items() if n == name)


def scrape(addr, token=None):
    """GET /metrics from addr (with token: as a bearer token), checked by
    promtool (the Prometheus project's own linter) and parsed."""
    status, headers, body = http_get(addr, "/metrics", token)
    check(status == 200, f"/metrics on {addr} answered {status}")
    check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          f"/metrics content type {headers.get('content-type')}")
    if not shutil.which("promtool"):
        fail("promtool is not installed (Debian package prometheus; run scripts/deps.sh)")
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    check(p.returncode == 0, f"promtool check metrics on {addr}:\n"
          f"{p.stdout.decode()}{p.stderr.decode()}")
    return parse_metrics(body.decode())


def ns_http_json(ns, addr, path):
    """GET http://addr/path from inside network namespace ns (curl there):
    (status, parsed JSON body)."""
    import json
    p = run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "10", "-w", "\n%{http_code}",
             f"http://{addr}{path}"], check_rc=False)
    body, _, code = p.stdout.decode().rpartition("\n")
    return int(code or 0), json.loads(body) if body else None
