#!/usr/bin/env bash
# Coverage-guided fuzzing of herd: cargo-fuzz (libFuzzer) on the stable toolchain,
# without a sanitizer (fuzz/README.md says why).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of mmap_reader negotiate encode_text) for SECONDS
# (default 600), one after the other, and prints per target the executions count and
# whether anything was found. A crash, timeout or out-of-memory input is moved to
# fuzz/regressions/<target>/ (commit it: the normal tests replay that folder) and the
# script exits non-zero.
#
# Installs cargo-fuzz if missing (idempotent, quiet: its output only on failure).
# Each target starts from its committed seeds (fuzz/corpus/<target>/) and from what
# earlier runs on this machine found (fuzz/work/<target>/, not committed).
# Overrides: HERD_FUZZ_STRICT=1 (mmap_reader also checks its output strictly, see
# fuzz/README.md); HERD_FUZZ_KEEP_GOING=1 (libFuzzer's fork mode: a crash is saved
# and fuzzing goes on, to look past a known problem for others; still exits non-zero).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

CARGO_FUZZ_VERSION="0.13.2"
ALL_TARGETS=(mmap_reader negotiate encode_text statsd_line)

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
fi
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=("${ALL_TARGETS[@]}")
fi
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "fuzz: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

log_dir="$(mktemp -d "${TMPDIR:-/tmp}/herd-fuzz.XXXXXX")"
trap 'rm -rf "$log_dir"' EXIT

# run_quiet DESCRIPTION LOG CMD...: runs CMD with its output in LOG; on failure prints
# the output and exits.
run_quiet() {
    local what="$1" log="$2"
    shift 2
    if ! "$@" >"$log" 2>&1; then
        echo "fuzz: FAILED: $what" >&2
        echo "fuzz: command: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

# --- cargo-fuzz -----------------------------------------------------------------
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    run_quiet "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION" "$log_dir/install.log" \
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
    echo "fuzz: installed cargo-fuzz $CARGO_FUZZ_VERSION"
fi

# --- build ----------------------------------------------------------------------
# `-s none`: the sanitizers need `-Zsanitizer`, a nightly-only flag; everything else
# cargo-fuzz passes (sancov instrumentation, `--cfg fuzzing`, debug assertions) is
# stable. Safe Rust gives the memory safety a sanitizer would check.
run_quiet "cargo fuzz build" "$log_dir/build.log" cargo fuzz build -s none

# --- run ------------------------------------------------------------------------
found=0
for t in "${targets[@]}"; do
    work="fuzz/work/$t"
    artifacts="fuzz/artifacts/$t"
    regressions="fuzz/regressions/$t"
    mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/")
    if [ "${HERD_FUZZ_KEEP_GOING:-0}" = "1" ]; then
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    if [ -f "fuzz/dict/$t.dict" ]; then
        args+=(-dict="fuzz/dict/$t.dict")
    fi
    log="$log_dir/$t.log"
    status=0
    cargo fuzz run -s none "$t" "$work" "fuzz/corpus/$t" -- "${args[@]}" >"$log" 2>&1 || status=$?
    execs=""
    if [ "${HERD_FUZZ_KEEP_GOING:-0}" != "1" ]; then
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    fi
    if [ -z "$execs" ]; then
        # Not printed when a run ends in a crash, nor as a total in fork mode: take the
        # last status line's count, which is the total.
        execs="$(grep -aoE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')"
    fi
    crashes=()
    while IFS= read -r -d '' f; do
        crashes+=("$f")
    done < <(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) -print0)
    if [ "${#crashes[@]}" -eq 0 ] && [ "$status" -eq 0 ]; then
        echo "fuzz: $t: ${execs:-?} executions in ${seconds}s, nothing found"
        continue
    fi
    found=1
    mkdir -p "$regressions"
    for f in "${crashes[@]}"; do
        mv "$f" "$regressions/"
    done
    echo "fuzz: $t: FOUND a problem after ${execs:-?} executions (exit $status)" >&2
    for f in "${crashes[@]}"; do
        echo "fuzz: $t: input saved as $regressions/$(basename "$f") (commit it: the tests replay it)" >&2
    done
    echo "fuzz: $t: reproduce: cargo fuzz run -s none $t $regressions/<input>" >&2
    # The first panic (with its message) and libFuzzer's own verdicts, not the whole log.
    grep -a -m 1 -A 4 'panicked at' "$log" | cut -c 1-300 >&2 || true
    grep -a -E '^==[0-9]+== ERROR: libFuzzer|^SUMMARY: libFuzzer' "$log" | sort | uniq -c | head -n 5 >&2 || true
done

if [ "$found" -ne 0 ]; then
    echo "fuzz: FAILED: see the inputs above" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s), ${seconds}s each, nothing found"
