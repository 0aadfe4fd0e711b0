#!/usr/bin/env python3
"""The bus keeps flowing while housekeeping works on a big sealed day.

A coordinator's housekeeping (retention, then CREATE INDEX on each sealed
day partition of `flows`) runs on libuv's thread pool, never on the loop
that reads the bus. Here:

- yesterday's day partition gets ROWS rows (INSERT ... SELECT from
  generate_series, the way db.c names and bounds partitions), and a day
  ten days back a few rows; the coordinator that took them runs with the
  default interval, so neither is touched yet;
- flowgen starts publishing at a steady rate, its first flows dated
  yesterday (late records of the day being indexed, as right after
  midnight), the rest today; the coordinator restarts with
  --housekeeping-interval 2s --retention-days 7, so housekeeping runs at
  once, while the records arrive: the old day is dropped, the big day gets
  its two B-tree indexes (built CONCURRENTLY);
- /metrics is sampled every 100 ms all along. records_received must rise
  with no interval above 1 s without progress from the first record to the
  last, records_written with none above 1.5 s (the writers' rhythm is ~0.5 s;
  a build that locked the day out would hold the late records for all of
  it), the index build must have taken long enough to matter (>= 1 s) and
  have ended while records were still arriving, no gap, no drop, and every
  record flowgen sent is written - some of them into the day being indexed.
"""
import datetime
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

ROWS = 3_000_000      # CREATE INDEX over these takes ~4 s on 2 cores
RATE = 5000           # records a second from flowgen
SECONDS = 20          # ... for this long
STALL_MAX = 1.0       # the bus may not stand still longer than this
WRITE_STALL_MAX = 1.5 # nor the writes (their rhythm is ~0.5 s; a locked-out day: >= 2 s)


def day_name(days_back):
    day = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=days_back)
    return day, f"flows_{day:%Y%m%d}"


def fill_day(co, days_back, rows):
    """Create the day partition as db.c does and fill it with rows flows of
    that day, spread over the day (ids, hosts and ports varied)."""
    day, name = day_name(days_back)
    start = f"{day:%Y-%m-%d} 00:00:00+00"
    ns0 = int(datetime.datetime(day.year, day.month, day.day,
                                tzinfo=datetime.timezone.utc).timestamp()) * 10**9
    step = 86_400 * 10**9 // rows
    co.sql(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF flows FOR VALUES FROM ('{start}') "
           f"TO ('{start}'::timestamptz + interval '1 day')")
    co.sql(f"""INSERT INTO {name} (node, flow_id, vni, observer, proto, client_ip, client_port,
                   server_ip, server_port, first_ns, last_ns, conn_state, history, final, first_ts)
               SELECT 'seed', i, 7, '10.0.0.9', 6,
                   '10.0.0.0'::inet + (i * 2654435761) % 16777216, 32768 + i % 28000,
                   '172.16.0.0'::inet + (i * 40503) % 2000,
                   (ARRAY[443, 80, 22, 5432, 8080, 53, 3306, 6379])[1 + i % 8],
                   {ns0} + i * {step}, {ns0} + i * {step} + 5000000, 'SF', 'ShADadFf', true,
                   '{start}'::timestamptz + i * {step // 1000} * interval '1 microsecond'
               FROM generate_series(0::bigint, {rows - 1}) i""")
    return name


def sample(co):
    """(time the answer came, records_received, records_written) from
    /metrics, which the loop renders when asked: a stalled loop answers late."""
    _, _, body = h.http_get(co.http, "/metrics")
    m = h.parse_metrics(body.decode())
    return (time.monotonic(), m[("mscope_coordinator_records_received_total", ())],
            m[("mscope_coordinator_records_written_total", ())])


def longest_stall(samples, col, until):
    """The longest time between two rises of samples[col], from its first
    rise above 0 to the sample where it reached until."""
    worst, last_t, last_v = 0.0, None, 0
    for s in samples:
        t, v = s[0], s[col]
        if v > last_v:
            if last_t is not None:
                worst = max(worst, t - last_t)
            last_t, last_v = t, v
        if v >= until:
            break
    return worst


def main():
    h.init()
    cluster.init()
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    d = h.tmpdir()
    os.chmod(d, 0o755)

    # 1. The data, loaded under a coordinator whose housekeeping (once at
    # start, then hourly) has already looked and found nothing to do.
    co = Coordinator(d)
    try:
        h.check(h.wait_for(lambda: co.stats()["housekeeping_runs"] >= 1, 30),
                f"no housekeeping at start: {co.stats()}")
        t0 = time.monotonic()
        big = fill_day(co, 1, ROWS)
        old = fill_day(co, 10, 1000)
        print(f"ok  {ROWS} rows in {big}, 1000 in {old} ({time.monotonic() - t0:.1f} s)")
    finally:
        h.check(co.stop() == 0, "coordinator exit status")

    # 2. flowgen first (it waits for the bus), then the coordinator, whose
    # housekeeping runs at once while the records come.
    gen_out = open(os.path.join(d, "flowgen.out"), "wb+")
    # Flows start over the last --spread seconds, oldest first: from noon
    # yesterday, so the first records of the stream are late ones of the day
    # the housekeeping indexes.
    now = datetime.datetime.now(datetime.timezone.utc)
    since_midnight = int((now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds())
    gen = subprocess.Popen([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(),
                            "--records", str(RATE * SECONDS), "--rate", str(RATE),
                            "--batch", "100", "--node", "steady",
                            "--spread", str(since_midnight + 12 * 3600)],
                           stdout=gen_out, stderr=subprocess.STDOUT)
    log_from = os.path.getsize(os.path.join(d, "coord.log"))
    try:
        co = Coordinator(d, reuse=co, extra=("--housekeeping-interval", "2s",
                                             "--retention-days", "7"))
    except SystemExit:  # it did not start: flowgen goes too
        gen.kill()
        gen.wait()
        raise
    try:
        # Sampled until every record is received and written (flowgen's
        # count once it has exited), or a minute after it exited.
        samples, indexed_at, index_line, sent, deadline = [], None, None, None, None
        while sent is None or samples[-1][2] < sent:
            samples.append(sample(co))
            if indexed_at is None:
                m = re.search(r"indexed (\d+) sealed day partitions in ([0-9.]+) s",
                              co.log_text()[log_from:])
                if m:
                    indexed_at, index_line = samples[-1][0], m
            if sent is None and gen.poll() is not None:
                gen_out.seek(0)
                out = gen_out.read().decode(errors="replace")
                h.check(gen.returncode == 0, f"flowgen exited {gen.returncode}: {out}")
                sent, deadline = int(re.search(r"sent=(\d+)", out).group(1)), time.time() + 60
            h.check(deadline is None or time.time() < deadline,
                    f"not every record written a minute after the last was sent: "
                    f"{samples[-1]} of {sent}")
            time.sleep(0.1)
        log = co.log_text()[log_from:]

        # The work really happened, and while the bus was busy.
        h.check(index_line is not None, f"no index build while records arrived:\n{log}")
        n, took = int(index_line.group(1)), float(index_line.group(2))
        h.check(n >= 1 and took >= 1.0,
                f"index build of {n} partitions took {took} s: too short to tell a stall "
                f"(raise ROWS)")
        h.check(f"indexed the sealed day partition {big}" in log, f"{big} not indexed:\n{log}")
        first_rx = next(s[0] for s in samples if s[1] > 0)
        last_rx = next(s[0] for s in samples if s[1] >= sent)
        overlap = min(indexed_at, last_rx) - max(indexed_at - took, first_rx)
        h.check(overlap >= 1.0, f"the index build overlapped the stream only {overlap:.1f} s")
        idx = {r[0]: r[1] for r in co.sql(
            f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename = '{big}'")}
        for want in (f"{big}_client", f"{big}_server"):
            h.check(want in idx and "USING btree" in idx[want], f"index {want} missing: {idx}")
        h.check(f"retention: dropped partition {old}" in log, f"{old} not dropped:\n{log}")
        left = co.sql(f"SELECT count(*) FROM pg_class WHERE relname IN ('{old}', '{big}')")
        h.check(left == [["1"]], f"after retention, partitions left of {old}, {big}: {left}")
        late = int(co.sql(f"SELECT count(*) FROM {big} WHERE node <> 'seed'")[0][0])
        h.check(co.sql(f"SELECT count(*) FROM {big} WHERE node = 'seed'") == [[str(ROWS)]],
                f"{big} lost rows")
        h.check(late > 0, f"no late record reached {big}: the test did not test the lock")
        print(f"ok  housekeeping during the stream: {old} dropped by retention, {n} sealed "
              f"day(s) indexed in {took:.1f} s, {overlap:.1f} s of it while records arrived ({big}_client, {big}_server: btree)")

        # The bus did not notice.
        rx_stall = longest_stall(samples, 1, sent)
        wr_stall = longest_stall(samples, 2, sent)
        m = h.scrape(co.http)
        got = {k: h.metric_sum(m, f"mscope_coordinator_{k}") for k in
               ("records_received_total", "records_written_total", "records_dropped_total",
                "bus_gaps_total")}
        h.check(got == {"records_received_total": sent, "records_written_total": sent,
                        "records_dropped_total": 0, "bus_gaps_total": 0},
                f"after {sent} records sent: {got}")
        h.check(m[("mscope_coordinator_housekeeping_errors_total", ())] == 0,
                f"housekeeping errors:\n{log}")
        h.check(rx_stall <= STALL_MAX,
                f"the bus stood still {rx_stall:.2f} s (limit {STALL_MAX} s) during housekeeping")
        h.check(wr_stall <= WRITE_STALL_MAX,
                f"the writes stood still {wr_stall:.2f} s (limit {WRITE_STALL_MAX} s) during "
                f"housekeeping ({late} late records into {big})")
        print(f"ok  {sent} records at {RATE}/s over {len(samples)} samples: every one received "
              f"and written ({late} late ones into {big} during its build), no gap, no drop; "
              f"longest pause of the bus {rx_stall:.2f} s, of the writes {wr_stall:.2f} s")
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        h.check(co.stop() == 0, "coordinator exit status")


if __name__ == "__main__":
    main()
