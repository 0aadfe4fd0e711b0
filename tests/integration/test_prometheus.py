#!/usr/bin/env python3
"""A real Prometheus server scrapes a coordinator, two recorders and a broker.

- Every daemon runs on loopback with free ports; Prometheus (Debian's
  /usr/bin/prometheus) runs with a scrape config this test writes (every
  second), its TSDB, console paths and web listener in the test's own
  directory and 127.0.0.1 — nothing from /etc/prometheus or
  /var/lib/prometheus — and is stopped by pid at the end.
- Known traffic: a different number of VXLAN packets to each recorder, a
  capture to the broker (two tools: all packets, and `tcp port 443`),
  flowgen's records to the coordinator.
- Through Prometheus's query API, not by scraping ourselves: `up == 1` for
  all four targets and no scrape error; each recorder's
  mscope_recorder_packets_received_total equals what it was fed; the
  broker's received and per-tool sent counters equal what was fed and what
  tcpdump selects; the coordinator's records_written_total equals its
  stats.json and what flowgen sent.
- Every /metrics also passes `promtool check metrics`.
- One recorder, the broker and the coordinator run with
  --metrics-token-file: without the token (or with a wrong one) their
  /metrics answers 401 and /healthz still 200; Prometheus scrapes them with
  the token from a credentials_file, and sees each one's
  mscope_metrics_unauthorized_total count the refusals.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import harness as h  # noqa: E402
from cluster import Coordinator  # noqa: E402

REC_PACKETS = (3000, 1700)   # fed to recorder 1 and 2
BROKER_PACKETS = 2500
RECORDS = 4000               # flowgen's records to the coordinator


class Prometheus:
    """A Prometheus server of our own: its files under d, its listener on
    127.0.0.1, every path given so that no Debian default is read."""

    def __init__(self, binary, d, jobs, token_file=None):
        self.dir = os.path.join(d, "prometheus")
        os.makedirs(self.dir)
        self.addr = f"127.0.0.1:{h.free_tcp_port()}"
        conf = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
                "  evaluation_interval: 1s", "scrape_configs:"]
        for job, targets in jobs.items():
            conf += [f"  - job_name: {job}", "    static_configs:",
                     f"      - targets: [{', '.join(json.dumps(t) for t in targets)}]"]
            if token_file:  # sent to every target: one that wants none ignores it
                conf += ["    authorization:", "      type: Bearer",
                         f"      credentials_file: {json.dumps(token_file)}"]
        self.config = h.write_conf(os.path.join(self.dir, "prometheus.yml"), "\n".join(conf) + "\n")
        h.run(["promtool", "check", "config", self.config])
        self.log = open(os.path.join(self.dir, "prometheus.log"), "ab+")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address={self.addr}",
             f"--web.console.templates={os.path.join(self.dir, 'consoles')}",
             f"--web.console.libraries={os.path.join(self.dir, 'console_libraries')}",
             "--log.level=warn"],
            stdout=self.log, stderr=self.log, cwd=self.dir)
        ok = h.wait_for(lambda: self.proc.poll() is not None or self._ready(), 30, step=0.2)
        if not ok or self.proc.poll() is not None:
            h.fail(f"prometheus did not become ready:\n{self.log_text()}")

    def _ready(self):
        try:
            return h.http_get(self.addr, "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def api(self, path):
        st, _, body = h.http_get(self.addr, path)
        val = json.loads(body)
        h.check(st == 200 and val.get("status") == "success", f"prometheus {path}: {st} {val}")
        return val["data"]

    def query(self, expr):
        """An instant query: [(labels, value), ...]."""
        data = self.api("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr):
        """The one value expr has now, or None."""
        res = self.query(expr)
        h.check(len(res) <= 1, f"{expr}: more than one series: {res}")
        return res[0][1] if res else None

    def wait_value(self, expr, want, timeout=20):
        """Wait until Prometheus has scraped want for expr; fail naming the
        last value it had."""
        if not h.wait_for(lambda: self.value(expr) == want, timeout, step=0.25):
            h.fail(f"Prometheus says {expr} = {self.value(expr)}, want {want}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                h.fail("prometheus did not stop on SIGTERM within 30 s")


def main():
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus"
                                            if os.access("/usr/bin/prometheus", os.X_OK) else None)
    if not binary:
        h.skip("the Prometheus server (Debian package prometheus, /usr/bin/prometheus) is not "
               "installed: scripts/deps.sh installs it")
    h.init()
    cluster.init()
    if not shutil.which("promtool"):
        h.fail("promtool is not installed (Debian package prometheus)")
    flowgen = h.binary("MSCOPE_FLOWGEN", "flowgen")
    d = h.tmpdir()
    os.chmod(d, 0o755)

    srcs = [h.gen(os.path.join(d, f"rec{i}.pcap"), "--packets", n, "--flows", 40,
                  "--seed", 20 + i, "--mix", "clean") for i, n in enumerate(REC_PACKETS)]
    bsrc = h.gen(os.path.join(d, "broker.pcap"), "--packets", BROKER_PACKETS, "--flows", 120,
                 "--seed", 31, "--mix", "clean")
    conf = h.write_conf(os.path.join(d, "broker.conf"), f"""
[tool all]
type = pcap
dir = {d}/all

[tool web]
type = pcap
dir = {d}/web
filter = tcp port 443
""")

    token_file = os.path.join(d, "metrics.token")
    with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    token = open(token_file).read().strip()
    guard = ("--metrics-token-file", token_file)

    daemons, prom = [], None
    try:
        co = Coordinator(d, extra=guard)
        daemons.append(co)
        recs = [h.Daemon(os.path.join(d, f"rec{i}"), *(guard if i else ()))
                for i in range(len(REC_PACKETS))]
        daemons += recs
        br = h.Broker(conf, d, *guard)
        daemons.append(br)
        guarded = [co.http, recs[1].http, br.http]

        # Without the token: 401 from /metrics, 200 from /healthz (a load
        # balancer sends no header); a wrong token is refused the same way.
        for addr in guarded:
            for tok in (None, "not-the-token-" + "x" * 16):
                st, hdrs, body = h.http_get(addr, "/metrics", tok)
                h.check(st == 401 and hdrs.get("www-authenticate") == "Bearer"
                        and json.loads(body)["status"] == 401,
                        f"/metrics on {addr} with token {tok!r}: {st} {hdrs} {body[:200]!r}")
            st, _, body = h.http_get(addr, "/healthz")
            h.check(st == 200, f"/healthz on {addr} without a token: {st} {body[:200]!r}")
        st, _, _ = h.http_get(recs[0].http, "/metrics")
        h.check(st == 200, f"/metrics of the recorder without --metrics-token-file: {st}")
        print(f"ok  with --metrics-token-file /metrics answers 401 without the token or with a "
              f"wrong one ({', '.join(guarded)}), /healthz 200; without the option 200")

        targets = {"coordinator": [co.http], "recorder": [r.http for r in recs],
                   "broker": [br.http]}
        prom = Prometheus(binary, d, targets, token_file)

        # Every target up, as Prometheus sees it.
        want_up = {(job, t) for job, ts in targets.items() for t in ts}

        def all_up():
            return {(m["job"], m["instance"]) for m, v in prom.query("up") if v == 1} == want_up
        if not h.wait_for(all_up, 30, step=0.25):
            h.fail(f"up in Prometheus: {prom.query('up')}, want 1 for {sorted(want_up)}")
        active = prom.api("/api/v1/targets?state=active")["activeTargets"]
        h.check(len(active) == 4 and all(t["health"] == "up" and not t["lastError"]
                                         for t in active),
                f"targets: {[(t['labels'], t['health'], t['lastError']) for t in active]}")
        print(f"ok  Prometheus at {prom.addr} scrapes 4 targets every second: up == 1 for "
              f"{', '.join(f'{j} {t}' for j, t in sorted(want_up))}")

        # Known traffic.
        for r, src, n in zip(recs, srcs, REC_PACKETS):
            h.check(int(h.vxsend(src, r.port, "--rate", 20000)["sent"]) == n, "vxsend count")
        sent_b = int(h.vxsend(bsrc, br.port, "--rate", 20000)["sent"])
        h.check(sent_b == BROKER_PACKETS, f"vxsend sent {sent_b} to the broker")
        h.run([flowgen, "--to", f"tcp://127.0.0.1:{co.port}", *co.flowgen_keys(), "--records", str(RECORDS)])
        for r, n in zip(recs, REC_PACKETS):
            h.check(r.wait_rx(n), f"recorder {r.http}: {r.stats()}")
        h.check(h.wait_for(lambda: (br.stats() or {}).get("rx_packets") == BROKER_PACKETS, 15),
                f"broker: {br.stats()}")
        h.check(h.wait_for(lambda: co.stats()["records_written"] >= RECORDS, 30),
                f"coordinator: {co.stats()}")

        # The counters, through Prometheus.
        for r, n in zip(recs, REC_PACKETS):
            prom.wait_value(f'mscope_recorder_packets_received_total{{instance="{r.http}"}}', n)
        print(f"ok  mscope_recorder_packets_received_total per instance: "
              f"{', '.join(f'{r.http} {n}' for r, n in zip(recs, REC_PACKETS))}, as fed")

        web = len(h.tcpdump(bsrc, "tcp port 443"))
        h.check(0 < web < BROKER_PACKETS, f"tcp port 443 selects {web} of {BROKER_PACKETS}")
        inst = f'instance="{br.http}"'
        prom.wait_value(f"mscope_broker_received_packets_total{{{inst}}}", BROKER_PACKETS)
        for tool, want in (("all", BROKER_PACKETS), ("web", web)):
            prom.wait_value(f'mscope_broker_tool_offered_packets_total{{{inst},tool="{tool}"}}',
                            BROKER_PACKETS)
            prom.wait_value(f'mscope_broker_tool_packets_total{{{inst},tool="{tool}",'
                            f'result="sent"}}', want)
        filtered = prom.value(f'mscope_broker_tool_packets_total{{{inst},tool="web",'
                              f'result="filtered"}}')
        h.check(filtered == BROKER_PACKETS - web, f"web filtered {filtered}")
        print(f"ok  broker: {BROKER_PACKETS} received; tool all sent {BROKER_PACKETS}, tool web "
              f"sent {web} (tcpdump's count) and filtered {BROKER_PACKETS - web}")

        st = co.stats()
        h.check(st["records_written"] == RECORDS and st["records_received"] == RECORDS,
                f"coordinator stats.json: {st}")
        prom.wait_value(f'mscope_coordinator_records_written_total{{instance="{co.http}"}}',
                        st["records_written"])
        prom.wait_value(f'sum(mscope_coordinator_bus_gaps_total{{instance="{co.http}"}}) or vector(0)',
                        st["gaps"])
        print(f"ok  mscope_coordinator_records_written_total {st['records_written']}: as "
              f"stats.json says and flowgen sent")

        for addr in guarded:
            prom.wait_value(f'mscope_metrics_unauthorized_total{{instance="{addr}"}}', 2)
        print(f"ok  Prometheus scrapes the guarded ones with the token from a credentials_file; "
              f"each counts the 2 refusals in mscope_metrics_unauthorized_total")

        for addr in [co.http] + [r.http for r in recs] + [br.http]:
            h.scrape(addr, token if addr in guarded else None)
        print("ok  every /metrics passes promtool check metrics")

        prom.stop()
        rcs = [(getattr(dmn, "what", "coordinator"), dmn.stop()) for dmn in reversed(daemons)]
        h.check(all(rc == 0 for _, rc in rcs), f"exit status: {rcs}")
    finally:
        if prom:
            prom.stop()
        for dmn in reversed(daemons):
            dmn.stop()


if __name__ == "__main__":
    main()
