#!/usr/bin/env python3
"""The web dashboard (coordinator/webui.c, web/) in a real browser.

A coordinator with its embedded PostgreSQL and two recorders: each imports
20 minutes of generated traffic (its flow records go over the bus to the
coordinator, its packets into its store) and then runs as a daemon that
answers searches and receives live VXLAN traffic from vxsend. Then:

- HTTP: "/" and every embedded file answer with their content type, an
  ETag, "Cache-Control: no-cache", nosniff and a Content-Security-Policy;
  If-None-Match gives a 304 with no body; a path that is not a file is the
  API's JSON 404; a POST is a 405; no token is needed for the files.
- tests/browser/dashboard.test.js drives Debian's chromium (playwright-core)
  through every page: each chart has drawn its data, each table's rows are
  those of the REST API answer it came from, and the downloads of a search
  and of a flow's "packets" button are written where we can read them.
- Those downloads: capinfos accepts them, and each equals `mscope search`
  for the same expression and time range, byte for byte.
- Monitors: one created on the page (after the read token is told it needs
  the admin one) is in `mscope monitors list --json`; a third recorder then
  reads captures into the range (its flow records are the monitor's), the
  monitor's charts equal its REST series, and its "packets" download passes
  capinfos and equals `mscope flows --monitor NAME -w` for the range; another
  is edited and deleted from the page.

Screenshots of every page go to a scratch directory, or to
MSCOPE_SCREENSHOTS (docs/img when refreshing the documentation's).
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_DIR = os.path.join(h.ROOT, "tests", "browser")
SPAN_S = 1200          # the imported traffic's 20 minutes, ending 2 minutes ago
NAMES = ("rec-a", "rec-b")


def files_checks(co):
    st, hdr, body = co.get("/")
    h.check(st == 200 and hdr["content-type"] == "text/html; charset=utf-8" and b"<html" in body,
            f"/: {st} {hdr}")
    for k, want in (("cache-control", "no-cache"), ("x-content-type-options", "nosniff")):
        h.check(hdr.get(k) == want, f"/: {k} is {hdr.get(k)!r}, want {want!r}")
    h.check("default-src 'self'" in hdr.get("content-security-policy", ""), f"/: CSP {hdr}")
    etag = hdr.get("etag", "")
    h.check(etag.startswith('"') and len(etag) == 18, f"/: etag {etag!r}")
    st, hdr2, body = co.get("/index.html")
    h.check(st == 200 and hdr2["etag"] == etag, f"/index.html: {st} {hdr2}")
    st, hdr2, body = h.http_get(co.http, "/", headers={"If-None-Match": etag})
    h.check(st == 304 and body == b"", f"If-None-Match: {st} {body[:50]!r}")
    for path, ctype in (("/app.css", "text/css; charset=utf-8"),
                        ("/js/main.js", "text/javascript; charset=utf-8"),
                        ("/vendor/uPlot.esm.js", "text/javascript; charset=utf-8"),
                        ("/vendor/uPlot.min.css", "text/css; charset=utf-8")):
        st, hdr2, body = co.get(path)
        h.check(st == 200 and hdr2["content-type"] == ctype and len(body) > 100,
                f"{path}: {st} {hdr2.get('content-type')} {len(body)} bytes")
    uplot = os.path.join(h.ROOT, "web", "node_modules", "uplot", "dist", "uPlot.esm.js")
    h.check(co.get("/vendor/uPlot.esm.js")[2] == open(uplot, "rb").read(), "uPlot differs from npm's")
    for path in ("/nothing.js", "/js/", "/flows", "/../etc/passwd"):
        st, hdr2, body = co.get(path)
        h.check(st == 404 and json.loads(body)["status"] == 404, f"{path}: {st} {body[:80]!r}")
    st, _, _ = h.http_get(co.http, "/index.html", method="POST", body=b"x")
    h.check(st == 405, f"POST /index.html: {st}")
    st, _, _ = co.get("/api/v1/nodes")
    h.check(st == 401, f"the API still needs its token: {st}")
    print("ok  embedded files: types, ETag/304, no-cache, CSP, nosniff; 404 off them; 405 for POST")


def feed(co, d):
    """Two recorders, each with 20 minutes of imported traffic and live VXLAN."""
    now = int(time.time())
    recs = []
    for i, name in enumerate(NAMES):
        dd = os.path.join(d, name)
        pcap = h.gen(os.path.join(d, f"{name}.pcap"), "--packets", 12000, "--flows", 300,
                     "--seed", 81 + i, "--rate", 10, "--start", now - SPAN_S - 120)
        args = co.enroll(dd, name)
        h.import_file(dd, pcap, "--node-id", name, *args)
        if i == 1:  # real TCP with loss, reordering and zero windows, moved to recent minutes
            for k, name_ in enumerate(("tcp_loss1", "tcp_loss5_reorder", "tcp_zerowin", "tcp_clean",
                                       "tcp_short_conns")):
                src = os.path.join(h.ROOT, "tests", "data", f"{name_}.pcap")
                first = float(h.run(["capinfos", "-a", "-S", "-T", "-r", src]).stdout.split()[-1])
                moved = os.path.join(d, f"{name_}-moved.pcap")
                h.run(["editcap", "-t", str(now - 900 + 150 * k - first), src, moved])
                h.import_file(dd, moved, "--node-id", name, *args)
            # application records (DNS, TLS, HTTP) for their pages, likewise moved
            for k, name_ in enumerate(("app_dns", "app_tls", "app_http")):
                src = os.path.join(h.ROOT, "tests", "data", f"{name_}.pcap")
                first = float(h.run(["capinfos", "-a", "-S", "-T", "-r", src]).stdout.split()[-1])
                moved = os.path.join(d, f"{name_}-moved.pcap")
                h.run(["editcap", "-t", str(now - 800 + 120 * k - first), src, moved])
                h.import_file(dd, moved, "--node-id", name, *args)
        ep = f"tcp://127.0.0.1:{h.free_tcp_port()}"
        recs.append(h.Daemon(dd, "--node-id", name, *args, "--search", ep))
    return recs


def feed_monitor(co, d, now):
    """The flow records of the monitor the page created (tcp on rec-c): a third recorder reads real TCP captures and generated traffic
    moved into the pages' range, then runs to answer for its packets. Returns
    once the monitor's minutes have been flushed."""
    dd = os.path.join(d, "rec-c")
    args = co.enroll(dd, "rec-c")
    pcap = h.gen(os.path.join(d, "rec-c.pcap"), "--packets", 6000, "--flows", 200, "--seed", 91,
                 "--rate", 10, "--start", now - 1200)
    h.import_file(dd, pcap, "--node-id", "rec-c", *args)
    for k, name in enumerate(("tcp_loss1", "tcp_zerowin", "tcp_clean", "tcp_short_conns")):
        src = os.path.join(h.ROOT, "tests", "data", f"{name}.pcap")
        first = float(h.run(["capinfos", "-a", "-S", "-T", "-r", src]).stdout.split()[-1])
        moved = os.path.join(d, f"{name}-c.pcap")
        h.run(["editcap", "-t", str(now - 1100 + 200 * k - first), src, moved])
        h.import_file(dd, moved, "--node-id", "rec-c", *args)
    rec = h.Daemon(dd, "--node-id", "rec-c", *args, "--search", f"tcp://127.0.0.1:{h.free_tcp_port()}")
    count = lambda: int(co.sql("SELECT count(*) FROM flows_all WHERE node = 'rec-c'")[0][0])
    last = -1
    while count() != last:  # written, then quiet
        last = count()
        time.sleep(1.5)
    time.sleep(2)  # the monitor's sums are flushed every second
    return rec


def compare_download(co, d, dl):
    """A pcap the page downloaded: capinfos accepts it, and it equals mscope
    search (or, for a monitor's packets, mscope flows --monitor -w) for the
    same input, byte for byte."""
    got = dl["path"]
    ok, err = h.capinfos_ok(got)
    h.check(ok, f"{dl['what']}: capinfos refuses {got}: {err}")
    want = os.path.join(d, f"cli-{dl['what']}.pcap")
    args = ["--from", dl["from"], "--to", dl["to"]]
    if dl.get("monitor"):
        h.run(co.cli("flows", "--monitor", dl["monitor"], *args, "-w", want))
        how = f"mscope flows --monitor {dl['monitor']} -w"
    else:
        if dl.get("nodes"):
            args += ["--nodes", ",".join(dl["nodes"])]
        h.run(co.cli("search", *args, "-q", "-w", want, dl["filter"]))
        how = f"mscope search {dl['filter']!r}"
    a, b = open(got, "rb").read(), open(want, "rb").read()
    h.check(a == b, f"{dl['what']}: the page's pcap ({len(a)} bytes) is not {how}'s "
                    f"({len(b)} bytes) for {args}")
    h.check(len(a) > 24, f"{dl['what']}: an empty capture")
    print(f"ok  {dl['what']}: the page's download == {how} ({len(a)} bytes), capinfos accepts it")


def main():
    h.init()
    cluster.init()
    if not os.path.exists(CHROMIUM):
        h.fail("Debian's chromium is not installed (scripts/deps.sh installs it)")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        h.fail("tests/browser/node_modules is missing (scripts/deps.sh runs npm ci there)")
    d = h.tmpdir()
    os.chmod(d, 0o755)  # the embedded server runs as 'postgres' when we are root
    co = Coordinator(d)
    recs = []
    live = node = None
    try:
        files_checks(co)
        recs = feed(co, d)
        h.check(h.wait_for(lambda: co.stats()["nodes"] == 2, 15), "recorders not known")
        want = 600
        h.check(h.wait_for(lambda: int(co.sql("SELECT count(*) FROM flows_all")[0][0]) >= want, 60),
                f"flow records not written: {co.sql('SELECT count(*) FROM flows_all')}")
        # Live traffic for the ingest rate, running while the browser looks.
        livepcap = h.gen(os.path.join(d, "live.pcap"), "--packets", 4000, "--flows", 40, "--seed", 89)
        live = [subprocess.Popen([h.VXSEND, "--to", f"127.0.0.1:{r.port}", "--rate", "200",
                                  "--loop", "0", livepcap],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for r in recs]
        time.sleep(2)
        now = int(time.time())
        # The range ends on a whole minute a minute back: the per-minute
        # aggregates (app pages) cover whole minutes, and the live traffic's
        # records of the last one keep arriving for its DNS timeout and flow
        # interval (10 s each); a table read twice must not see it grow.
        to = (now - 60) // 60 * 60

        out = os.path.join(d, "browser")
        os.makedirs(out)
        shots = os.environ.get("MSCOPE_SCREENSHOTS") or os.path.join(d, "shots")
        os.makedirs(shots, exist_ok=True)
        env = dict(os.environ, MSCOPE_URL=f"http://{co.http}", MSCOPE_CHROMIUM=CHROMIUM,
                   MSCOPE_READ_TOKEN=open(os.path.join(co.dir, "api-read.token")).read().strip(),
                   MSCOPE_ADMIN_TOKEN=open(os.path.join(co.dir, "api-admin.token")).read().strip(),
                   MSCOPE_OUT=out, MSCOPE_SHOTS=shots,
                   MSCOPE_RANGE_FROM=str(now - SPAN_S - 300), MSCOPE_RANGE_TO=str(to))
        node = subprocess.Popen(["node", os.path.join(BROWSER_DIR, "dashboard.test.js")], env=env)
        # The page creates a monitor, then waits for its flow records.
        created = os.path.join(out, "monitor-created")
        h.check(h.wait_for(lambda: os.path.exists(created) or node.poll() is not None, 400, 0.2) and
                node.poll() is None, f"dashboard.test.js exited {node.poll()} before creating a monitor")
        name = open(created).read()
        mons = {m["name"]: m for m in json.loads(h.run(co.cli("monitors", "list", "--json")).stdout)}
        h.check(name in mons and mons[name]["server_port"] == 0 and mons[name]["proto"] == 6 and
                mons[name]["nodes"] == ["rec-c"], f"mscope monitors list: {mons}")
        print(f"ok  the monitor created on the page is in mscope monitors list: {mons[name]}")
        # The pages' downloads so far, before a third recorder holds packets of the range.
        for dl in json.load(open(os.path.join(out, "before-monitors.json")))["downloads"]:
            compare_download(co, d, dl)
        recs.append(feed_monitor(co, d, now))
        open(os.path.join(out, "fed"), "w").close()
        try:
            rc = node.wait(400)
        except subprocess.TimeoutExpired:
            node.kill()
            rc = node.wait()
        h.check(rc == 0, f"dashboard.test.js exited {rc}")
        result = json.load(open(os.path.join(out, "result.json")))
        for dl in result.get("downloads", []):
            if dl.get("monitor"):
                compare_download(co, d, dl)
        print(f"ok  browser: {', '.join(result['pages'])}; screenshots in {shots}")
    finally:
        if node and node.poll() is None:
            node.kill()
            node.wait()
        for x in live or []:
            x.kill()
            x.wait()
        for x in recs:
            x.stop()
        co.stop()


if __name__ == "__main__":
    main()
