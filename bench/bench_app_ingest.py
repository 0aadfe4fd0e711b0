#!/usr/bin/env python3
"""Application records (DNS, TLS, HTTP) from the bus into PostgreSQL, next to
flow records in the same run, on the same coordinator.

Rounds alternate: `flowgen` publishes N flow records (every field set, in
batches of 500), then `appgen` N application records of the three kinds in
turn (tests/tools/appsample.h: every field set, a third with no response,
names and URIs up to their bounds, batches of 500). Each round is timed from
the generator's start to the coordinator's written counter (records_written,
app_records_written) reaching its N, and the coordinator's CPU time over
the round is read from /proc: CPU per record is what a shared machine
distorts least. The generators run on the same two cores (their CPU is not
the coordinator's, but it competes with it)."""
import os
import shutil
import subprocess
import time

from common import BENCH_DIR, h, machine

PGPORT = 5498
N = 200000
ROUNDS = 2


def cpu_s(pid):
    """User + system seconds of a process, from /proc."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    h.init()
    coord_bin = h.binary("MSCOPE_COORDINATOR", "mscope-coordinator")
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    appgen = h.binary("MSCOPE_APPGEN", "appgen")
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chmod(BENCH_DIR, 0o755)
    d = os.path.join(BENCH_DIR, "app-ingest-bench")
    shutil.rmtree(d, ignore_errors=True)
    port = h.free_tcp_port()
    log = open(os.path.join(BENCH_DIR, "app-ingest-bench.log"), "wb")
    co = subprocess.Popen([coord_bin, "--data-dir", d, "--bus", f"tcp://127.0.0.1:{port}",
                           "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                           "--http", f"127.0.0.1:{h.free_tcp_port()}", "--pg-port", str(PGPORT),
                           "--insecure", "--log-level", "warn"], stdout=log, stderr=log)
    stats = lambda: h.read_stats(os.path.join(d, "stats.json")) or {}  # noqa: E731
    h.check(h.wait_for(lambda: stats(), 60), "coordinator did not start")
    rows = {"flow": [], "app": []}
    try:
        for r in range(ROUNDS):
            for kind in ("flow", "app"):
                key = "records_written" if kind == "flow" else "app_records_written"
                w0, c0, t0 = stats().get(key, 0), cpu_s(co.pid), time.perf_counter()
                cmd = ([flowgen, "--records", N, "--batch", 500, "--node", f"f{r}"] if kind == "flow"
                       else [appgen, "--records", N, "--batch", 500, "--quiet", "--names", 50,
                             "--node", f"a{r}"])
                gen = subprocess.run([*map(str, cmd), "--to", f"tcp://127.0.0.1:{port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                h.check(gen.returncode == 0, f"{cmd[0]}: {gen.stderr.decode()}")
                h.check(h.wait_for(lambda: stats().get(key, 0) - w0 >= N, 300, 0.02),
                        f"{kind}: not written: {stats()}")
                dt, dc = time.perf_counter() - t0, cpu_s(co.pid) - c0
                rows[kind].append((N / dt, dc / N * 1e6))
        st = stats()
    finally:
        co.terminate()
        co.wait(120)
    print(f"machine: {machine()}")
    print(f"load: {ROUNDS} rounds of {N} flow records (flowgen) and {N} application records "
          f"(appgen), alternating; coordinator: {st.get('records_written')} flow and "
          f"{st.get('app_records_written')} application records written, "
          f"{st.get('records_dropped')} + {st.get('app_records_dropped')} dropped")
    print(f"{'':34} {'records/s':>10} {'coordinator CPU us/record':>27}")
    for kind, label in (("flow", "flow records (baseline)"), ("app", "application records")):
        for i, (rate, cpu) in enumerate(rows[kind]):
            print(f"{label + f', round {i + 1}':34} {rate:10.0f} {cpu:27.1f}")


if __name__ == "__main__":
    main()
