#!/usr/bin/env bash
# DeepSeek-V3 decode speed: models/deepseek_v3.lua on a mid-size
# configuration (hidden 1024, 8 layers, 32 routed experts of which 4 active
# per token, MLA with kv_lora_rank 256; tools/export_deepseek_v3.py's
# deepseek_bench preset), random weights, prompt 8, 64 new tokens, 1 thread:
# dsc JIT and AOT against transformers' DeepseekV3ForCausalLM in float32
# and in bfloat16, and against the bandwidth bound of the weight bytes one
# token actually reads (the routed experts counted top_k of each layer's;
# dsc bench measures the read bandwidth on the spot); dsc with float32
# linears, with -fweights=bf16 and with -fweights=q8.  One markdown table
# on stdout, then a note per format and dsc q8 against transformers'
# fastest row.
#
#   DSC=build/dsc          the dsc to time
#   DS_PYTHON=P            python with torch and transformers >= 5 for the
#                          peer (default: /work/venv-ds/bin/python if there,
#                          else python3); the row is skipped without it
#   DS_CONFIG=F.json       another HF config.json instead of the preset
set -uo pipefail
cd "$(dirname "$0")/.."
DSC=${DSC:-build/dsc}
PY=${DS_PYTHON:-}
[ -z "$PY" ] && { [ -x /work/venv-ds/bin/python ] && PY=/work/venv-ds/bin/python || PY=python3; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CFG=${DS_CONFIG:-$OUT/config.json}
if [ -z "${DS_CONFIG:-}" ]; then
    "$PY" -c "import sys, json; sys.path.insert(0, 'tools')
from export_deepseek_v3 import PRESETS, published_config
json.dump(published_config(PRESETS['deepseek_bench']), open('$CFG', 'w'), indent=1)" \
        2>/dev/null || python3 -c "import sys, json; sys.path.insert(0, 'tools')
sys.modules['torch'] = type(sys)('torch'); sys.modules['numpy'] = type(sys)('numpy')
from export_deepseek_v3 import PRESETS, published_config
json.dump(published_config(PRESETS['deepseek_bench']), open('$CFG', 'w'), indent=1)" \
        || { echo "bench_deepseek.sh: cannot write the configuration" >&2; exit 1; }
fi
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
failed=0
ROW="hidden 1024 x8, 32 experts, 4 active"
echo
echo "| DeepSeek-V3 mid-size (prompt 8, 64 new tokens) | engine | linear weights | threads | prefill tok/s | decode tok/s | bound tok/s | % of bound | max diff vs f32 | argmax agree | speedup of dsc jit (same weights) |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
declare -A dsc_tok
# dsc: float32 linears (the routed experts bfloat16, as -D moe_bf16 has it
# by default) JIT and AOT, then every linear in bfloat16 (-fweights=bf16,
# the precision DeepSeek publishes its weights in), then in Q8_0
# (-fweights=q8, the routed experts too).
for run in "jit f32" "aot f32" "jit bf16" "jit q8"; do
    set -- $run
    mode=$1 fmt=$2
    flag=""; [ $mode = aot ] && flag=--aot
    line=$("$DSC" bench models/deepseek_v3.lua --config "$CFG" --threads 1 \
        --runs 3 -n 64 -fweights=$fmt $flag 2>"$OUT/err") \
        || { echo "bench_deepseek.sh: dsc bench ($mode, $fmt) failed: $(tail -1 "$OUT/err")" >&2; failed=1; continue; }
    tok=$(echo "$line" | field decode_tok_s)
    [ $mode = jit ] && dsc_tok[$fmt]=$tok
    md=$(echo "$line" | field max_abs_diff_vs_f32)
    ag=$(echo "$line" | field argmax_agree_vs_f32)
    printf '| %s | dsc %s | %s | 1 | %s | %s | %s | %s | %s | %s | - |\n' "$ROW" \
        $mode "$fmt" "$(echo "$line" | field prefill_tok_s)" "$tok" \
        "$(echo "$line" | field bound_tok_s)" "$(echo "$line" | field pct_bound)" \
        "${md:--}" "$(awk -v a="$ag" 'BEGIN { print a == "" ? "-" : sprintf("%.1f%%", 100 * a) }')"
    [ $mode = jit ] && echo "dsc $fmt: weight bytes read per token $(echo "$line" | field weight_bytes_per_token); read bandwidth $(echo "$line" | field read_gbps) GB/s (copy $(echo "$line" | field copy_gbps))" >>"$OUT/notes"
done
# transformers in float32 (its default) and in bfloat16, each against the
# dsc row whose linear weights are stored alike.
best_peer="" best_engine=""
for dtype in float32 bfloat16; do
    fmt=f32; [ $dtype = bfloat16 ] && fmt=bf16
    peer=$("$PY" tools/bench_deepseek_torch.py --config "$CFG" --threads 1 \
        --prompt-len 8 --new-tokens 64 --dtype $dtype 2>"$OUT/err") \
        || { echo "bench_deepseek.sh: note: no transformers peer ($(tail -1 "$OUT/err"))" >&2; continue; }
    awk -v r="$ROW" -v e="$(echo "$peer" | field engine)" -v f="$dtype" \
        -v p="$(echo "$peer" | field prefill_tok_s)" \
        -v d="$(echo "$peer" | field decode_tok_s)" -v dsc="${dsc_tok[$fmt]:-}" 'BEGIN {
        sp = dsc != "" ? sprintf("%.2fx", dsc / d) : "-"
        printf "| %s | %s | %s | 1 | %s | %s | - | - | - | - | %s |\n", r, e, f, p, d, sp
    }'
    d=$(echo "$peer" | field decode_tok_s)
    if [ -z "$best_peer" ] || awk -v a="$d" -v b="$best_peer" 'BEGIN { exit !(a > b) }'; then
        best_peer=$d best_engine="transformers $dtype"
    fi
done
[ -s "$OUT/notes" ] && cat "$OUT/notes"
[ -n "$best_peer" ] && [ -n "${dsc_tok[q8]:-}" ] &&
    awk -v q="${dsc_tok[q8]}" -v p="$best_peer" -v e="$best_engine" 'BEGIN {
        printf "dsc jit q8 vs the fastest transformers row (%s): %.2fx\n", e, q / p }'
exit $failed
