#!/usr/bin/env python3
"""Fed by the Linux kernel's own VXLAN encapsulator, as Traffic Mirroring in
miniature: two namespaces talk over a veth pair; an nftables netdev table on
the client's end duplicates every frame of both directions into a kernel
`vxlan` device (VNI 7, UDP 4789) towards a third namespace where the recorder
listens. What the recorder stores must equal, frame for frame, what tcpdump
captures on the mirrored interface. A second recorder captures the same
interface live (--interface, libpcap) and must store the same frames.
Needs root (namespaces); skipped visibly otherwise.
"""
import collections
import os
import sys
import subprocess
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402

TAG = f"ms{os.getpid() % 100000}"
C, S, R = f"{TAG}c", f"{TAG}s", f"{TAG}r"


def ns(name, *cmd, check=True):
    return h.ns_exec(name, *cmd, check=check)


def setup():
    h.netns_create(C, S, R)
    h.run(["ip", "link", "add", f"{TAG}a", "netns", C, "type", "veth", "peer", f"{TAG}b", "netns", S])
    h.run(["ip", "link", "add", f"{TAG}m", "netns", C, "type", "veth", "peer", f"{TAG}n", "netns", R])
    ns(C, "ip", "addr", "add", "10.200.1.1/24", "dev", f"{TAG}a")
    ns(S, "ip", "addr", "add", "10.200.1.2/24", "dev", f"{TAG}b")
    ns(C, "ip", "addr", "add", "10.200.2.1/24", "dev", f"{TAG}m")
    ns(R, "ip", "addr", "add", "10.200.2.2/24", "dev", f"{TAG}n")
    for n, dev in ((C, f"{TAG}a"), (S, f"{TAG}b"), (C, f"{TAG}m"), (R, f"{TAG}n")):
        h.link_up_plain(n, dev)
    ns(C, "ip", "link", "add", "vx0", "type", "vxlan", "id", "7", "dstport", "4789",
       "remote", "10.200.2.2", "local", "10.200.2.1", "dev", f"{TAG}m")
    ns(C, "ip", "link", "set", "vx0", "up")
    rules = f"""
table netdev mirror {{
  chain in {{ type filter hook ingress device "{TAG}a" priority 0; dup to "vx0"; }}
  chain out {{ type filter hook egress device "{TAG}a" priority 0; dup to "vx0"; }}
}}
"""
    p = subprocess.run(["ip", "netns", "exec", C, "nft", "-f", "-"], input=rules.encode(),
                       capture_output=True)
    if p.returncode != 0:
        h.skip(f"nftables netdev dup not available here: {p.stderr.decode()}")


def teardown():
    h.netns_delete(C, S, R)




def traffic():
    # A TCP exchange: server in S echoes 20 KB back; a UDP datagram; pings.
    server = subprocess.Popen(["ip", "netns", "exec", S, "python3", "-c",
        "import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('10.200.1.2', 8443)); s.listen(1); c,_=s.accept()\n"
        "d=b''\n"
        "while len(d) < 20000:\n"
        "    x=c.recv(65536)\n"
        "    if not x: break\n"
        "    d+=x\n"
        "c.sendall(d); c.close()\n"])
    time.sleep(0.3)
    ns(C, "python3", "-c",
       "import socket\n"
       "c=socket.create_connection(('10.200.1.2', 8443)); c.sendall(b'x'*20000)\n"
       "d=b''\n"
       "while len(d) < 20000:\n"
       "    x=c.recv(65536)\n"
       "    if not x: break\n"
       "    d+=x\n"
       "c.close()\n"
       "u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'hello', ('10.200.1.2', 53))\n")
    server.wait(10)
    ns(C, "ping", "-c", "3", "-i", "0.2", "10.200.1.2")


def main():
    h.init()
    if os.geteuid() != 0:
        h.skip("needs root for network namespaces")
    d = h.tmpdir()
    store = os.path.join(d, "store")
    procs = []
    try:
        setup()
        log = open(os.path.join(d, "rec.log"), "wb")
        rec = subprocess.Popen(["ip", "netns", "exec", R, h.RECORDER, "--data-dir", store,
                                "--listen", "10.200.2.2:4789", "--min-free", "0",
                                "--drain-time", "0"],
                               stdout=log, stderr=log)
        procs.append(rec)
        live_store = os.path.join(d, "live")
        live_log = open(os.path.join(d, "live.log"), "wb")
        live = subprocess.Popen(["ip", "netns", "exec", C, h.RECORDER, "--data-dir", live_store,
                                 "--interface", f"{TAG}a", "--min-free", "0",
                                 "--drain-time", "0"],
                                stdout=live_log, stderr=live_log)
        procs.append(live)
        cap = os.path.join(d, "oracle.pcap")
        dump = subprocess.Popen(["ip", "netns", "exec", C, "tcpdump", "-q", "-n", "-U", "-i",
                                 f"{TAG}a", "-w", cap], stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        traffic()
        time.sleep(1.0)
        dump.terminate()
        dump.wait(10)
        stats = os.path.join(store, "stats.json")
        live.terminate()
        h.check(live.wait(30) == 0, f"live recorder: {open(os.path.join(d, 'live.log')).read()}")
        rec.terminate()
        rc = rec.wait(30)
        h.check(rc == 0, f"recorder exit {rc}: {open(os.path.join(d, 'rec.log')).read()}")
        got, _ = h.search(store, "")
        want = h.tcpdump(cap, "")
        h.check(len(want) > 20, f"oracle capture too small: {len(want)}")
        g = collections.Counter(r[3] for r in got)
        w = collections.Counter(r[3] for r in want)
        h.check(g == w, f"stored {len(got)} frames, tcpdump saw {len(want)}; "
                        f"{sum((w - g).values())} missing, {sum((g - w).values())} extra")
        lgot, _ = h.search(live_store, "")
        lg = collections.Counter(r[3] for r in lgot)
        h.check(lg == w, f"live capture stored {len(lgot)} frames, tcpdump saw {len(want)}")
        st = h.read_stats(stats)
        h.check(sum(st["not_decapsulated"].values()) == 0, f"decap drops: {st}")
        tcp, _ = h.search(store, "tcp port 8443")
        h.check(len(tcp) == len(h.tcpdump(cap, "tcp port 8443")), "indexed search on mirrored feed")
        print(f"kernel vxlan: {len(got)} mirrored frames stored, equal to tcpdump on the interface;"
              f" live capture of the interface too")
    finally:
        for p in procs:  # a failed check must not leave daemons behind
            if p.poll() is None:
                p.kill()
                p.wait()
        teardown()


if __name__ == "__main__":
    main()
