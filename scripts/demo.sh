#!/bin/sh
# make demo: record a sample of mirrored traffic and search it.
#   1. generate a sample capture (TCP, UDP, ICMP, IPv6, VLAN, odd packets)
#   2. start a coordinator (with its own embedded PostgreSQL) and a recorder
#      daemon listening for VXLAN on 127.0.0.1:14789
#   3. replay the capture to it wrapped in VXLAN, as Traffic Mirroring would
#   4. search through the coordinator: one host and port, last 10 minutes
#   5. show the answer with tcpdump, a TCP flow record, and the counters
#   6. ask the coordinator with the mscope CLI: nodes, flows, top talkers;
#      and over HTTP: its health and Prometheus metrics
# Usage: scripts/demo.sh [BUILD_DIR]; its files go to ./demo-data. Ports can be
# moved with MSCOPE_DEMO_PORT (VXLAN in), MSCOPE_DEMO_BUS_PORT, _RPC_PORT,
# _SEARCH_PORT, _HTTP_PORT and _REC_HTTP_PORT (the coordinator's and the
# recorder's health and metrics) and _PG_PORT
# (the embedded PostgreSQL's socket).
# scripts/demo.sh --clean removes ./demo-data and its cluster (make clean).
# scripts/demo.sh --topology [BUILD_DIR] (what `make demo` runs as root): the AWS
# topology emulated with network namespaces (deploy/local/README.md) in
# ./demo-data/local, left up for a look around.
set -eu
DEMO=demo-data
TOPOLOGY=$(dirname "$0")/../deploy/local/topology.py

# Remove the last demo's files. As root under a directory user postgres
# cannot enter (root's home), its cluster lived elsewhere, linked from
# coord/pgdata (see docs/OPERATIONS.md): that goes too.
clean() {
    if [ -f "$DEMO/local/topology.json" ]; then
        python3 "$TOPOLOGY" down --dir "$DEMO/local"
    fi
    for c in "$DEMO/coord" "$DEMO/local/coord"; do
        if [ -L "$c/pgdata" ]; then
            old=$(readlink "$c/pgdata")
            rm -rf "$old" "$(dirname "$old")/pgrun"
            rmdir "$(dirname "$old")" 2>/dev/null || true
        fi
    done
    rm -rf "$DEMO"
}
if [ "${1:-}" = "--clean" ]; then
    clean
    exit 0
fi
if [ "${1:-}" = "--topology" ]; then
    clean
    mkdir -p "$DEMO"
    exec python3 "$TOPOLOGY" demo --dir "$DEMO/local" --build "${2:-build}"
fi

BUILD=${1:-build}
REC=$BUILD/mscope-recorder
COORD=$BUILD/mscope-coordinator
CLI=$BUILD/mscope
GEN=$BUILD/tests/tools/pcapgen
SEND=$BUILD/tests/tools/vxsend
PORT=${MSCOPE_DEMO_PORT:-14789}
BUS=tcp://127.0.0.1:${MSCOPE_DEMO_BUS_PORT:-15556}
RPC=tcp://127.0.0.1:${MSCOPE_DEMO_RPC_PORT:-15555}
SEARCH=tcp://127.0.0.1:${MSCOPE_DEMO_SEARCH_PORT:-15557}
HTTP=127.0.0.1:${MSCOPE_DEMO_HTTP_PORT:-18080}
REC_HTTP=127.0.0.1:${MSCOPE_DEMO_REC_HTTP_PORT:-18081}
PGPORT=${MSCOPE_DEMO_PG_PORT:-5439}

# Stop what we started, waiting for each (the coordinator stops its PostgreSQL).
pids=""
stop() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    pids=""
}
trap stop EXIT

clean
mkdir -p "$DEMO"
now=$(date +%s)
echo "== 1. sample capture: $DEMO/sample.pcap"
"$GEN" -w "$DEMO/sample.pcap" --packets 200000 --flows 2000 --start $((now - 120)) --rate 20000
capinfos -c -s -u "$DEMO/sample.pcap" | sed 's/^/   /'

echo "== 2. coordinator ($DEMO/coord, embedded PostgreSQL) and recorder daemon (udp 127.0.0.1:$PORT)"
"$COORD" --data-dir "$DEMO/coord" --bus "$BUS" --rpc "$RPC" --http "$HTTP" --pg-port "$PGPORT" 2>"$DEMO/coordinator.log" &
cpid=$!
pids=$cpid
# Up once it has written its tokens (after its database answered); give up
# at once if it exits, and after 60 s.
i=0
while [ ! -f "$DEMO/coord/search.token" ]; do
    if ! kill -0 $cpid 2>/dev/null || [ $i -ge 300 ]; then
        echo "coordinator did not start: $DEMO/coordinator.log says:"
        tail -n 15 "$DEMO/coordinator.log" | sed 's/^/   /'
        if [ -s "$DEMO/coord/postgresql.log" ]; then
            echo "and its PostgreSQL's log, $DEMO/coord/postgresql.log, ends:"
            tail -n 10 "$DEMO/coord/postgresql.log" | sed 's/^/   /'
        fi
        exit 1
    fi
    i=$((i + 1))
    sleep 0.2
done
# Enrolling a recorder: the cluster's search token and the coordinator's public
# key (both made by the coordinator) go to the recorder; the recorder's public
# key goes into the coordinator's allowed keys. The bus, the searches and the
# RPC are encrypted (CURVE); nobody without an allowed key gets in.
mkdir -p "$DEMO/store"
cp "$DEMO/coord/search.token" "$DEMO/store/search.token"
cp "$DEMO/coord/curve.pub" "$DEMO/store/coordinator.pub"
"$CLI" keygen --role recorder "$DEMO/store/curve" >/dev/null
cp "$DEMO/store/curve.pub" "$DEMO/coord/allowed-keys/demo-recorder.pub"
"$REC" --data-dir "$DEMO/store" --listen 127.0.0.1:$PORT --min-free 0 --segment-size 16M \
    --search "$SEARCH" --http "$REC_HTTP" --drain-time 0 \
    --flows-json "$DEMO/flows.json" --coordinator "$BUS" --node-id demo-recorder \
    --flow-idle 2s --flow-grace 1s 2>"$DEMO/recorder.log" &
pid=$!
pids="$pid $cpid"
sleep 1.5   # its first heartbeat tells the coordinator where to search

echo "== 3. replaying the capture as VXLAN (VNI 7) at 100k packets/s"
"$SEND" --to 127.0.0.1:$PORT --vni 7 --rate 100000 --count "$DEMO/sample.pcap" | sed 's/^/   /'
sleep 1

M="$CLI --coordinator $RPC --token-file $DEMO/coord/rpc.token --key-file $DEMO/coord/client.key --coordinator-key $DEMO/coord/curve.pub"
echo "== 4. \$ mscope search --since 10m 'host 10.0.1.1 and tcp port 443' -w $DEMO/answer.pcap"
# The coordinator asks every recorder and merges their answers by time. The
# replay stamps packets with their arrival time, so search by recent time.
$M search --since 10m -w "$DEMO/answer.pcap" 'host 10.0.1.1 and tcp port 443' 2>&1 | sed 's/^/   /'
echo "   first packets of the answer (tcpdump -r $DEMO/answer.pcap):"
tcpdump -nr "$DEMO/answer.pcap" 2>/dev/null | head -5 | sed 's/^/     /'
capinfos -c "$DEMO/answer.pcap" | sed 's/^/   /'

echo "== 5. the recorder's counters ($DEMO/store/stats.json, and Prometheus metrics over HTTP)"
echo "   \$ curl -s http://$REC_HTTP/metrics | grep -E '^mscope_recorder_(packets|drops)'"
curl -s "http://$REC_HTTP/metrics" | grep -E '^mscope_recorder_(packets|drops)' | sed 's/^/   /'
kill -USR1 $pid
sleep 0.3
kill $pid
wait $pid || true
pids=$cpid
tail -n 3 "$DEMO/recorder.log" | sed 's/^/   /'
echo "   flow records (TCP analysis, one JSON line per flow): $(wc -l < "$DEMO/flows.json") in $DEMO/flows.json"
echo "   one of them, a TCP flow with a handshake:"
grep -m1 '"complete":true' "$DEMO/flows.json" | python3 -m json.tool | sed 's/^/     /' | head -40

echo "== 6. the coordinator, through the mscope CLI (records are in PostgreSQL)"
sleep 1
echo "   \$ mscope nodes"
$M nodes | sed 's/^/   /'
echo "   \$ mscope flows --since 10m --order bytes --limit 5"
$M flows --since 10m --order bytes --limit 5 | sed 's/^/   /'
echo "   \$ mscope top --since 10m --limit 5"
$M top --since 10m --limit 5 | sed 's/^/   /'
echo "   \$ curl http://$HTTP/healthz"
curl -s "http://$HTTP/healthz" | sed 's/^/   /'
echo "   \$ curl -s http://$HTTP/metrics | grep ^mscope_coordinator_records"
curl -s "http://$HTTP/metrics" | grep '^mscope_coordinator_records' | sed 's/^/   /'
stop
trap - EXIT
echo
echo "Segments are plain pcap: try  tcpdump -nr $DEMO/store/seg-000000000001.pcap | head"
echo "Search one recorder's files: $REC search --data-dir $DEMO/store -w out.pcap 'udp port 53'"
echo "Analyse a file like tshark:  $REC --read tests/data/tcp_loss1.pcap --flows-json -"
echo "Query the coordinator:       $M flows --help"
