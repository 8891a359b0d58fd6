#!/usr/bin/env bash
# Installs the peers herd's tests talk to, only those that are missing:
#   - Debian `prometheus` (prometheus + promtool), via apt-get
#   - Python `prometheus-client==0.26.0` (client_python's parsers), via pip
#   - npm `statsd@0.9.0` (Etsy statsd) into .test-deps/node (repo-local)
#   - Debian `strace` (herd-statsd's no-syscall test)
# Idempotent and quiet: prints one line per thing installed, and the
# installer's output only when it fails.
# Overrides: HERD_PYTHON (python executable, default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

PY_CLIENT_VERSION="0.26.0"
STATSD_VERSION="0.9.0"
NODE_PREFIX=".test-deps/node"
PYTHON="${HERD_PYTHON:-python3}"

log_file="$(mktemp "${TMPDIR:-/tmp}/herd-install-test-deps.XXXXXX")"
trap 'rm -f "$log_file"' EXIT

# run_quiet DESCRIPTION CMD...: runs CMD with its output captured; on
# failure prints the output and exits.
run_quiet() {
    local what="$1"
    shift
    if ! "$@" >"$log_file" 2>&1; then
        echo "install-test-deps: FAILED: $what" >&2
        echo "install-test-deps: command: $*" >&2
        cat "$log_file" >&2
        exit 1
    fi
}

# Runs a command as root: directly, or through passwordless sudo.
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
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    apt_missing+=(prometheus)
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_missing+=(python3 python3-pip python3-venv)
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    apt_missing+=(nodejs npm)
fi
# herd-statsd's test that the caller's thread makes no system call runs under strace.
if ! command -v strace >/dev/null 2>&1; then
    apt_missing+=(strace)
fi

if [ "${#apt_missing[@]}" -gt 0 ]; then
    if ! can_be_root; then
        echo "install-test-deps: missing Debian packages: ${apt_missing[*]}" >&2
        echo "install-test-deps: run this script as root (or with passwordless sudo)," >&2
        echo "install-test-deps: or run: sudo apt-get install -y --no-install-recommends ${apt_missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run_quiet "apt-get update" as_root apt-get update -qq
    run_quiet "apt-get install ${apt_missing[*]}" \
        as_root apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
    for pkg in "${apt_missing[@]}"; do
        echo "install-test-deps: installed Debian package $pkg"
    done
    hash -r
fi

# --- Python prometheus-client -------------------------------------------------
py_client_version() {
    "$PYTHON" -c 'import importlib.metadata as m, prometheus_client; print(m.version("prometheus_client"))' 2>/dev/null || true
}

if [ "$(py_client_version)" != "$PY_CLIENT_VERSION" ]; then
    pip_args=(-m pip install --quiet --disable-pip-version-check "prometheus-client==$PY_CLIENT_VERSION")
    if ! "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.access(sysconfig.get_paths()["purelib"], os.W_OK))' 2>/dev/null; then
        # site-packages is not writable (a non-root user): install per user.
        pip_args+=(--user)
    fi
    if ! "$PYTHON" "${pip_args[@]}" >"$log_file" 2>&1; then
        if grep -q "externally-managed-environment" "$log_file"; then
            # Debian's system Python (PEP 668): this machine is a test box.
            run_quiet "pip install prometheus-client==$PY_CLIENT_VERSION" \
                "$PYTHON" "${pip_args[@]}" --break-system-packages
        else
            echo "install-test-deps: FAILED: pip install prometheus-client==$PY_CLIENT_VERSION" >&2
            cat "$log_file" >&2
            exit 1
        fi
    fi
    got="$(py_client_version)"
    if [ "$got" != "$PY_CLIENT_VERSION" ]; then
        echo "install-test-deps: prometheus-client is '${got:-absent}' after pip install, expected $PY_CLIENT_VERSION (python: $(command -v "$PYTHON"))" >&2
        exit 1
    fi
    echo "install-test-deps: installed Python prometheus-client==$PY_CLIENT_VERSION"
fi

# --- npm statsd ---------------------------------------------------------------
statsd_version() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
        "$repo_root/$NODE_PREFIX/node_modules/statsd/package.json" 2>/dev/null || true
}

if [ "$(statsd_version)" != "$STATSD_VERSION" ]; then
    mkdir -p "$NODE_PREFIX"
    run_quiet "npm install statsd@$STATSD_VERSION" \
        npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
        "statsd@$STATSD_VERSION"
    got="$(statsd_version)"
    if [ "$got" != "$STATSD_VERSION" ]; then
        echo "install-test-deps: statsd is '${got:-absent}' after npm install, expected $STATSD_VERSION" >&2
        exit 1
    fi
    echo "install-test-deps: installed npm statsd@$STATSD_VERSION into $NODE_PREFIX"
fi
