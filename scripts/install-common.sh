# Helpers shared by the install-*-deps.sh scripts; sourced, not run.
# The sourcing script sets `installer` (its name, for messages) first.
# Provides: log_file (removed on exit), run_quiet, as_root, can_be_root and
# apt_install (installs the Debian packages named in the array apt_missing).

log_file="$(mktemp "${TMPDIR:-/tmp}/herd-${installer}.XXXXXX")"
trap 'rm -f "$log_file"' EXIT

# run_quiet DESCRIPTION CMD...: runs CMD with its output captured; on
# failure prints the output and exits.
run_quiet() {
    local what="$1"
    shift
    if ! "$@" >"$log_file" 2>&1; then
        echo "$installer: FAILED: $what" >&2
        echo "$installer: command: $*" >&2
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

# Installs the packages in apt_missing, if any; exits with instructions when
# it cannot become root.
apt_install() {
    if [ "${#apt_missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! can_be_root; then
        echo "$installer: missing Debian packages: ${apt_missing[*]}" >&2
        echo "$installer: run this script as root (or with passwordless sudo)," >&2
        echo "$installer: or run: sudo apt-get install -y --no-install-recommends ${apt_missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run_quiet "apt-get update" as_root apt-get update -qq
    run_quiet "apt-get install ${apt_missing[*]}" \
        as_root apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
    for pkg in "${apt_missing[@]}"; do
        echo "$installer: installed Debian package $pkg"
    done
    hash -r
}
