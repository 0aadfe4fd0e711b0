#!/usr/bin/env python3
"""Broker failure handling: nothing fails silently, one bad tool never stops
the others.

- Bad configuration files: the broker refuses to start, exit 2, and the error
  names FILE:LINE and the problem; so do global options found wrong only
  after the file and the flags are merged (or name the flag), alike with
  --check and at the start.
- A live feed with malformed VXLAN messages, a tool nobody listens for
  (ICMP port unreachable -> ECONNREFUSED), a tool whose directory cannot be
  created (down) and a tool whose frames exceed a datagram: each loss is
  counted by reason, and the healthy tools get every valid frame.
- A capture of VXLAN-in-UDP with invalid messages read with --decap vxlan:
  invalid ones dropped and counted by reason; the rest decapsulated.
- A capture cut short: an error, exit 1, and what came before is written.
"""
import collections
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402


def bad_configs(d, src):
    cases = [
        ("[tool a]\ntype = pcap\ndir = /tmp/x\nfilter = tcp prot 80\n", 4, "bad filter 'tcp prot 80'"),
        ("[tool a]\ntype = vxlan\ndest = 127.0.0.1:4789\n", 1, "needs 'vni = N'"),
        ("[tool a]\ntype = pcap\ndir = /tmp/x\n\n[group g]\nmembers = a, b\n", 6,
         "member 'b': no [tool] has this name"),
        ("dedup = perhaps\n[tool a]\ntype = pcap\ndir = /tmp/x\n", 1, "'perhaps' is not yes/no"),
        ("[tool a]\ntype = udp\ndest = 127.0.0.1\n", 3, "dest: '127.0.0.1' is not HOST:PORT"),
        ("[tool a]\ntype = pcap\ndir = /tmp/x\nslice = 12X\n", 4, "slice"),
        ("[tool a]\nthis is not a key\n", 2, "expected 'key = value'"),
    ]
    for i, (text, line, want) in enumerate(cases):
        conf = h.write_conf(os.path.join(d, f"bad{i}.conf"), text)
        p = h.broker_read(conf, src, check_rc=False)
        err = p.stderr.decode(errors="replace")
        h.check(p.returncode == 2, f"bad config {i}: exit {p.returncode}, want 2: {err}")
        h.check(f"{conf}:{line}: " in err and want in err,
                f"bad config {i}: want '{conf}:{line}: ...{want}', got: {err}")
    p = h.run([h.broker_binary(), "--config", os.path.join(d, "missing.conf")], check_rc=False)
    h.check(p.returncode == 2 and b"cannot open config file" in p.stderr, "missing config file")
    print(f"bad configuration: {len(cases)} files refused, each error naming FILE:LINE")
    # Global options the start would refuse: --check refuses them too, with
    # the same words, before anything is opened; each error names the
    # FILE:LINE the value came from, or its flag.
    notpcap = h.write_conf(os.path.join(d, "not-a.pcap"), "hello\n")
    globals_bad = [("listen = 127.0.0.1\n", 1, "listen: '127.0.0.1' is not ADDR:PORT"),
                   ("http = 8082\n", 1, "http: '8082' is not ADDR:PORT or off"),
                   ("interface = lo\ncapture-filter = tcp port 99999\n", 2,
                    "capture-filter: illegal port"),
                   (f"read = {d}/no-such.pcap\n", 1, "read: "),
                   (f"read = {notpcap}\n", 1, f"read: cannot read {notpcap}"),
                   ("http-cert = /etc/hostname\n", 1, "http-cert: http-cert and http-key go together"),
                   ("# TLS\nhttp-cert = /etc/hostname\nhttp-key = /etc/hostname\n", 2,
                    "http-cert: HTTP TLS: /etc/hostname"),
                   ("dedup = yes\nrcvbuf = 1K\n", 2, "rcvbuf: 1K is out of range"),
                   ("log-level = loud\n", 1, "log-level: want error, warn, info or debug"),
                   ("decap = gre\n", 1, "decap: want none or vxlan"),
                   ("read = /etc/hostname\ninterface = lo\n", 1,
                    "read: --read and --interface exclude each other"),
                   ("dedup-window = 2m\n", 1, "dedup-window: 2m is out of range")]
    for i, (text, line, want) in enumerate(globals_bad):
        conf = h.write_conf(os.path.join(d, f"global{i}.conf"),
                            f"{text}[tool t]\ntype = pcap\ndir = {d}/g{i}\n")
        said = []
        for extra in (["--check"], []):
            p = h.run([h.broker_binary(), "--config", conf, *extra], check_rc=False, timeout=20)
            err = p.stderr.decode(errors="replace")
            h.check(p.returncode == 2 and f"{conf}:{line}: {want}" in err,
                    f"global option {text.strip()!r} {extra}: exit {p.returncode}, want "
                    f"'{conf}:{line}: {want}': {err}")
            said.append(err)
        h.check(said[0] == said[1], f"--check and the start say different things: {said}")
    # The same values as flags: the error names the flag.
    plain = h.write_conf(os.path.join(d, "plain.conf"), f"[tool t]\ntype = pcap\ndir = {d}/gp\n")
    flags_bad = [(["--listen", "127.0.0.1"], "--listen: '127.0.0.1' is not ADDR:PORT"),
                 (["--http", "8082"], "--http: '8082' is not ADDR:PORT or off"),
                 (["--interface", "lo", "--capture-filter", "tcp port 99999"],
                  "--capture-filter: illegal port"),
                 (["--http-key", "/etc/hostname"], "--http-key: http-cert and http-key go together"),
                 (["--rcvbuf", "1K"], "--rcvbuf: 1K is out of range"),
                 (["--decap", "gre"], "--decap: want none or vxlan")]
    for args, want in flags_bad:
        for extra in (["--check"], []):
            p = h.run([h.broker_binary(), "--config", plain, *args, *extra], check_rc=False,
                      timeout=20)
            err = p.stderr.decode(errors="replace")
            h.check(p.returncode == 2 and want in err,
                    f"flags {args} {extra}: exit {p.returncode}, want '{want}': {err}")
    # A flag overrides the file: the error names the flag, not the line.
    conf = h.write_conf(os.path.join(d, "override.conf"),
                        f"listen = 127.0.0.1:4789\n[tool t]\ntype = pcap\ndir = {d}/go\n")
    p = h.run([h.broker_binary(), "--config", conf, "--listen", "nowhere", "--check"],
              check_rc=False)
    err = p.stderr.decode(errors="replace")
    h.check(p.returncode == 2 and "--listen: 'nowhere'" in err and f"{conf}:1" not in err,
            f"a flag over the file: {err}")
    print(f"{len(globals_bad)} bad global options in a file and {len(flags_bad)} as flags: "
          f"--check and the start refuse them alike, naming FILE:LINE or the flag")
    examples = os.path.join(h.ROOT, "deploy", "examples")
    for name in sorted(os.listdir(examples)):
        if name.startswith("broker") and name.endswith(".conf"):
            p = h.run([h.broker_binary(), "--config", os.path.join(examples, name), "--check"])
            h.check(b": ok," in p.stdout, f"example {name}: {p.stdout.decode()}")
            print(f"shipped example {name} validates")


def live_errors(d, src):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    closed = h.free_udp_port()  # nobody listens: the kernel answers port unreachable
    blocker = os.path.join(d, "a-file")
    open(blocker, "w").close()
    conf = h.write_conf(os.path.join(d, "live.conf"), f"""
[tool good]
type = pcap
dir = {d}/good

[tool alive]
type = vxlan
dest = 127.0.0.1:{rx.getsockname()[1]}
vni = 1

[tool nobody]
type = vxlan
dest = 127.0.0.1:{closed}
vni = 2

[tool nodir]
type = pcap
dir = {blocker}/sub
""")
    b = h.Broker(conf, d)
    try:
        sent = h.vxsend(src, b.port, "--rate", 20000, "--bad-every", 10)
        n = int(sent["sent"])
        h.check(b.wait_rx(n), f"broker saw {b.stats()}")
        got = 0
        while True:
            try:
                rx.recv(65536)
                got += 1
            except socket.timeout:
                break
    finally:
        rc = b.stop()
    h.check(rc == 0, f"broker exit {rc}")
    st = b.stats()
    bad = sum(st["not_decapsulated"].values())
    h.check(bad == n // 10, f"not_decapsulated {st['not_decapsulated']}, want {n // 10}")
    valid = n - bad
    h.check(st["frames"] == valid, f"frames {st['frames']} != {valid}")
    good, _ = h.pcap_dir(f"{d}/good")
    h.check(len(good) == valid == st["tools"]["good"]["sent"], f"good tool got {len(good)} of {valid}")
    h.check(got == valid == st["tools"]["alive"]["sent"], f"alive tool got {got} of {valid}")
    nb = st["tools"]["nobody"]
    h.check(nb["send_errors"]["refused"] > 0 and nb["sent"] + nb["send_errors_total"] == valid,
            f"unreachable tool counters: {nb}")
    nd = st["tools"]["nodir"]
    h.check(not nd["up"] and nd["send_errors"]["down"] == valid, f"down tool counters: {nd}")
    log = b.log_text()
    h.check("tool nodir: cannot create directory" in log and "retrying" in log, f"log: {log}")
    h.check("tool nobody: send failed: Connection refused" in log, f"log: {log}")
    print(f"live: {n} messages, {bad} malformed (counted by reason), healthy tools got all "
          f"{valid}; unreachable tool: {nb['send_errors']['refused']} refused; "
          f"down tool: {nd['send_errors']['down']} counted")


def decap_file(d):
    outer = h.gen(os.path.join(d, "outer.pcap"), "--packets", 5000, "--vxlan", "--bad-vxlan", 10,
                  "--nsec", "--seed", 4)
    plain = h.gen(os.path.join(d, "plain.pcap"), "--packets", 5000, "--nsec", "--seed", 4)
    conf = h.write_conf(os.path.join(d, "decap.conf"), f"[tool all]\ntype = pcap\ndir = {d}/decap\n")
    stats = os.path.join(d, "decap.json")
    h.broker_read(conf, outer, "--decap", "vxlan", "--stats-file", stats)
    st = h.read_stats(stats)
    bad = sum(st["not_decapsulated"].values())
    got, _ = h.pcap_dir(f"{d}/decap")
    h.check(400 <= bad <= 600 and st["rx_packets"] == 5000 and len(got) == 5000 - bad,
            f"decap counters {st['not_decapsulated']}, {len(got)} frames out")
    h.check(sum(1 for v in st["not_decapsulated"].values() if v) >= 3,
            f"reasons should be told apart: {st['not_decapsulated']}")
    # Every frame out is an inner frame of the plain file (same time, bytes).
    inner = collections.Counter((r[0], bytes(r[3])) for r in pcapfile.read_pcap(plain)[1])
    out = collections.Counter((r[0], bytes(r[3])) for r in got)
    h.check(not (out - inner), "decapsulated frames differ from the plain capture's")
    print(f"--decap vxlan: {bad} invalid messages dropped by reason "
          f"{ {k: v for k, v in st['not_decapsulated'].items() if v} }, {len(got)} inner frames")


def cut_file(d, src):
    data = open(src, "rb").read()
    cut = os.path.join(d, "cut.pcap")
    with open(cut, "wb") as f:
        f.write(data[:len(data) // 2 + 7])
    conf = h.write_conf(os.path.join(d, "cut.conf"), f"[tool all]\ntype = pcap\ndir = {d}/cut\n")
    p = h.broker_read(conf, cut, check_rc=False)
    err = p.stderr.decode(errors="replace")
    h.check(p.returncode == 1 and "cut short or damaged" in err, f"cut file: exit {p.returncode}: {err}")
    got, _ = h.pcap_dir(f"{d}/cut")
    h.check(len(got) > 1000, f"only {len(got)} packets written before the cut")
    print(f"cut capture: error reported, exit 1, the {len(got)} packets before the cut written")


def main():
    h.init()
    d = h.tmpdir()
    src = h.gen(os.path.join(d, "in.pcap"), "--packets", 4000, "--flows", 100, "--nsec",
                "--mix", "clean", "--seed", 2)
    bad_configs(d, src)
    live_errors(d, src)
    decap_file(d)
    cut_file(d, src)


if __name__ == "__main__":
    main()
