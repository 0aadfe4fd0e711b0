#!/usr/bin/env python3
"""The coordinator's HTTP side: /healthz and /readyz flip with the database,
/metrics passes promtool and counts exactly the records fed on the bus,
unknown paths get a JSON 404, and SIGTERM ends it promptly even with an
HTTP client holding a keep-alive connection."""
import http.client
import os
import subprocess
import time

import cluster
import harness as h
from cluster import Coordinator


def main():
    h.init()
    cluster.init()
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d)
    try:
        st, body = h.http_json(co.http, "/healthz")
        h.check(st == 200 and body["status"] == "ok" and body["reasons"] == [],
                f"/healthz at start: {st} {body}")
        st, body = h.http_json(co.http, "/readyz")
        h.check(st == 200 and body["status"] == "ok", f"/readyz at start: {st} {body}")
        print("ok  /healthz and /readyz: 200 with the database up")

        flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
        n = 5000
        h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", str(n)])
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= n, 30),
                f"records not written: {co.stats()}")
        m = h.scrape(co.http)
        got = {k: h.metric_sum(m, f"mscope_coordinator_{k}_total") for k in
               ("records_received", "records_written", "records_dropped", "bus_gaps")}
        h.check(got == {"records_received": n, "records_written": n, "records_dropped": 0,
                        "bus_gaps": 0}, f"metrics after {n} records: {got}")
        st = co.stats()
        h.check(st["records_written"] == m[("mscope_coordinator_records_written_total", ())],
                "stats.json and /metrics disagree")
        h.check(m.get(("mscope_coordinator_db_write_seconds_count", ()), 0) >= 1,
                "no write latency observed")
        h.check(m.get(("process_resident_memory_bytes", ()), 0) > 1 << 20, "no process metrics")
        print(f"ok  /metrics passes promtool; {n} records received and written, as fed")

        st, hdr, body = h.http_get(co.http, "/no/such/thing")
        import json
        err = json.loads(body)
        h.check(st == 404 and err["status"] == 404 and "error" in err and
                hdr["content-type"] == "application/json", f"404: {st} {hdr} {body!r}")
        print("ok  unknown path: JSON 404")

        co.pg_ctl("stop")
        ok = h.wait_for(lambda: h.http_json(co.http, "/healthz")[0] == 503, 10)
        st, body = h.http_json(co.http, "/healthz")
        h.check(ok and any("database" in r for r in body["reasons"]),
                f"/healthz with PostgreSQL stopped: {st} {body}")
        h.check(h.http_json(co.http, "/readyz")[0] == 503, "/readyz should be 503 too")
        co.pg_ctl("start")
        h.check(h.wait_for(lambda: h.http_json(co.http, "/healthz")[0] == 200, 15),
                f"/healthz did not recover: {h.http_json(co.http, '/healthz')}")
        print("ok  PostgreSQL stopped: 503 naming the database; back to 200 when it returns")

        # A keep-alive client must not hold the coordinator at exit.
        host, port = co.http.rsplit(":", 1)
        keep = http.client.HTTPConnection(host, int(port), timeout=5)
        keep.request("GET", "/healthz")
        keep.getresponse().read()
        # ... and a second SIGTERM (a supervisor's, a second Ctrl-C) must not
        # cut the stop short: the embedded PostgreSQL is still stopped.
        t0 = time.time()
        co.proc.terminate()
        time.sleep(0.1)
        co.proc.terminate()
        rc = co.proc.wait(30)
        took = time.time() - t0
        h.check(rc == 0 and took < 10, f"SIGTERM with a keep-alive client: rc {rc} in {took:.1f} s")
        keep.close()
        log = co.log_text()
        h.check("already stopping" in log and "embedded PostgreSQL stopped" in log,
                f"a second SIGTERM cut the stop short:\n{log[-2000:]}")
        print(f"ok  SIGTERM twice with an idle keep-alive client: a clean stop, exit 0 in {took:.1f} s")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
