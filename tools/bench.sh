#!/usr/bin/env bash
# bench.sh — `make bench`: dsc against its peers, one table.
#
# For three workloads of models/seed_encoder.lua — the seed's batch
# (seq 16 x batch 20), a single token, one long sequence (seq 256) — runs
# dsc bench (JIT and AOT) and the peers of tools/bench_torch.py (PyTorch
# eager, ONNX Runtime where installed) at 1 thread and at one per core, and
# prints one Markdown table: median ms, GFLOP/s, % of the FMA peak dsc
# measured for that thread count, and dsc's speedup (peer ms / dsc JIT ms).
#
#   tools/bench.sh [build/dsc]
#
# Environment:
#   RUNS=N          timed forwards for dsc (default 20; x10 for one token)
#   PEER_RUNS=N     timed forwards for the peers (default 10)
#   PYTHON=P        python for the peers (it finds one with torch itself)
#   TORCH_BLAS=DIR  also run PyTorch with DIR (a libblas.so.3, e.g. OpenBLAS's
#                   /usr/lib/x86_64-linux-gnu/openblas-pthread) preloaded
#   NO_PEERS=1      dsc only
#   GPT2_PYTHON=P   python with torch (and transformers, if installed) for
#                   the decode rows' peer (default: $PYTHON, else python3)
#   NO_DECODE=1     skip the GPT-2 decode rows
# Raw JSON lines go to build/bench/results.jsonl.
#
# Then decode rows for models/gpt2.lua at 1 thread: a small configuration
# (d_model 256, 4 layers, vocab 4096), where per-op overhead dominates, and
# GPT-2-small's shape (random weights), where decoding is bound by memory
# bandwidth: dsc bench's tokens/s against transformers' generate (or the
# plain-PyTorch GPT-2 of tools/export_gpt2.py), and against the bound
# (weight bytes read per token / measured copy bandwidth).
set -u

DSC=${1:-build/dsc}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
RUNS=${RUNS:-20}
PEER_RUNS=${PEER_RUNS:-10}
MODEL=models/seed_encoder.lua
OUT=build/bench
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
rm -f "$OUT/notes"

if [ ! -x "$DSC" ]; then
    echo "bench.sh: error: $DSC not built (run make)" >&2
    exit 1
fi

ALL=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
THREADS="1"
[ "$ALL" -gt 1 ] && THREADS="1 $ALL"

PY=${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
PEERS=1
if [ -n "${NO_PEERS:-}" ]; then
    PEERS=0
elif ! [ -x "$(command -v "$PY" 2>/dev/null)" ]; then
    echo "bench.sh: note: no python ($PY); no peer rows" >&2
    PEERS=0
fi

# name|defines
WORKLOADS="seed batch 16x20|-D seq=16 -D batch=20
one token|-D seq=1 -D batch=1
long seq 256|-D seq=256 -D batch=1"

# The value of "key" in a flat JSON line (numbers and simple strings).
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

failed=0
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
echo "bench.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $ALL cores, model $MODEL" >&2
while IFS='|' read -r name defs; do
    runs=$RUNS
    [ "$name" = "one token" ] && runs=$((RUNS * 10))
    for t in $THREADS; do
        for mode in jit aot; do
            flag=""; [ $mode = aot ] && flag=--aot
            # shellcheck disable=SC2086
            line=$("$DSC" bench $MODEL $defs --runs $runs --threads $t $flag) \
                || { echo "bench.sh: dsc bench $defs $flag failed" >&2; failed=1; continue; }
            echo "$name|$line" >>"$RESULTS"
            echo "  $name, dsc $mode, $t thread(s): $(echo "$line" | field median_ms) ms" >&2
        done
        [ $PEERS = 1 ] || continue
        gflop=$(grep "^$name|" "$RESULTS" | head -1 | field gflop)
        envs="-"
        [ -n "${TORCH_BLAS:-}" ] && envs="- LD_LIBRARY_PATH=$TORCH_BLAS"
        for e in $envs; do
            if [ "$e" = "-" ]; then engines=torch,onnxruntime; set -- env
            else engines=torch; set -- env "$e"; fi
            # shellcheck disable=SC2086
            "$@" "$PY" tools/bench_torch.py --model seed_encoder $defs \
                --threads "$t" --runs "$PEER_RUNS" ${gflop:+--gflop $gflop} \
                --engines $engines >"$OUT/peer.out" 2>"$OUT/peer.err" \
                || { echo "bench.sh: bench_torch.py $defs failed:" >&2;
                     cat "$OUT/peer.err" >&2; failed=1; continue; }
            grep -v "^bench_torch.py: note" "$OUT/peer.err" >&2
            sort -u "$OUT/peer.err" | grep "^bench_torch.py: note" >>"$OUT/notes"
            while read -r line; do
                [ -n "$line" ] || continue
                echo "$name|$line" >>"$RESULTS"
                echo "  $name, $(echo "$line" | field mode), $t thread(s): $(echo "$line" | field median_ms) ms" >&2
            done <"$OUT/peer.out"
        done
    done
done <<<"$WORKLOADS"

# The table: peers against dsc JIT at the same thread count; % of the
# highest FMA peak dsc bench measured for that thread count (the one least
# disturbed by whatever else the machine was doing).
peak_of() {
    grep -E '"mode":"(jit|aot)"' "$RESULTS" | grep "\"threads\":$1," |
        field peak_gflops | sort -n | tail -1
}
echo
echo "| workload | engine | threads | median ms | GFLOP/s | % FMA peak | dsc JIT speedup |"
echo "|---|---|--:|--:|--:|--:|--:|"
while IFS='|' read -r name line; do
    mode=$(echo "$line" | field mode)
    t=$(echo "$line" | field threads)
    ms=$(echo "$line" | field median_ms)
    gf=$(echo "$line" | field gflops)
    engine="dsc $mode"
    case $mode in
    torch) engine="PyTorch $(echo "$line" | field torch) eager ($(echo "$line" | field blas) BLAS)" ;;
    onnxruntime) engine="ONNX Runtime $(echo "$line" | field onnxruntime)" ;;
    esac
    ref=$(grep "^$name|" "$RESULTS" | grep '"mode":"jit"' | grep "\"threads\":$t,")
    jit_ms=$(echo "$ref" | field median_ms)
    peak=$(peak_of "$t")
    awk -v n="$name" -v e="$engine" -v t="$t" -v ms="$ms" -v gf="$gf" \
        -v peak="$peak" -v jit="$jit_ms" -v mode="$mode" 'BEGIN {
        pct = peak > 0 ? sprintf("%.1f", 100 * gf / peak) : "-"
        sp = (mode != "jit" && jit > 0) ? sprintf("%.2fx", ms / jit) : "-"
        printf "| %s | %s | %s | %.3f | %.1f | %s | %s |\n", n, e, t, ms, gf, pct, sp
    }'
done <"$RESULTS"
peaks=""
for t in $THREADS; do
    peaks="$peaks${peaks:+, }$t thread(s) $(peak_of "$t") GFLOP/s"
done
echo
echo "FMA peak measured by dsc bench: $peaks."
echo "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $ALL cores; $(date -u '+%Y-%m-%d'); load average before: $LOAD0."
[ -s "$OUT/notes" ] && sort -u "$OUT/notes" && rm -f "$OUT/notes"
rm -f "$OUT/peer.out" "$OUT/peer.err"

[ -n "${NO_DECODE:-}" ] && exit $failed
# name|dsc defines|bench_gpt2_torch.py arguments
DECODERS="small d256 x4|-D d_model=256 -D layers=4 -D heads=4 -D vocab=4096|--d-model 256 --layers 4 --heads 4 --vocab 4096
GPT-2 small shape|-D d_model=768 -D layers=12 -D heads=12 -D vocab=50257|--d-model 768 --layers 12 --heads 12 --vocab 50257"
GPY=${GPT2_PYTHON:-$PY}
echo
echo "| decoder (prompt 8, 64 new tokens) | engine | threads | prefill tok/s | decode tok/s | bound tok/s | % of bound | dsc speedup |"
echo "|---|---|--:|--:|--:|--:|--:|--:|"
while IFS='|' read -r name defs args; do
    # shellcheck disable=SC2086
    line=$("$DSC" bench models/gpt2.lua $defs --threads 1 --runs 3 -n 64) \
        || { echo "bench.sh: dsc bench gpt2 $defs failed" >&2; failed=1; continue; }
    echo "$name|$line" >>"$RESULTS"
    dsc_tok=$(echo "$line" | field decode_tok_s)
    printf '| %s | dsc jit | 1 | %s | %s | %s | %s | - |\n' "$name" \
        "$(echo "$line" | field prefill_tok_s)" "$dsc_tok" \
        "$(echo "$line" | field bound_tok_s)" "$(echo "$line" | field pct_bound)"
    [ $PEERS = 1 ] || continue
    # shellcheck disable=SC2086
    peer=$("$GPY" tools/bench_gpt2_torch.py $args --threads 1 --prompt-len 8 \
        --new-tokens 64 2>"$OUT/peer.err") \
        || { echo "bench.sh: note: no GPT-2 peer ($(tail -1 "$OUT/peer.err"))" >&2; continue; }
    echo "$name|$peer" >>"$RESULTS"
    peer_tok=$(echo "$peer" | field decode_tok_s)
    awk -v n="$name" -v e="$(echo "$peer" | field engine)" \
        -v p="$(echo "$peer" | field prefill_tok_s)" -v d="$peer_tok" \
        -v dsc="$dsc_tok" 'BEGIN {
        printf "| %s | %s | 1 | %s | %s | - | - | %.2fx |\n", n, e, p, d, dsc / d
    }'
done <<<"$DECODERS"
rm -f "$OUT/peer.err"
tools/bench_train.sh "$DSC" || failed=1  # one training step: see that script
[ -n "${NO_DEEPSEEK:-}" ] || DSC="$DSC" tools/bench_deepseek.sh || failed=1
tools/bench_minilm.sh "$DSC" || failed=1  # sentence embeddings (all-MiniLM-L6-v2)
exit $failed
