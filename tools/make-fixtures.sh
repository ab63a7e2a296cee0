#!/bin/sh
# Regenerate the committed PyTorch reference fixtures under tests/fixtures/.
# Needs a python3 with torch + numpy (tries $PYTHON, python3, /usr/bin/python3).
# Every fixture is exported with --check: reloaded through export_torch.py's own
# safetensors parser, rerun bit-exactly in torch, and compared against the
# independent numpy float64 reference (tolerance 1e-4).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
exporter="$here/export_torch.py"
fx="$root/tests/fixtures"

py=""
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "make-fixtures.sh: error: no python3 with torch and numpy found" \
         "(tried \$PYTHON, python3, /usr/bin/python3)" >&2
    exit 1
fi
echo "make-fixtures.sh: using $py ($("$py" -c 'import torch; print("torch", torch.__version__)'))"

gen() {  # gen NAME ARGS...
    name=$1; shift
    rm -rf "$fx/$name"
    "$py" "$exporter" "$@" --check --out "$fx/$name"
}

mkdir -p "$fx"
gen seed_encoder_small --model seed_encoder --seed 101 \
    -D vocab=37 -D d_model=32 -D heads=4 -D layers=2 -D d_ff=48 -D seq=5 -D batch=3
gen seed_encoder_odd --model seed_encoder --seed 202 --tokens-dtype int32 \
    -D vocab=29 -D d_model=24 -D heads=3 -D layers=3 -D d_ff=40 -D seq=7 -D batch=2
gen seed_encoder_one --model seed_encoder --seed 303 \
    -D vocab=11 -D d_model=16 -D heads=2 -D layers=1 -D d_ff=8 -D seq=1 -D batch=1
gen seed_attention_small --model seed_attention --seed 404 \
    -D input_dim=24 -D d_k=8 -D d_v=6 -D ff_in=6 -D d_ff=16 -D batch=3 -D seq=5

total=$(cat "$fx"/seed_encoder_small/* "$fx"/seed_encoder_odd/* \
            "$fx"/seed_encoder_one/* "$fx"/seed_attention_small/* | wc -c | tr -d ' ')
echo "make-fixtures.sh: fixtures total $total bytes"
if [ "$total" -gt 300000 ]; then
    echo "make-fixtures.sh: error: fixtures exceed 300 KB" >&2
    exit 1
fi

# --- GPT-2 text-generation fixtures (tools/export_gpt2.py) -----------------
# Prefers a python with Hugging Face transformers ($GPT2_PYTHON, then
# /opt/gpt2venv/bin/python); otherwise export_gpt2.py's plain-PyTorch GPT-2
# (bit-exact with transformers 4.40.2) with $py.  Each fixture must stay < 150 KB.
gpt2py=$py
for cand in ${GPT2_PYTHON:-} /opt/gpt2venv/bin/python; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import torch, numpy, transformers' >/dev/null 2>&1; then
        gpt2py=$cand
        break
    fi
done
gen_gpt2() {  # gen_gpt2 NAME ARGS...
    name=$1; shift
    rm -rf "$fx/$name"
    "$gpt2py" "$here/export_gpt2.py" "$@" --check --out "$fx/$name"
    sz=$(cat "$fx/$name"/* | wc -c | tr -d ' ')
    echo "make-fixtures.sh: $name $sz bytes"
    if [ "$sz" -ge 153600 ]; then
        echo "make-fixtures.sh: error: $name exceeds 150 KB" >&2
        exit 1
    fi
}
gen_gpt2 gpt2_small --seed 8 --prompt-len 5 --new-tokens 34 \
    -D vocab=83 -D ctx=40 -D d_model=32 -D heads=4 -D layers=2 -D eps=1e-5
gen_gpt2 gpt2_wide --seed 18 --prompt-len 7 --new-tokens 32 \
    -D vocab=67 -D ctx=40 -D d_model=30 -D heads=3 -D layers=2 -D eps=1e-5

# dsc train against the seed's training loop (tools/export_train.py):
# initial weights, tokens, every epoch's loss and the trained weights.
gen_train() {  # gen_train NAME ARGS...
    name=$1; shift
    rm -rf "$fx/$name"
    "$py" "$here/export_train.py" "$@" --out "$fx/$name" >/dev/null
    sz=$(cat "$fx/$name"/* | wc -c | tr -d ' ')
    echo "make-fixtures.sh: $name $sz bytes"
    if [ "$sz" -ge 153600 ]; then
        echo "make-fixtures.sh: error: $name exceeds 150 KB" >&2
        exit 1
    fi
}
gen_train train_small --seed 1 -D vocab=40 -D d_model=16 -D heads=4 \
    -D d_ff=32 -D seq=6 -D batch=5
gen_train train_odd --seed 2 --epochs 6 --lr 0.003 -D vocab=37 -D d_model=12 \
    -D heads=2 -D layers=3 -D d_ff=20 -D seq=7 -D batch=3
gen_train train_decay --seed 3 --epochs 5 --lr 0.01 --weight-decay 0.1 \
    -D vocab=20 -D d_model=8 -D heads=2 -D layers=1 -D d_ff=16 -D seq=4 -D batch=3

# --- DeepSeek-V3 fixtures (tools/export_deepseek_v3.py) ----------------------
# Need torch and transformers >= 5 ($DS_PYTHON, then /work/venv-ds/bin/python);
# skipped (kept as committed) without them.  Each must stay < 300 KB.
dspy=""
for cand in ${DS_PYTHON:-} /work/venv-ds/bin/python; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import torch, transformers; from transformers import DeepseekV3ForCausalLM' \
           >/dev/null 2>&1; then
        dspy=$cand
        break
    fi
done
if [ -z "$dspy" ]; then
    echo "make-fixtures.sh: note: no python with transformers >= 5; DeepSeek fixtures kept" >&2
else
    gen_ds() {  # gen_ds NAME ARGS...
        name=$1; shift
        rm -rf "$fx/$name"
        "$dspy" "$here/export_deepseek_v3.py" --preset "$name" --out "$fx/$name" "$@"
        sz=$(cat "$fx/$name"/* | wc -c | tr -d ' ')
        echo "make-fixtures.sh: $name $sz bytes"
        if [ "$sz" -ge 307200 ]; then
            echo "make-fixtures.sh: error: $name exceeds 300 KB" >&2
            exit 1
        fi
    }
    gen_ds deepseek_yarn --seed 0
    gen_ds deepseek_plain --seed 1 --shards 2
    "$dspy" "$here/export_deepseek_v3.py" --router-ties "$fx/deepseek_router/ties"
fi

# A random small BERT and its sentence embeddings (models/minilm.lua); needs
# transformers: BERT_PYTHON (default: $gpt2py).
bertpy=${BERT_PYTHON:-$gpt2py}
rm -rf "$fx/bert_small"
"$bertpy" "$here/export_bert.py" --out "$fx/bert_small" --seed 3
chmod 644 "$fx/bert_small"/*
