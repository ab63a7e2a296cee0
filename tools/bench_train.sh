#!/usr/bin/env bash
# bench_train.sh — the training row of `make bench` (tools/bench.sh calls
# it): one training step (forward, backward, Adam) of models/seed_encoder.lua
# on the seed's batch (seq 16 x batch 20, dropout 0.1 as the seed trains),
# dsc JIT and AOT against PyTorch eager (tools/bench_train_torch.py), at
# 1 thread and one per core: median ms, GFLOP/s, peak RSS of each process,
# dsc's speedup and RSS ratio.
#
#   tools/bench_train.sh [build/dsc]
# Environment: RUNS (default 10), PYTHON, TORCH_BLAS, NO_PEERS as bench.sh.
set -u
DSC=${1:-build/dsc}
cd "$(cd "$(dirname "$0")/.." && pwd)" || exit 1
RUNS=${RUNS:-10}
PY=${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
OUT=build/bench
mkdir -p "$OUT"
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
CORES=$(nproc 2>/dev/null || echo 1)
failed=0
echo
echo "| training step, seed batch 16x20 | engine | threads | median ms | GFLOP/s | peak RSS MB | dsc JIT speedup | dsc RSS / this |"
echo "|---|---|--:|--:|--:|--:|--:|--:|"
for t in 1 "$CORES"; do
    dsc_ms=""
    dsc_rss=""
    for mode in jit aot; do
        flag=""
        [ $mode = aot ] && flag=--aot
        line=$("$DSC" bench --train models/seed_encoder.lua --threads "$t" \
               --runs "$RUNS" $flag) \
            || { echo "bench_train.sh: dsc bench --train failed" >&2; failed=1; continue; }
        echo "train|$line" >>"$OUT/results.jsonl"
        ms=$(echo "$line" | field median_ms)
        rss=$(echo "$line" | field peak_rss_kb)
        if [ $mode = jit ]; then dsc_ms=$ms; dsc_rss=$rss; fi
        awk -v m="dsc $mode" -v t="$t" -v ms="$ms" \
            -v gf="$(echo "$line" | field gflops)" -v rss="$rss" \
            -v d="$dsc_ms" -v dr="$dsc_rss" 'BEGIN {
            printf "| seed batch | %s | %s | %.3f | %.1f | %.1f | %s | %s |\n",
                m, t, ms, gf, rss / 1024, m == "dsc jit" ? "-" : sprintf("%.2fx", ms / d),
                m == "dsc jit" ? "-" : sprintf("%.2f", dr / rss)
        }'
    done
    [ "${NO_PEERS:-0}" = 1 ] && continue
    for blas in system ${TORCH_BLAS:+custom}; do
        env=()
        [ $blas = custom ] && env=(LD_LIBRARY_PATH="$TORCH_BLAS")
        peer=$(env "${env[@]}" "$PY" tools/bench_train_torch.py --threads "$t" \
               --runs "$RUNS" 2>"$OUT/peer.err") \
            || { echo "bench_train.sh: note: no PyTorch peer ($(tail -1 "$OUT/peer.err"))" >&2; continue; }
        echo "train|$peer" >>"$OUT/results.jsonl"
        awk -v e="$(echo "$peer" | field engine) ($blas BLAS)" -v t="$t" \
            -v ms="$(echo "$peer" | field median_ms)" \
            -v rss="$(echo "$peer" | field peak_rss_kb)" -v d="$dsc_ms" \
            -v dr="$dsc_rss" -v gf="$(echo "$line" | field gflop)" 'BEGIN {
            printf "| seed batch | %s | %s | %.3f | %.1f | %.1f | %.2fx | %.2f |\n",
                e, t, ms, gf / ms * 1e3, rss / 1024, ms / d, dr / rss
        }'
    done
done
rm -f "$OUT/peer.err"
exit $failed
