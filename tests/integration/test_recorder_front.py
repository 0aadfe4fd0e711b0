#!/usr/bin/env python3
"""mscope-recorder is two programs (recorder/front.c): the command, which
runs `search` itself and links none of the daemon's libraries, and the
recorder program mscope-recorderd, which the command becomes (execv) for
everything else.

- The command's dynamic dependencies hold none of the daemon's libraries
  (ZeroMQ, h2o, OpenSSL, libuv, jansson, protobuf-c, libseccomp): that is
  what makes a search start like tcpdump.
- In an installed layout (bin/mscope-recorder, libexec/mirrorscope/
  mscope-recorderd, nothing beside the command) --version and --help are
  the recorder program's, an import through the command stores packets,
  and a search through it equals tcpdump's reading of the file.
- A daemon started through the command keeps the pid it was started with
  (systemd and `kill` see one process), runs the recorder program, and is
  still called mscope-recorder in ps; it stops on SIGTERM with status 0.
- With the recorder program missing, the command says so and exits 127;
  `search` still works.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness as h  # noqa: E402
import pcapfile  # noqa: E402

DAEMON_LIBS = ("libzmq", "libh2o", "libssl", "libcrypto", "libuv", "libjansson", "libprotobuf-c",
               "libseccomp")


def needed(path):
    out = h.run(["readelf", "-d", path]).stdout.decode()
    return [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def main():
    h.init()
    front = h.RECORDER
    daemon = os.path.join(os.path.dirname(front), "mscope-recorderd")
    h.check(os.access(daemon, os.X_OK), f"no recorder program beside {front}")
    if not shutil.which("readelf"):
        h.skip("readelf is not installed")

    libs = needed(front)
    bad = [lib for lib in libs if lib.startswith(DAEMON_LIBS)]
    h.check(not bad, f"mscope-recorder links the daemon's libraries {bad} (all: {libs})")
    h.check(any(lib.startswith("libzmq") for lib in needed(daemon)),
            "mscope-recorderd does not link ZeroMQ: is the readelf check above still meaningful?")
    print(f"ok  mscope-recorder needs {', '.join(libs)}; none of the daemon's libraries")

    d = h.tmpdir("mscope-front-")
    inst = os.path.join(d, "inst")
    os.makedirs(os.path.join(inst, "bin"))
    os.makedirs(os.path.join(inst, "libexec", "mirrorscope"))
    cmd = os.path.join(inst, "bin", "mscope-recorder")
    shutil.copy2(front, cmd)
    shutil.copy2(daemon, os.path.join(inst, "libexec", "mirrorscope", "mscope-recorderd"))
    for args in (["--version"], ["--help"]):
        want = h.run([daemon, *args]).stdout
        got = h.run([cmd, *args]).stdout
        h.check(got == want and want, f"installed mscope-recorder {args[0]}: {got!r}, want {want!r}")
    pcap = h.gen(os.path.join(d, "in.pcap"), "--packets", 3000, "--flows", 40, "--seed", 5, "--nsec")
    store = os.path.join(d, "store")
    h.run([cmd, "--data-dir", store, "--read", pcap, "--min-free", "0"])
    recs = pcapfile.read_pcap(pcap)[1]
    expr = "tcp"
    p = h.run([cmd, "search", "--data-dir", store, "-w", "-", expr])
    got = pcapfile.read_pcap(p.stdout)[1]
    want = h.tcpdump(pcap, expr)
    h.check(len(want) > 0 and pcapfile.compare(got, want) is None,
            f"search through the installed command: {pcapfile.compare(got, want)}")
    print(f"ok  installed layout: --version, --help, an import of {len(recs)} packets and a "
          f"search ({len(got)} packets, tcpdump's) through bin/mscope-recorder")

    live = h.Daemon(os.path.join(d, "live"))
    pid = live.proc.pid
    exe = os.readlink(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/comm") as f:
        comm = f.read().strip()
    h.check(os.path.basename(exe) == "mscope-recorderd", f"pid {pid} runs {exe}")
    h.check(comm == "mscope-recorder", f"pid {pid} is called {comm!r}")
    rc = live.stop()
    h.check(rc == 0, f"daemon exited {rc} on SIGTERM:\n{live.log_text()}")
    print(f"ok  a daemon started through the command is pid {pid} itself, runs {os.path.basename(exe)}, "
          f"is called {comm} and stops with 0")

    alone = os.path.join(d, "alone")
    os.makedirs(alone)
    shutil.copy2(front, os.path.join(alone, "mscope-recorder"))
    p = h.run([os.path.join(alone, "mscope-recorder"), "--version"], check_rc=False)
    err = p.stderr.decode()
    if os.path.exists("/usr/local/libexec/mirrorscope/mscope-recorderd") or \
            os.path.exists("/usr/libexec/mirrorscope/mscope-recorderd"):
        print("--  a recorder program is installed on this machine: the missing case is not tried")
    else:
        h.check(p.returncode == 127 and "cannot run the recorder program" in err,
                f"without the recorder program: exit {p.returncode}, {err!r}")
        print(f"ok  without the recorder program: exit 127, {err.strip()!r}")
    p = h.run([os.path.join(alone, "mscope-recorder"), "search", "--data-dir", store, "-w", "-", expr])
    h.check(pcapfile.compare(pcapfile.read_pcap(p.stdout)[1], want) is None,
            "search without the recorder program beside it differs")
    print("ok  search needs no recorder program")


if __name__ == "__main__":
    main()
