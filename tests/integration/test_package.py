#!/usr/bin/env python3
"""The Debian package (make deb, issue 13), built and installed without
touching this machine:
- CPack builds it from a scratch build directory (Release, reusing nothing
  of build/); dpkg-deb shows the four binaries in /usr/bin (and the recorder
  program mscope-recorder runs, in /usr/libexec/mirrorscope), the three units
  in /lib/systemd/system, the configuration files in /etc/mscope marked as
  conffiles, the maintainer scripts (valid sh), library dependencies
  computed by dpkg-shlibdeps and PostgreSQL suggested;
- real dpkg installs it into an empty tree (dpkg --root; the maintainer
  scripts run chrootless with DPKG_ROOT, see dpkg()): the mscope system
  user is made there, its data directories are mscope's with mode 0750; the
  installed binaries run and accept the installed configuration files; a
  second install (an upgrade) changes nothing; a purge removes the
  configuration and empty data directories and keeps data; a configuration
  written before the install (cloud-init does) is kept with --force-confold;
- systemd-analyze verify passes on each installed unit with not a single
  complaint (it exits 0 on unknown keys and bad values, so any output
  fails), inside the installed tree so that the ExecStart binaries it checks
  are the package's; systemd-analyze security rates each at most 3.0;
- the hardening: User=mscope, NoNewPrivileges, ProtectSystem=strict with
  ReadWritePaths exactly the daemon's data directory (the one its
  configuration file names), PrivateTmp, ProtectHome, capabilities: none for
  the coordinator, CAP_NET_RAW alone for the recorder and the broker (live
  interfaces, raw outputs), native system calls only; the recorder stops on
  SIGTERM with a TimeoutStopSec at least 30 s beyond its drain-time; the
  coordinator's SIGTERM reaches it alone (KillMode=mixed), so the embedded
  PostgreSQL it stops is still up while it writes what is pending;
- each installed daemon runs and stops cleanly as an unprivileged user
  under its unit's system call filter (the recorder and the coordinator with
  their installed configuration files, the broker with a pcap tool of ours)
  (no systemd here: strace --seccomp-bpf makes every call outside the
  unit's SystemCallFilter= fail with EPERM, as SystemCallErrorNumber= says,
  and sets no_new_privs): the recorder stores VXLAN it receives, the broker
  writes it to a pcap tool, the coordinator runs its embedded PostgreSQL.
MSCOPE_DEB=FILE tests a package already built (make deb) instead of
building one; MSCOPE_JOBS sets the build's parallelism (default 1)."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess

import harness as h

DAEMONS = ("recorder", "coordinator", "broker")
BINARIES = ("mscope-recorder", "mscope-coordinator", "mscope-broker", "mscope")
# The system's own units (sysinit.target, network-online.target, ...),
# which verify resolves the dependencies of ours against.
SYSTEM_UNITS = "/usr/lib/systemd/system"


def project_version():
    with open(os.path.join(h.ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(mirrorscope VERSION (\S+)", f.read())
    h.check(m, "no project version in CMakeLists.txt")
    return m.group(1)


def tools():
    for tool in ("cmake", "cpack", "dpkg", "dpkg-deb", "dpkg-shlibdeps", "dpkg-query",
                 "systemd-analyze", "useradd"):
        if not shutil.which(tool):
            h.fail(f"{tool} is not installed (run scripts/deps.sh)")
    if os.geteuid() != 0:
        h.skip("installing into a scratch tree needs root: dpkg gives files their owners "
               "and the postinst chowns the data directories to mscope")


def build(d):
    """The package, built as make deb builds it, in a directory of its own."""
    deb = os.environ.get("MSCOPE_DEB")
    if deb:
        h.check(os.path.isfile(deb), f"MSCOPE_DEB={deb}: no such file")
        return deb
    b = os.path.join(d, "build")
    h.run(["cmake", "-S", h.ROOT, "-B", b, "-DCMAKE_BUILD_TYPE=Release",
           "-DCMAKE_INSTALL_PREFIX=/usr", "-DMSCOPE_PACKAGE=ON", "-DBUILD_TESTING=OFF"])
    h.run(["cmake", "--build", b, "-j", os.environ.get("MSCOPE_JOBS", "1")])
    h.run(["cpack", "-G", "DEB"], cwd=b)
    debs = [n for n in os.listdir(b) if n.endswith(".deb")]
    h.check(len(debs) == 1, f"cpack made {debs}")
    return os.path.join(b, debs[0])


def deb_fields(deb):
    p = h.run(["dpkg-deb", "-f", deb])
    fields, key = {}, None
    for line in p.stdout.decode().splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def dep_names(field):
    """Package names of a Depends-style field (first of each alternative)."""
    return [alt.split("|")[0].split("(")[0].strip() for alt in field.split(",") if alt.strip()]


def contents(d, deb, version):
    f = deb_fields(deb)
    arch = h.run(["dpkg", "--print-architecture"]).stdout.decode().strip()
    h.check(f.get("Package") == "mirrorscope" and f.get("Version", "").startswith(version + "-")
            and f.get("Architecture") == arch, f"control fields: {f}")
    deps = dep_names(f.get("Depends", ""))
    for need in ("libc6", "libpcap0.8", "libzmq5", "libpq5", "libuv1", "passwd"):
        h.check(need in deps, f"Depends lacks {need} (dpkg-shlibdeps?): {f.get('Depends')}")
    h.check("postgresql" in dep_names(f.get("Suggests", "") + "," + f.get("Recommends", "")),
            f"PostgreSQL neither suggested nor recommended: {f}")

    listing = {}
    for line in h.run(["dpkg-deb", "-c", deb]).stdout.decode().splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        listing[path.split(" -> ")[0].lstrip(".")] = (mode, owner)
    want = {f"/usr/bin/{b}": "-rwxr-xr-x" for b in BINARIES}
    want["/usr/libexec/mirrorscope/mscope-recorderd"] = "-rwxr-xr-x"  # run by mscope-recorder
    want.update({f"/lib/systemd/system/mscope-{d}.service": "-rw-r--r--" for d in DAEMONS})
    want.update({f"/etc/mscope/{d}.conf": "-rw-r--r--" for d in DAEMONS})
    for path, mode in want.items():
        h.check(listing.get(path) == (mode, "root/root"),
                f"{path}: {listing.get(path)} in the package, want {mode} root/root")

    ctl = os.path.join(d, "control")
    h.run(["dpkg-deb", "-e", deb, ctl])
    with open(os.path.join(ctl, "conffiles")) as fh:
        conffiles = sorted(fh.read().split())
    h.check(conffiles == sorted(f"/etc/mscope/{d}.conf" for d in DAEMONS),
            f"conffiles: {conffiles}")
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctl, script)
        h.check(os.path.isfile(path) and os.access(path, os.X_OK), f"no executable {script}")
        p = h.run(["sh", "-n", path], check_rc=False)
        h.check(p.returncode == 0, f"{script} is not valid sh: {p.stderr.decode()}")
    print(f"ok  {os.path.basename(deb)}: binaries, units, conffiles, maintainer scripts; "
          f"Depends {', '.join(deps)}")
    return deps


def empty_root(d, deps):
    """A clean tree to install into: merged /usr as Debian 12 has it, a user
    database holding root, and a dpkg database that knows the packages ours
    depends on as this system has them (so dpkg checks the Depends for real)."""
    r = os.path.join(d, "root")
    for sub in ("etc", "usr/bin", "usr/sbin", "usr/lib", "var/lib/dpkg/info",
                "var/lib/dpkg/updates", "var/log"):
        os.makedirs(os.path.join(r, sub))
    for link in ("bin", "sbin", "lib"):
        os.symlink(f"usr/{link}", os.path.join(r, link))
    for name, text in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("group", "root:x:0:\n"),
                       ("shadow", "root:*:19000:0:99999:7:::\n"), ("gshadow", "root:*::\n")):
        with open(os.path.join(r, "etc", name), "w") as f:
            f.write(text)
    stanzas = []
    for dep in deps:
        p = h.run(["dpkg-query", "-s", dep], check_rc=False)
        h.check(p.returncode == 0, f"dependency {dep} is not installed here: {p.stderr.decode()}")
        stanzas.append(p.stdout.decode().strip() + "\n")
    with open(os.path.join(r, "var/lib/dpkg/status"), "w") as f:
        f.write("\n".join(stanzas))
    open(os.path.join(r, "var/lib/dpkg/available"), "w").close()
    return r


def dpkg(r, *args, check_rc=True):
    """dpkg on the tree r. --force-script-chrootless: the maintainer scripts
    run here rather than chrooted into r (which has no shell), with DPKG_ROOT=r,
    which they prefix to every path (useradd --prefix edits r/etc/passwd);
    --log: the log in r too, not this system's /var/log/dpkg.log."""
    return h.run(["dpkg", f"--root={r}", f"--log={r}/var/log/dpkg.log",
                  "--force-script-chrootless", *args], check_rc=check_rc,
                 stdin=subprocess.DEVNULL)


def user_ids(r):
    with open(os.path.join(r, "etc/passwd")) as f:
        users = [line.split(":") for line in f if line.startswith("mscope:")]
    h.check(len(users) == 1, f"{len(users)} mscope users in {r}/etc/passwd")
    u = users[0]
    h.check(u[5] == "/var/lib/mscope" and u[6].strip() == "/usr/sbin/nologin" and
            int(u[2]) < 1000, f"mscope user: {u}")
    with open(os.path.join(r, "etc/group")) as f:
        h.check(any(line.startswith(f"mscope:x:{u[3]}:") for line in f), "no mscope group")
    return int(u[2]), int(u[3])


def installed_state(r):
    uid, gid = user_ids(r)
    for d in DAEMONS:
        st = os.stat(os.path.join(r, "var/lib/mscope", d))
        h.check((st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o750),
                f"/var/lib/mscope/{d}: owner {st.st_uid}:{st.st_gid} mode {oct(st.st_mode)}")
    for b in BINARIES:
        h.check(os.access(os.path.join(r, "usr/bin", b), os.X_OK), f"/usr/bin/{b} not installed")
    return uid, gid


def install(d, deb, deps):
    r = empty_root(d, deps)
    dpkg(r, "-i", deb)
    uid, gid = installed_state(r)
    p = h.run(["dpkg-query", f"--root={r}", "-W", "-f", "${Status}", "mirrorscope"])
    h.check(p.stdout.decode() == "install ok installed", f"status {p.stdout.decode()}")
    print(f"ok  dpkg --root installs it: user mscope ({uid}:{gid}), data directories 0750")

    # Run them from the tree; configuration files as installed must parse.
    version = project_version()
    for b in ("mscope-recorder", "mscope-broker"):
        out = h.run([os.path.join(r, "usr/bin", b), "--version"]).stdout.decode().strip()
        h.check(out == f"{b} {version}", f"{b} --version: {out!r}")
    for b in ("mscope-coordinator", "mscope"):  # no --version (yet)
        out = h.run([os.path.join(r, "usr/bin", b), "--help"]).stdout.decode()
        h.check(out.startswith(f"usage: {b} "), f"{b} --help: {out[:80]!r}")
    conf = {dm: os.path.join(r, "etc/mscope", f"{dm}.conf") for dm in DAEMONS}
    for dm in ("recorder", "coordinator"):  # --help comes after the file is read
        h.run([os.path.join(r, "usr/bin", f"mscope-{dm}"), "--config", conf[dm], "--help"])
    h.run([os.path.join(r, "usr/bin/mscope-broker"), "--config", conf["broker"], "--check"])
    print("ok  installed binaries run; the installed configuration files parse")
    return r


def reinstall_and_purge(d, deb, deps, r):
    """An upgrade (the same package again) leaves user, directories and data;
    a purge takes configuration and empty directories, and keeps data."""
    keep = os.path.join(r, "var/lib/mscope/recorder/seg-000000000001.pcap")
    with open(keep, "w") as f:
        f.write("data")
    with open(os.path.join(r, "etc/mscope/coordinator.conf"), "a") as f:
        f.write("retention-days = 30\n")
    dpkg(r, "--force-confold", "-i", deb)
    installed_state(r)
    with open(os.path.join(r, "etc/mscope/coordinator.conf")) as f:
        h.check("retention-days = 30" in f.read(), "the upgrade lost a changed conffile")
    dpkg(r, "--purge", "mirrorscope")
    for path in ["usr/bin/" + b for b in BINARIES] + ["usr/libexec/mirrorscope"] + [
            f"lib/systemd/system/mscope-{dm}.service" for dm in DAEMONS] + [
            "etc/mscope", "var/lib/mscope/coordinator", "var/lib/mscope/broker"]:
        h.check(not os.path.lexists(os.path.join(r, path)), f"/{path} left after purge")
    h.check(os.path.exists(keep), "purge deleted recorded data")
    print("ok  reinstall keeps a changed conffile; purge removes config and empty "
          "directories, keeps data")

    # Provisioning (cloud-init) may write a configuration before installing:
    # dpkg asks, so without an answer that install fails; --force-confold
    # keeps the file (deploy/systemd/README.md).
    r2 = empty_root(os.path.join(d, "second"), deps)
    os.makedirs(os.path.join(r2, "etc/mscope"))
    with open(os.path.join(r2, "etc/mscope/recorder.conf"), "w") as f:
        f.write("data-dir = /var/lib/mscope/recorder\n")
    dpkg(r2, "--force-confdef", "--force-confold", "-i", deb)
    with open(os.path.join(r2, "etc/mscope/recorder.conf")) as f:
        h.check(f.read() == "data-dir = /var/lib/mscope/recorder\n",
                "--force-confold did not keep a configuration written before the install")
    print("ok  a configuration written before the install is kept with --force-confold")


def read_unit(path):
    """{section: {key: [values...]}}: keys may repeat in unit files."""
    units = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = units.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            section.setdefault(k.strip(), []).append(v.strip())
    return units


def one(unit, key, section="Service"):
    v = unit.get(section, {}).get(key, [])
    return v[-1] if v else None


def seconds(v):
    m = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", v or "")
    h.check(m, f"cannot read the duration {v!r}")
    return int(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


def read_conf(path):
    """key = value lines of our configuration files: the global options,
    and the directories of the broker's pcap tools as "dir"."""
    out = {"dir": []}
    section = False
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            section = section or line.startswith("[")
            k, eq, v = line.partition("=")
            if not eq:
                continue
            if not section:
                out[k.strip()] = v.strip()
            elif k.strip() == "dir":
                out["dir"].append(v.strip())
    return out


def units(r):
    # The system's units beside ours, as on an installed system: verify
    # follows After=/Wants= to them.
    shutil.copytree(SYSTEM_UNITS, os.path.join(r, "usr/lib/systemd/system"), symlinks=True,
                    dirs_exist_ok=True)
    # And the one system program our units run (ExecReload=/bin/kill -HUP),
    # whose path verify checks as it checks ExecStart's.
    shutil.copy2(os.path.realpath("/bin/kill"), os.path.join(r, "usr/bin/kill"))
    uid, _ = user_ids(r)
    for dm in DAEMONS:
        name = f"mscope-{dm}.service"
        path = os.path.join(r, "lib/systemd/system", name)
        p = h.run(["systemd-analyze", "verify", f"--root={r}", "--man=no", path],
                  check_rc=False)
        out = (p.stdout + p.stderr).decode().strip()
        h.check(p.returncode == 0 and not out, f"systemd-analyze verify {name}:\n{out}")
        p = h.run(["systemd-analyze", "security", "--offline=yes", f"--root={r}", path],
                  check_rc=False)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout.decode())
        h.check(m, f"systemd-analyze security {name}: {p.stdout.decode()}{p.stderr.decode()}")
        exposure = float(m.group(1))
        h.check(exposure <= 3.0, f"{name}: exposure {exposure} (more than 3.0)")

        u = read_unit(path)
        conf = f"/etc/mscope/{dm}.conf"
        h.check(one(u, "ExecStart") == f"/usr/bin/mscope-{dm} --config {conf}",
                f"{name}: ExecStart={one(u, 'ExecStart')}")
        for key, want in (("User", "mscope"), ("Group", "mscope"), ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                          ("ProtectHome", "yes"), ("SystemCallArchitectures", "native"),
                          ("KillSignal", "SIGTERM")):
            h.check(one(u, key) == want, f"{name}: {key}={one(u, key)}, want {want}")
        data = f"/var/lib/mscope/{dm}"
        rw = u["Service"].get("ReadWritePaths", [])
        h.check(rw == [data], f"{name}: ReadWritePaths={rw}, want exactly {data}")
        st = os.stat(os.path.join(r, data.lstrip("/")))
        h.check(st.st_uid == uid, f"{data} does not belong to mscope")
        # The configuration keeps the daemon's files where the unit lets it write.
        c = read_conf(os.path.join(r, conf.lstrip("/")))
        for key, v in [(k, c[k]) for k in ("data-dir", "stats-file") if k in c] + \
                [("dir", v) for v in c["dir"]]:
            h.check(v == data or v.startswith(data + "/"),
                    f"{conf}: {key} = {v} is outside ReadWritePaths {data}")
        h.check(dm == "broker" or c.get("data-dir") == data, f"{conf}: data-dir {c.get('data-dir')}")

        caps = " ".join(u["Service"].get("CapabilityBoundingSet", ["(unset)"])).split()
        ambient = " ".join(u["Service"].get("AmbientCapabilities", [])).split()
        want_caps = [] if dm == "coordinator" else ["CAP_NET_RAW"]
        h.check(caps == want_caps, f"{name}: CapabilityBoundingSet {caps}, want {want_caps}")
        h.check(set(ambient) <= set(caps), f"{name}: AmbientCapabilities {ambient} beyond {caps}")
        fams = " ".join(u["Service"].get("RestrictAddressFamilies", [])).split()
        h.check({"AF_UNIX", "AF_INET", "AF_INET6"} <= set(fams) and
                ("AF_PACKET" in fams) == (dm != "coordinator"),
                f"{name}: RestrictAddressFamilies={fams}")

        if dm == "recorder":
            drain = c.get("drain-time", "15s")
            m = re.fullmatch(r"(\d+)(ms|s|m)?", drain)
            h.check(m, f"{conf}: drain-time = {drain}")
            drain_s = int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60}[m.group(2)]
            stop = seconds(one(u, "TimeoutStopSec"))
            h.check(stop >= drain_s + 30, f"{name}: TimeoutStopSec={stop} s leaves no time "
                    f"to seal after a drain-time of {drain_s} s")
        if dm == "coordinator":
            h.check(one(u, "KillMode") == "mixed", f"{name}: KillMode={one(u, 'KillMode')}")
        print(f"ok  {name}: verify clean, exposure {exposure}, User=mscope, "
              f"ReadWritePaths={data}, capabilities {caps or 'none'}")


# ---- the daemons under their units' system call filters ------------------------

_GROUPS = {}


def expand(item):
    """A system call, or every call of a systemd group (@system-service)."""
    if not item.startswith("@"):
        return {item}
    if item not in _GROUPS:
        names = set()
        for line in h.run(["systemd-analyze", "syscall-filter", item]).stdout.decode().splitlines()[1:]:
            t = line.strip()
            if t and not t.startswith("#"):
                names |= expand(t)
        h.check(names, f"systemd-analyze knows no system calls in {item}")
        _GROUPS[item] = names
    return _GROUPS[item]


def allowed_calls(unit):
    """What a unit's SystemCallFilter= lines allow, read as systemd reads
    them: an allow-list first, then each '~' line takes calls away."""
    values = unit["Service"].get("SystemCallFilter", [])
    h.check(values and not values[0].startswith("~"), f"SystemCallFilter {values} is no allow-list")
    allowed = set()
    for v in values:
        names = set().union(*(expand(i) for i in v.lstrip("~").split()))
        allowed = allowed - names if v.startswith("~") else allowed | names
    return allowed


class Confined:
    """A daemon as user nobody, every system call its unit does not allow
    failing with EPERM (strace's fault injection; --seccomp-bpf stops it on
    those calls alone and sets no_new_privs, as NoNewPrivileges= does)."""

    def __init__(self, name, allowed, cmd, work, ready):
        spec = "!" + ",".join("?" + c for c in sorted(allowed))
        self.name, self.ready = name, ready
        self.log = open(os.path.join(work, f"{name}.log"), "wb+")
        self.proc = subprocess.Popen(
            ["strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null", "-u", "nobody",
             "-e", f"trace={spec}", "-e", f"inject={spec}:error=EPERM", *cmd],
            stdout=self.log, stderr=self.log)
        up = h.wait_for(lambda: os.path.exists(ready) or self.proc.poll() is not None, 120)
        if self.proc.poll() is not None or not up:
            h.fail(f"{name} did not start under its unit's system call filter:\n{self.text()}")

    def text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        """SIGTERM to the daemon (strace's child), as systemctl stop sends it."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                os.kill(int(f.read().split()[0]), signal.SIGTERM)
        except (OSError, IndexError, ValueError):
            pass
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            h.fail(f"{self.name} did not stop on SIGTERM:\n{self.text()}")
        h.check(self.proc.returncode == 0,
                f"{self.name} exited {self.proc.returncode} under its unit's system call "
                f"filter:\n{self.text()}")


def vxlan(n, port):
    """n VXLAN datagrams (VNI 7), each one UDP packet from 10.0.0.1 to 10.0.0.2."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        udp = struct.pack("!HHHH", 40000 + i, 53, 40, 0) + bytes(32)
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                                   bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
        csum = sum(struct.unpack("!10H", ip))
        csum = (csum & 0xFFFF) + (csum >> 16)
        struct.pack_into("!H", ip, 10, ~csum & 0xFFFF)
        eth = bytes.fromhex("020000000002" "020000000001" "0800")
        s.sendto(struct.pack("!B3xI", 0x08, 7 << 8) + eth + bytes(ip) + udp, ("127.0.0.1", port))
    s.close()


def confined(d, r):
    if not shutil.which("strace"):
        h.fail("strace is not installed (run scripts/deps.sh)")
    p = h.run(["strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null", "-u", "nobody", "true"],
              check_rc=False)
    if p.returncode != 0:
        h.skip(f"strace cannot trace here (no ptrace?): {p.stderr.decode().strip()}")
    if not os.path.isdir("/usr/lib/postgresql"):
        h.fail("PostgreSQL is not installed (run scripts/deps.sh)")
    # nobody runs the installed binaries: the scratch directory lets it in,
    # and so must every directory above it.
    os.chmod(d, 0o755)
    up = os.path.dirname(os.path.abspath(d))
    while True:
        if not os.stat(up).st_mode & 0o001:
            h.skip(f"{up} is closed to other users, so user nobody cannot run the installed "
                   "daemons (point MSCOPE_TMP elsewhere)")
        if up == "/":
            break
        up = os.path.dirname(up)
    work = os.path.join(d, "run")
    os.makedirs(work)
    os.chown(work, 65534, 65534)
    unit = {dm: read_unit(os.path.join(r, "lib/systemd/system", f"mscope-{dm}.service"))
            for dm in DAEMONS}
    binary = {dm: os.path.join(r, "usr/bin", f"mscope-{dm}") for dm in DAEMONS}
    conf = {dm: os.path.join(r, "etc/mscope", f"{dm}.conf") for dm in DAEMONS}

    # The recorder: its installed configuration, our directory and ports.
    port, http = h.free_udp_port(), f"127.0.0.1:{h.free_tcp_port()}"
    rec = os.path.join(work, "recorder")
    c = Confined("recorder", allowed_calls(unit["recorder"]),
                 [binary["recorder"], "--config", conf["recorder"], "--data-dir", rec,
                  "--listen", f"127.0.0.1:{port}", "--http", http, "--search", "off",
                  "--min-free", "0", "--drain-time", "1s"],
                 work, os.path.join(rec, "stats.json"))
    vxlan(10, port)
    ok = h.wait_for(lambda: (h.read_stats(os.path.join(rec, "stats.json")) or {}).get(
        "stored_packets") == 10, 10)
    h.check(ok, f"recorder stored {h.read_stats(os.path.join(rec, 'stats.json'))}")
    h.check(h.http_get(http, "/healthz")[0] == 200, "recorder /healthz")
    c.stop()

    # The broker: one pcap tool in our directory.
    port, bdir = h.free_udp_port(), os.path.join(work, "broker")
    bconf = h.write_conf(os.path.join(work, "broker.conf"),
                         f"stats-file = {bdir}/stats.json\n[tool keep]\ntype = pcap\n"
                         f"dir = {bdir}/keep\n")
    os.makedirs(bdir)
    os.chown(bdir, 65534, 65534)
    c = Confined("broker", allowed_calls(unit["broker"]),
                 [binary["broker"], "--config", bconf, "--listen", f"127.0.0.1:{port}",
                  "--http", f"127.0.0.1:{h.free_tcp_port()}"],
                 work, os.path.join(bdir, "stats.json"))
    vxlan(10, port)
    ok = h.wait_for(lambda: (h.read_stats(os.path.join(bdir, "stats.json")) or {}).get(
        "rx_packets") == 10, 10)
    h.check(ok, f"broker received {h.read_stats(os.path.join(bdir, 'stats.json'))}")
    c.stop()
    recs, _ = h.pcap_dir(os.path.join(bdir, "keep"))
    h.check(len(recs) == 10, f"broker's pcap tool holds {len(recs)} packets, not 10")

    # The coordinator: its installed configuration, the embedded PostgreSQL.
    coord = os.path.join(work, "coordinator")
    http = f"127.0.0.1:{h.free_tcp_port()}"
    c = Confined("coordinator", allowed_calls(unit["coordinator"]),
                 [binary["coordinator"], "--config", conf["coordinator"], "--data-dir", coord,
                  "--bus", f"tcp://127.0.0.1:{h.free_tcp_port()}",
                  "--rpc", f"tcp://127.0.0.1:{h.free_tcp_port()}", "--http", http,
                  "--pg-port", str(h.free_tcp_port())],
                 work, os.path.join(coord, "stats.json"))
    h.check(h.wait_for(lambda: h.http_get(http, "/healthz")[0] == 200, 30),
            f"coordinator /healthz:\n{c.text()}")
    c.stop()
    h.check("embedded PostgreSQL stopped" in c.text(), f"coordinator log:\n{c.text()}")
    print("ok  as user nobody under their units' system call filters: the recorder stores, "
          "the broker forwards, the coordinator runs PostgreSQL; each stops cleanly")


def main():
    tools()
    d = h.tmpdir("mscope-package-")
    deb = build(d)
    deps = contents(d, deb, project_version())
    r = install(d, deb, deps)
    units(r)
    confined(d, r)
    reinstall_and_purge(d, deb, deps, r)


if __name__ == "__main__":
    main()
