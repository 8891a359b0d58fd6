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

log_file="$(mktemp "${TMPDIR:-/tmp}/herd-install-bench-deps.XXXXXX")"
trap 'rm -f "$log_file"' EXIT

run_quiet() {
    local what="$1"
    shift
    if ! "$@" >"$log_file" 2>&1; then
        echo "install-bench-deps: FAILED: $what" >&2
        echo "install-bench-deps: command: $*" >&2
        cat "$log_file" >&2
        exit 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

can_be_root() {
    [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# --- Debian packages ----------------------------------------------------------
apt_missing=()
if ! command -v "$RUBY" >/dev/null 2>&1; then
    apt_missing+=(ruby)
fi
# The gem is what matters, not how it came: a `require` that works is enough.
if ! "$RUBY" -e 'require "prometheus/client"; require "prometheus/client/formats/text"' >/dev/null 2>&1; then
    apt_missing+=(ruby-prometheus-client-mmap)
fi

if [ "${#apt_missing[@]}" -gt 0 ]; then
    if ! can_be_root; then
        echo "install-bench-deps: missing Debian packages: ${apt_missing[*]}" >&2
        echo "install-bench-deps: run this script as root (or with passwordless sudo)," >&2
        echo "install-bench-deps: or run: sudo apt-get install -y --no-install-recommends ${apt_missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run_quiet "apt-get update" as_root apt-get update -qq
    run_quiet "apt-get install ${apt_missing[*]}" \
        as_root apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
    for pkg in "${apt_missing[@]}"; do
        echo "install-bench-deps: installed Debian package $pkg"
    done
    hash -r
fi

if ! "$RUBY" -e 'require "prometheus/client"; require "prometheus/client/formats/text"' >"$log_file" 2>&1; then
    echo "install-bench-deps: prometheus-client-mmap still cannot be loaded by $RUBY:" >&2
    cat "$log_file" >&2
    exit 1
fi
