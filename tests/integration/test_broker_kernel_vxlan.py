#!/usr/bin/env python3
"""The broker's VXLAN output decapsulated by a real downstream: the Linux
kernel's `vxlan` device.

Two network namespaces joined by two veth pairs: the broker runs in B and
replays a capture (--read, paced) to three tools with one tcpdump filter:
  kern - VXLAN (VNI 100) to 10.201.0.2:4789 in namespace K, where a kernel
         vxlan device (id 100) decapsulates it; tcpdump listens on that device;
  file - a pcap-file tool;
  inj  - frames injected into a veth whose peer in K runs another tcpdump;
  live - a second broker in K capturing that veth (--interface) to a file;
  gre, plain - GRE (Transparent Ethernet Bridging) and plain UDP to K, read
         back from a tcpdump on K's end of the link.
Each must equal `tcpdump -r INPUT FILTER`, packet for packet, in order.
Needs root (namespaces); skipped visibly otherwise.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402

TAG = f"mb{os.getpid() % 100000}"
B, K = f"{TAG}b", f"{TAG}k"
FILTER = "tcp port 443 or udp"


def setup():
    h.netns_create(B, K)
    h.run(["ip", "link", "add", f"{TAG}u", "netns", B, "type", "veth", "peer", f"{TAG}v", "netns", K])
    h.run(["ip", "link", "add", f"{TAG}i", "netns", B, "type", "veth", "peer", f"{TAG}j", "netns", K])
    h.ns_exec(B, "ip", "addr", "add", "10.201.0.1/24", "dev", f"{TAG}u")
    h.ns_exec(K, "ip", "addr", "add", "10.201.0.2/24", "dev", f"{TAG}v")
    for n, dev in ((B, f"{TAG}u"), (K, f"{TAG}v"), (B, f"{TAG}i"), (K, f"{TAG}j")):
        h.ns_exec(n, "ip", "link", "set", dev, "mtu", "9000")
        h.link_up_plain(n, dev)
    h.ns_exec(K, "ip", "link", "add", "vx100", "type", "vxlan", "id", "100", "dstport", "4789",
              "local", "10.201.0.2", "dev", f"{TAG}v", "nolearning")
    h.ns_exec(K, "ip", "link", "set", "vx100", "up")


def tcpdump_on(dev, path, log):
    p = subprocess.Popen(["ip", "netns", "exec", K, "tcpdump", "-n", "-U", "-i", dev, "-s", "0",
                          "--time-stamp-precision=nano", "-w", path],
                         stdout=subprocess.DEVNULL, stderr=log)
    return p


def frames(path):
    return [bytes(r[3]) for r in pcapfile.read_pcap(path)[1]]


def main():
    h.init()
    if os.geteuid() != 0:
        h.skip("needs root for network namespaces and the kernel vxlan device")
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 3000, "--flows", 200, "--nsec",
                "--mix", "clean", "--seed", 8)
    conf = h.write_conf(os.path.join(d, "broker.conf"), f"""
[tool kern]
type = vxlan
dest = 10.201.0.2
vni = 100
filter = {FILTER}

[tool file]
type = pcap
dir = {d}/file
filter = {FILTER}

[tool inj]
type = interface
interface = {TAG}i
filter = {FILTER}

[tool gre]
type = gre
dest = 10.201.0.2
filter = {FILTER}

[tool plain]
type = udp
dest = 10.201.0.2:4790
filter = {FILTER}
""")
    procs = []
    live = None
    try:
        setup()
        dumps = []
        # Sockets in K that take GRE and UDP 4790, so K sends no ICMP errors back.
        sink = subprocess.Popen(["ip", "netns", "exec", K, "python3", "-c",
                                 "import socket, time\n"
                                 "g = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n"
                                 "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 "u.bind(('10.201.0.2', 4790))\n"
                                 "time.sleep(120)\n"])
        procs.append(sink)
        for dev, name in (("vx100", "kern"), (f"{TAG}j", "inj"), (f"{TAG}v", "wire")):
            log = open(os.path.join(d, f"tcpdump-{name}.log"), "w+")
            p = tcpdump_on(dev, os.path.join(d, f"{name}.pcap"), log)
            procs.append(p)
            dumps.append((p, log))
        for p, log in dumps:
            ok = h.wait_for(lambda: "listening on" in open(log.name).read() or p.poll() is not None, 10)
            h.check(ok and p.poll() is None, f"tcpdump did not start: {open(log.name).read()}")
        # A second broker captures the injected interface live (--interface).
        live_conf = h.write_conf(os.path.join(d, "live.conf"),
                                 f"[tool live]\ntype = pcap\ndir = {d}/live\n")
        live = h.Broker(live_conf, d, "--interface", f"{TAG}j", ns=K, listen=False)
        stats = os.path.join(d, "stats.json")
        res = h.ns_exec(B, h.broker_binary(), "--config", conf, "--read", src, "--read-rate", "20000",
                 "--stats-file", stats)
        time.sleep(1.0)
        for p, _ in dumps:
            p.terminate()
            p.wait(10)
        h.check(live.stop() == 0, f"live broker: {live.log_text()}")
        want = [bytes(r[3]) for r in h.tcpdump(src, FILTER)]
        h.check(len(want) > 500, f"filter selects too little: {len(want)}")
        st = h.read_stats(stats)
        for name in ("kern", "inj"):
            got = frames(os.path.join(d, f"{name}.pcap"))
            if got != want:
                extra = len(set(got) - set(want))
                h.fail(f"{name}: tcpdump on the receiving device saw {len(got)} frames, "
                       f"tcpdump -r '{FILTER}' selects {len(want)}; {extra} unexpected; "
                       f"counters {st['tools'][name]}; broker: {res.stderr.decode()}")
        # GRE and plain UDP as they crossed the wire: strip Ethernet, IPv4 and
        # the GRE (4 bytes, protocol 0x6558) or UDP (8 bytes) header.
        gre, plain = [], []
        for r in pcapfile.read_pcap(os.path.join(d, "wire.pcap"))[1]:
            f = bytes(r[3])
            if f[12:14] != b"\x08\x00" or f[26:30] != bytes([10, 201, 0, 1]):
                continue
            ihl = (f[14] & 15) * 4
            if f[23] == 47 and f[14 + ihl + 2:14 + ihl + 4] == b"\x65\x58":
                gre.append(f[14 + ihl + 4:])
            elif f[23] == 17 and f[14 + ihl + 2:14 + ihl + 4] == (4790).to_bytes(2, "big"):
                plain.append(f[14 + ihl + 8:])
        h.check(gre == want, f"gre tool: {len(gre)} frames on the wire, want {len(want)}")
        h.check(plain == want, f"udp tool: {len(plain)} frames on the wire, want {len(want)}")
        lgot = [bytes(r[3]) for r in h.pcap_dir(f"{d}/live")[0]]
        h.check(lgot == want, f"broker capturing {TAG}j live: {len(lgot)} frames, want {len(want)}")
        fgot = [bytes(r[3]) for r in h.pcap_dir(f"{d}/file")[0]]
        h.check(fgot == want, f"pcap-file tool: {len(fgot)} frames, want {len(want)}")
        for name in ("kern", "inj", "file", "gre", "plain"):
            h.check(st["tools"][name]["sent"] == len(want) and
                    st["tools"][name]["send_errors_total"] == 0, f"{name}: {st['tools'][name]}")
        print(f"kernel vxlan: {len(want)} frames ('{FILTER}' of {st['rx_packets']}) decapsulated "
              f"by the kernel's vxlan device equal tcpdump -r, packet for packet; the pcap-file "
              f"tool, the injected interface, GRE and plain UDP too; a broker capturing the interface live as well")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if live:
            live.kill()
        h.netns_delete(B, K)


if __name__ == "__main__":
    main()
