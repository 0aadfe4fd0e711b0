#!/usr/bin/env python3
"""The coordinator's embedded PostgreSQL as root with --data-dir under a 0700
directory that user postgres cannot enter (root's home, as in issue 10): the
cluster goes to a directory of its own under $MSCOPE_PGEMBED_ROOT, linked
from DIR/pgdata; the coordinator comes up and answers; records survive a
restart on the same directory; the server stops with the coordinator. A
data directory that an old failed start left (empty pgdata and pgrun) moves
over by itself. When the server cannot start, the coordinator exits non-zero
at once with one error line naming the cause.
"""
import os
import pwd
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

# Other suites use 5400-5899 (cluster.PGPORT) and the demo 5439: stay apart.
# (The port only names the Unix socket, but a clash would confuse a reader.)
PGPORT = 6100 + os.getpid() % 300


def cluster_uid():
    return pwd.getpwnam("postgres").pw_uid


def postmasters(pgdata):
    """Pids of running servers whose -D is pgdata (or a link to it)."""
    want = {pgdata, os.path.realpath(pgdata)}
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in args]
        if any(a == "-D" and i + 1 < len(args) and args[i + 1] in want
               for i, a in enumerate(args)):
            pids.append(int(pid))
    return pids


def stop_server(pgdata):
    """Whatever failed: never leave a server behind."""
    if not os.path.exists(os.path.join(pgdata, "postmaster.pid")):
        return
    bindir = sorted(os.listdir("/usr/lib/postgresql"))[-1]
    subprocess.run(["runuser", "-u", "postgres", "--",
                    f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", pgdata, "-m",
                    "immediate", "-w", "stop"], capture_output=True, cwd="/")


def start_fails(datadir, want, env=None):
    """Start a coordinator that cannot get its database: it must exit
    non-zero within seconds, with exactly one error line, naming want."""
    t0 = time.time()
    p = subprocess.run([cluster.COORD, "--data-dir", datadir, "--bus",
                        f"tcp://127.0.0.1:{h.free_tcp_port()}", "--rpc",
                        f"tcp://127.0.0.1:{h.free_tcp_port()}", "--http", "off",
                        "--pg-port", str(PGPORT)],
                       capture_output=True, timeout=60, env=env)
    took = time.time() - t0
    err = p.stderr.decode(errors="replace")
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    # Nothing else but log lines (a sanitizer's report would be caught here).
    other = [line for line in err.splitlines()
             if line and not re.search(r" mscope-coordinator (INFO|WARN|ERROR): ", line)]
    h.check(not other, f"stderr holds more than log lines:\n{err}")
    h.check(p.returncode != 0, f"coordinator exited {p.returncode} without a database:\n{err}")
    h.check(took < 15, f"coordinator took {took:.1f} s to give up:\n{err}")
    h.check(len(errors) == 1 and want in errors[0],
            f"want one error line naming {want!r}, got:\n{err}")
    return errors[0].split(" ERROR: ", 1)[1]


def main():
    if os.geteuid() != 0:
        h.skip("needs root: the embedded server then runs as user postgres")
    h.init()
    cluster.init()
    cluster.PGPORT = PGPORT
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    # mkdtemp makes it 0700: postgres cannot enter it, nor home below it.
    top = h.tmpdir("mscope-private-")
    home = os.path.join(top, "home")
    os.mkdir(home, 0o700)
    parent = os.path.join(home, "a")
    os.mkdir(parent)
    # The server's own place: reachable by postgres; one level to be created.
    pgbase = h.tmpdir("mscope-pgembed-")
    os.chmod(pgbase, 0o755)
    pgroot = os.path.join(pgbase, "pgembed")
    os.environ["MSCOPE_PGEMBED_ROOT"] = pgroot
    co = None
    try:
        co = Coordinator(parent)
        link = os.path.join(co.dir, "pgdata")
        h.check(os.path.islink(link), f"{link} is not a link: {os.listdir(co.dir)}")
        pgdata = os.path.realpath(link)
        place = os.path.dirname(pgdata)
        st = os.stat(place)
        h.check(os.path.dirname(place) == pgroot and stat.S_IMODE(st.st_mode) == 0o700 and
                st.st_uid == cluster_uid(), f"cluster in {place}: mode {oct(st.st_mode)}, "
                f"uid {st.st_uid}")
        log = co.log_text()
        h.check(f"keeps its files in {place}" in log and "Permission denied" in log,
                f"the log does not say where and why:\n{log}")
        for tok in ("rpc.token", "search.token"):
            h.check(os.path.exists(os.path.join(co.dir, tok)), f"no {tok}")
        h.run(co.cli("--timeout", "5s", "nodes"))
        print(f"ok  root, --data-dir under a 0700 directory: cluster in {place}, linked; "
              f"mscope nodes answers")

        g = h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", "500",
                   "--node", "private-test"])
        count = lambda: co.sql("SELECT count(*) FROM flows WHERE node = 'private-test'")
        h.check(h.wait_for(lambda: count() == [["500"]], 20), f"flows: {count()} of 500 ({g.stdout})")
        h.check(co.stop() == 0, f"coordinator exit {co.proc.returncode}:\n{co.log_text()}")
        h.check("embedded PostgreSQL stopped" in co.log_text(), "embedded server not stopped")
        h.check(not postmasters(pgdata), f"servers left on {pgdata}: {postmasters(pgdata)}")
        print("ok  500 records written; SIGTERM: exit 0, no server left")

        before = len(co.log_text())
        co = Coordinator(parent, reuse=co)
        again = co.log_text()[before:]
        h.check(count() == [["500"]], f"after a restart: {count()} of 500 records")
        h.check("initialising" not in again and "cannot reach" not in again and
                f"running on {place}/pgrun" in again, f"the restart did not reuse {place}:\n{again}")
        h.check(co.stop() == 0 and not postmasters(pgdata), "second stop")
        print("ok  a restart on the same directory follows the link: the records are there")

        # What the old code left after initdb failed: empty pgdata and pgrun.
        old = os.path.join(home, "b")
        os.makedirs(os.path.join(old, "coord", "pgdata"))
        os.makedirs(os.path.join(old, "coord", "pgrun"))
        for sub in ("pgdata", "pgrun"):
            os.chown(os.path.join(old, "coord", sub), cluster_uid(), -1)
        co = Coordinator(old)
        pgdata_b = os.path.realpath(os.path.join(co.dir, "pgdata"))
        h.check(os.path.islink(os.path.join(co.dir, "pgdata")) and pgdata_b.startswith(pgroot),
                f"an old empty pgdata was not moved over: {pgdata_b}")
        h.check(co.stop() == 0 and not postmasters(pgdata_b), "stop of the moved-over coordinator")
        print("ok  an empty pgdata left by an old failed start moves over by itself")

        # Cannot start: the server refuses its configuration.
        with open(os.path.join(pgdata, "postgresql.conf"), "a") as f:
            f.write("shared_buffers = 'nonsense'\n")
        line = start_fails(os.path.join(parent, "coord"), "shared_buffers")
        h.check("pg_ctl start failed" in line and "postgresql.log" in line, f"error line: {line}")
        h.check(not postmasters(pgdata), "a server is running after a failed start")
        print(f"ok  a server that cannot start: exit non-zero at once, one line: {line}")
        # Cannot start: pgdata is a file.
        bad = os.path.join(home, "c", "coord")
        os.makedirs(bad)
        open(os.path.join(bad, "pgdata"), "w").close()
        line = start_fails(bad, "pgdata is neither a directory nor a link")
        print(f"ok  pgdata a file: {line}")
        # Cannot start: the place for the cluster is out of postgres's reach too.
        env = dict(os.environ, MSCOPE_PGEMBED_ROOT=os.path.join(top, "pgembed"))
        os.mkdir(os.path.join(home, "d"))
        line = start_fails(os.path.join(home, "d", "coord"), "cannot reach", env=env)
        h.check("MSCOPE_PGEMBED_ROOT" in line, f"error line: {line}")
        print(f"ok  MSCOPE_PGEMBED_ROOT unreachable: {line}")
    finally:
        if co:
            co.stop()
        if os.path.isdir(pgroot):
            for name in os.listdir(pgroot):
                stop_server(os.path.join(pgroot, name, "pgdata"))


if __name__ == "__main__":
    main()
