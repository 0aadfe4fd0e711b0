#!/bin/sh
# run.sh - fuzz each target for a set time, one after the other (`make fuzz`).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#
# Each target starts from its committed seeds (tests/fuzz/corpus/NAME, only
# read) and keeps what it finds new in BUILD_DIR/corpus/NAME, outside git,
# so a later run goes on from there. A crash, leak or timeout leaves its
# input in BUILD_DIR/findings/ (NAME-crash-..., -leak-, -timeout-): fix the
# bug, then copy the input into tests/fuzz/corpus/NAME/ as crash-<what> so
# the replay test in `make check` keeps it fixed. Prints each target's
# executions and rate from libFuzzer's final statistics; exits 1 when any
# target found something.
set -u

build=$1
secs=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/findings"
failed=""
summary=""
for t in "$@"; do
    bin="$build/tests/fuzz/fuzz_$t"
    out="$build/corpus/$t"
    log="$build/findings/$t.log"
    mkdir -p "$out"
    echo "fuzz: $t for ${secs}s (log: $log)"
    # -timeout: an input that runs 10 s is a hang; -rss_limit_mb: a leak or
    # an allocation a bad length asked for.
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/findings/$t-" "$out" "$src/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$out" -type f | wc -l)
    line=$(printf '%-14s %12s execs %9s exec/s  cov %6s  new inputs %6s' "$t" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "$corpus")
    if [ "$rc" -ne 0 ]; then
        line="$line  FINDING (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|fuzz check failed|runtime error' "$log")"
        failed="$failed $t"
    fi
    echo "$line"
    summary="$summary$line
"
done
echo
echo "fuzz: ${secs}s per target"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (inputs in $build/findings/)"
    exit 1
fi
