#!/usr/bin/env bash
# Requests per second through `prefork-demo --workers 2` (a herd-prefork master and
# two worker processes of 2 tokio threads each) against the very same axum app,
# storage and middleware served by one process with a 2-thread runtime
# (`prefork-demo --single-process true`), on this machine, in one run. wrk drives
# `GET /hello` (a counted route) over keep-alive connections. The two are measured
# in alternating rounds so that drift on a shared machine hits both alike; the
# medians and their ratio (issue 17's target: >= 0.90) are printed last.
#
#   bash benches/prefork-rps.sh                # 5 rounds of 10 s each, 64 connections
#   ROUNDS=3 DURATION=5 CONNECTIONS=32 bash benches/prefork-rps.sh
#
# Installs Debian's wrk if it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
WRK_THREADS="${WRK_THREADS:-2}"

installer=prefork-rps
# shellcheck source=scripts/install-common.sh
source scripts/install-common.sh
apt_missing=()
command -v wrk >/dev/null 2>&1 || apt_missing+=(wrk)
command -v curl >/dev/null 2>&1 || apt_missing+=(curl)
apt_install

cargo build --quiet --release -p herd-examples --bin prefork-demo
demo=target/release/prefork-demo
work="$(mktemp -d "${TMPDIR:-/tmp}/herd-prefork-rps.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# start_server ARGS...: starts the demo on a free port; sets server_pid and addr.
start_server() {
    "$demo" --listen 127.0.0.1:0 --dir "$work/metrics" "$@" >"$work/out" 2>&1 &
    server_pid=$!
    addr=""
    for _ in $(seq 1 200); do
        addr="$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/out" | head -n1)"
        if [ -n "$addr" ] && curl -fsS "http://$addr/hello" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "prefork-rps: the server did not start:" >&2
    cat "$work/out" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

# measure: one wrk run against $addr; prints requests/s.
measure() {
    # A short warm-up, so each round measures steady state.
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d1s "http://$addr/hello" >/dev/null
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://$addr/hello" \
        | awk '/^Requests\/sec:/ { print $2 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

prefork=()
single=()
for round in $(seq 1 "$ROUNDS"); do
    start_server --workers 2
    prefork+=("$(measure)")
    stop_server
    start_server --single-process true
    single+=("$(measure)")
    stop_server
    echo "round $round: prefork ${prefork[-1]} req/s, single process ${single[-1]} req/s" >&2
done

p="$(printf '%s\n' "${prefork[@]}" | median)"
s="$(printf '%s\n' "${single[@]}" | median)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "cpu: $cpu ($(nproc) cpus); wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s GET /hello, $ROUNDS rounds"
echo "prefork-demo --workers 2: median $p req/s (${prefork[*]})"
echo "one process, 2 threads:   median $s req/s (${single[*]})"
awk -v p="$p" -v s="$s" 'BEGIN { printf "ratio prefork/single: %.3f (target >= 0.90)\n", p / s }'
