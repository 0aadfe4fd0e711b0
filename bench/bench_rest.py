#!/usr/bin/env python3
"""The coordinator's REST API under load, each figure beside its baseline in
the same run.

1. `GET /api/v1/flows?host=H` over 10 M flow rows (flowgen through the real
   bus, first packets spread over the last 10 days, so 10-11 day partitions,
   the sealed ones indexed by the coordinator's housekeeping): p50/p99 of
   the REST answer (HTTP keep-alive, JSON) next to the same SQL PREPAREd and
   EXECUTEd in one psql session with \\timing. (With a host the coordinator
   sends exactly that one statement; unfiltered pages in time order go
   through BRIN-pruned windows instead.)
2. Bus records/s from flowgen into PostgreSQL, 20 s windows, with nothing
   else going on, and while a REST client pages through flows (cursor,
   1000 a page, over and over) and a real Prometheus scrapes /metrics every
   second. Three cycles quiet-busy-busy-quiet (ABBA: a linear drift
   cancels); means. Goal: >= 90% of the rate without them. flowgen packs every record here (no --pool: its records'
   times advance as a recorder's do), so it takes a share of the CPU in
   both windows alike.
"""
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

from common import BENCH_DIR, h, machine

import cluster  # noqa: E402  (tests/lib, on the path through common)

PGPORT = 5498
ROWS = int(os.environ.get("MSCOPE_BENCH_REST_ROWS", "10000000"))
QUERIES = 300
WINDOW, WARMUP, CYCLES = 20, 30, 3


class Coord:
    def __init__(self, d, *extra):
        self.d = d
        self.bus = h.free_tcp_port()
        self.http = f"127.0.0.1:{h.free_tcp_port()}"
        self.log = open(d + ".log", "ab")
        self.p = subprocess.Popen([h.binary("MSCOPE_COORDINATOR", "mscope-coordinator"),
                                   "--data-dir", d, "--bus", f"tcp://127.0.0.1:{self.bus}",
                                   "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                                   "--http", self.http, "--pg-port", str(PGPORT),
                                   "--log-level", "info", *extra],
                                  stdout=self.log, stderr=self.log)
        h.check(h.wait_for(lambda: self.stats() and self.get("/healthz")[0] == 200, 120),
                "coordinator did not start")
        self.token = open(os.path.join(d, "api-read.token")).read().strip()

    def stats(self):
        return h.read_stats(os.path.join(self.d, "stats.json")) or {}

    def get(self, path):
        try:
            st, _, body = h.http_get(self.http, path, getattr(self, "token", None), timeout=60)
            return st, body
        except OSError:
            return 0, b""

    def psql(self, *args, stdin=None):
        return subprocess.run(["psql", "-h", os.path.join(self.d, "pgrun"), "-p", str(PGPORT),
                               "-U", "mscope", "-d", "postgres", *args], input=stdin,
                              capture_output=True, check=True).stdout.decode()

    def stop(self):
        self.p.terminate()
        self.p.wait(300)


def flowgen(co, records, *extra):
    """flowgen onto co's bus, with a recorder-role CURVE pair allowed there
    (its bus lets no other key in, nor the local CLI's client key)."""
    keys = ["--key-file", cluster.publisher_key(co.d),
            "--server-key", os.path.join(co.d, "curve.pub")]
    return subprocess.Popen([h.binary("MSCOPE_FLOWGEN", "flowgen"), "--to", f"tcp://127.0.0.1:{co.bus}",
                             *keys, "--records", str(records), *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def query_latency(d):
    co = Coord(d)
    try:
        t0 = time.time()
        # Not --pool: each record packed anew, with first packets in time order
        # as recorders send them (a pool resends the same times every pass,
        # which no recorder does and which defeats the BRIN time index).
        g = flowgen(co, ROWS, "--node", "bench", "--spread", 10 * 86400)
        g.wait()
        h.check(h.wait_for(lambda: co.stats().get("records_written", 0) >= ROWS, 900, 0.5),
                f"rows not written: {co.stats()}")
        load_s = time.time() - t0
    finally:
        co.stop()
    # A restart runs the housekeeping at once: the sealed days get their indexes.
    co = Coord(d)
    try:
        days = int(co.psql("-At", "-c", "SELECT count(*) FROM pg_inherits i JOIN pg_class p "
                                        "ON p.oid = i.inhparent WHERE p.relname = 'flows'"))
        t0 = time.time()
        h.check(h.wait_for(lambda: "sealed day partitions in" in open(d + ".log").read(), 1800, 1),
                "sealed days were not indexed")
        index_s = time.time() - t0
        # Settled first: the statistics and visibility map after the bulk load
        # (autovacuum would otherwise work during whichever side runs first).
        co.psql("-c", "VACUUM ANALYZE flows")
        host = co.psql("-At", "-c", "SELECT host(server_ip) FROM flows GROUP BY 1 "
                                    "ORDER BY count(*) DESC LIMIT 1").strip()
        conn = http.client.HTTPConnection(*co.http.split(":"), timeout=120)
        rest, ms, rows = [], [], None

        def rest_round(n):
            nonlocal rows
            for _ in range(n):
                t = time.perf_counter()
                conn.request("GET", f"/api/v1/flows?from=0&host={host}&limit=100",
                             headers={"Authorization": f"Bearer {co.token}"})
                r = conn.getresponse()
                body = r.read()
                rest.append((time.perf_counter() - t) * 1000)
                h.check(r.status == 200, f"REST answered {r.status}: {body[:200]!r}")
                rows = len(json.loads(body)["flows"])
        cols = co.psql("-At", "-c", "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) "
                                    "FROM information_schema.columns WHERE table_name = 'flows' "
                                    "AND column_name NOT IN ('node', 'flow_id', 'vni', 'observer', "
                                    "'proto', 'client_ip', 'client_port', 'server_ip', 'server_port', "
                                    "'first_ns', 'last_ns', 'first_ts', 'updated_at')").strip()
        # The statement db_query_flows() sends for this request (order newest,
        # no cursor), with the same parameters.
        sql = (f"PREPARE q(bigint, bigint, inet, int, int, bigint, boolean, int, text, bigint, "
               f"text, bigint, timestamptz, timestamptz) AS SELECT node, flow_id, vni, host(observer), proto, host(client_ip), "
               f"client_port, host(server_ip), server_port, first_ns, last_ns, {cols}, first_ns "
               f"FROM flows_all WHERE first_ts >= to_timestamp($1::bigint / 1e9) AND first_ns < "
               f"$2::bigint AND ($3::inet IS NULL OR client_ip = $3::inet OR server_ip = $3::inet) "
               f"AND ($4::int = 0 OR client_port = $4::int OR server_port = $4::int) AND ($5::int = 0 "
               f"OR proto = $5::int) AND ($6::bigint = 0 OR (c2s_rtt_count + s2c_rtt_count > 0 AND "
               f"(c2s_rtt_sum + s2c_rtt_sum) / (c2s_rtt_count + s2c_rtt_count) >= $6::bigint)) AND "
               f"(NOT $7::boolean OR c2s_retransmissions + s2c_retransmissions > 0) AND ($9::text IS "
               f"NULL OR node = $9::text) AND ($10::bigint IS NULL OR (first_ns, node, flow_id) < "
               f"($10::bigint, $12::text, $11::bigint)) AND ($13::timestamptz IS NULL OR first_ts >= "
               f"$13::timestamptz) AND ($14::timestamptz IS NULL OR first_ts < $14::timestamptz) ORDER BY first_ns DESC, node DESC, "
               f"flow_id DESC LIMIT $8::int;\n")
        ex = f"EXECUTE q(0, {2**62}, '{host}', 0, 0, 0, false, 100, NULL, NULL, NULL, NULL, NULL, NULL);\n"

        # psql twice: as is, and with the coordinator's own session setting on
        # a local server (no parallel workers: they would not be reniced).
        serial = "SET max_parallel_workers_per_gather = 0;\n"

        def psql_round(n, into, prefix=""):
            out = co.psql("-At", "-o", "/dev/null",
                          stdin=(prefix + sql + "\\timing on\n" + ex * n).encode())
            into.extend(float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:"))

        # Warm both, then alternate rounds so neither side gets a warmer cache.
        ms_serial = []
        rest_round(10)
        psql_round(10, ms)
        psql_round(10, ms_serial, serial)
        rest.clear()
        ms.clear()
        ms_serial.clear()
        for _ in range(3):
            rest_round(QUERIES // 3)
            psql_round(QUERIES // 3, ms)
            psql_round(QUERIES // 3, ms_serial, serial)
        conn.close()
        h.check(len(ms) == len(rest) == len(ms_serial), f"psql timings: {len(ms)}")
    finally:
        co.stop()
    return dict(rows=ROWS, days=days, load_s=load_s, index_s=index_s, host=host, answer=rows,
                rest_p50=pct(rest, 50), rest_p99=pct(rest, 99), sql_p50=pct(ms, 50),
                sql_p99=pct(ms, 99), serial_p50=pct(ms_serial, 50), serial_p99=pct(ms_serial, 99))


def prometheus(d, target):
    prom = shutil.which("prometheus")
    if not prom:
        h.fail("prometheus is not installed (scripts/deps.sh installs it)")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: coordinator\n"
                f"    static_configs:\n      - targets: ['{target}']\n")
    addr = f"127.0.0.1:{h.free_tcp_port()}"
    p = subprocess.Popen([prom, f"--config.file={conf}", f"--storage.tsdb.path={d}/data",
                          f"--web.listen-address={addr}"], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "prometheus.log"), "wb"))
    return p, addr


def pager(co, stop, counts):
    """Page through every flow, 1000 at a time, again and again; counts rows
    read, pages, the slowest page in ms, and error answers."""
    conn = http.client.HTTPConnection(*co.http.split(":"), timeout=300)
    while not stop.is_set():
        cursor = None
        while not stop.is_set():
            q = "/api/v1/flows?from=0&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            t = time.perf_counter()
            conn.request("GET", q, headers={"Authorization": f"Bearer {co.token}"})
            resp = conn.getresponse()
            page = json.loads(resp.read())
            if resp.status != 200:
                counts[3] += 1
                print(f"pager: {resp.status} {page}", file=sys.stderr)
                time.sleep(1)
                break
            counts[2] = max(counts[2], (time.perf_counter() - t) * 1000)
            counts[0] += len(page["flows"])
            counts[1] += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
    conn.close()


def bus_rate(d):
    co = Coord(d)
    # Flow start times advance ~160 000 a second of flow time (10^9 records
    # over 6000 s), as a busy recorder's would, within today: a day before
    # midnight is sealed, and its index build would be part of the figure.
    since_midnight = int(time.time()) % 86400
    if since_midnight < 120:
        time.sleep(120 - since_midnight)
        since_midnight = 120
    spread = min(6000, since_midnight - 60)
    g = flowgen(co, 10**9 * spread // 6000, "--node", "busbench", "--interim-every", 50,
                "--spread", spread)
    try:
        time.sleep(WARMUP)

        def window():
            w0, t0 = co.stats().get("records_written", 0), time.time()
            time.sleep(WINDOW)
            return (co.stats().get("records_written", 0) - w0) / (time.time() - t0)

        # The rate drifts by tens of percent within a minute (each checkpoint
        # makes the next writes log whole pages), so the two loads take turns
        # in ABBA order - quiet, busy, busy, quiet - which cancels a drift
        # that is linear over a cycle, and the means over the cycles compare.
        quiet, busy, paged, scrapes = [], [], [0, 0, 0.0, 0], 0
        for _ in range(CYCLES):
            quiet.append(window())
            stop = threading.Event()
            t = threading.Thread(target=pager, args=(co, stop, paged))
            prom, paddr = prometheus(os.path.join(d + "-prom"), co.http)
            t.start()
            busy.append(window())
            busy.append(window())
            stop.set()
            t.join()
            try:
                st, _, body = h.http_get(paddr, "/api/v1/query?query=up")
                scrapes += 1 if st == 200 and b'"1"' in body else 0
            finally:
                prom.terminate()
                prom.wait(30)
            quiet.append(window())
    finally:
        g.kill()
        co.stop()
    return dict(quiet=statistics.mean(quiet), busy=statistics.mean(busy), paged=paged[0],
                pages=paged[1], slowest=paged[2], errors=paged[3], up=scrapes, quiet_rounds=quiet, busy_rounds=busy)


def main():
    h.init()
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chmod(BENCH_DIR, 0o755)
    d = os.path.join(BENCH_DIR, "rest-bench")
    for x in (d, d + "-bus", d + "-bus-prom"):
        shutil.rmtree(x, ignore_errors=True)
        for suffix in (".log",):
            if os.path.exists(x + suffix):
                os.unlink(x + suffix)
    q = query_latency(d)
    b = bus_rate(d + "-bus")
    print(f"machine: {machine()}")
    print(f"1. {q['rows']} flow rows in {q['days']} day partitions (loaded through the bus in "
          f"{q['load_s']:.0f} s; sealed days indexed in {q['index_s']:.0f} s); host {q['host']}, "
          f"100 newest of its flows per answer ({q['answer']} rows), {QUERIES} queries each:")
    print(f"   {'':40} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"   {'psql, the same SQL (PREPARE/EXECUTE)':40} {q['sql_p50']:8.2f} {q['sql_p99']:8.2f}")
    print(f"   {'psql, same, no parallel workers':40} {q['serial_p50']:8.2f} {q['serial_p99']:8.2f}")
    print(f"   {'REST GET /api/v1/flows (keep-alive)':40} {q['rest_p50']:8.2f} {q['rest_p99']:8.2f}")
    print(f"2. bus records/s, {WINDOW} s windows, {CYCLES} cycles quiet-busy-busy-quiet, means: "
          f"alone {b['quiet']:.0f}; with a REST pager ({b['paged']} rows in {b['pages']} pages, "
          f"slowest page {b['slowest']:.0f} ms, {b['errors']} errors) and Prometheus scraping every 1 s "
          f"(up: {b['up']}/{CYCLES}) {b['busy']:.0f} -> {100 * b['busy'] / b['quiet']:.0f}% "
          f"(goal >= 90%)")
    print(f"   quiet windows {[round(x) for x in b['quiet_rounds']]}")
    print(f"   busy windows  {[round(x) for x in b['busy_rounds']]}")

if __name__ == "__main__":
    main()
