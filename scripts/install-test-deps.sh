#!/usr/bin/env bash
# Installs the peers herd's tests talk to, only those that are missing:
#   - Debian `prometheus` (prometheus + promtool), via apt-get
#   - Python `prometheus-client==0.26.0` (client_python's parsers), via pip
#   - Python `protobuf` (the independent decoder of herd's protobuf exposition), via pip
#   - npm `statsd@0.9.0` (Etsy statsd) into .test-deps/node (repo-local)
#   - Debian `strace` (herd-core's and herd-statsd's no-syscall tests)
#   - Debian `valgrind` (herd runs under it: examples/tests/valgrind.rs)
#   - Debian `systemd` (`systemd-analyze verify` of the systemd example's units and
#     ops/'s unit) and Python `PyYAML` (ops/'s Kubernetes manifest)
#   - Debian `prometheus-pushgateway` and `victoria-metrics`, and Python
#     `opentelemetry-proto==1.45.2` (herd-push's receivers)
#   - cargo-nextest, the test runner, via cargo install
# Idempotent and quiet: prints one line per thing installed, and the
# installer's output only when it fails.
# Overrides: HERD_PYTHON (python executable, default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

PY_CLIENT_VERSION="0.26.0"
STATSD_VERSION="0.9.0"
PYYAML_VERSION="6.0.3"
PROTOBUF_VERSION="7.36.2"
OTLP_PROTO_VERSION="1.45.2"
NODE_PREFIX=".test-deps/node"
PYTHON="${HERD_PYTHON:-python3}"

installer=install-test-deps
# shellcheck source=scripts/install-common.sh
source scripts/install-common.sh

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
# examples/tests/valgrind.rs runs a forking master and its aggregate under valgrind.
if ! command -v valgrind >/dev/null 2>&1; then
    apt_missing+=(valgrind)
fi
# systemd-analyze verify checks herd-prefork's systemd example (examples/systemd/)
# and ops/deploy/systemd/herd-app.service.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt_missing+=(systemd)
fi
# herd-push's receivers: the batch example pushes to a Pushgateway, `herd push`
# remote-writes to VictoriaMetrics (and to Prometheus, above).
if ! command -v prometheus-pushgateway >/dev/null 2>&1; then
    apt_missing+=(prometheus-pushgateway)
fi
if ! command -v victoria-metrics >/dev/null 2>&1; then
    apt_missing+=(victoria-metrics)
fi

apt_install

# --- Python packages ------------------------------------------------------------
# pip_install SPEC: installs SPEC for $PYTHON, per user when site-packages is not
# writable, past Debian's PEP 668 guard (this machine is a test box).
pip_install() {
    local pip_args=(-m pip install --quiet --disable-pip-version-check "$1")
    if ! "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.access(sysconfig.get_paths()["purelib"], os.W_OK))' 2>/dev/null; then
        pip_args+=(--user)
    fi
    if ! "$PYTHON" "${pip_args[@]}" >"$log_file" 2>&1; then
        if grep -q "externally-managed-environment" "$log_file"; then
            run_quiet "pip install $1" "$PYTHON" "${pip_args[@]}" --break-system-packages
        else
            echo "install-test-deps: FAILED: pip install $1" >&2
            cat "$log_file" >&2
            exit 1
        fi
    fi
}

# py_version DIST MODULE: the installed version of distribution DIST, if MODULE imports.
py_version() {
    "$PYTHON" -c 'import importlib, importlib.metadata as m, sys; importlib.import_module(sys.argv[2]); print(m.version(sys.argv[1]))' "$1" "$2" 2>/dev/null || true
}

# pip_pinned DIST MODULE VERSION: installs DIST==VERSION unless it is there already,
# then checks that MODULE imports at that version.
pip_pinned() {
    local dist="$1" module="$2" version="$3" got
    if [ "$(py_version "$dist" "$module")" = "$version" ]; then
        return
    fi
    pip_install "$dist==$version"
    got="$(py_version "$dist" "$module")"
    if [ "$got" != "$version" ]; then
        echo "install-test-deps: $dist is '${got:-absent}' after pip install, expected $version (python: $(command -v "$PYTHON"))" >&2
        exit 1
    fi
    echo "install-test-deps: installed Python $dist==$version"
}

# client_python's parsers (testkit/src/python.rs).
pip_pinned prometheus-client prometheus_client "$PY_CLIENT_VERSION"

# --- Python PyYAML ------------------------------------------------------------
# examples/tests/ops.rs parses ops/deploy/kubernetes/pod.yaml with it.
if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    pip_install "pyyaml==$PYYAML_VERSION"
    if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
        echo "install-test-deps: PyYAML cannot be imported after pip install (python: $(command -v "$PYTHON"))" >&2
        exit 1
    fi
    echo "install-test-deps: installed Python pyyaml==$PYYAML_VERSION"
fi

# testkit/decode_protobuf.py decodes herd's protobuf exposition with protobuf;
# herd-push's OTLP receiver (push/tests/otlp_receiver.py) with opentelemetry-proto,
# which needs protobuf >= 5 and < 8: protobuf first, so pip keeps the pinned one.
pip_pinned protobuf google.protobuf "$PROTOBUF_VERSION"
pip_pinned opentelemetry-proto opentelemetry.proto "$OTLP_PROTO_VERSION"

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

# --- cargo-nextest --------------------------------------------------------------
# The test runner: one process per test, which the tests that fork need (a forking
# process must have a single thread, and libtest runs tests on threads).
NEXTEST_VERSION=0.9.143
if ! cargo nextest --version >/dev/null 2>&1; then
    run_quiet "cargo install cargo-nextest@$NEXTEST_VERSION" \
        cargo install cargo-nextest --locked --version "$NEXTEST_VERSION"
    echo "install-test-deps: installed cargo-nextest $NEXTEST_VERSION"
fi
