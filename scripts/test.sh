#!/usr/bin/env bash
# The project's single test command: installs the test peers if missing, runs
# every test of the workspace (nextest when available: fork-based tests need
# its process-per-test isolation), then the doc tests (nextest does not run
# those).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# The test peers, plus the scrape comparison's (Ruby's prometheus-client-mmap), whose
# end-to-end test runs the real peers on a small configuration.
bash scripts/install-bench-deps.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast
else
    echo "test.sh: cargo-nextest not found, using cargo test (install: cargo install cargo-nextest --locked)" >&2
    cargo test --workspace --all-features
fi

cargo test --workspace --all-features --doc
