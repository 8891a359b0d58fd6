#!/usr/bin/env bash
# Runs the herd-vs-peers criterion suites and the multiprocess scrape comparison
# (benches/scrape-compare.sh: herd-mmap beside Python prometheus_client and GitLab's
# prometheus-client-mmap, installed first if missing; again with every worker's series
# in its own order, herd alone; then its scaling curves), the
# scrape cost before and after 2,000 short-lived workers (scrape-compare --churn), the
# memory of prefork-demo's workers after each answered a scrape (benches/prefork-memory.sh),
# herd-tonic's added cost again in twenty more processes (see below), then regenerates
# benches/RESULTS.md, benches/scaling.csv and benches/scaling.svg.
# Extra arguments are passed to criterion (e.g. `bash benches/run.sh labelled_inc`).
# Takes about eighteen minutes on 2 cores once compiled (the churn about a minute and
# a half). Run it on an otherwise idle machine: with 2 cores, any other busy process
# moves single-digit-ns results by 20%.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -r /proc/loadavg ]]; then
    HERD_BENCH_LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
    export HERD_BENCH_LOADAVG
    echo "load average before the run: ${HERD_BENCH_LOADAVG}" >&2
fi

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir/herd-bench"
scrape_line="$target_dir/herd-bench/scrape-compare.txt"
churn_line="$target_dir/herd-bench/churn.txt"
prefork_line="$target_dir/herd-bench/prefork-memory.txt"
shuffled_line="$target_dir/herd-bench/scrape-shuffled.txt"
layouts_dir="$target_dir/herd-bench/layouts"
# A line from an earlier run must not pass for this one's.
rm -rf "$scrape_line" "$churn_line" "$prefork_line" "$shuffled_line" "$layouts_dir"

cargo bench -p herd-benches --bench hot_path --bench encode --bench middleware --bench statsd --bench facade --bench push -- "$@"
# herd-tonic's target is a ratio of two added costs of about 200 ns each, and the
# process it is measured in (its layout in memory) moves it by ±10% and more, even with
# both measured in the same rounds (benches/middleware.rs). So the group runs again in
# twenty processes, each saved under layouts/<k>, and bench-report judges the median of
# their ratios (of those that ran on a quiet machine). Skipped when arguments narrow the
# run to other benchmarks.
if [[ $# -eq 0 ]]; then
    for k in $(seq 1 20); do
        cargo bench --quiet -p herd-benches --bench middleware -- middleware_grpc_added >/dev/null
        mkdir -p "$layouts_dir/$k"
        cp -r "$target_dir/criterion/middleware_grpc_added" "$layouts_dir/$k/"
    done
fi
bash benches/scrape-compare.sh --workers 32 --series 10000 | tee "$scrape_line"
bash benches/scrape-compare.sh --workers 32 --series 10000 --peers none --shuffled | tee "$shuffled_line"
bash benches/scrape-compare.sh --scaling --workers 32 --series 10000
cargo run --quiet --release -p herd-benches --bin scrape-compare -- --churn | tee "$churn_line"
bash benches/prefork-memory.sh | tee "$prefork_line"
cargo run --release -p herd-benches --bin bench-report -- --scrape "$scrape_line" --churn "$churn_line" \
    --prefork "$prefork_line" --shuffled "$shuffled_line"
