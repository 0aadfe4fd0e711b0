#!/usr/bin/env python3
"""Flow records per second from the bus into PostgreSQL, sustained for >= 60 s:
recorders replaying a capture of many flows publish to a coordinator (its
embedded PostgreSQL); next to a plain `psql \\copy` of the same rows into a
plain table, in the same run. Goal: >= 80% of that COPY rate, >= 100 000/s."""
import os
import shutil
import subprocess
import time

from common import BENCH_DIR, h, machine

PGPORT = 5499


def main():
    h.init()
    coord_bin = h.binary("MSCOPE_COORDINATOR", "mscope-coordinator")
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chmod(BENCH_DIR, 0o755)
    many = os.path.join(BENCH_DIR, "flows-1m.pcap")
    if not os.path.exists(many):
        h.gen(many, "--packets", 1800000, "--flows", 1000000, "--seed", 22, "--mix", "clean")
    d = os.path.join(BENCH_DIR, "coord-bench")
    shutil.rmtree(d, ignore_errors=True)
    port = h.free_tcp_port()
    log = open(os.path.join(BENCH_DIR, "coord-bench.log"), "wb")
    co = subprocess.Popen([coord_bin, "--data-dir", d, "--bus", f"tcp://127.0.0.1:{port}",
                           "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}", "--pg-port", str(PGPORT),
                           "--log-level", "warn"], stdout=log, stderr=log)
    stats = lambda: h.read_stats(os.path.join(d, "stats.json")) or {}
    h.check(h.wait_for(lambda: stats(), 60), "coordinator did not start")
    sock = os.path.join(d, "pgrun")

    def sql(q):
        return h.run(["psql", "-h", sock, "-p", str(PGPORT), "-U", "mscope", "-d", "postgres",
                      "-At", "-c", q]).stdout.decode().strip()

    try:
        t0 = time.time()
        runs = 0
        while time.time() - t0 < 60:
            # --bus-queue holds every record of the run: the recorder emits them
            # all at end of file, and what it sheds never reaches us to measure.
            h.run([h.RECORDER, "--read", many, "--coordinator", f"tcp://127.0.0.1:{port}",
                   "--node-id", f"bench-{runs}", "--flow-idle", "1h", "--max-flows", "1000000",
                   "--bus-queue", "2000000", "--log-level", "warn"])
            runs += 1
        received = stats().get("records_received", 0)
        h.wait_for(lambda: stats().get("records_written", 0) >= received and
                   stats().get("records_pending", 1) == 0, 600, 0.2)
        elapsed = time.time() - t0
        written = stats()["records_written"]
        rate = written / elapsed
        # Baseline: the same rows, COPY'd by psql into a plain table.
        dump = os.path.join(BENCH_DIR, "flows-dump.copy")
        cols = sql("SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM "
                   "information_schema.columns WHERE table_name = 'flows' AND column_name NOT IN "
                   "('first_ts', 'updated_at')")
        h.run(["psql", "-h", sock, "-p", str(PGPORT), "-U", "mscope", "-d", "postgres", "-c",
               f"\\copy (SELECT {cols} FROM flows) TO '{dump}'"])
        # Two baselines: the same rows into a table shaped like `flows` (the
        # same day partitions and indexes: the cost of storing them), and into
        # a plain unindexed table (PostgreSQL's raw COPY speed here).
        sql(f"CREATE TABLE copy_plain AS SELECT {cols} FROM flows WITH NO DATA")
        sql("CREATE TABLE copy_same (LIKE flows INCLUDING DEFAULTS INCLUDING INDEXES) "
            "PARTITION BY RANGE (first_ts)")
        for (name, lo) in [r.split("|") for r in sql(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'flows'").splitlines()]:
            sql(f"CREATE TABLE copy_same_{name} PARTITION OF copy_same {lo}")
        copycols = cols + ", first_ts"

        def timed_copy(table, columns):
            h.run(["psql", "-h", sock, "-p", str(PGPORT), "-U", "mscope", "-d", "postgres", "-c",
                   f"\\copy (SELECT {columns} FROM flows) TO '{dump}'"])
            b0 = time.time()
            h.run(["psql", "-h", sock, "-p", str(PGPORT), "-U", "mscope", "-d", "postgres", "-c",
                   f"\\copy {table} ({columns}) FROM '{dump}'"])
            return written / (time.time() - b0)

        base = timed_copy("copy_plain", cols)
        same = timed_copy("copy_same", copycols)
        os.unlink(dump)
    finally:
        co.terminate()
        co.wait(120)
    print(f"machine: {machine()}")
    print(f"{runs} recorder runs of a {os.path.getsize(many) / 1e6:.0f} MB capture; "
          f"{written} flow records in {elapsed:.1f} s (bus -> COPY -> merge -> per-minute aggregates)")
    rows = [("psql \\copy, same rows, unindexed plain table", base),
            ("psql \\copy, same rows, table shaped like flows", same),
            ("coordinator, bus to PostgreSQL, sustained", rate)]
    print(f"{'':48} {'records/s':>10}")
    for label, v in rows:
        print(f"{label:48} {v:10.0f}")
    print(f"ratio: {100 * rate / same:.0f}% of the same-shape copy, {100 * rate / base:.0f}% of the "
          f"plain copy (goal >= 80%); {'meets' if rate >= 100000 else 'below'} 100 000/s")


if __name__ == "__main__":
    main()
