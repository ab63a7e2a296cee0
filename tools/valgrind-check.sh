#!/bin/sh
# valgrind-check.sh — dsc compile, run (JIT) and train of the seed model under
# valgrind's memcheck: any invalid access, use of uninitialized memory, or
# definite/indirect leak makes this exit non-zero.
#
#   tools/valgrind-check.sh [DSC]        (default build/dsc; builds it if absent)
#
# Installs valgrind when it is missing (as root or through sudo).  The JIT
# run uses one kernel thread and seeded random weights; tools/valgrind.supp
# holds the suppressions, each for third-party code and explained there.
set -eu
cd "$(dirname "$0")/.."
dsc=${1:-build/dsc}
[ -x "$dsc" ] || make --no-print-directory "$dsc"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind-check: installing valgrind" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        --no-install-recommends valgrind
fi

tmp=$(mktemp -d /tmp/dsc-valgrind-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

status=0
check() {
    echo "== valgrind $*"
    if ! valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=3 \
        --suppressions=tools/valgrind.supp --log-file="$tmp/log" "$@" \
        >"$tmp/out" 2>&1; then
        cat "$tmp/out" "$tmp/log" >&2
        echo "valgrind-check: FAILED: $*" >&2
        status=1
    elif [ -s "$tmp/log" ]; then
        cat "$tmp/log" >&2
    fi
}

check "$dsc" compile models/seed_encoder.lua -o "$tmp/gen/seed_encoder.c"
check "$dsc" run models/seed_encoder.lua -D layers=1
check "$dsc" train models/seed_encoder.lua -D layers=1 -D vocab=50 \
    -D d_model=32 -D d_ff=64 --epochs 2 --threads 1
exit $status
