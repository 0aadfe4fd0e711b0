#!/usr/bin/env python3
"""The recorder's per-flow TCP metrics must agree with Wireshark's TCP analysis.

For each capture, `mscope-recorder --read PCAP --flows-json -` is compared
flow by flow with tshark's tcp.analysis.* reading of the same file
(tests/lib/tshark_flows.py; the fields, which are exact and which tolerant,
and why, are in its doc).

Captures:
  * as root: five live scenarios of real Linux TCP between two network
    namespaces joined by a userspace delay line (tests/lib/tcprig.py,
    tests/tools/tapdelay.c), captured with tcpdump on the client's interface:
    clean ~20 ms RTT; 1% loss (nftables); 5% loss with reordering; a slow
    reader that forces zero windows; 125 short connections, 20 of them
    refused.  A few seconds each.
  * always: the same five scenarios recorded once into tests/data/tcp_*.pcap
    (headers only, snaplen 96; see tests/data/README.md).  Without root the
    live part is skipped with a visible line and only these are compared.

Before the recorder is asked anything, the comparison itself is checked
(tshark_flows.selfcheck): identical flows compare equal, and a changed
packet count, a missing handshake time, swapped endpoints, a missing or an
extra flow are each caught.  Every capture is also checked for the events its
scenario exists for (e.g. zero windows in the zero-window one), so a quiet
rig cannot make the test pass vacuously.

Exit 0 pass, 1 fail (with a per-flow, per-field report; the full reports are
kept in the temporary directory named at the end).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import tcprig  # noqa: E402
import tshark_flows as tf  # noqa: E402

DATA = os.path.join(h.ROOT, "tests", "data")
REPORT_LINES = 60  # per capture on the console; the whole report goes to a file


def totals(flows):
    t = {}
    for f in flows:
        for d in ("c2s", "s2c"):
            for k in tf.DIR_FIELDS:
                t[k] = t.get(k, 0) + f[d][k]
    return t


def scenario_problems(name, flows):
    """What is missing from a capture for it to test what its scenario is
    for; [] when it has it all."""
    t = totals(flows)
    want = {
        "clean": [(len(flows) == 1, "one flow"),
                  (t.get("retransmissions") == 0, "no retransmission"),
                  # tapdelay's 10 ms each way, seen by the handshake
                  (all(20_000_000 <= f["handshake"].get("initial_rtt_ns", 0) < 60_000_000
                       for f in flows), "an initial RTT of 20..60 ms")],
        "loss1": [(t.get("retransmissions", 0) >= 1, "a retransmission")],
        "loss5_reorder": [(t.get("retransmissions", 0) >= 1, "a retransmission"),
                          (t.get("lost_segments", 0) >= 1, "a lost segment"),
                          (t.get("out_of_order", 0) >= 1, "an out-of-order segment"),
                          (t.get("dup_acks", 0) >= 1, "a duplicate ACK")],
        "zerowin": [(t.get("zero_windows", 0) >= 1, "a zero window"),
                    (t.get("window_full", 0) >= 1, "a window-full segment")],
        "short_conns": [(len(flows) >= 100, "100 flows or more"),
                        (sum(1 for f in flows if f["conn_state"] == "REJ") >= 10,
                         "refused connections"),
                        (t.get("keep_alives", 0) >= 1, "a keep-alive")],
    }[name]
    return [f"{name}: expected {what}" for ok, what in want if not ok]


def recorder_flows(pcap):
    """(flows, None) from the recorder, or (None, why not)."""
    cmd = [h.RECORDER, "--read", pcap, "--flows-json", "-"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(cmd)} did not finish in 300 s"
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return None, (f"{' '.join(cmd)} exited {p.returncode}: " + "\n    ".join(err[-8:]))
    try:
        flows = tf.load_jsonl(p.stdout.decode(errors="replace"))
    except ValueError as e:
        return None, f"{' '.join(cmd)}: output is not JSON lines: {e}"
    # interim records, if any, are not the flow's final word
    return [f for f in flows if f.get("final", True) is not False], None


def live_unavailable():
    """Why the live scenarios cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ip", "nft", "tcpdump", "ethtool"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


def main():
    h.init()
    for tool in ("tshark", "editcap"):
        if not shutil.which(tool):
            h.fail(f"{tool} is not installed (run scripts/deps.sh)")
    work = h.tmpdir("mscope-tcp-")
    captures = []  # (label, scenario, pcap)

    why_not = live_unavailable()
    if why_not:
        print(f"SKIP live scenarios: {why_not}; using committed pcaps", file=sys.stderr,
              flush=True)
    else:
        td = tcprig.find_tapdelay(work)
        for name in tcprig.SCENARIOS:
            pcap = os.path.join(work, f"live_{name}.pcap")
            try:
                summary = tcprig.scenario(name, pcap, td, work)
            except (tcprig.RigError, OSError, subprocess.SubprocessError) as e:
                h.fail(f"live scenario {name} could not run: {e}")
            print(f"live {name}: {summary}", flush=True)
            captures.append((f"live {name}", name, pcap))
    for name in tcprig.SCENARIOS:
        pcap = os.path.join(DATA, f"tcp_{name}.pcap")
        if not os.path.exists(pcap):
            h.fail(f"committed capture {pcap} is missing (see tests/data/README.md)")
        captures.append((f"committed {name}", name, pcap))

    failures = []
    checked_oracle = False
    for label, name, pcap in captures:
        try:
            theirs = tf.flows(pcap)
        except (tf.OracleError, OSError, ValueError) as e:
            h.fail(f"{label}: the oracle cannot read {pcap}: {e}")
        problems = scenario_problems(name, theirs)
        if problems:
            # a live run is random: say so, loudly, but judge what it did produce
            msg = f"{label}: the capture lacks what the scenario is for: {'; '.join(problems)}"
            if label.startswith("live"):
                print(f"WARNING: {msg}", flush=True)
            else:
                failures.append(msg)
        if not checked_oracle:
            bad = tf.selfcheck(theirs)
            if bad:
                h.fail("the comparison itself is broken (tshark_flows.selfcheck):\n" +
                       "\n".join(bad))
            checked_oracle = True
        ours, err = recorder_flows(pcap)
        if ours is None:
            failures.append(f"{label}: {err}")
            print(f"{label}: FAIL: {err}", flush=True)
            continue
        ok, report = tf.compare(ours, theirs)
        path = os.path.join(work, f"report-{label.replace(' ', '-')}.txt")
        with open(path, "w") as f:
            f.write(report + "\n")
        with open(path[:-4] + ".tshark.jsonl", "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in theirs)
        rep = report.splitlines()
        if ok:
            print(f"{label}: ok: {rep[0]}", flush=True)
        else:
            failures.append(f"{label}: {rep[0]}")
            print(f"{label}: FAIL: " + "\n".join(rep[:REPORT_LINES]), flush=True)
            if len(rep) > REPORT_LINES:
                print(f"  ... {len(rep) - REPORT_LINES} more lines in {path}", flush=True)

    if failures:
        h.fail(f"{len(failures)} of {len(captures)} captures disagree with tshark "
               f"(reports and tshark's flows kept in {work}):\n  " + "\n  ".join(failures))
    shutil.rmtree(work, ignore_errors=True)
    print(f"tcp analytics: {len(captures)} captures, every flow agrees with tshark "
          f"(exact: {', '.join(tf.DIR_EXACT)}, handshake; within max({tf.TOL_ABS}, "
          f"{int(tf.TOL_REL * 100)}%): {', '.join(tf.DIR_TOLERANT)}; rtt_ns a subset of "
          f"tshark's samples)")


if __name__ == "__main__":
    main()
