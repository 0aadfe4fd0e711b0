#!/usr/bin/env python3
"""Broker reload on SIGHUP, while a live feed is flowing.

Tool 'keep' (unchanged) must receive every packet across the reload, in one
file that stays open; tool 'refilter' (only its filter changes) keeps its file
and applies the new filter from the reload on; 'gone' is removed (its output
closed); 'fresh' is added. A broken file on a later SIGHUP is refused with a
FILE:LINE error in the log and the running configuration keeps working.
SIGUSR1 logs the counters.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402

CONF1 = """
[tool keep]
type = pcap
dir = {d}/keep

[tool refilter]
type = pcap
dir = {d}/refilter
filter = tcp

[tool gone]
type = pcap
dir = {d}/gone
"""

# The same, but 'refilter' selects udp now, 'gone' is replaced by 'fresh'.
CONF2 = CONF1.replace("filter = tcp", "filter = udp").replace("gone", "fresh")


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 2000, "--flows", 100, "--nsec",
                "--mix", "clean", "--seed", 6)
    conf = os.path.join(d, "broker.conf")
    h.write_conf(conf, CONF1.format(d=d))
    b = h.Broker(conf, d)
    try:
        # 6 loops of 2000 at 4000/s: ~3 s of traffic; reload in the middle.
        sender = subprocess.Popen([h.VXSEND, "--to", f"127.0.0.1:{b.port}", "--rate", "4000",
                                   "--loop", "6", "--count", src], stdout=subprocess.PIPE)
        h.check(h.wait_for(lambda: (b.stats() or {}).get("frames", 0) > 3000, 10), "no traffic")
        h.write_conf(conf, CONF2.format(d=d))
        b.signal(signal.SIGHUP)
        h.check(h.wait_for(lambda: (b.stats() or {}).get("reloads", 0) == 1, 10),
                f"no reload: {b.log_text()}")
        at_reload = b.stats()["frames"]
        out = sender.communicate(timeout=60)[0].decode()
        n = int(dict(kv.split("=") for kv in out.split())["sent"])
        h.check(b.wait_rx(n), f"broker saw {b.stats()}")
        # A broken file is refused; the running configuration stays.
        h.write_conf(conf, CONF2.format(d=d) + "\n[tool broken]\ntype = vxlan\n")
        b.signal(signal.SIGHUP)
        h.check(h.wait_for(lambda: "keeping the running configuration" in b.log_text(), 10),
                f"broken reload not reported: {b.log_text()}")
        h.check(f"{conf}:15: vxlan tool 'broken' needs 'dest" in b.log_text(),
                f"reload error should name the line: {b.log_text()}")
        b.signal(signal.SIGUSR1)
        h.check(h.wait_for(lambda: "tool keep: in" in b.log_text(), 10), "SIGUSR1 logged no counters")
        h.vxsend(src, b.port, "--rate", 20000)
        h.check(b.wait_rx(n + 2000), "no traffic after the refused reload")
        time.sleep(0.3)
    finally:
        rc = b.stop()
    h.check(rc == 0, f"exit {rc}: {b.log_text()}")
    st = b.stats()
    total = n + 2000
    keep, knames = h.pcap_dir(f"{d}/keep")
    h.check(len(keep) == total and len(knames) == 1,
            f"unchanged tool got {len(keep)} of {total} packets in {len(knames)} files")
    ref, rnames = h.pcap_dir(f"{d}/refilter")
    h.check(len(rnames) == 1, f"refilter's output should have stayed open: {rnames}")
    h.check(st["tools"]["refilter"]["in"] == total, "counters carried across the reload")
    gone, _ = h.pcap_dir(f"{d}/gone")
    fresh, _ = h.pcap_dir(f"{d}/fresh")
    h.check(0 < len(gone) < total and len(gone) <= at_reload and "gone" not in st["tools"],
            f"removed tool: {len(gone)} packets")
    h.check(len(gone) + len(fresh) == total, f"gone {len(gone)} + fresh {len(fresh)} != {total}")
    print(f"reload under a {total}-packet feed: unchanged tool got all {len(keep)} in one file; "
          f"removed tool {len(gone)}, added tool {len(fresh)}; broken file refused with its line")


if __name__ == "__main__":
    main()
