#!/bin/sh
# Install every Debian package the build, the tests and the demo need
# (with --fuzz, also what `make fuzz` needs).
# Idempotent: asks apt only for what is missing, so a warm machine pays nothing.
set -eu

PKGS="build-essential cmake pkg-config
libpcap-dev libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libuv1-dev libpq-dev
libh2o-dev libjansson-dev libssl-dev libseccomp-dev prometheus curl
protobuf-compiler python3-zmq python3-protobuf python3-jsonschema
postgresql postgresql-client
tcpdump tshark wireshark-common iproute2 iputils-ping ethtool nftables util-linux python3
dpkg-dev systemd passwd strace chromium
dnsmasq-base bind9-dnsutils"
# dnsmasq-base (the binary only: unlike Debian's `dnsmasq` package it installs no
# service that would bind port 53 on the host) and dig are for the application
# analytics tests (tests/lib/apprig.py), which run their own dnsmasq in a namespace.
# `deps.sh --fuzz` (make fuzz) adds clang and its libFuzzer/sanitizer runtimes.
if [ "${1:-}" = "--fuzz" ]; then
    PKGS="$PKGS clang libclang-rt-14-dev"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm comes with NodeSource's nodejs, or as Debian's own package beside Debian's.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# npm packages, exactly as each committed lockfile pins them, installed again
# only when the lockfile is newer than what is installed:
# - tests/terraform: HashiCorp's HCL parser for tests/integration/test_terraform.py
#   (Terraform is not packaged);
# - web: uPlot, which the build embeds in mscope-coordinator (the dashboard);
# - tests/browser: playwright-core, which drives Debian's chromium in
#   tests/integration/test_dashboard.py (it downloads no browser).
root="$(dirname "$0")/.."
for dir in tests/terraform web tests/browser; do
    d="$root/$dir"
    if [ ! -d "$d/node_modules" ] ||
        [ -n "$(find "$d/package-lock.json" -newer "$d/node_modules")" ]; then
        echo "deps: npm ci in $dir"
        (cd "$d" && npm ci --silent --no-audit --no-fund)
        touch "$d/node_modules"
    fi
done
