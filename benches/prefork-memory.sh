#!/usr/bin/env bash
# The memory of prefork-demo's workers once each has answered a scrape of a directory of
# 8 files of 11,000 series, summed over the workers and beside the directory's size, for
# both ways the demo can serve /metrics (--aggregate one: worker 0 aggregates and the
# others relay to it; --aggregate each: every worker aggregates). Builds both programs,
# then runs
#
#   scrape-compare --prefork-memory --workers 8 --series 11000
#
# and prints its one line (prefork_dir_bytes= prefork_one_pss_bytes= ...).
# Arguments replace the defaults. Takes about half a minute once compiled.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -eq 0 ]]; then
    set -- --workers 8 --series 11000
fi
cargo build --quiet --release -p herd-examples --bin prefork-demo
cargo run --quiet --release -p herd-benches --bin scrape-compare -- --prefork-memory "$@"
