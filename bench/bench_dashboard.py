#!/usr/bin/env python3
"""The dashboard's first load and its 24 h views, each figure beside its
baseline in the same run.

A coordinator (embedded PostgreSQL) holding 24 h of data: flowgen's flow
records through the real bus, first packets spread over the last 24 h (the
flows and flow_minutes tables the Overview and TCP Timing pages read), and 50
monitors (created through REST) with a row a minute each for 24 h inserted
into monitor_minutes with SQL (72 000 rows, histograms of 60 buckets).

1. REST: p50/p99 of the calls behind the pages over 24 h, on one keep-alive
   connection, in alternating rounds; the baselines are GET /api/v1/nodes (a
   round trip and a trivial query) and the same calls over 15 minutes.
2. Headless chromium (dashboard_load.js): the time from navigation start to
   the page's data-ready - every request answered and the last chart drawn -
   in a fresh browser context each time (nothing cached), for the Overview
   (the first load), TCP Timing, one monitor's view (7 charts from its
   series) and the monitors list, over 24 h; the baseline is the same pages
   over the last 15 minutes.
"""
import http.client
import json
import os
import shutil
import subprocess
import time

from common import BENCH_DIR, h, machine
from bench_rest import Coord, flowgen, pct

FLOWS = int(os.environ.get("MSCOPE_BENCH_DASH_FLOWS", "300000"))
MONITORS = 50
REPS = int(os.environ.get("MSCOPE_BENCH_DASH_REPS", "30"))  # REST calls per figure
RUNS = int(os.environ.get("MSCOPE_BENCH_DASH_RUNS", "7"))  # page loads per page and range
DAY = 86400


def fill(co):
    """flowgen's records over the last 24 h, then the monitors and their minutes."""
    t0 = time.time()
    g = flowgen(co, FLOWS, "--node", "bench", "--spread", DAY, "--servers", 500)
    _, err = g.communicate()
    h.check(g.returncode == 0, f"flowgen: {err.decode()[-500:]}")
    h.check(h.wait_for(lambda: co.stats().get("records_written", 0) >= FLOWS, 600, 0.5),
            f"rows not written: {co.stats()}")
    load_s = time.time() - t0
    admin = open(os.path.join(co.d, "api-admin.token")).read().strip()
    for i in range(MONITORS):
        body = json.dumps({"name": f"mon-{i:02d}", "server": f"172.16.{i % 2}.0/24",
                           "server_port": (443, 80, 22, 5432, 8080)[i % 5], "proto": "tcp"}).encode()
        st, _, ans = h.http_get(co.http, "/api/v1/monitors", admin, method="POST", body=body)
        h.check(st == 201, f"monitor {i}: {st} {ans[:200]!r}")
    t0 = time.time()
    # Every minute of the last 24 h for every monitor; figures vary by minute
    # and monitor, histograms are 60 buckets (to ~1 s), as a busy service's.
    hist = ("(SELECT array_agg(((m.id * 7 + i * 13 + b * {k}) % 50)::bigint ORDER BY b) "
            "FROM generate_series(1, 60) b)")
    co.psql("-c", f"""
        INSERT INTO monitor_minutes SELECT m.id, date_trunc('minute', now()) - i * interval '1 minute',
          1000000 + (m.id * 977 + i * 131) % 500000, 8000000 + (m.id * 613 + i * 37) % 4000000,
          2000 + (m.id + i) % 700, 6000 + (m.id * 3 + i) % 900, 100 + (m.id + i) % 40,
          100 + (m.id + 2 * i) % 40, 400 + (m.id + i) % 90, (m.id + i) % 17, (m.id * i) % 5,
          (m.id + i) % 7, (m.id + 3 * i) % 3,
          100, 2000000000, {hist.format(k=3)}, 900, 18000000000, {hist.format(k=5)},
          300, 90000000000, {hist.format(k=11)}
        FROM monitors m, generate_series(0, 1439) i""")
    sql_s = time.time() - t0
    co.psql("-c", "VACUUM ANALYZE monitor_minutes", "-c", "VACUUM ANALYZE flow_minutes")
    rows = co.psql("-At", "-c", "SELECT (SELECT count(*) FROM monitor_minutes), "
                                "(SELECT count(*) FROM flow_minutes), (SELECT count(*) FROM flows)")
    return load_s, sql_s, [int(x) for x in rows.strip().split("|")]


def rest(co):
    """p50/p99 ms of each call, REPS times, rounds alternating over the calls."""
    now = int(time.time())
    day = f"from={now - DAY}&to={now}"
    q15 = f"from={now - 900}&to={now}"
    calls = [
        ("GET /api/v1/nodes (baseline)", "/api/v1/nodes"),
        ("series, 15 min (baseline)", f"/api/v1/series?{q15}"),
        ("series, 24 h (Overview, Timing)", f"/api/v1/series?{day}"),
        ("top servers by retrans., 24 h (Timing)", f"/api/v1/top?{day}&by=server&metric=retransmissions&limit=10"),
        ("flows, tcp, 5000 newest, 24 h (Timing)", f"/api/v1/flows?{day}&proto=tcp&limit=5000"),
        ("monitors (list)", "/api/v1/monitors"),
        ("monitor series, 15 min (baseline)", f"/api/v1/monitors/mon-00/series?{q15}"),
        ("monitor series, 24 h (its view)", f"/api/v1/monitors/mon-00/series?{day}"),
    ]
    conn = http.client.HTTPConnection(*co.http.split(":"), timeout=300)
    times = {label: [] for label, _ in calls}
    sizes = {}

    def get(p):
        conn.request("GET", p, headers={"Authorization": f"Bearer {co.token}"})
        r = conn.getresponse()
        body = r.read()
        h.check(r.status == 200, f"GET {p}: {r.status} {body[:200]!r}")
        return body

    # The TCP Timing page's whole sample: pages of 5000 up to 20 000 flows.
    sample = []

    def sample_round():
        t, cursor, n = time.perf_counter(), None, 0
        while True:
            page = json.loads(get(f"/api/v1/flows?{day}&proto=tcp&limit=5000" +
                                  (f"&cursor={cursor}" if cursor else "")))
            n += len(page["flows"])
            cursor = page["next_cursor"]
            if not cursor or n >= 20000:
                break
        sample.append((time.perf_counter() - t) * 1000)
        return n

    for label, p in calls:  # warm
        sizes[label] = len(get(p))
    for rnd in range(REPS):
        for label, p in (calls if rnd % 2 == 0 else calls[::-1]):
            t = time.perf_counter()
            get(p)
            times[label].append((time.perf_counter() - t) * 1000)
        if rnd % 3 == 0:
            got = sample_round()
    conn.close()
    out = [(label, pct(v, 50), pct(v, 99), sizes[label]) for label, v in times.items()]
    out.append((f"the whole flow sample ({got} flows, 4 pages)", pct(sample, 50), pct(sample, 99), 0))
    return out


def pages(co):
    url = f"http://{co.http}"
    routes = ["overview", "timing", "monitors?name=mon-00", "monitors"]
    res = {}
    for rng in ("15m", "24h"):
        p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "dashboard_load.js"), url, co.token, str(RUNS), rng,
                            *routes], capture_output=True, timeout=1800)
        h.check(p.returncode == 0, f"dashboard_load.js: {p.stderr.decode()[-2000:]}")
        for line in p.stdout.decode().splitlines():
            r = json.loads(line)
            res.setdefault((r["route"], rng), []).append(r)
    return routes, res


def main():
    h.init()
    if not os.path.exists("/usr/bin/chromium"):
        h.fail("Debian's chromium is not installed (scripts/deps.sh installs it)")
    os.makedirs(BENCH_DIR, exist_ok=True)
    os.chmod(BENCH_DIR, 0o755)
    d = os.path.join(BENCH_DIR, "dashboard-bench")
    shutil.rmtree(d, ignore_errors=True)
    if os.path.exists(d + ".log"):
        os.unlink(d + ".log")
    co = Coord(d)
    try:
        load_s, sql_s, (mm, fm, fl) = fill(co)
        calls = rest(co)
        routes, loads = pages(co)
    finally:
        co.stop()
    print(f"machine: {machine()}")
    print(f"data: {fl} flows over 24 h through the bus ({load_s:.0f} s), {fm} flow_minutes rows; "
          f"{MONITORS} monitors, {mm} monitor_minutes rows by SQL ({sql_s:.1f} s)")
    print(f"1. REST, {REPS} calls each, keep-alive, alternating rounds:")
    print(f"   {'':48} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9}")
    for label, p50, p99, size in calls:
        print(f"   {label:48} {p50:8.1f} {p99:8.1f} {size:9d}")
    print(f"2. pages in headless chromium, navigation start to the last chart drawn, "
          f"{RUNS} fresh contexts each (ms):")
    print(f"   {'':28} {'15 min p50':>10} {'max':>7} {'24 h p50':>9} {'max':>7} {'charts':>6}")
    for r in routes:
        a = sorted(x["ms"] for x in loads[(r, "15m")])
        b = sorted(x["ms"] for x in loads[(r, "24h")])
        charts = loads[(r, "24h")][0]["charts"]
        print(f"   {r:28} {pct(a, 50):10.0f} {a[-1]:7.0f} {pct(b, 50):9.0f} {b[-1]:7.0f} {charts:6d}")


if __name__ == "__main__":
    main()
