#!/bin/sh
# make demo: record a sample of mirrored traffic and search it.
#   1. generate a sample capture (TCP, UDP, ICMP, IPv6, VLAN, odd packets)
#   2. start a recorder daemon listening for VXLAN on 127.0.0.1:14789
#   3. replay the capture to it wrapped in VXLAN, as Traffic Mirroring would
#   4. search: one host and port, over the last 10 minutes of packet time
#   5. show the answer with tcpdump, a TCP flow record, and the counters
set -eu
BUILD=${1:-build}
REC=$BUILD/mscope-recorder
GEN=$BUILD/tests/tools/pcapgen
SEND=$BUILD/tests/tools/vxsend
DEMO=demo-data
PORT=${MSCOPE_DEMO_PORT:-14789}

rm -rf "$DEMO"
mkdir -p "$DEMO"
now=$(date +%s)
echo "== 1. sample capture: $DEMO/sample.pcap"
"$GEN" -w "$DEMO/sample.pcap" --packets 200000 --flows 2000 --start $((now - 120)) --rate 20000
capinfos -c -s -u "$DEMO/sample.pcap" | sed 's/^/   /'

echo "== 2. recorder daemon on udp 127.0.0.1:$PORT, data in $DEMO/store"
"$REC" --data-dir "$DEMO/store" --listen 127.0.0.1:$PORT --min-free 0 --segment-size 16M \
    --flows-json "$DEMO/flows.json" 2>"$DEMO/recorder.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 0.5

echo "== 3. replaying the capture as VXLAN (VNI 7) at 100k packets/s"
"$SEND" --to 127.0.0.1:$PORT --vni 7 --rate 100000 --count "$DEMO/sample.pcap" | sed 's/^/   /'
sleep 1

echo "== 4. search: 'host 10.0.1.1 and tcp port 443' over the last 10 minutes"
# The replay stamps packets with their arrival time, so search by recent time.
"$REC" search --data-dir "$DEMO/store" --from 10m --stats -w "$DEMO/answer.pcap" \
    'host 10.0.1.1 and tcp port 443'
echo "   first packets of the answer (tcpdump -r $DEMO/answer.pcap):"
tcpdump -nr "$DEMO/answer.pcap" 2>/dev/null | head -5 | sed 's/^/     /'
capinfos -c "$DEMO/answer.pcap" | sed 's/^/   /'

echo "== 5. the recorder's counters ($DEMO/store/stats.json)"
kill -USR1 $pid
sleep 0.3
kill $pid
wait $pid || true
trap - EXIT
tail -n 3 "$DEMO/recorder.log" | sed 's/^/   /'
echo "   flow records (TCP analysis, one JSON line per flow): $(wc -l < "$DEMO/flows.json") in $DEMO/flows.json"
echo "   one of them, a TCP flow with a handshake:"
grep -m1 '"complete":true' "$DEMO/flows.json" | python3 -m json.tool | sed 's/^/     /' | head -60
echo
echo "Segments are plain pcap: try  tcpdump -nr $DEMO/store/seg-000000000001.pcap | head"
echo "Search anything:             $REC search --data-dir $DEMO/store -w out.pcap 'udp port 53'"
echo "Analyse a file like tshark:  $REC --read tests/data/tcp_loss1.pcap --flows-json -"
