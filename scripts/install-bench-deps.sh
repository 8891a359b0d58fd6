#!/usr/bin/env bash
# Installs the peers of the scrape comparison (benches/scrape-compare.sh), only
# those that are missing:
#   - Python `prometheus-client==0.26.0` (its multiprocess mode), through
#     scripts/install-test-deps.sh, which the tests need anyway
#   - Debian `ruby` and `ruby-prometheus-client-mmap` (GitLab's
#     prometheus-client-mmap, 0.16 on Debian 12), via apt-get
# Idempotent and quiet like install-test-deps.sh: one line per thing installed,
# and the installer's output only when it fails.
# Overrides: HERD_PYTHON (python executable, default python3), HERD_RUBY (ruby
# executable, default ruby).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

RUBY="${HERD_RUBY:-ruby}"

bash scripts/install-test-deps.sh

installer=install-bench-deps
# shellcheck source=scripts/install-common.sh
source scripts/install-common.sh

# --- Debian packages ----------------------------------------------------------
apt_missing=()
if ! command -v "$RUBY" >/dev/null 2>&1; then
    apt_missing+=(ruby)
fi
# The gem is what matters, not how it came: a `require` that works is enough.
if ! "$RUBY" -e 'require "prometheus/client"; require "prometheus/client/formats/text"' >/dev/null 2>&1; then
    apt_missing+=(ruby-prometheus-client-mmap)
fi

apt_install

if ! "$RUBY" -e 'require "prometheus/client"; require "prometheus/client/formats/text"' >"$log_file" 2>&1; then
    echo "install-bench-deps: prometheus-client-mmap still cannot be loaded by $RUBY:" >&2
    cat "$log_file" >&2
    exit 1
fi
