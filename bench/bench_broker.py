#!/usr/bin/env python3
"""Broker throughput on loopback: packets per second through
decap -> dedup -> 3 tools with filters -> VXLAN out, next to a bare UDP
receive-and-resend loop with no processing (udp_forward: recvmmsg ->
sendmmsg of the same buffers), same sender, same run. Goal: >= 70%.

Both forwarders are offered more than they can take (vxsend --gso, unpaced,
~3 s) and measured as datagrams taken off their socket per second of
sending; the sender's surplus is dropped by the kernel at their sockets (a
4 MiB receive buffer for both, so the backlog drained after the sender stops
is small). The three tools' filters split the traffic ('tcp port 443',
'udp', and the rest with action = drop), so the broker sends each packet
once, as the baseline does; their destinations, like the baseline's, are
bound UDP sockets nobody reads. Two rounds, alternating, median reported.
Cases: 100-byte datagrams (frames <= 92 B, the per-packet worst case) and
1530-byte ones (the clean mix padded to its longest frame)."""
import os
import signal
import socket
import statistics
import subprocess
import time

from common import BENCH_DIR, h, machine

SECONDS = 3.0
SMALL_FRAME = 92
RCVBUF = 4 << 20


def sinks(n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    return socks


def send(src, port, per_loop, sender, pps_guess=1000000):
    loops = max(1, int(pps_guess * SECONDS / per_loop))
    return h.vxsend(src, port, *sender, "--loop", loops)


def baseline(src, per_loop, sender):
    dst = sinks(1)[0]
    port = h.free_udp_port()
    fwd = subprocess.Popen([UDP_FORWARD, "--bind", f"127.0.0.1:{port}", "--to",
                            f"127.0.0.1:{dst.getsockname()[1]}", "--idle", "700",
                            "--rcvbuf", str(RCVBUF)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    sent = send(src, port, per_loop, sender)
    out = dict(kv.split("=") for kv in fwd.communicate(timeout=60)[0].decode().split())
    dst.close()
    return int(sent["sent"]), float(sent["seconds"]), int(out["received"]), int(out["forwarded"])


def broker(src, per_loop, sender, workdir):
    dst = sinks(3)
    conf = h.write_conf(os.path.join(workdir, "bench.conf"), f"""
dedup = yes
[tool web]
type = vxlan
dest = 127.0.0.1:{dst[0].getsockname()[1]}
vni = 1
filter = tcp port 443
[tool dns]
type = vxlan
dest = 127.0.0.1:{dst[1].getsockname()[1]}
vni = 2
filter = udp
[tool rest]
type = vxlan
dest = 127.0.0.1:{dst[2].getsockname()[1]}
vni = 3
filter = tcp port 443 or udp
action = drop
""")
    b = h.Broker(conf, workdir, "--log-level", "warn", "--rcvbuf", RCVBUF)
    try:
        sent = send(src, b.port, per_loop, sender)
        # Drained when the counter stops moving.
        prev = -1
        while True:
            time.sleep(1.2)
            cur = (b.stats() or {}).get("rx_packets", 0)
            if cur == prev:
                break
            prev = cur
    finally:
        b.stop()
    st = b.stats()
    for s in dst:
        s.close()
    out = sum(t["sent"] for t in st["tools"].values())
    return int(sent["sent"]), float(sent["seconds"]), st["rx_packets"], out, st


def case(name, src, sender, workdir):
    import pcapfile
    per_loop = len(pcapfile.read_pcap(src)[1])
    print(f"{name}:", flush=True)
    base, ours = [], []
    for rnd in range(2):
        s, secs, rx, fwd = baseline(src, per_loop, sender)
        base.append(rx / secs)
        print(f"  round {rnd + 1} baseline udp_forward: sent {s} in {secs:.2f} s, took {rx} "
              f"({rx / secs:,.0f} pps), forwarded {fwd}", flush=True)
        s, secs, rx, out, st = broker(src, per_loop, sender, workdir)
        ours.append(rx / secs)
        print(f"  round {rnd + 1} mscope-broker: sent {s} in {secs:.2f} s, took {rx} "
              f"({rx / secs:,.0f} pps), sent on {out} (deduplicated {st['deduplicated']}, "
              f"send errors {sum(t['send_errors_total'] for t in st['tools'].values())})",
              flush=True)
    b, o = statistics.median(base), statistics.median(ours)
    print(f" median: baseline {b:,.0f} pps, broker {o:,.0f} pps -> {100 * o / b:.0f}% "
          f"(goal >= 70%)", flush=True)


def main():
    global UDP_FORWARD
    h.init()
    UDP_FORWARD = h.binary("MSCOPE_UDP_FORWARD", "udp_forward")
    os.makedirs(BENCH_DIR, exist_ok=True)
    workdir = h.tmpdir()
    mix = os.path.join(BENCH_DIR, "broker-200k.pcap")
    if not os.path.exists(mix):
        h.gen(mix, "--packets", 200000, "--flows", 5000, "--seed", 43, "--mix", "clean")
    small = os.path.join(BENCH_DIR, "broker-small.pcap")
    h.run(["tcpdump", "-r", mix, "-w", small, f"len <= {SMALL_FRAME}"])
    print(f"machine: {machine()}")
    print("sender: vxsend --gso (UDP GSO), unpaced, ~3 s per run")
    case(f"small frames ({SMALL_FRAME + 8}-byte datagrams)", small,
         ["--gso", "--gso-size", SMALL_FRAME], workdir)
    import pcapfile
    longest = max(c for _, c, _, _ in pcapfile.read_pcap(mix)[1])
    case(f"full-size frames ({longest + 8}-byte datagrams)", mix, ["--gso"], workdir)


if __name__ == "__main__":
    main()
