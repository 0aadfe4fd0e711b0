#!/bin/sh
# run.sh - fuzz each target for a set time, one after the other (`make fuzz`).
#
#   [FUZZ_WORKERS=N] [FUZZ_ARGS=...] tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#
# Each target starts from its committed seeds (tests/fuzz/corpus/NAME, only
# read) and keeps what it finds new in BUILD_DIR/corpus/NAME, outside git,
# so a later run goes on from there. A crash, leak or timeout leaves its
# input in BUILD_DIR/findings/ (NAME-crash-..., -leak-, -timeout-): fix the
# bug, then copy the input into tests/fuzz/corpus/NAME/ as crash-<what> so
# the replay test in `make check` keeps it fixed. FUZZ_WORKERS (default 1)
# runs that many fuzzers of a target at once on the same corpus directory
# (each picks up what the others add when it reloads the corpus), one per
# core: the targets that write files and search them run a few thousand
# inputs a second, and libFuzzer's own -fork mode was slower here than
# independent processes. FUZZ_ARGS adds libFuzzer options to every worker
# (e.g. -runs=5000000 to stop each worker at a count). Prints each target's executions (summed over the
# workers) and rate from libFuzzer's final statistics; exits 1 when any
# target found something.
set -u

build=$1
secs=$2
shift 2
workers=${FUZZ_WORKERS:-1}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/findings"
failed=""
summary=""
for t in "$@"; do
    bin="$build/tests/fuzz/fuzz_$t"
    out="$build/corpus/$t"
    mkdir -p "$out"
    echo "fuzz: $t for ${secs}s, $workers worker(s) (logs: $build/findings/$t*.log)"
    # -timeout: an input that runs 10 s is a hang; -rss_limit_mb: a leak or
    # an allocation a bad length asked for; -reload: pick up the other
    # workers' new inputs every 10 s.
    pids=""
    logs=""
    i=0
    while [ "$i" -lt "$workers" ]; do
        log="$build/findings/$t.log"
        [ "$workers" -gt 1 ] && log="$build/findings/$t.$i.log"
        "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
            -reload=10 -artifact_prefix="$build/findings/$t-" ${FUZZ_ARGS:-} \
            "$out" "$src/corpus/$t" \
            >"$log" 2>&1 &
        pids="$pids $!"
        logs="$logs $log"
        i=$((i + 1))
    done
    rc=0
    for p in $pids; do
        wait "$p" || rc=$?
    done
    # shellcheck disable=SC2086 # $logs is a list of our own file names
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $logs | awk '{s += $1} END {print s}')
    # shellcheck disable=SC2086
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' $logs | awk '{s += $1} END {print s}')
    # shellcheck disable=SC2086
    cov=$(cat $logs | grep -o 'cov: [0-9]*' | cut -d' ' -f2 | sort -n | tail -1)
    corpus=$(find "$out" -type f | wc -l)
    line=$(printf '%-14s %12s execs %9s exec/s  cov %6s  new inputs %6s' "$t" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "$corpus")
    if [ "$rc" -ne 0 ]; then
        # shellcheck disable=SC2086
        line="$line  FINDING (exit $rc): $(cat $logs | grep -m1 -E 'ERROR|SUMMARY|fuzz check failed|runtime error')"
        failed="$failed $t"
    fi
    echo "$line"
    summary="$summary$line
"
done
echo
echo "fuzz: ${secs}s per target, $workers worker(s)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (inputs in $build/findings/)"
    exit 1
fi
