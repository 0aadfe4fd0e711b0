#!/usr/bin/env python3
"""The Grafana dashboards in deploy/grafana/ against a real PostgreSQL that a
coordinator filled.

- The provisioning files parse; the data source's uid is the one every panel
  and variable names.
- Every panel's SQL and the monitor variable's query, with Grafana's macros
  expanded here for a time range (and two bucket widths), runs and returns
  rows; a macro this test does not know fails it (so a new one gets an
  expansion here, as Grafana would do it).
"""
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

GRAFANA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana")


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(sql, t_from, t_to, interval_s, variables):
    """Grafana's PostgreSQL macros as Grafana expands them (its documentation,
    'Macros'), and template variables."""
    def time_filter(m):
        return f"{m.group(1).strip()} BETWEEN '{iso(t_from)}' AND '{iso(t_to)}'"

    def group_alias(m):
        col, interval = (x.strip() for x in m.group(1).split(","))
        h.check(interval in ("$__interval", "'1m'", "1m"), f"interval {interval!r} not expanded here")
        return f'floor(extract(epoch from {col})/{interval_s})*{interval_s} AS "time"'

    sql = re.sub(r"\$__timeFilter\(([^()]*)\)", time_filter, sql)
    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", group_alias, sql)
    sql = sql.replace("$__interval_ms", str(interval_s * 1000))
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
    h.check("$" not in sql, f"a macro or variable this test does not expand: {sql}")
    return sql


def provisioning():
    import yaml
    ds = yaml.safe_load(open(os.path.join(GRAFANA, "provisioning", "datasources", "mirrorscope.yaml")))
    source = ds["datasources"][0]
    h.check(source["type"] == "postgres" and source["uid"] == "mirrorscope", f"data source: {source}")
    dash = yaml.safe_load(open(os.path.join(GRAFANA, "provisioning", "dashboards", "mirrorscope.yaml")))
    h.check(dash["providers"][0]["type"] == "file", f"dashboard provider: {dash}")
    return source["uid"]


def queries(uid):
    """(dashboard, panel title, SQL) of every panel target and variable."""
    out = []
    files = sorted(f for f in os.listdir(os.path.join(GRAFANA, "dashboards")) if f.endswith(".json"))
    h.check(len(files) == 2, f"dashboards: {files}")
    titles = set()
    for f in files:
        d = json.load(open(os.path.join(GRAFANA, "dashboards", f)))
        titles.add(d["title"])
        variables = d["templating"]["list"]
        h.check([v["name"] for v in variables] == ["monitor"], f"{f}: variables {variables}")
        for v in variables:
            h.check(v["datasource"]["uid"] == uid, f"{f}: variable's data source")
            out.append((f, f"variable {v['name']}", v["query"]))
        panels = [p for p in d["panels"] if p["type"] != "row"]
        h.check(len({p["id"] for p in d["panels"]}) == len(d["panels"]), f"{f}: panel ids repeat")
        for p in panels:
            h.check(p["datasource"]["uid"] == uid, f"{f}: {p['title']}: data source")
            h.check(p["targets"], f"{f}: {p['title']}: no query")
            for t in p["targets"]:
                h.check(t.get("rawQuery") and t["format"] in ("time_series", "table"), f"{f}: {p['title']}: {t}")
                out.append((f, p["title"], t["rawSql"]))
        h.check(any("monitor_minutes" in t["rawSql"] for p in panels for t in p["targets"]),
                f"{f}: no panel per monitor")
    h.check(titles == {"Mirrorscope: Speeds & Feeds", "Mirrorscope: TCP Timing"}, f"titles: {titles}")
    return out


def main():
    h.init()
    cluster.init()
    uid = provisioning()
    qs = queries(uid)
    d = h.tmpdir()
    os.chmod(d, 0o755)
    co = Coordinator(d)
    try:
        h.run(co.cli("monitors", "create", "web", "server=172.16.0.0/16", "port=443"))
        h.run(co.cli("monitors", "create", "everything"))
        flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
        h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", "4000",
               "--servers", "40", "--spread", "600"])
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= 4000, 60), f"not written: {co.stats()}")
        # application records for the Applications panels (app_minutes)
        h.run([h.binary("MSCOPE_APPGEN", "appgen"), "--to", f"tcp://127.0.0.1:{co.port}",
               *co.flowgen_keys(), "--records", "300", "--quiet"])
        h.check(h.wait_for(lambda: co.stats()["app_records_written"] >= 300, 60), f"not written: {co.stats()}")
        h.check(h.wait_for(lambda: co.sql("SELECT count(*) FROM monitor_minutes")[0][0] != "0", 20),
                "no monitor series written")
        now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        ran = 0
        for interval in (60, 300):
            for f, title, sql in qs:
                q = expand(sql, now - 2 * 3600, now + 600, interval, {"monitor": "web"})
                rows = co.sql(q)
                h.check(rows, f"{f}: {title}: no rows for {q}")
                ran += 1
        print(f"ok  {ran} queries of {len(qs)} panels and variables return rows (1 and 5 minute buckets)")
        # The variable's values are the monitors.
        rows = co.sql(expand(qs[0][2], now - 3600, now, 60, {}))
        h.check([r[0] for r in rows] == ["everything", "web"], f"monitor variable: {rows}")
        h.check(co.stop() == 0, "coordinator exit status")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
