#!/usr/bin/env python3
"""Sentences per second for all-MiniLM-L6-v2 on a fixed corpus: dsc embed
(JIT and AOT) against sentence-transformers (PyTorch) and ONNX Runtime (the
same BertModel exported with torch.onnx, tokenized by HF's fast tokenizer,
pooled in numpy), at 1 thread and one per core; one Markdown table.

  PYTHON tools/bench_minilm.py build/dsc build/minilm/model [--sentences N]
      [--runs R] [--threads 1,2] [--no-peers] [--avx2]

The corpus: N sentences (default 1000) made from a fixed seed, of vocabulary
words with lengths drawn from 3 to 120 words (most short, a few long), so
every engine sees the same text; max length 256.  The peers sort by length
and pad batches of 32 (sentence-transformers' encode() does; the ONNX
Runtime loop here does the same); dsc packs ~1024 tokens per forward
without padding.  Each peer runs in a process of its own with
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to the thread count.

Columns: sentences/s over tokenize + forward (the steady state, weights
loaded and code compiled, as a server would run); the tokenizer's share of
that time; for dsc also the end-to-end wall time of the command (reading
the weights and compiling each shape included).  The median of --runs runs.

--avx2: AVX2 on both sides of an AVX-512 machine, as on an AVX2-only CPU:
dsc under DSC_ISA=avx2 LIBXSMM_TARGET=hsw, sentence-transformers' OpenBLAS
under OPENBLAS_CORETYPE=Haswell.  ONNX Runtime picks its kernels from the
CPUID and cannot be held to AVX2, so it is left out.
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

from peer_threads import thread_env


def corpus(model_dir, n, seed=1234):
    vocab = json.load(open(os.path.join(model_dir, "tokenizer.json"),
                           encoding="utf-8"))["model"]["vocab"]
    words = sorted(w for w in vocab if w.isalpha() and w.isascii() and
                   not w.startswith("#") and len(w) > 1)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = min(120, max(3, int(rng.lognormvariate(2.7, 0.6))))
        s = " ".join(rng.choice(words) for _ in range(k))
        out.append(s[0].upper() + s[1:] + ".")
    return out


# The environment that holds each engine to AVX2 (--avx2).
AVX2_DSC = {"DSC_ISA": "avx2", "LIBXSMM_TARGET": "hsw"}
AVX2_OPENBLAS = {"OPENBLAS_CORETYPE": "Haswell"}


def run_dsc(dsc, model_dir, path, threads, aot, env=None):
    cmd = [dsc, "embed", "models/minilm.lua", "--weights",
           os.path.join(model_dir, "model.safetensors"), "--tokenizer",
           os.path.join(model_dir, "tokenizer.json"), "--text", path,
           "--output", path + ".npy", "--threads", str(threads)] + (
               ["--aot"] if aot else [])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit("bench_minilm: %s\n%s" % (" ".join(cmd), r.stderr))
    line = r.stderr.strip().split("\n")[-1]
    f = {k: float(v) for k, v in re.findall(
        r"(tokenize|compile|weights|forward|total) ([0-9.]+) ms", line)}
    return {"tok": f["tokenize"] / 1e3, "fwd": f["forward"] / 1e3,
            "wall": wall, "compile": f["compile"] / 1e3}


def bench_st(model_dir, sents, threads, runs):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(sents[:64], batch_size=32)  # warm up
    res = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.tokenize(sents)
        tok = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.encode(sents, batch_size=32, convert_to_numpy=True)
        res.append({"tok": tok, "fwd": time.perf_counter() - t0 - tok})
    return res, "sentence-transformers %s (torch %s)" % (
        __import__("sentence_transformers").__version__, torch.__version__)


def export_onnx(model_dir, path):
    import torch
    from transformers import BertModel
    model = BertModel.from_pretrained(model_dir).eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), path,
                      input_names=["input_ids", "attention_mask",
                                   "token_type_ids"],
                      output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                    "token_type_ids": axes,
                                    "last_hidden_state": axes},
                      opset_version=14)


def bench_ort(model_dir, sents, threads, runs, onnx_path):
    import numpy as np
    import onnxruntime as ort
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast(tokenizer_file=os.path.join(model_dir,
                                                        "tokenizer.json"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so,
                                providers=["CPUExecutionProvider"])

    def encode(batch_size=32):
        t0 = time.perf_counter()
        enc = tok(sents, truncation=True, max_length=256)["input_ids"]
        tok_s = time.perf_counter() - t0
        order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
        out = np.zeros((len(enc), 384), np.float32)
        for b0 in range(0, len(order), batch_size):
            idx = order[b0:b0 + batch_size]
            seq = max(len(enc[i]) for i in idx)
            ids = np.zeros((len(idx), seq), np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, :len(enc[i])] = enc[i]
                mask[r, :len(enc[i])] = 1
            h = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                                "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out[idx] = e / np.maximum(np.linalg.norm(e, axis=1,
                                                     keepdims=True), 1e-12)
        return tok_s, time.perf_counter() - t0 - tok_s, out

    encode()  # warm up
    res = []
    for _ in range(runs):
        tok_s, fwd, _ = encode()
        res.append({"tok": tok_s, "fwd": fwd})
    return res, "ONNX Runtime %s" % ort.__version__


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def run_peer(kind, model_dir, path, threads, runs, onnx_path, env=None):
    """A peer in a process of its own, its BLAS and OpenMP told the thread
    count (and anything in env) before they load."""
    env = dict(os.environ, **thread_env(threads), **(env or {}))
    r = subprocess.run([sys.executable, __file__, "--peer", kind, model_dir,
                        path, "--threads", str(threads), "--runs", str(runs),
                        "--onnx", onnx_path], env=env, capture_output=True,
                       text=True)
    if r.returncode:
        print("bench_minilm: note: no %s: %s" % (
            kind, (r.stderr.strip().split("\n") or ["?"])[-1]),
            file=sys.stderr)
        return None
    out = json.loads(r.stdout.strip().split("\n")[-1])
    return out["name"], out["runs"]


def peer_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer")
    ap.add_argument("model_dir")
    ap.add_argument("path")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--onnx")
    a = ap.parse_args(argv)
    sents = open(a.path, encoding="utf-8").read().split("\n")[:-1]
    if a.peer == "st":
        rs, name = bench_st(a.model_dir, sents, a.threads, a.runs)
    else:
        if not os.path.exists(a.onnx):
            export_onnx(a.model_dir, a.onnx)
        rs, name = bench_ort(a.model_dir, sents, a.threads, a.runs, a.onnx)
    print(json.dumps({"name": name, "runs": rs}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsc")
    ap.add_argument("model_dir")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,%d" % os.cpu_count())
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--avx2", action="store_true",
                    help="hold dsc and OpenBLAS to AVX2; no ONNX Runtime")
    args = ap.parse_args()
    dsc_env = AVX2_DSC if args.avx2 else None
    peers = [] if args.no_peers else ["st"] if args.avx2 else ["st", "ort"]
    sents = corpus(args.model_dir, args.sentences)
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sents) + "\n")
    threads = sorted(set(int(t) for t in args.threads.split(",")))
    n = len(sents)
    rows = []
    onnx_path = os.path.join(tmp, "minilm.onnx")
    for t in threads:
        # JIT and AOT in turns, so that a slow minute of the machine's
        # falls on both rather than on one.
        jit, aot = [], []
        for _ in range(args.runs):
            jit.append(run_dsc(args.dsc, args.model_dir, path, t, False,
                               dsc_env))
            aot.append(run_dsc(args.dsc, args.model_dir, path, t, True,
                               dsc_env))
        engines = [("dsc jit", jit), ("dsc aot", aot)]
        for kind in peers:
            peer = run_peer(kind, args.model_dir, path, t, args.runs,
                            onnx_path, AVX2_OPENBLAS if args.avx2 else None)
            if peer:
                engines.append(peer)
        dsc_rate = n / (med(engines[0][1], "tok") + med(engines[0][1], "fwd"))
        for name, rs in engines:
            steady = med(rs, "tok") + med(rs, "fwd")
            rate = n / steady
            e2e = ("%.1f" % (n / med(rs, "wall"))) if "wall" in rs[0] else "-"
            rows.append("| %s | %d | %.1f | %.1f%% | %s | %s |" % (
                name, t, rate, 100 * med(rs, "tok") / steady, e2e,
                "-" if name == "dsc jit" else "%.2fx" % (dsc_rate / rate)))
    print("all-MiniLM-L6-v2, %d sentences (%d-%d words), max length 256; "
          "dsc packs ~1024 tokens per forward, the peers pad batches of 32 "
          "sorted by length; median of %d runs%s" % (
              n, min(len(s.split()) for s in sents),
              max(len(s.split()) for s in sents), args.runs,
              "; AVX2 forced: dsc under %s%s" % (
                  " ".join("%s=%s" % kv for kv in AVX2_DSC.items()),
                  ", OpenBLAS under %s" % " ".join(
                      "%s=%s" % kv for kv in AVX2_OPENBLAS.items())
                  if peers else "")
              if args.avx2 else ""))
    print()
    print("| engine | threads | sentences/s | tokenizer share | "
          "end to end sentences/s | dsc jit speedup |")
    print("|---|--:|--:|--:|--:|--:|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer_main(sys.argv[1:])
    else:
        main()
