#!/usr/bin/env bash
# format_accuracy.sh — what -fweights=bf16 and q8 cost in accuracy on the
# seed model at full size (d_model 256, d_ff 2048, 2 layers, vocab 1000,
# the seed's 16 x 20 batch), over several weight draws: for each seed,
# tools/export_torch.py makes PyTorch weights perturbed away from their
# init (as a trained model's are) and the batch, and `dsc run --compare-f32`
# prints the logits' max |diff| from the float32 build and the rows whose
# argmax agrees.  One Markdown table on stdout.
#
#   tools/format_accuracy.sh [build/dsc]
# Environment: PYTHON (with torch and numpy), SEEDS (default "1 2 3 4 5 6 7
# 8 9 505").
set -euo pipefail
DSC=${1:-build/dsc}
cd "$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-python3}
SEEDS=${SEEDS:-1 2 3 4 5 6 7 8 9 505}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "| weights seed | bf16 max diff | bf16 argmax agree | q8 max diff | q8 argmax agree |"
echo "|--:|--:|--:|--:|--:|"
for s in $SEEDS; do
    "$PY" tools/export_torch.py --model seed_encoder --seed "$s" --out "$TMP/w" >/dev/null
    row="| $s"
    for f in bf16 q8; do
        line=$("$DSC" run models/seed_encoder.lua --weights "$TMP/w/weights.safetensors" \
            --input tokens="$TMP/w/tokens.npy" -fweights=$f --compare-f32 2>&1 >/dev/null |
            grep "vs f32")
        diff=$(echo "$line" | sed -n 's/.*max |diff| \([^ ]*\).*/\1/p')
        agree=$(echo "$line" | sed -n 's/.*agrees on \([0-9]*\) of \([0-9]*\) rows (\([^)]*\)).*/\1\/\2 (\3)/p')
        row="$row | $(printf '%.4f' "$diff") | $agree"
    done
    echo "$row |"
done
