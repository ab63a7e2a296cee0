#!/usr/bin/env python3
"""PyTorch / transformers GPT-2 generation speed, for comparing with dsc.

Builds a random GPT2LMHeadModel of the given shape (transformers when it is
importable, else export_gpt2.py's plain-PyTorch GPT-2), a random prompt of
--prompt-len tokens, and prints ONE JSON line on stdout:

  {"engine": ..., "threads": T, "prefill_tok_s": P, "decode_tok_s": D, ...}

  prefill_tok_s  prompt_len / (median wall time of one forward over the
                 prompt with use_cache=True)
  decode_tok_s   (G-1) / (median T(generate G) - median T(generate 1)), where
                 T(generate k) is the wall time of
                 model.generate(ids, do_sample=False, max_new_tokens=k,
                 min_new_tokens=k, use_cache=True); i.e. tokens per second of
                 the one-token KV-cache steps, prefill excluded
  generate_tok_s G / median T(generate G) (prefill included)

Defaults: GPT-2-small shape (vocab 50257, ctx 1024, d_model 768, 12 heads,
12 layers), prompt 8, 64 new tokens, 1 thread.  Diagnostics go to stderr.
Run with a python that has torch (e.g. /opt/gpt2venv/bin/python for
transformers, or /usr/bin/python3).
"""

import argparse
import json
import os
import statistics
import sys
import time

from peer_threads import pin_threads


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench_gpt2_torch.py", description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (median; default 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=["auto", "transformers", "fallback"], default="auto")
    a = ap.parse_args(argv)
    if a.new_tokens < 2:
        ap.error("--new-tokens must be >= 2")
    if a.prompt_len + a.new_tokens > a.ctx:
        ap.error("prompt-len + new-tokens exceeds ctx")
    if a.d_model % a.heads:
        ap.error("d-model must be divisible by heads")

    pin_threads(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(a.seed)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import export_gpt2 as E

    cfg = {"vocab": a.vocab, "ctx": a.ctx, "d_model": a.d_model, "heads": a.heads,
           "layers": a.layers, "eps": "1e-5"}
    use_hf = a.engine != "fallback" and E.have_transformers()
    if a.engine == "transformers" and not use_hf:
        sys.stderr.write("bench_gpt2_torch.py: error: cannot import transformers\n")
        return 1
    ids = torch.randint(0, a.vocab, (1, a.prompt_len), dtype=torch.long)
    G = a.new_tokens

    if use_hf:
        m = E.build_hf(cfg).eval()          # transformers' own random init
        engine = "transformers-%s/torch-%s" % (E.hf_version(), torch.__version__)
        mask = torch.ones_like(ids)

        def prefill():
            m(ids, use_cache=True)

        def gen(k):
            out = m.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=k,
                             min_new_tokens=k, use_cache=True)
            assert out.shape[1] == a.prompt_len + k
    else:
        tensors, _ = E.make_weights(cfg, a.seed, 0.02)
        m = E.load_into(E.build_fallback(cfg), tensors)
        engine = "torch-fallback/torch-%s" % torch.__version__

        def prefill():
            m(ids)

        def gen(k):
            lg, past = m(ids)
            for j in range(k):
                t = torch.argmax(lg[:, -1, :], dim=-1, keepdim=True)
                if j + 1 < k:
                    lg, past = m(t, past)

    def timed(fn, *args):
        for _ in range(a.warmup):
            fn(*args)
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn(*args)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    t_pre = timed(prefill)
    t_g1 = timed(gen, 1)
    t_gG = timed(gen, G)
    nparams = sum(p.numel() for p in m.parameters())
    res = {"engine": engine, "threads": a.threads,
           "prefill_tok_s": round(a.prompt_len / t_pre, 2),
           "decode_tok_s": round((G - 1) / max(t_gG - t_g1, 1e-9), 2),
           "generate_tok_s": round(G / t_gG, 2),
           "vocab": a.vocab, "ctx": a.ctx, "d_model": a.d_model, "heads": a.heads,
           "layers": a.layers, "params": nparams,
           "prompt_len": a.prompt_len, "new_tokens": G, "reps": a.reps}
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
