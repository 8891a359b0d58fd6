#!/usr/bin/env bash
# The multiprocess scrape comparison: herd-mmap beside Python prometheus_client
# (multiprocess mode) and GitLab's prometheus-client-mmap, on the same machine in the
# same run. Installs the peers first if they are missing, then runs
#
#   cargo run --release -p herd-benches --bin scrape-compare -- --workers 32 --series 10000
#
# and prints its one line (herd_cold_ms= herd_steady_ms= herd_bytes= python_ms= ...).
# Arguments replace the defaults `--workers 32 --series 10000`, for example
#
#   bash benches/scrape-compare.sh --workers 8 --series 1000 --peers python
#   bash benches/scrape-compare.sh --scaling    # benches/scaling.csv and scaling.svg
#
# See `cargo run --release -p herd-benches --bin scrape-compare -- --help` for the flags.
# Takes about a minute at 32 x 10k on 2 cores once compiled; --scaling about ten.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-bench-deps.sh >&2

if [[ $# -eq 0 ]]; then
    set -- --workers 32 --series 10000
fi
cargo run --quiet --release -p herd-benches --bin scrape-compare -- "$@"
