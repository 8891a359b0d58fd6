#!/usr/bin/env bash
# Runs the herd-vs-peers criterion suites, then regenerates benches/RESULTS.md.
# Extra arguments are passed to criterion (e.g. `bash benches/run.sh labelled_inc`).
# Takes about two and a half minutes on 2 cores once compiled. Run it on an otherwise idle
# machine: with 2 cores, any other busy process moves single-digit-ns results by 20%.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -r /proc/loadavg ]]; then
    HERD_BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
    export HERD_BENCH_LOADAVG
    echo "load average before the run: ${HERD_BENCH_LOADAVG}" >&2
fi

cargo bench -p herd-benches --bench hot_path --bench encode --bench statsd -- "$@"
cargo run --release -p herd-benches --bin bench-report
