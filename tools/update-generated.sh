#!/bin/sh
# Regenerate generated/ from models/: the C that `dsc compile` emits for
# each model that compiles with its defaults.  The tests fail when a file
# here is out of date.  usage: tools/update-generated.sh [path/to/dsc]
set -eu
dsc=${1:-build/dsc}
cd "$(dirname "$0")/.."
for model in models/*.lua; do
    name=$(basename "$model" .lua)
    # A fixed target, so generated/ is the same on every machine.
    if "$dsc" compile "$model" --target avx2 -o "generated/$name.c" 2>/tmp/dsc-gen-$$.log; then
        :
    else
        echo "update-generated: $model does not compile with its defaults; skipped:" >&2
        sed 's/^/  /' /tmp/dsc-gen-$$.log >&2
        rm -f "generated/$name.c" "generated/$name.h"
    fi
    rm -f /tmp/dsc-gen-$$.log
done
