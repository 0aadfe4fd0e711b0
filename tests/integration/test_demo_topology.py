#!/usr/bin/env python3
"""`make demo` as root (issue 13): scripts/demo.sh --topology brings the
emulated AWS topology up in ./demo-data/local, shows the traffic landing on the
recorders, the flows in PostgreSQL, a distributed search, and how to look
around; it stays up, and `demo.sh --clean` (make clean) takes every namespace
and process of it down. Needs root; skipped visibly otherwise.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "local"))
import harness as h  # noqa: E402
import topology  # noqa: E402

DEMO = os.path.join(h.ROOT, "scripts", "demo.sh")


def main():
    if os.geteuid() != 0:
        h.skip("needs root: the topology demo uses network namespaces")
    h.init()
    d = h.tmpdir("msl-demo-")
    os.chmod(d, 0o755)
    build = os.path.dirname(os.path.abspath(h.binary("MSCOPE_RECORDER", "mscope-recorder")))
    local = os.path.join(d, "demo-data", "local")
    try:
        p = subprocess.run(["sh", DEMO, "--topology", build], cwd=d, timeout=300,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.decode(errors="replace")
        h.check(p.returncode == 0, f"demo.sh --topology exited {p.returncode}:\n{out}")
        for want in ("== 1.", "== 3.", "== 4.", "== 5.", "== 6.", "How to look around",
                     "topology.py down"):
            h.check(want in out, f"demo output lacks {want!r}:\n{out}")
        landed = [int(n) for n in re.findall(r"rec-\d \([\d.]+\): (\d+) packets received", out)]
        h.check(len(landed) == 3 and all(n > 0 for n in landed),
                f"traffic did not land on every recorder: {landed}\n{out}")
        m = re.search(r"(\d+) packets; tcpdump on i1's eth0 captured (\d+)", out)
        h.check(m and int(m.group(1)) == int(m.group(2)) > 0, f"search answer:\n{out}")
        h.check(out.count(" alive ") == 3, f"mscope nodes:\n{out}")
        t = topology.Topology(local)
        rows = t.sql("SELECT count(*) FROM flows WHERE final")
        h.check(int(rows[0][0]) == 15, f"flows in PostgreSQL: {rows}")
        h.check(all(t.pid(n) for n in t.st["procs"]), "the demo's topology is not left up")
        print(f"ok  demo.sh --topology: packets on the 3 recorders {landed}, 15 flows in "
              f"PostgreSQL, search answer {m.group(1)} packets == tcpdump; left up")
        p = subprocess.run(["sh", DEMO, "--clean"], cwd=d, timeout=120, capture_output=True)
        h.check(p.returncode == 0 and not os.path.exists(os.path.join(d, "demo-data")),
                f"demo.sh --clean: {p.returncode} {p.stderr.decode()}")
        names = subprocess.run(["ip", "netns", "list"], capture_output=True).stdout.decode()
        left = [n for n in names.split() if n.startswith(t.tag + "-")]
        procs = [n for n in t.st["procs"] if t.pid(n)]
        h.check(not left and not procs, f"demo.sh --clean left {left} {procs}")
        print("ok  demo.sh --clean: every namespace and process of the topology gone")
    finally:
        if os.path.exists(os.path.join(local, "topology.json")):
            topology.Topology(local).down()


if __name__ == "__main__":
    main()
