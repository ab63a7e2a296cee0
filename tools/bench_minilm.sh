#!/bin/sh
# bench_minilm.sh — the sentence-embedding part of `make bench` (called at
# the end of tools/bench.sh): all-MiniLM-L6-v2 through dsc embed against
# sentence-transformers and ONNX Runtime, sentences/s on a fixed 1,000-
# sentence corpus at 1 thread and one per core (tools/bench_minilm.py); on
# an AVX-512 machine also with AVX2 forced on both sides at 1 thread.
# Skipped, with a note, when the model has not been fetched (make minilm)
# or no python has sentence-transformers.
#
#   tools/bench_minilm.sh [build/dsc]
# Environment: MINILM_DIR (default build/minilm/model); MINILM_PYTHON, else
# GPT2_PYTHON, else PYTHON, else /work/venv/bin/python or python3 (needs
# transformers, sentence-transformers, onnxruntime, torch); RUNS (3).
set -u
dsc=${1:-build/dsc}
cd "$(dirname "$0")/.." || exit 1
dir=${MINILM_DIR:-build/minilm/model}
if [ ! -f "$dir/model.safetensors" ]; then
    echo "bench_minilm: note: no all-MiniLM-L6-v2 in $dir (make minilm); skipped" >&2
    exit 0
fi
py=${MINILM_PYTHON:-${GPT2_PYTHON:-${PYTHON:-}}}
if [ -z "$py" ]; then
    py=python3
    [ -x /work/venv/bin/python ] && py=/work/venv/bin/python
fi
peers=""
"$py" -c "import sentence_transformers" 2>/dev/null || {
    echo "bench_minilm: note: $py has no sentence-transformers; dsc only" >&2
    peers=--no-peers
}
echo
# OpenBLAS (PyTorch's BLAS here) follows torch.set_num_threads only when
# it was not told otherwise.
"$py" tools/bench_minilm.py "$dsc" "$dir" --runs "${RUNS:-3}" $peers || exit 1
# On an AVX-512 machine, also AVX2 against AVX2 at 1 thread, as an
# AVX2-only CPU would run it.
if grep -qE '(^|[[:space:]])avx512f([[:space:]]|$)' /proc/cpuinfo 2>/dev/null
then
    echo
    "$py" tools/bench_minilm.py "$dsc" "$dir" --runs "${RUNS:-3}" $peers \
        --avx2 --threads 1 || exit 1
fi
