#!/usr/bin/env python3
"""transformers' DeepseekV3ForCausalLM generation speed, for comparing with
dsc.  Builds a random model (float32, transformers' own init, every
correction bias random; --dtype bfloat16 casts it) from an HF
config.json, a random prompt of
--prompt-len tokens, and prints ONE JSON line on stdout:
  {"engine": ..., "threads": T, "prefill_tok_s": P, "decode_tok_s": D}
  prefill_tok_s  prompt_len / median time of one forward over the prompt
  decode_tok_s   (G-1) / median time of G-1 one-token cached steps (greedy,
                 past_key_values), prefill excluded
Needs torch and transformers >= 5 (tools/bench_deepseek.sh says which
python).
"""
import argparse
import json
import statistics
import sys
import tempfile
import time

from peer_threads import pin_threads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"],
                    default="float32",
                    help="the model's parameters and activations (default "
                         "float32)")
    a = ap.parse_args()
    pin_threads(a.threads)
    import torch
    import transformers
    from transformers import AutoConfig, DeepseekV3ForCausalLM
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(a.config)
    m = DeepseekV3ForCausalLM(cfg).eval()
    for mod in m.modules():
        if hasattr(mod, "e_score_correction_bias"):
            mod.e_score_correction_bias.normal_(0, 0.1)
    m = m.to(getattr(torch, a.dtype))
    ids = torch.randint(0, cfg.vocab_size, (1, a.prompt_len))

    def prefill():
        return m(ids, use_cache=True)

    def decode():
        out = prefill()
        cache, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(a.new_tokens - 1):
            out = m(tok, past_key_values=cache, use_cache=True)
            cache, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        return time.perf_counter() - t0

    prefill()
    pre, dec = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        prefill()
        pre.append(time.perf_counter() - t0)
        dec.append(decode())
    print(json.dumps(separators=(",", ":"), obj={
        "engine": "transformers-%s/torch-%s" % (transformers.__version__,
                                                 torch.__version__),
        "dtype": a.dtype,
        "threads": a.threads,
        "prefill_tok_s": round(a.prompt_len / statistics.median(pre), 2),
        "decode_tok_s": round((a.new_tokens - 1) / statistics.median(dec), 2),
    }))


if __name__ == "__main__":
    sys.exit(main())
