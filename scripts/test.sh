#!/usr/bin/env bash
# The project's single test command: installs the test peers and cargo-nextest
# if missing, runs every test of the workspace under nextest (fork-based tests
# need its process-per-test isolation), then the doc tests (nextest does not run
# those).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# The test peers, plus the scrape comparison's (Ruby's prometheus-client-mmap), whose
# end-to-end test runs the real peers on a small configuration.
bash scripts/install-bench-deps.sh

cargo nextest run --workspace --all-features --no-fail-fast

cargo test --workspace --all-features --doc
