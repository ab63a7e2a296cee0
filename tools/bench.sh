#!/usr/bin/env bash
# bench.sh — `make bench`: dsc against its peers, one table.
#
# For three workloads of models/seed_encoder.lua — the seed's batch
# (seq 16 x batch 20), a single token, one long sequence (seq 256) — runs
# dsc bench (JIT and AOT) and the peers of tools/bench_torch.py (PyTorch
# eager, ONNX Runtime where installed) at 1 thread and at one per core, and
# prints one Markdown table: median and p99 ms, GFLOP/s, % of the FMA peak
# dsc measured for that thread count and ISA, and dsc's speedup (row ms /
# dsc JIT ms).  On a CPU with AVX-512, dsc runs a second time with its AVX2
# kernels forced (DSC_ISA=avx2 LIBXSMM_TARGET=hsw: the "dsc jit avx2" rows),
# so one run shows both paths.  The CPU and the ISA head the table.
#
#   tools/bench.sh [build/dsc]
#
# Environment:
#   RUNS=N          timed forwards (dsc and peers) per row (default 200;
#                   one token: TOKEN_RUNS, default 3000, for a p99 of 30 calls)
#   NO_AVX2=1       skip the forced-AVX2 dsc rows
#   PYTHON=P        python for the peers (it finds one with torch itself)
#   TORCH_BLAS=DIR  also run PyTorch with DIR (a libblas.so.3, e.g. OpenBLAS's
#                   /usr/lib/x86_64-linux-gnu/openblas-pthread) preloaded
#   NO_PEERS=1      dsc only
#   GPT2_PYTHON=P   python with torch (and transformers, if installed) for
#                   the decode rows' peer (default: $PYTHON, else python3)
#   NO_DECODE=1     skip the GPT-2 decode rows
#   DECODE_RUNS=N   runs of 64 decode steps per decoder row (default 50)
#   FORMATS="f32 bf16 q8"  the -fweights of the decoder rows (default all)
# Raw JSON lines go to build/bench/results.jsonl.
#
# Then decode rows for models/gpt2.lua at 1 thread: a small configuration
# (d_model 256, 4 layers, vocab 4096), where per-op overhead dominates, and
# GPT-2-small's shape (random weights), where decoding is bound by memory
# bandwidth: dsc bench's tokens/s against transformers' generate (or the
# plain-PyTorch GPT-2 of tools/export_gpt2.py), and against the bound
# (weight bytes read per token / measured read bandwidth, bench.c); each with the
# linear weights in f32, bf16 and q8 (-fweights), the reduced ones with
# their logits' distance from the f32 build's.
set -u

DSC=${1:-build/dsc}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
RUNS=${RUNS:-200}
TOKEN_RUNS=${TOKEN_RUNS:-3000}
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

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
# dsc's ISAs to run: the native one, and AVX2 forced where AVX-512 exists.
ISAS="native"
if [ -z "${NO_AVX2:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    ISAS="native avx2"
fi

failed=0
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
echo "bench.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $ALL cores, model $MODEL" >&2
while IFS='|' read -r name defs; do
    runs=$RUNS
    [ "$name" = "one token" ] && runs=$TOKEN_RUNS
    for t in $THREADS; do
        for isa in $ISAS; do
            for mode in jit aot; do
                flag=""; [ $mode = aot ] && flag=--aot
                set -- env
                [ "$isa" = avx2 ] && set -- env DSC_ISA=avx2 LIBXSMM_TARGET=hsw
                # shellcheck disable=SC2086
                line=$("$@" "$DSC" bench $MODEL $defs --runs $runs --threads $t $flag) \
                    || { echo "bench.sh: dsc bench $defs $flag ($isa) failed" >&2; failed=1; continue; }
                [ "$isa" = avx2 ] && line=$(echo "$line" | sed 's/"mode":"\(jit\|aot\)"/"mode":"\1 avx2"/')
                echo "$name|$line" >>"$RESULTS"
                echo "  $name, dsc $mode ($(echo "$line" | field isa)), $t thread(s): $(echo "$line" | field median_ms) ms, p99 $(echo "$line" | field p99_ms)" >&2
            done
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
                --threads "$t" --runs "$runs" ${gflop:+--gflop $gflop} \
                --engines $engines >"$OUT/peer.out" 2>"$OUT/peer.err" \
                || { echo "bench.sh: bench_torch.py $defs failed:" >&2;
                     cat "$OUT/peer.err" >&2; failed=1; continue; }
            grep -v "^bench_torch.py: note" "$OUT/peer.err" >&2
            sort -u "$OUT/peer.err" | grep "^bench_torch.py: note" >>"$OUT/notes"
            while read -r line; do
                [ -n "$line" ] || continue
                echo "$name|$line" >>"$RESULTS"
                echo "  $name, $(echo "$line" | field mode), $t thread(s): $(echo "$line" | field median_ms) ms, p99 $(echo "$line" | field p99_ms)" >&2
            done <"$OUT/peer.out"
        done
    done
done <<<"$WORKLOADS"

# The table: peers against dsc JIT (native ISA) at the same thread count;
# % of the highest FMA peak dsc bench measured for that thread count and
# ISA (the one least disturbed by whatever else the machine was doing);
# peers against the native ISA's peak.
peak_of() {  # threads, isa
    grep -E '"mode":"(jit|aot)( avx2)?"' "$RESULTS" | grep "\"threads\":$1," |
        grep "\"isa\":\"$2\"" | field peak_gflops | sort -n | tail -1
}
NATIVE_ISA=$(grep '"mode":"jit"' "$RESULTS" | head -1 | field isa)
NATIVE_LAYOUT=$(grep '"mode":"jit"' "$RESULTS" | head -1 | field layout)
echo
echo "CPU: ${CPU:-unknown}, $ALL cores. dsc kernels: $NATIVE_ISA (weights $NATIVE_LAYOUT)$(
    [ "$ISAS" != native ] && echo "; the \"avx2\" rows force AVX2 (DSC_ISA=avx2 LIBXSMM_TARGET=hsw, weights panel32)")."
echo
echo "| workload | engine | ISA | threads | median ms | p99 ms | GFLOP/s | % FMA peak | dsc JIT speedup |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|"
while IFS='|' read -r name line; do
    mode=$(echo "$line" | field mode)
    t=$(echo "$line" | field threads)
    ms=$(echo "$line" | field median_ms)
    p99=$(echo "$line" | field p99_ms)
    gf=$(echo "$line" | field gflops)
    isa=$(echo "$line" | field isa)
    engine="dsc ${mode% avx2}"
    case $mode in
    torch) engine="PyTorch $(echo "$line" | field torch) eager ($(echo "$line" | field blas) BLAS)" ;;
    onnxruntime) engine="ONNX Runtime $(echo "$line" | field onnxruntime)" ;;
    esac
    [ -n "$isa" ] || isa="-"
    ref=$(grep "^$name|" "$RESULTS" | grep '"mode":"jit"' | grep "\"threads\":$t,")
    jit_ms=$(echo "$ref" | field median_ms)
    peak=$(peak_of "$t" "$([ "$isa" = - ] && echo "$NATIVE_ISA" || echo "$isa")")
    awk -v n="$name" -v e="$engine" -v i="$isa" -v t="$t" -v ms="$ms" \
        -v p99="$p99" -v gf="$gf" -v peak="$peak" -v jit="$jit_ms" \
        -v mode="$mode" 'BEGIN {
        pct = peak > 0 ? sprintf("%.1f", 100 * gf / peak) : "-"
        sp = (mode != "jit" && jit > 0) ? sprintf("%.2fx", ms / jit) : "-"
        q = p99 != "" ? sprintf("%.3f", p99) : "-"
        printf "| %s | %s | %s | %s | %.3f | %s | %.1f | %s | %s |\n", n, e, i, t, ms, q, gf, pct, sp
    }'
done <"$RESULTS"
peaks=""
for t in $THREADS; do
    for isa in $(grep -E '"mode":"jit' "$RESULTS" | field isa | sort -u); do
        peaks="$peaks${peaks:+, }$isa $t thread(s) $(peak_of "$t" "$isa") GFLOP/s"
    done
done
echo
echo "FMA peak measured by dsc bench: $peaks."
echo "Runs per row: $RUNS ($TOKEN_RUNS for one token), after 20 warm-ups; p99 is the nearest-rank 99th percentile."
echo "${CPU:-unknown CPU}, $ALL cores; $(date -u '+%Y-%m-%d'); load average before: $LOAD0."
[ -s "$OUT/notes" ] && sort -u "$OUT/notes" && rm -f "$OUT/notes"
rm -f "$OUT/peer.out" "$OUT/peer.err"

[ -n "${NO_DECODE:-}" ] && exit $failed
# name|dsc defines|bench_gpt2_torch.py arguments
DECODERS="small d256 x4|-D d_model=256 -D layers=4 -D heads=4 -D vocab=4096|--d-model 256 --layers 4 --heads 4 --vocab 4096
GPT-2 small shape|-D d_model=768 -D layers=12 -D heads=12 -D vocab=50257|--d-model 768 --layers 12 --heads 12 --vocab 50257"
GPY=${GPT2_PYTHON:-$PY}
FORMATS=${FORMATS:-f32 bf16 q8}
echo
echo "| decoder (prompt 8, 64 new tokens) | engine | ISA | weights | threads | prefill tok/s | decode tok/s | step p50 ms | step p99 ms | bound tok/s | % of bound | vs f32 | max diff vs f32 | argmax agree | blob MB | RSS MB | dsc speedup |"
echo "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
while IFS='|' read -r name defs args; do
  for isa in $ISAS; do
    set -- env
    [ "$isa" = avx2 ] && set -- env DSC_ISA=avx2 LIBXSMM_TARGET=hsw
    for fmt in $FORMATS; do
      # 50 runs of 64 steps: 3200 single steps for the percentiles.
      # shellcheck disable=SC2086
      line=$("$@" "$DSC" bench models/gpt2.lua $defs -fweights=$fmt --threads 1 \
          --runs "${DECODE_RUNS:-50}" -n 64) \
          || { echo "bench.sh: dsc bench gpt2 $defs -fweights=$fmt ($isa) failed" >&2; failed=1; continue; }
      echo "$name|$line" >>"$RESULTS"
      tok=$(echo "$line" | field decode_tok_s)
      [ "$fmt" = f32 ] && f32_tok=$tok
      [ "$fmt" = f32 ] && [ "$isa" = native ] && dsc_tok=$tok
      awk -v n="$name" -v i="$(echo "$line" | field isa)" -v f="$fmt" \
          -v p="$(echo "$line" | field prefill_tok_s)" -v d="$tok" \
          -v p50="$(echo "$line" | field step_p50_ms)" \
          -v p99="$(echo "$line" | field step_p99_ms)" \
          -v b="$(echo "$line" | field bound_tok_s)" \
          -v pb="$(echo "$line" | field pct_bound)" -v f32="$f32_tok" \
          -v md="$(echo "$line" | field max_abs_diff_vs_f32)" \
          -v ag="$(echo "$line" | field argmax_agree_vs_f32)" \
          -v wb="$(echo "$line" | field weight_bytes)" \
          -v rss="$(echo "$line" | field rss_kb)" 'BEGIN {
          vs = f == "f32" ? "-" : sprintf("%.2fx", d / f32)
          mds = md == "" ? "-" : sprintf("%.3g", md)
          ags = ag == "" ? "-" : sprintf("%.1f%%", 100 * ag)
          printf "| %s | dsc jit | %s | %s | 1 | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | - |\n",
              n, i, f, p, d, p50, p99, b, pb, vs, mds, ags, wb / 1e6, rss / 1024
      }'
    done
  done
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
        printf "| %s | %s | - | f32 | 1 | %s | %s | - | - | - | - | - | - | - | - | - | %.2fx |\n", n, e, p, d, dsc / d
    }'
done <<<"$DECODERS"
echo
echo "Decode bound: weight bytes read per token / the read bandwidth dsc bench measures (one thread streaming a 256 MB buffer); \"weights\" is -fweights, the linear layers' storage; \"vs f32\" the decode tok/s over the f32 row's of the same ISA; max diff and argmax agreement compare the logits with the f32 build's on the same weights and prompt (see dsc bench)."
rm -f "$OUT/peer.err"
tools/bench_train.sh "$DSC" || failed=1  # one training step: see that script
[ -n "${NO_DEEPSEEK:-}" ] || DSC="$DSC" tools/bench_deepseek.sh || failed=1
tools/bench_minilm.sh "$DSC" || failed=1  # sentence embeddings (all-MiniLM-L6-v2)
exit $failed
