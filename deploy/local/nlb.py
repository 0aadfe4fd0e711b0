#!/usr/bin/env python3
"""The emulated NLB's health checker, run inside the "nlb" namespace.

Every --interval it asks each target's GET /readyz (as an NLB's HTTP health
check does); a target turns unhealthy after --unhealthy N failures in a row and
healthy again after --healthy N successes. Whenever the healthy set changes it
rewrites the nftables rule that spreads VXLAN (udp/4789) sent to the NLB's
address over the healthy targets by a hash of the outer source address (one
mirrored interface -> one recorder, as NLB stickiness `source_ip` does):

    ip daddr set jhash ip saddr mod N seed S map { 0 : R1, 1 : R2, ... }

a stateless DNAT (no conntrack entry pins an old flow to a dead target: the
next packet already goes elsewhere). When no target is healthy it sends to all
of them, as an NLB does.

The targets are read from --targets (JSON: {"targets": [{"name", "ip"}],
"sources": [ip, ...]}) at every round, so a recorder added to the file is
checked and, once healthy, used. The state goes to --status (JSON) and one line
per change to stdout.

The seed: with a handful of mirrored interfaces a plain hash may leave a
recorder with none; this emulation picks the smallest seed that spreads the
known sources over as many healthy targets as possible (a real NLB spreads
thousands of sources). jhash() below is the kernel's, so the status file
predicts which recorder each source lands on.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

TABLE = "mscope_nlb"


def _rol(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xffffffff


def jhash(data, seed):
    """The kernel's jhash() (lookup3) of up to 12 bytes."""
    assert len(data) <= 12
    a = b = c = (0xdeadbeef + len(data) + seed) & 0xffffffff
    if not data:
        return c
    k = data + bytes(12 - len(data))
    a = (a + int.from_bytes(k[0:4], "little")) & 0xffffffff
    b = (b + int.from_bytes(k[4:8], "little")) & 0xffffffff
    c = (c + int.from_bytes(k[8:12], "little")) & 0xffffffff
    m = 0xffffffff
    c ^= b; c = (c - _rol(b, 14)) & m
    a ^= c; a = (a - _rol(c, 11)) & m
    b ^= a; b = (b - _rol(a, 25)) & m
    c ^= b; c = (c - _rol(b, 16)) & m
    a ^= c; a = (a - _rol(c, 4)) & m
    b ^= a; b = (b - _rol(a, 14)) & m
    c ^= b; c = (c - _rol(b, 24)) & m
    return c


def bucket(ip, seed, n):
    """nft `jhash ip saddr mod n seed S`: reciprocal_scale(jhash(saddr), n)."""
    return (jhash(bytes(int(x) for x in ip.split(".")), seed) * n) >> 32


def choose_seed(sources, n):
    want = min(len(sources), n)
    best = (0, -1)
    for seed in range(1, 5000):
        got = len({bucket(s, seed, n) for s in sources})
        if got == want:
            return seed
        best = max(best, (got, -seed))
    return -best[1]


def ruleset(vip, targets, seed):
    m = ", ".join(f"{i} : {t['ip']}" for i, t in enumerate(targets))
    return (f"flush chain ip {TABLE} pre\n"
            f"add rule ip {TABLE} pre ip daddr {vip} udp dport 4789 counter "
            f"ip daddr set jhash ip saddr mod {len(targets)} seed {seed} map {{ {m} }}\n")


def apply(vip, targets, seed):
    p = subprocess.run(["nft", "-f", "-"], input=ruleset(vip, targets, seed).encode(),
                       capture_output=True)
    if p.returncode:
        print(f"nft failed: {p.stderr.decode()}", file=sys.stderr, flush=True)


def ready(ip, port, timeout):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/readyz", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vip", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--healthy", type=int, default=2)
    ap.add_argument("--unhealthy", type=int, default=2)
    a = ap.parse_args()
    subprocess.run(["nft", "-f", "-"], check=True, input=(
        f"table ip {TABLE} {{\n"
        f"  chain pre {{ type filter hook prerouting priority -300; }}\n"
        f"}}\n").encode())
    state = {}    # name -> {"healthy": bool, "ok": n, "bad": n}
    current = None
    while True:
        conf = json.load(open(a.targets))
        targets = conf["targets"]
        for t in targets:
            s = state.setdefault(t["name"], {"healthy": False, "ok": 0, "bad": 0, "ip": t["ip"]})
            if ready(t["ip"], a.port, a.timeout):
                s["ok"], s["bad"] = s["ok"] + 1, 0
                if not s["healthy"] and s["ok"] >= a.healthy:
                    s["healthy"] = True
            else:
                s["ok"], s["bad"] = 0, s["bad"] + 1
                if s["healthy"] and s["bad"] >= a.unhealthy:
                    s["healthy"] = False
        names = {t["name"] for t in targets}
        for n in list(state):
            if n not in names:
                del state[n]
        use = [t for t in targets if state[t["name"]]["healthy"]] or targets
        use = sorted(use, key=lambda t: t["name"])
        key = tuple(t["name"] for t in use)
        if key != current and use:
            seed = choose_seed(conf.get("sources", []), len(use))
            apply(a.vip, use, seed)
            current = key
            where = {s: use[bucket(s, seed, len(use))]["name"] for s in conf.get("sources", [])}
            print(f"{time.strftime('%H:%M:%S')} targets {list(key)} seed {seed}: {where}", flush=True)
            tmp = a.status + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"time": time.time(), "in_service": list(key), "seed": seed,
                           "sources": where,
                           "health": {n: s["healthy"] for n, s in state.items()}}, f)
            os.replace(tmp, a.status)
        else:
            try:
                st = json.load(open(a.status))
                st["health"] = {n: s["healthy"] for n, s in state.items()}
                st["checked"] = time.time()
                with open(a.status + ".tmp", "w") as f:
                    json.dump(st, f)
                os.replace(a.status + ".tmp", a.status)
            except (OSError, ValueError):
                pass
        time.sleep(a.interval)


if __name__ == "__main__":
    main()
