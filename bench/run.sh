#!/bin/sh
# make bench: every benchmark, each beside its baseline in the same run.
set -eu
BUILD=${1:-build}
export MSCOPE_BUILD=$(cd "$BUILD" && pwd)
cd "$(dirname "$0")"
for b in bench_ingest.py bench_search.py bench_udp.py bench_analysis.py bench_coordinator.py \
         bench_merge.py bench_dsearch.py bench_broker.py bench_rest.py bench_segments.py \
         bench_dashboard.py bench_app.py bench_app_ingest.py; do
    echo "=== $b"
    python3 "$b"
    echo
done
echo "=== json_writer (flow-record JSON: hand-written vs jansson)"
"$MSCOPE_BUILD/tests/tools/json_writer" 1000000
echo
echo "=== bench_udp.py, store only (--no-analysis)"
MSCOPE_BENCH_RECORDER_ARGS=--no-analysis python3 bench_udp.py
