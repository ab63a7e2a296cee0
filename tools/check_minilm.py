#!/usr/bin/env python3
"""dsc against Hugging Face on the real all-MiniLM-L6-v2, on sentences made
fresh from a seed (so nothing was tuned on them): `dsc tokenize` ids must
equal BertTokenizerFast's, line for line, whole and truncated; `dsc embed`
(JIT and AOT) must have cosine >= 0.99999 to sentence-transformers' encode()
for every sentence and max |diff| <= 2e-4.

  /work/venv/bin/python tools/check_minilm.py build/dsc build/minilm/model \\
      [--seed N] [--sentences N] [--lines N]

Sentences mix vocabulary words, numbers, punctuation runs, accents, CJK,
emoji, other scripts and control characters, from empty to over 256
tokens.  Exit status 0 when everything holds.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

PIECES = [
    "àéîõüçñ ÀÉÎÕÜ", "İı ß ẞ Ǆǅ", "中文句子测试", "日本語とカタカナ", "한국어",
    "😀👍🏽👨‍👩‍👧🇯🇵✨", "!!! ??? ... ---", "“quoted” ‘single’ «x»",
    "don't it's O'Neil", "3.14 1,000 -42 $5 50%", "\t \u00a0 \u3000",
    "\x01\x1b\x7f", "\u200b\u200d\ufeff", "\ufffd\ue000", "e\u0301 a\u0308",
    "ﬁ ＡＢＣ ½ ²", "Ελληνικά Σσς", "Русский Ёё", "مرحبا", "שלום", "नमस्ते",
    "สวัสดี", "Tiếng Việt", "[SEP] [MASK] [cls]", "x" * 120, "∑∫√∞≠",
]


def make_sentences(rng, vocab_words, n):
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.05:
            out.append("")
            continue
        length = rng.choice([1, 3, 8, 15, 25, 40, 80, 200, 400])
        words = []
        for _ in range(length):
            r = rng.random()
            if r < 0.8:
                w = rng.choice(vocab_words)
                words.append(w.capitalize() if rng.random() < 0.1 else w)
            elif r < 0.9:
                words.append(rng.choice(PIECES))
            else:
                words.append(rng.choice([",", ".", "!", "?", ";", ":", "-",
                                         "(", ")", "'", '"']))
        out.append(" ".join(words).replace("\n", " "))
    return out


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit("check_minilm: %s failed:\n%s" % (" ".join(cmd), r.stderr))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsc")
    ap.add_argument("model_dir")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--lines", type=int, default=3000)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tok_json = os.path.join(args.model_dir, "tokenizer.json")
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast(tokenizer_file=tok_json)
    vocab_words = [w for w in tok.get_vocab() if w.isalpha() and
                   not w.startswith("##") and not w.startswith("[")]
    vocab_words.sort()
    ok = True
    tmp = tempfile.mkdtemp()

    # Tokenizer: many lines, whole and truncated to 32.
    lines = make_sentences(rng, vocab_words, args.lines)
    path = os.path.join(tmp, "lines.txt")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    for max_len in (None, 32):
        extra = ["--max-length", str(max_len)] if max_len else []
        got = run([args.dsc, "tokenize", "--tokenizer", tok_json, "--text",
                   path] + extra).stdout.split("\n")[:-1]
        bad = 0
        for i, line in enumerate(lines):
            want = ",".join(map(str, tok(line, truncation=bool(max_len),
                                         max_length=max_len)["input_ids"]))
            if got[i] != want:
                bad += 1
                if bad <= 3:
                    print("tokenize line %d differs: %r\n dsc %s\n hf  %s" %
                          (i + 1, line[:80], got[i][:80], want[:80]))
        print("tokenize%s: %d lines, %d differ" % (
            " --max-length %d" % max_len if max_len else "", len(lines), bad))
        ok &= bad == 0

    # Embeddings.
    sents = make_sentences(rng, vocab_words, args.sentences)
    path = os.path.join(tmp, "sentences.txt")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(sents) + "\n")
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(args.model_dir, device="cpu")
    want = model.encode(sents, batch_size=32, convert_to_numpy=True)
    for mode in ([], ["--aot"]):
        out = os.path.join(tmp, "e.npy")
        r = run([args.dsc, "embed", "models/minilm.lua", "--weights",
                 os.path.join(args.model_dir, "model.safetensors"),
                 "--tokenizer", tok_json, "--text", path, "--output", out]
                + mode)
        got = np.load(out)
        cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) *
                                     np.linalg.norm(want, axis=1))
        diff = float(np.abs(got - want).max())
        print("embed %s: %d sentences, min cosine %.9f, max |diff| %.3g" % (
            "aot" if mode else "jit", len(sents), cos.min(), diff))
        print("  " + r.stderr.strip().split("\n")[-1])
        ok &= bool(cos.min() >= 0.99999) and diff <= 2e-4
    print("check_minilm: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
