#!/usr/bin/env python3
"""`make demo` as a new user runs it (issue 10): as root, from a checkout under
a 0700 directory (root's home), scripts/demo.sh runs to the end, finds
packets and shows flows, with the embedded PostgreSQL's cluster in
/var/lib/mscope/pgembed; and when the coordinator cannot start, the script
says why ("coordinator did not start:" and its log), never a cp error. Its
ports are moved through MSCOPE_DEMO_*; nothing it started is left running,
and `demo.sh --clean` (make clean) removes the cluster with demo-data.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402

DEMO = os.path.join(h.ROOT, "scripts", "demo.sh")
PGEMBED = "/var/lib/mscope/pgembed"


def leftovers(cwd, pgdata):
    """Processes still running in the demo's directory, or on its cluster."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            where = os.readlink(f"/proc/{pid}/cwd")
            args = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if where == cwd or where.startswith(cwd + "/") or (pgdata and pgdata in args):
            found.append(f"{pid}: {args.replace(chr(0), ' ')}")
    return found


def demo(cwd, build, env, timeout=540):
    return subprocess.run(["sh", DEMO, build], cwd=cwd, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def main():
    if os.geteuid() != 0:
        h.skip("needs root: the embedded server then runs as user postgres")
    h.init()
    cluster.init()
    build = os.path.dirname(os.path.abspath(cluster.COORD))
    top = h.tmpdir("mscope-demo-")  # 0700, as root's home is
    cwd = os.path.join(top, "home")
    os.mkdir(cwd, 0o700)
    env = dict(os.environ,
               MSCOPE_DEMO_PORT=str(h.free_udp_port()),
               MSCOPE_DEMO_BUS_PORT=str(h.free_tcp_port()),
               MSCOPE_DEMO_RPC_PORT=str(h.free_tcp_port()),
               MSCOPE_DEMO_SEARCH_PORT=str(h.free_tcp_port()),
               MSCOPE_DEMO_HTTP_PORT=str(h.free_tcp_port()),
               MSCOPE_DEMO_REC_HTTP_PORT=str(h.free_tcp_port()),
               # The suites use 5400-5899, the demo 5439, test_embedded_pg 6100-6399.
               MSCOPE_DEMO_PG_PORT=str(6400 + os.getpid() % 300))
    env.pop("MSCOPE_PGEMBED_ROOT", None)
    made = [d for d in ("/var/lib/mscope", PGEMBED) if not os.path.exists(d)]
    link = os.path.join(cwd, "demo-data", "coord", "pgdata")
    place = None
    try:
        # The coordinator cannot start: the place for its cluster is out of
        # postgres's reach as well.
        bad = dict(env, MSCOPE_PGEMBED_ROOT=os.path.join(top, "pgembed"))
        p = demo(cwd, build, bad)
        out = p.stdout.decode(errors="replace")
        h.check(p.returncode == 1 and "coordinator did not start:" in out and
                "cannot reach" in out and "cp: " not in out,
                f"demo without a database: exit {p.returncode}:\n{out}")
        h.check(not leftovers(cwd, None), f"left running: {leftovers(cwd, None)}")
        print("ok  coordinator cannot start: the demo says why, exit 1")

        p = demo(cwd, build, env)
        out = p.stdout.decode(errors="replace")
        if os.path.islink(link):
            place = os.path.dirname(os.readlink(link))
        h.check(p.returncode == 0, f"demo exit {p.returncode}:\n{out}")
        h.check(place and place.startswith(PGEMBED + "/"),
                f"the demo's cluster is not in {PGEMBED}: {place}\n{out}")
        m = re.search(r"^\s+(\d+) packets \(.*\) from 1 recorder", out, re.M)
        h.check(m and int(m.group(1)) > 0, f"no search answer:\n{out}")
        packets = int(m.group(1))
        m = re.search(r"flow records \(TCP analysis.*\): (\d+) in", out)
        h.check(m and int(m.group(1)) > 0, f"no flow records:\n{out}")
        flows = out.split("$ mscope flows", 1)[-1].split("$ mscope top", 1)[0]
        h.check(len([ln for ln in flows.splitlines() if "demo-recorder" in ln]) == 5,
                f"mscope flows did not list 5 flows:\n{out}")
        print(f"ok  demo from a 0700 directory: exit 0, search answer of {packets} packets, "
              f"{m.group(1)} flow records, flows listed; cluster in {place}")
        gone = h.wait_for(lambda: not leftovers(cwd, place), 10)
        h.check(gone, f"left running: {leftovers(cwd, place)}")
        print("ok  the demo's coordinator, recorder and PostgreSQL are gone")
        h.run(["sh", DEMO, "--clean"], cwd=cwd)
        h.check(not os.path.exists(place) and not os.path.exists(os.path.join(cwd, "demo-data")),
                f"demo.sh --clean (make clean) left {place} or demo-data")
        print("ok  demo.sh --clean removes demo-data and the cluster it linked to")
    finally:
        for pid_line in leftovers(cwd, place):
            try:
                os.kill(int(pid_line.split(":")[0]), 15)
            except OSError:
                pass
        if place:
            pgdata = os.path.join(place, "pgdata")
            if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
                bindir = sorted(os.listdir("/usr/lib/postgresql"))[-1]
                subprocess.run(["runuser", "-u", "postgres", "--",
                                f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", pgdata, "-m",
                                "immediate", "-w", "stop"], capture_output=True, cwd="/")
            shutil.rmtree(place, ignore_errors=True)
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass


if __name__ == "__main__":
    main()
