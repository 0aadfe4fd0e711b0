#!/usr/bin/env python3
"""Every field of a flow record, end to end, from the field table itself
(common/flowrec_fields.h, printed by `flowgen --fields`): nothing here
names a field.

1. The coordinator's `flows` table has exactly the table's columns, with
   its SQL types (information_schema), after node.
2. Records in which every field has its own non-default value
   (`flowgen --distinct`, through the recorder's protobuf mapping) go over
   the bus into PostgreSQL: each column holds what the table says, and
   `mscope flows --json` gives back each field's JSON value unchanged.
3. A recorder's own `--flows-json` for real captures (tests/data) equals
   what `mscope flows --json` gives for the same flows, key by key, and
   every key is one of the table's.
4. docs/openapi.json's FlowRecord (and the schemas it refers to) has
   exactly the table's protobuf fields, each of the type the REST API's
   JSON gives its kind, all required.
5. A database made before a field existed (one column dropped, the
   flows_all view made without it): the restarted coordinator adds the
   column itself, and records round-trip as in 2. A column of another type
   than the table's: the coordinator refuses to start and says why.
"""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

MISSING = object()
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def table(flowgen):
    return [json.loads(line) for line in h.run([flowgen, "--fields"]).stdout.decode().splitlines()]


def get(obj, path):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            return MISSING
        obj = obj[k]
    return obj


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


OPENAPI_TYPE = {"ID": "string", "U64": "string", "I64": "string", "U32B": "integer",
                "U32": "integer", "U16": "integer", "U8": "integer", "IP": "string",
                "TEXT8": "string", "TEXT24": "string", "BOOL": "boolean"}


def check_openapi(fields):
    """The REST API's document (hand-written) against the table: the same
    fields, no more, no fewer (the REST JSON comes from the .proto)."""
    doc = json.load(open(os.path.join(DATA, "..", "..", "docs", "openapi.json")))
    schemas = doc["components"]["schemas"]

    def ref(prop):
        for alt in prop.get("oneOf", [prop]):
            if "$ref" in alt:
                return alt["$ref"].split("/")[-1]
        return None

    seen = set()
    for f in fields:
        name, *path = ["FlowRecord"] + f["pb"].split(".")
        for i, key in enumerate(path):
            schema = schemas[name]
            h.check(key in schema["properties"], f"openapi.json: {name} lacks {key} ({f['pb']})")
            h.check(key in schema.get("required", []), f"openapi.json: {name}.{key} not required")
            seen.add((name, key))
            prop = schema["properties"][key]
            if i + 1 < len(path):
                name = ref(prop)
                h.check(name, f"openapi.json: {f['pb']} is not an object")
            else:
                h.check(prop.get("type") == OPENAPI_TYPE[f["kind"]],
                        f"openapi.json: {name}.{key} is {prop.get('type')}, "
                        f"{f['kind']} gives {OPENAPI_TYPE[f['kind']]}")
    for name in {n for n, _ in seen}:
        extra = set(schemas[name]["properties"]) - {k for n, k in seen if n == name}
        h.check(not extra, f"openapi.json: {name} has {extra}, which the field table lacks")
    print(f"ok  openapi.json's FlowRecord has the field table's {len(fields)} values")


def check_columns(co, fields, ordered=True):
    want = [("node", "text")] + [(f["sql"], f["sql_type"].split()[0]) for f in fields if f["sql"]]
    for table in ("flows", "flows_live", "flows_all"):
        got = co.sql("SELECT column_name, data_type FROM information_schema.columns WHERE "
                     f"table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position")
        got = [tuple(r) for r in got if r[0] not in ("first_ts", "updated_at")]
        if not ordered:  # columns added later come last
            got, want = sorted(got), sorted(want)
        h.check(got == want, f"{table}'s columns differ from the field table:\n db    {got}\n"
                             f" table {want}")
    print(f"ok  flows, flows_live and flows_all have the field table's {len(want) - 1} columns "
          "and types")


def mscope_flows(co, node):
    p = h.run(co.cli("--timeout", "5s", "flows", "--node", node, "--from", "0", "--limit", "10000",
                     "--json"))
    return {r["flow_id"]: r for r in json.loads(p.stdout)}


def check_distinct(co, fields, flowgen, node):
    p = h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--node", node,
               "--distinct", "4"])
    sent = [json.loads(line) for line in p.stdout.decode().splitlines()]
    h.check(len(sent) == 4, f"flowgen --distinct printed {len(sent)} records")
    shown = [f for f in fields if f["json"]]
    stored = [f for f in fields if f["sql"]]
    for s in sent:
        j = s["json"]
        values = []
        for f in shown:
            v = get(j, f["json"])
            h.check(v is not MISSING and v not in (0, "", False, None, "::", "0.0.0.0"),
                    f"{f['json']} has no value of its own in the record sent: {v!r}")
            if not f["derived"]:
                values.append((v, f["json"]))
        dup = len({v for v, _ in values}) != len(values)
        h.check(not dup, f"two fields share a value in the record sent: {sorted(values, key=str)}")
        for f in stored:
            h.check(f["sql"] in s["sql"], f"flowgen gave no value for column {f['sql']}")
    h.check(h.wait_for(lambda: len(co.sql(f"SELECT 1 FROM flows_all WHERE node = '{node}'")) == 4, 20),
            f"the coordinator did not store the 4 records: {co.stats()}")

    # PostgreSQL: every column as the table encodes it.
    cols = [f["sql"] for f in stored]
    rows = co.sql(f"SELECT {', '.join(cols)} FROM flows_all WHERE node = '{node}'")
    by_id = {}
    for r in rows:
        by_id[int(r[cols.index("flow_id")]) % (1 << 64)] = dict(zip(cols, r))
    for s in sent:
        row = by_id.get(s["json"]["flow_id"])
        h.check(row is not None, f"flow {s['json']['flow_id']} is not in PostgreSQL")
        for c in cols:
            h.check(row[c] == s["sql"][c], f"column {c}: {row[c]!r} stored, {s['sql'][c]!r} sent")
    print(f"ok  {len(sent)} records with every field distinct: all {len(cols)} columns as sent")

    # mscope flows --json: every field's JSON value as sent.
    got = mscope_flows(co, node)
    for s in sent:
        j = s["json"]
        g = got.get(j["flow_id"])
        h.check(g is not None, f"mscope flows lacks flow {j['flow_id']}")
        for f in shown:
            h.check(get(g, f["json"]) == get(j, f["json"]),
                    f"{f['json']}: mscope flows --json {get(g, f['json'])!r}, sent {get(j, f['json'])!r}")
        h.check(g["node"] == node, f"node {g['node']!r}")
        h.check(flatten(g) == flatten(j), f"mscope flows --json differs:\n got  {g}\n sent {j}")
    print(f"ok  mscope flows --json gives back all {len(shown)} JSON values of each record")


def check_capture(co, fields, d):
    """A recorder's --flows-json for real captures against the coordinator's answer."""
    paths = {f["json"] for f in fields if f["json"]} | {"node"}
    pcaps = sorted(glob.glob(os.path.join(DATA, "*.pcap")))
    h.check(pcaps, "no captures in tests/data")
    total = 0
    for i, pcap in enumerate(pcaps):
        node = f"cap-{i}"
        js = os.path.join(d, f"{node}.json")
        keys = co.enroll(os.path.join(d, node), node)
        h.run([h.RECORDER, "--read", pcap, *keys, "--node-id", node, "--flows-json", js])
        want = {}
        for line in open(js):
            r = json.loads(line)
            if r["final"]:
                want[r["flow_id"]] = r
        h.check(want, f"{pcap}: no final records")
        h.check(h.wait_for(lambda: len(mscope_flows(co, node)) == len(want), 20),
                f"{pcap}: {len(mscope_flows(co, node))} flows stored of {len(want)}")
        got = mscope_flows(co, node)
        for fid, w in want.items():
            g = got.get(fid)
            h.check(g is not None, f"{pcap}: flow {fid} missing")
            for f in fields:
                if f["json"]:
                    h.check(get(g, f["json"]) == get(w, f["json"]),
                            f"{pcap} flow {fid} {f['json']}: stored {get(g, f['json'])!r}, "
                            f"recorder {get(w, f['json'])!r}")
            extra = set(flatten(w)) - paths
            h.check(not extra, f"JSON keys not in the field table: {extra}")
            h.check(flatten(g) == flatten(w), f"{pcap} flow {fid}:\n got {g}\n rec {w}")
        total += len(want)
    print(f"ok  {len(pcaps)} captures: {total} records from --flows-json equal mscope flows --json, "
          "field by field")


def main():
    h.init()
    cluster.init()
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    fields = table(flowgen)
    h.check(len(fields) > 40 and all(f["json"] or f["sql"] for f in fields),
            f"flowgen --fields: {fields[:3]}")
    check_openapi(fields)
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    co = Coordinator(d)
    try:
        check_columns(co, fields)
        check_distinct(co, fields, flowgen, "fields-test")
        check_capture(co, fields, d)
        st = co.stats()
        h.check(st["bad_messages"] == 0 and st["gaps"] == 0, f"coordinator stats {st}")

        # A database from before one of the fields: the coordinator adds it.
        stored = [f["sql"] for f in fields if f["sql"]]
        col = stored[len(stored) // 2]
        co.sql(f"DROP VIEW flows_all; ALTER TABLE flows DROP COLUMN {col}; "
               f"ALTER TABLE flows_live DROP COLUMN {col}; "
               "CREATE VIEW flows_all AS SELECT * FROM flows UNION ALL SELECT * FROM flows_live")
        h.check(co.stop() == 0, "the coordinator did not stop cleanly")
        co = Coordinator(d, reuse=co)
        h.check(f"columns added to flows from the flow record's field table: {col}" in co.log_text(),
                f"no column added at start-up:\n{co.log_text()[-2000:]}")
        check_columns(co, fields, ordered=False)
        check_distinct(co, fields, flowgen, "fields-test-2")

        # A column whose type is not its kind's: no start, and the log says which.
        col = stored[len(stored) // 3]
        co.sql(f"DROP VIEW flows_all; ALTER TABLE flows ALTER COLUMN {col} TYPE numeric; "
               f"ALTER TABLE flows_live ALTER COLUMN {col} TYPE numeric; "
               "CREATE VIEW flows_all AS SELECT * FROM flows UNION ALL SELECT * FROM flows_live")
        h.check(co.stop() == 0, "the coordinator did not stop cleanly")
        p = subprocess.run([cluster.COORD, "--data-dir", co.dir, "--bus", f"tcp://127.0.0.1:{co.port}",
                            "--rpc", co.rpc, "--http", co.http, "--pg-port", str(cluster.PGPORT),
                            *co.extra], capture_output=True, timeout=120)
        out = (p.stdout + p.stderr).decode(errors="replace")
        h.check(p.returncode != 0 and f"column flows.{col} is numeric, the flow record's field "
                "table says" in out, f"a column of the wrong type: exit {p.returncode}\n{out[-2000:]}")
        print("ok  a database lacking a column gets it at start-up; one of another type stops it")
    finally:
        co.stop()


if __name__ == "__main__":
    main()
