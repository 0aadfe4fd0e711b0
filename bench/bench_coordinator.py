#!/usr/bin/env python3
"""Flow records per second from the bus into PostgreSQL, sustained for >= 60 s,
next to a plain `psql \\copy` of the same rows in the same run.

The load: `flowgen` publishes realistic records (every field set, 2 000
server endpoints, 1 in 50 an interim record of a flow still open) as fast as
the coordinator takes them; ZeroMQ's flow control (XPUB without drops) holds
it back, so what is measured is the coordinator. It packs a pool of 200 000
distinct records once and resends it under a new node name each pass (new
flows each time), so that its own CPU stays small: a recorder replaying a
capture, or a generator packing every record, would take one of the two
cores away from what is measured. The rate is taken over
60 s of steady state (after 5 s of warm-up), from the coordinator's own
records_written counter, between two of its steps. Baselines in the same run, same rows dumped from
`flows`: psql \\copy into an unindexed plain table, and into a table shaped
like `flows` (the same day partitions and BRIN index).
Goal: >= 80% of the plain COPY rate, and >= 100 000 records/s."""
import os
import shutil
import subprocess
import time

from common import BENCH_DIR, h, machine

PGPORT = 5499
WARMUP, WINDOW = 5, 60


def main():
    h.init()
    coord_bin = h.binary("MSCOPE_COORDINATOR", "mscope-coordinator")
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chmod(BENCH_DIR, 0o755)
    d = os.path.join(BENCH_DIR, "coord-bench")
    shutil.rmtree(d, ignore_errors=True)
    port = h.free_tcp_port()
    log = open(os.path.join(BENCH_DIR, "coord-bench.log"), "wb")
    co = subprocess.Popen([coord_bin, "--data-dir", d, "--bus", f"tcp://127.0.0.1:{port}",
                           "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                           "--http", f"127.0.0.1:{h.free_tcp_port()}", "--pg-port", str(PGPORT),
                           "--log-level", "warn"], stdout=log, stderr=log)
    stats = lambda: h.read_stats(os.path.join(d, "stats.json")) or {}
    h.check(h.wait_for(lambda: stats(), 60), "coordinator did not start")
    sock = os.path.join(d, "pgrun")

    def psql(*args):
        return h.run(["psql", "-h", sock, "-p", str(PGPORT), "-U", "mscope", "-d", "postgres",
                      *args]).stdout.decode().strip()

    def sql(q):
        return psql("-At", "-c", q)

    gen = None
    try:
        # More than the window can take: the generator is held back, never idle.
        gen = subprocess.Popen([flowgen, "--to", f"tcp://127.0.0.1:{port}", "--records", "30000000",
                                "--node", "bench", "--interim-every", "50", "--pool", "200000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(WARMUP)
        # records_written moves in whole batches (up to --max-pending records):
        # measure between two of its steps >= WINDOW seconds apart, not at
        # arbitrary instants, or the batch size would blur the rate.
        def next_step(after_t):
            w = stats().get("records_written", 0)
            while True:
                time.sleep(0.05)
                v = stats().get("records_written", 0)
                if v != w and time.time() >= after_t:
                    return v, time.time()
                w = v
        w0, t0 = next_step(0)
        w1, t1 = next_step(t0 + WINDOW)
        gen.terminate()
        gen.wait(30)
        rate = (w1 - w0) / (t1 - t0)
        h.wait_for(lambda: stats().get("records_pending", 1) == 0, 120, 0.2)
        time.sleep(1)
        st = stats()
        rows = int(sql("SELECT count(*) FROM flows"))
        live = int(sql("SELECT count(*) FROM flows_live"))
        # Baselines: the same rows, COPY'd by psql.
        dump = os.path.join(BENCH_DIR, "flows-dump.copy")
        cols = sql("SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM "
                   "information_schema.columns WHERE table_name = 'flows' AND column_name <> 'updated_at'")
        psql("-c", f"\\copy (SELECT {cols} FROM flows) TO '{dump}'")
        sql(f"CREATE TABLE copy_plain AS SELECT {cols} FROM flows WITH NO DATA")
        sql("CREATE TABLE copy_same (LIKE flows INCLUDING DEFAULTS INCLUDING INDEXES) "
            "PARTITION BY RANGE (first_ts)")
        for (name, lo) in [r.split("|") for r in sql(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'flows'").splitlines()]:
            sql(f"CREATE TABLE copy_same_{name} PARTITION OF copy_same {lo}")

        def timed_copy(table):
            b0 = time.time()
            psql("-c", f"\\copy {table} ({cols}) FROM '{dump}'")
            return rows / (time.time() - b0)

        base = timed_copy("copy_plain")
        same = timed_copy("copy_same")
        os.unlink(dump)
    finally:
        if gen and gen.poll() is None:
            gen.kill()
        co.terminate()
        co.wait(120)
    print(f"machine: {machine()}")
    print(f"load: flowgen, pool of 200 000 records (1 in 50 interim); coordinator: {st.get('records_received')} received, "
          f"{st.get('records_written')} written, {st.get('records_dropped')} dropped; "
          f"flows {rows} rows, flows_live {live}")
    table = [("psql \\copy, same rows, unindexed plain table", base),
             ("psql \\copy, same rows, table shaped like flows", same),
             (f"coordinator, bus to PostgreSQL, {t1 - t0:.0f} s sustained", rate)]
    print(f"{'':50} {'records/s':>10}")
    for label, v in table:
        print(f"{label:50} {v:10.0f}")
    print(f"ratio: {100 * rate / base:.0f}% of the plain copy (goal >= 80%), {100 * rate / same:.0f}% "
          f"of the same-shape copy; {'meets' if rate >= 100000 else 'below'} 100 000/s")


if __name__ == "__main__":
    main()
