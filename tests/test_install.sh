#!/bin/sh
# make install into a staging prefix, then use it as a stranger would: from
# other directories, with only PKG_CONFIG_PATH pointing at it.
#   - examples/embed_runtime.c on `dsc compile` output, linked against
#     dscrt shared and (fully) static, reproduces PyTorch's logits;
#   - examples/jit_model.c on the C API (pkg-config dsc) does too;
#   - examples/run_model.py through the Python package and the installed
#     libdsc.so does too;
#   - the installed dsc runs a model from / (JIT and AOT), has a man page;
#   - make uninstall leaves nothing behind.
# usage: tests/test_install.sh [PYTHON]   (run from the checkout; make test)
set -eu
root=$(pwd)
python=${1:-python3}
stage=$(mktemp -d /tmp/dsc-stage-XXXXXX)
work=$(mktemp -d /tmp/dsc-work-XXXXXX)
trap 'rm -rf "$stage" "$work"' EXIT
fail() { echo "test_install: FAIL: $*" >&2; exit 1; }
fixture=$root/tests/fixtures/seed_encoder_small
config=$(cat "$fixture/config")

# max |a - b| <= 1e-4 between the fixture's logits and a file of floats
# (raw float32, .npy, or text one per line).
close() {
    "$python" - "$fixture/logits.npy" "$1" <<'PY' || fail "$1 differs from PyTorch"
import sys, numpy as np
want = np.load(sys.argv[1]).reshape(-1)
path = sys.argv[2]
got = (np.load(path) if path.endswith(".npy") else
       np.loadtxt(path, dtype=np.float32) if path.endswith(".txt") else
       np.fromfile(path, dtype=np.float32)).reshape(-1)
d = float(np.abs(got - want).max()) if got.size == want.size else float("inf")
print("  max |dsc - torch| = %g" % d)
sys.exit(0 if d <= 1e-4 else 1)
PY
}
"$python" -c "import numpy as n, sys; print(*n.load(sys.argv[1]).reshape(-1))" \
    "$fixture/tokens.npy" > "$work/tokens.txt"

echo "== make install PREFIX=$stage"
make --no-print-directory install PREFIX="$stage" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "make install"; }
for f in bin/dsc lib/libdscrt.a lib/libdscrt.so lib/libdscrt.so.0 lib/libdsc.a \
         lib/libdsc.so lib/libdsc.so.0 include/dsc/dsc_runtime.h include/dsc/dsc.h \
         lib/pkgconfig/dscrt.pc lib/pkgconfig/dsc.pc share/man/man1/dsc.1; do
    [ -e "$stage/$f" ] || fail "make install did not install $f"
done
objdump -p "$stage/lib/libdscrt.so" | grep -q 'SONAME *libdscrt.so.0' ||
    fail "libdscrt.so has no soname libdscrt.so.0"
man -l "$stage/share/man/man1/dsc.1" 2>/dev/null | grep -q "compile MODEL.lua" ||
    grep -q "compile MODEL.lua" "$stage/share/man/man1/dsc.1" || fail "man page"

export PKG_CONFIG_PATH="$stage/lib/pkgconfig"
cd "$work"
echo "== the installed dsc, from /"
(cd / && "$stage/bin/dsc" run "$root/models/seed_encoder.lua" -D layers=1 \
    > "$work/run.log" 2>&1) || { cat "$work/run.log"; fail "dsc run from /"; }
(cd / && "$stage/bin/dsc" run --aot "$root/models/seed_encoder.lua" -D layers=1 \
    > "$work/run.log" 2>&1) || { cat "$work/run.log"; fail "dsc run --aot from /"; }
# shellcheck disable=SC2086
"$stage/bin/dsc" compile "$root/models/seed_encoder.lua" $config \
    --weights "$fixture/weights.safetensors" -o gen/seed_encoder.c 2>/dev/null ||
    fail "dsc compile"

echo "== examples/embed_runtime.c against dscrt, shared"
# shellcheck disable=SC2046
cc -std=c11 -Igen gen/seed_encoder.c "$root/examples/embed_runtime.c" \
    $(pkg-config --cflags --libs dscrt) -o embed_shared || fail "shared link"
ldd ./embed_shared | grep -q "libdscrt.so.0 => $stage/lib/" ||
    fail "embed_shared does not load the staged libdscrt.so"
./embed_shared gen/seed_encoder.bin shared.f32 < tokens.txt > /dev/null ||
    fail "embed_shared"
close shared.f32

echo "== the same, --static"
# shellcheck disable=SC2046
cc -static -std=c11 -Igen gen/seed_encoder.c "$root/examples/embed_runtime.c" \
    $(pkg-config --static --cflags --libs dscrt) -o embed_static \
    2> static.log || { cat static.log; fail "static link"; }
ldd ./embed_static > /dev/null 2>&1 && fail "embed_static is not static"
./embed_static gen/seed_encoder.bin static.f32 < tokens.txt > /dev/null ||
    fail "embed_static"
close static.f32

echo "== examples/jit_model.c against dsc (the C API)"
# shellcheck disable=SC2046
cc -std=c11 "$root/examples/jit_model.c" $(pkg-config --cflags --libs dsc) \
    -o jit_model || fail "C API link"
# shellcheck disable=SC2086
(cd / && "$work/jit_model" "$root/models/seed_encoder.lua" $config \
    --weights "$fixture/weights.safetensors" < "$work/tokens.txt" \
    > "$work/jit.txt" 2>/dev/null) || fail "jit_model"
close jit.txt
# shellcheck disable=SC2086
"$work/jit_model" "$root/models/seed_encoder.lua" $config --aot \
    --weights "$fixture/weights.safetensors" < tokens.txt > aot.txt 2>/dev/null ||
    fail "jit_model --aot"
close aot.txt

echo "== the same, --static (libdsc.a; JIT only: --aot needs a dynamic host)"
# shellcheck disable=SC2046
cc -static -std=c11 "$root/examples/jit_model.c" \
    $(pkg-config --static --cflags --libs dsc) -o jit_static 2> static.log ||
    { cat static.log; fail "C API static link"; }
ldd ./jit_static > /dev/null 2>&1 && fail "jit_static is not static"
# shellcheck disable=SC2086
./jit_static "$root/models/seed_encoder.lua" $config \
    --weights "$fixture/weights.safetensors" < tokens.txt > static.txt \
    2>/dev/null || fail "jit_static"
close static.txt

echo "== examples/run_model.py with the installed libdsc.so"
# shellcheck disable=SC2086
(cd / && PYTHONPATH="$root/python" DSC_LIBRARY="$stage/lib/libdsc.so" \
    "$python" "$root/examples/run_model.py" "$root/models/seed_encoder.lua" \
    $config --weights "$fixture/weights.safetensors" \
    --input tokens="$fixture/tokens.npy" --output logits="$work/py.npy" \
    > /dev/null) || fail "run_model.py"
close py.npy

echo "== make uninstall"
cd "$root"
make --no-print-directory uninstall PREFIX="$stage" > "$work/uninstall.log" 2>&1 ||
    fail "make uninstall"
left=$(find "$stage" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "test_install: ok"
