#!/usr/bin/env python3
"""GPT-2 reference exporter for dsc's text-generation fixtures.

Builds a random small GPT2LMHeadModel (Hugging Face transformers when it is
importable, otherwise a plain-PyTorch module that follows transformers'
GPT-2 definitions and parameter names exactly), runs greedy generation with
the KV cache and writes:

    DIR/weights.safetensors  float32, state_dict names as transformers uses
                             them and as GPT2LMHeadModel.save_pretrained()
                             writes them: lm_head.weight is NOT in the file
                             (it is tied to transformer.wte.weight and
                             save_pretrained drops tied weights), so
                             logits = ln_f(h) @ transformer.wte.weight^T.
                             __metadata__: format=pt, reference, seed, torch,
                             transformers, init_std, prompt_len, new_tokens.
    DIR/prompt.npy           int64 (n,)       the prompt token ids
    DIR/prefill_logits.npy   float32 (V,)     logits at the last prompt
                             position after the prefill (== decode_logits[0])
    DIR/decode_logits.npy    float32 (G, V)   row j = the logits from which
                             generated token j is chosen: row 0 = prefill
                             logits (prompt fed at once); row j >= 1 = logits
                             after feeding generated token j-1 at position
                             n+j-1 through the KV cache (one token per step)
    DIR/greedy.npy           int64 (G,)       the continuation of
                             model.generate(input_ids, do_sample=False,
                             max_new_tokens=G, use_cache=True);
                             greedy[j] == argmax(decode_logits[j])
    DIR/full_logits.npy      float32 (n+G, V) one full forward (no cache) over
                             prompt + greedy; row i = logits at position i,
                             so full_logits[n-1+j] ~= decode_logits[j]
                             (row n+G-1 predicts the token after the last one)
    DIR/config               "-D vocab=V -D ctx=C -D d_model=D -D heads=H
                              -D layers=L -D eps=E"   (d_ff = 4*d_model,
                              gelu_new, pre-LN, tied lm_head, no dropout)

Weights are drawn by this script from torch's RNG (independent of which
reference runs them): LayerNorm weight 1+0.1*randn, bias 0.1*randn; every
other tensor (embeddings, Conv1D weights [in, out] and biases)
init_std*randn.  The exporter asserts that the continuation is not degenerate
(>= --min-distinct distinct tokens, no token more than --max-run times
in a row) and that the
top-2 logit gap at every step is > --min-gap, so float differences cannot
flip an argmax; pick another --seed if it refuses.

Checking
  --check        after export: reload through this script's own safetensors
                 parser, rerun the reference (bit-exact), compare the manual
                 KV-cache loop, the full forward and an independent numpy
                 float64 reference; when transformers is importable also
                 run the plain-PyTorch fallback against it.
  --verify DIR   numpy-only check of an existing fixture (no torch needed).
  --reference    auto (default: transformers if importable) | transformers |
                 fallback

Exit status: 0 ok, 1 usage/config/runtime/check error.
"""

import argparse
import json
import math
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None


def die(msg):
    sys.stderr.write("export_gpt2.py: error: %s\n" % msg)
    sys.exit(1)


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------

# ordered: this is also the order written to DIR/config
DEFAULTS = [("vocab", 101), ("ctx", 48), ("d_model", 32), ("heads", 4),
            ("layers", 2), ("eps", "1e-5")]
INT_KEYS = ("vocab", "ctx", "d_model", "heads", "layers")


def parse_defines(defs):
    keys = [k for k, _ in DEFAULTS]
    cfg = dict(DEFAULTS)
    for d in defs or []:
        if "=" not in d:
            die("bad -D '%s': expected key=value" % d)
        k, v = d.split("=", 1)
        k, v = k.strip(), v.strip()
        if k not in keys:
            die("unknown -D key '%s' (valid keys: %s)" % (k, ", ".join(keys)))
        if k in INT_KEYS:
            try:
                iv = int(v, 0)
            except ValueError:
                die("-D %s=%s: value must be an integer" % (k, v))
            if iv <= 0:
                die("-D %s=%s: value must be a positive integer" % (k, v))
            cfg[k] = iv
        else:
            try:
                fv = float(v)
            except ValueError:
                die("-D %s=%s: value must be a number" % (k, v))
            if not fv > 0:
                die("-D %s=%s: value must be positive" % (k, v))
            cfg[k] = v
    if cfg["d_model"] % cfg["heads"]:
        die("d_model (%d) must be divisible by heads (%d)" % (cfg["d_model"], cfg["heads"]))
    return cfg


def config_line(cfg):
    return " ".join("-D %s=%s" % (k, cfg[k]) for k, _ in DEFAULTS)


def read_config_file(path):
    with open(path) as f:
        toks = f.read().split()
    defs, i = [], 0
    while i < len(toks):
        if toks[i] == "-D" and i + 1 < len(toks):
            defs.append(toks[i + 1])
            i += 2
        elif toks[i].startswith("-D") and len(toks[i]) > 2:
            defs.append(toks[i][2:])
            i += 1
        else:
            die("%s: unexpected token '%s'" % (path, toks[i]))
    return parse_defines(defs)


def eps_of(cfg):
    return float(cfg["eps"])


# --------------------------------------------------------------------------
# safetensors (own writer / reader, same format as export_torch.py)
# --------------------------------------------------------------------------

# The safetensors reader and writer are the seed exporter's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import read_safetensors, write_safetensors  # noqa: E402



# --------------------------------------------------------------------------
# weights (drawn here, independent of the reference implementation)
# --------------------------------------------------------------------------

def weight_spec(cfg):
    """[(name, shape, kind)] in transformers' state_dict order (no lm_head)."""
    V, C, D, L = cfg["vocab"], cfg["ctx"], cfg["d_model"], cfg["layers"]
    F = 4 * D
    spec = [("transformer.wte.weight", (V, D), "w"),
            ("transformer.wpe.weight", (C, D), "w")]
    for i in range(L):
        p = "transformer.h.%d." % i
        spec += [(p + "ln_1.weight", (D,), "lnw"), (p + "ln_1.bias", (D,), "lnb"),
                 (p + "attn.c_attn.weight", (D, 3 * D), "w"),
                 (p + "attn.c_attn.bias", (3 * D,), "w"),
                 (p + "attn.c_proj.weight", (D, D), "w"),
                 (p + "attn.c_proj.bias", (D,), "w"),
                 (p + "ln_2.weight", (D,), "lnw"), (p + "ln_2.bias", (D,), "lnb"),
                 (p + "mlp.c_fc.weight", (D, F), "w"),
                 (p + "mlp.c_fc.bias", (F,), "w"),
                 (p + "mlp.c_proj.weight", (F, D), "w"),
                 (p + "mlp.c_proj.bias", (D,), "w")]
    spec += [("transformer.ln_f.weight", (D,), "lnw"),
             ("transformer.ln_f.bias", (D,), "lnb")]
    return spec


def make_weights(cfg, seed, init_std):
    """-> (list of (name, float32 array) without lm_head, prompt generator)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, shape, kind in weight_spec(cfg):
        r = torch.randn(shape, generator=g, dtype=torch.float32)
        if kind == "lnw":
            t = 1.0 + 0.1 * r
        elif kind == "lnb":
            t = 0.1 * r
        else:
            t = init_std * r
        out.append((name, t.numpy().astype(np.float32)))
    return out, g


# --------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------

def have_transformers():
    try:
        import transformers  # noqa: F401
        return True
    except Exception:
        return False


def hf_version():
    import transformers
    return transformers.__version__


def build_fallback(cfg):
    """Plain-PyTorch GPT2LMHeadModel following transformers' definitions
    (modeling_gpt2.py eager attention, pytorch_utils.Conv1D,
    activations.NewGELUActivation) with the same parameter names."""
    import torch
    import torch.nn as nn

    D, H, L, C, V = cfg["d_model"], cfg["heads"], cfg["layers"], cfg["ctx"], cfg["vocab"]
    eps = eps_of(cfg)

    class Conv1D(nn.Module):
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.zeros(nx, nf))   # [in, out]
            self.bias = nn.Parameter(torch.zeros(nf))

        def forward(self, x):
            size_out = x.size()[:-1] + (self.nf,)
            x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
            return x.view(size_out)

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("bias", torch.tril(torch.ones((C, C), dtype=torch.bool)).view(1, 1, C, C),
                                 persistent=False)
            self.hd = D // H
            self.c_attn = Conv1D(3 * D, D)
            self.c_proj = Conv1D(D, D)

        def split(self, t):
            return t.view(t.size()[:-1] + (H, self.hd)).permute(0, 2, 1, 3)

        def forward(self, x, past=None):
            q, k, v = self.c_attn(x).split(D, dim=2)
            q, k, v = self.split(q), self.split(k), self.split(v)
            if past is not None:
                k = torch.cat((past[0], k), dim=-2)
                v = torch.cat((past[1], v), dim=-2)
            present = (k, v)
            w = torch.matmul(q, k.transpose(-1, -2))
            w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
            ql, kl = q.size(-2), k.size(-2)
            mask = self.bias[:, :, kl - ql:kl, :kl]
            w = torch.where(mask, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
            w = nn.functional.softmax(w, dim=-1)
            a = torch.matmul(w, v)
            a = a.permute(0, 2, 1, 3).contiguous()
            a = a.view(a.size()[:-2] + (D,))
            return self.c_proj(a), present

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = Conv1D(4 * D, D)
            self.c_proj = Conv1D(D, 4 * D)

        def forward(self, x):
            return self.c_proj(gelu_new(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(D, eps=eps)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(D, eps=eps)
            self.mlp = MLP()

        def forward(self, x, past=None):
            a, present = self.attn(self.ln_1(x), past)
            x = a + x
            x = x + self.mlp(self.ln_2(x))
            return x, present

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, D)
            self.wpe = nn.Embedding(C, D)
            self.h = nn.ModuleList([Block() for _ in range(L)])
            self.ln_f = nn.LayerNorm(D, eps=eps)

    class GPT2LMHeadModelRef(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = Transformer()
            self.lm_head = nn.Linear(D, V, bias=False)
            self.lm_head.weight = self.transformer.wte.weight     # tied

        def forward(self, ids, past=None):
            """ids (B, T) int64 -> (logits (B, T, V), presents)."""
            t = self.transformer
            p0 = 0 if past is None else past[0][0].size(-2)
            pos = torch.arange(p0, p0 + ids.size(-1), dtype=torch.long).unsqueeze(0)
            x = t.wte(ids) + t.wpe(pos)
            presents = []
            for i, blk in enumerate(t.h):
                x, pr = blk(x, None if past is None else past[i])
                presents.append(pr)
            x = t.ln_f(x)
            return self.lm_head(x), tuple(presents)

    return GPT2LMHeadModelRef()


def build_hf(cfg):
    from transformers import GPT2Config, GPT2LMHeadModel
    conf = GPT2Config(vocab_size=cfg["vocab"], n_positions=cfg["ctx"], n_embd=cfg["d_model"],
                      n_layer=cfg["layers"], n_head=cfg["heads"], n_inner=None,
                      activation_function="gelu_new", layer_norm_epsilon=eps_of(cfg),
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None,
                      tie_word_embeddings=True)
    try:
        m = GPT2LMHeadModel(conf, attn_implementation="eager")
    except TypeError:
        conf._attn_implementation = "eager"
        m = GPT2LMHeadModel(conf)
    return m


def load_into(model, tensors):
    import torch
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors}
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith("masked_bias")]
    if missing or unexpected:
        die("state_dict mismatch: missing %s unexpected %s" % (missing, unexpected))
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        die("lm_head.weight is not tied to transformer.wte.weight")
    model.eval()
    return model


def f32(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


class HFRunner:
    name = "transformers"

    def __init__(self, cfg, tensors):
        self.m = load_into(build_hf(cfg), tensors)
        self.label = "transformers-%s" % hf_version()

    def generate(self, prompt, G):
        """-> (greedy (G,), decode logits (G, V)) from model.generate."""
        import torch
        ids = torch.from_numpy(prompt.astype(np.int64)).unsqueeze(0)
        with torch.no_grad():
            out = self.m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=G, min_new_tokens=G, use_cache=True,
                                  output_logits=True, return_dict_in_generate=True)
        seq = out.sequences[0].numpy()
        if seq.shape[0] != prompt.shape[0] + G or not np.array_equal(seq[:prompt.shape[0]], prompt):
            die("generate returned %d tokens, expected prompt + %d" % (seq.shape[0], G))
        logits = np.stack([f32(l[0]) for l in out.logits])
        return seq[prompt.shape[0]:].astype(np.int64), logits

    def cache_loop(self, prompt, gen):
        """Manual prefill + one-token KV-cache steps feeding `gen`."""
        import torch
        rows = []
        with torch.no_grad():
            o = self.m(torch.from_numpy(prompt.astype(np.int64)).unsqueeze(0), use_cache=True)
            rows.append(f32(o.logits[0, -1]))
            past = o.past_key_values
            for t in gen[:-1]:
                o = self.m(torch.tensor([[int(t)]], dtype=torch.long), past_key_values=past, use_cache=True)
                rows.append(f32(o.logits[0, -1]))
                past = o.past_key_values
        return np.stack(rows)

    def full(self, seq):
        import torch
        with torch.no_grad():
            o = self.m(torch.from_numpy(seq.astype(np.int64)).unsqueeze(0), use_cache=False)
        return f32(o.logits[0])


class FallbackRunner:
    name = "fallback"

    def __init__(self, cfg, tensors):
        self.m = load_into(build_fallback(cfg), tensors)
        self.label = "torch-fallback"

    def cache_loop(self, prompt, gen=None, G=None):
        """Greedy with KV cache; feeds `gen` if given, else its own argmax."""
        import torch
        rows, toks = [], []
        G = len(gen) if gen is not None else G
        with torch.no_grad():
            lg, past = self.m(torch.from_numpy(prompt.astype(np.int64)).unsqueeze(0))
            for j in range(G):
                row = f32(lg[0, -1])
                rows.append(row)
                t = int(torch.argmax(lg[0, -1])) if gen is None else int(gen[j])
                toks.append(t)
                if j + 1 < G:
                    lg, past = self.m(torch.tensor([[t]], dtype=torch.long), past)
        return np.array(toks, dtype=np.int64), np.stack(rows)

    def generate(self, prompt, G):
        return self.cache_loop(prompt, None, G)

    def full(self, seq):
        import torch
        with torch.no_grad():
            lg, _ = self.m(torch.from_numpy(seq.astype(np.int64)).unsqueeze(0))
        return f32(lg[0])


# --------------------------------------------------------------------------
# numpy float64 reference (independent of torch)
# --------------------------------------------------------------------------

def numpy_full(cfg, W, seq, dump=None):
    """Full causal forward over seq (T,) -> float64 logits (T, V)."""
    W = {k: np.asarray(v, dtype=np.float64) for k, v in W.items()}
    D, H = cfg["d_model"], cfg["heads"]
    hd, eps = D // H, eps_of(cfg)
    T = len(seq)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]

    def conv(x, p):
        return x @ W[p + ".weight"] + W[p + ".bias"]

    def put(k, v):
        if dump is not None:
            dump[k] = np.array(v)

    x = W["transformer.wte.weight"][np.asarray(seq)] + W["transformer.wpe.weight"][:T]
    put("embed", x)
    causal = np.tril(np.ones((T, T), dtype=bool))
    for l in range(cfg["layers"]):
        p = "transformer.h.%d." % l
        qkv = conv(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (qkv[:, i * D:(i + 1) * D].reshape(T, H, hd).transpose(1, 0, 2) for i in range(3))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.where(causal, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + conv(a, p + "attn.c_proj")
        put("l%d.attn" % l, x)
        h = conv(ln(x, p + "ln_2"), p + "mlp.c_fc")
        h = 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
        x = x + conv(h, p + "mlp.c_proj")
        put("l%d.out" % l, x)
    x = ln(x, "transformer.ln_f")
    y = x @ W["transformer.wte.weight"].T
    put("logits", y)
    return y


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def top2_gap(rows):
    s = np.sort(np.asarray(rows, dtype=np.float64), axis=-1)
    return s[..., -1] - s[..., -2]


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def check_nondegenerate(greedy, dec, min_gap, min_distinct, max_run=3):
    gaps = top2_gap(dec)
    distinct = len(set(greedy.tolist()))
    run = longest = 1
    for i in range(1, len(greedy)):
        run = run + 1 if greedy[i] == greedy[i - 1] else 1
        longest = max(longest, run)
    problems = []
    if gaps.min() <= min_gap:
        problems.append("top-2 logit gap %.3g <= %g at step %d"
                        % (gaps.min(), min_gap, int(np.argmin(gaps))))
    if distinct < min_distinct:
        problems.append("only %d distinct tokens (< %d)" % (distinct, min_distinct))
    if longest > max_run:
        problems.append("a token repeats %d times in a row (> %d)" % (longest, max_run))
    return problems, gaps, distinct


def consistency(prompt, greedy, dec, full, tol, min_gap):
    """Checks that hold for every fixture; returns a list of problems."""
    n, G = len(prompt), len(greedy)
    probs = []
    am = np.argmax(dec, axis=-1)
    if not np.array_equal(am, greedy):
        probs.append("greedy != argmax(decode_logits) at steps %s" % np.nonzero(am != greedy)[0].tolist())
    if full.shape != (n + G, dec.shape[1]):
        probs.append("full_logits shape %s" % (full.shape,))
        return probs
    d = maxdiff(full[n - 1:n - 1 + G], dec)
    if d > tol:
        probs.append("full_logits[n-1+j] vs decode_logits[j]: max diff %.3e > %g" % (d, tol))
    fam = np.argmax(full[n - 1:n - 1 + G], axis=-1)
    if not np.array_equal(fam, greedy):
        probs.append("argmax(full_logits[n-1:]) != greedy")
    fg = top2_gap(full[n - 1:n - 1 + G]).min()
    if fg <= min_gap:
        probs.append("full_logits top-2 gap %.3g <= %g" % (fg, min_gap))
    return probs


# --------------------------------------------------------------------------
# fixture I/O
# --------------------------------------------------------------------------

NPYS = ("prompt", "prefill_logits", "decode_logits", "greedy", "full_logits")


def load_fixture(d):
    cfg = read_config_file(os.path.join(d, "config"))
    tensors, meta = read_safetensors(os.path.join(d, "weights.safetensors"))
    arrs = {k: np.load(os.path.join(d, k + ".npy")) for k in NPYS}
    return cfg, tensors, meta, arrs


def verify_dir(d, tol, dump_dir=None):
    cfg, tensors, meta, a = load_fixture(d)
    names = [k for k, _ in tensors]
    want = [k for k, _, _ in weight_spec(cfg)]
    if sorted(names) != sorted(want):
        die("%s: weight keys differ from the GPT-2 spec: extra %s missing %s"
            % (d, sorted(set(names) - set(want)), sorted(set(want) - set(names))))
    W = dict(tensors)
    for k, shape, _ in weight_spec(cfg):
        if tuple(W[k].shape) != shape:
            die("%s: %s has shape %s, expected %s" % (d, k, W[k].shape, shape))
    prompt, greedy = a["prompt"], a["greedy"]
    if prompt.dtype != np.int64 or greedy.dtype != np.int64:
        die("%s: prompt/greedy must be int64" % d)
    seq = np.concatenate([prompt, greedy])
    dump = {} if dump_dir else None
    ref = numpy_full(cfg, W, seq, dump)
    n, G = len(prompt), len(greedy)
    d_full = maxdiff(ref, a["full_logits"])
    d_dec = maxdiff(ref[n - 1:n - 1 + G], a["decode_logits"])
    d_pre = maxdiff(ref[n - 1], a["prefill_logits"])
    probs = consistency(prompt, greedy, a["decode_logits"], a["full_logits"], tol, 0.0)
    if not np.array_equal(np.argmax(ref[n - 1:n - 1 + G], -1), greedy):
        probs.append("numpy argmax differs from greedy")
    if not np.array_equal(a["decode_logits"][0], a["prefill_logits"]):
        probs.append("decode_logits[0] != prefill_logits")
    for nm, dd in (("full", d_full), ("decode", d_dec), ("prefill", d_pre)):
        if dd > tol:
            probs.append("numpy-f64 vs %s_logits: %.3e > %g" % (nm, dd, tol))
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        for k, v in dump.items():
            np.save(os.path.join(dump_dir, k + ".npy"), v)
    return (d_full, d_dec, d_pre), probs, meta


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        die(message)


def main(argv=None):
    ap = _Parser(prog="export_gpt2.py",
                 description="Export a random GPT-2 (GPT2LMHeadModel) with greedy "
                             "KV-cache generation as a dsc test fixture.",
                 epilog="Keys: vocab ctx d_model heads layers eps. "
                        "Numpy-only check of a fixture: export_gpt2.py --verify DIR")
    ap.add_argument("-D", dest="defs", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-len", type=int, default=5, metavar="n")
    ap.add_argument("--new-tokens", type=int, default=32, metavar="G")
    ap.add_argument("--init-std", type=float, default=0.4,
                    help="std of non-LayerNorm parameters (default 0.4)")
    ap.add_argument("--reference", choices=["auto", "transformers", "fallback"], default="auto")
    ap.add_argument("--min-gap", type=float, default=1e-3,
                    help="required top-2 logit gap at every step (default 1e-3)")
    ap.add_argument("--min-distinct", type=int, default=None,
                    help="required distinct continuation tokens (default min(8, G))")
    ap.add_argument("--max-run", type=int, default=3,
                    help="longest allowed run of one repeated token (default 3)")
    ap.add_argument("--out", metavar="DIR")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--verify", metavar="DIR")
    ap.add_argument("--dump", metavar="DIR2", help="with --verify: write numpy intermediates")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="abs tolerance for logits comparisons (default 1e-4)")
    a = ap.parse_args(argv)
    if np is None:
        die("cannot import numpy with %s" % sys.executable)

    if a.verify:
        (df, dd, dp), probs, meta = verify_dir(a.verify, a.tol, a.dump)
        print("%s: numpy-f64 max abs diff full %.3e decode %.3e prefill %.3e (reference %s) %s"
              % (a.verify, df, dd, dp, (meta or {}).get("reference", "?"),
                 "ok" if not probs else "FAIL: " + "; ".join(probs)))
        return 0 if not probs else 1
    if a.dump:
        ap.error("--dump requires --verify")
    if not a.out:
        ap.error("--out is required")
    cfg = parse_defines(a.defs)
    n, G = a.prompt_len, a.new_tokens
    if n < 1 or G < 1:
        die("--prompt-len and --new-tokens must be >= 1")
    if n + G > cfg["ctx"]:
        die("prompt-len + new-tokens = %d exceeds ctx = %d" % (n + G, cfg["ctx"]))
    min_distinct = a.min_distinct if a.min_distinct is not None else min(8, G)

    try:
        import torch
    except ImportError:
        die("cannot import torch with %s; use a python3 that has torch "
            "(e.g. /usr/bin/python3 or /opt/gpt2venv/bin/python)" % sys.executable)
    torch.set_grad_enabled(False)

    hf = have_transformers()
    if a.reference == "transformers" and not hf:
        die("--reference transformers: cannot import transformers with %s" % sys.executable)
    use_hf = hf and a.reference != "fallback"

    tensors, g = make_weights(cfg, a.seed, a.init_std)
    prompt = torch.randint(0, cfg["vocab"], (n,), generator=g, dtype=torch.int64).numpy()

    runner = HFRunner(cfg, tensors) if use_hf else FallbackRunner(cfg, tensors)
    print("export_gpt2.py: reference %s (torch %s)" % (runner.label, torch.__version__))
    greedy, dec = runner.generate(prompt, G)
    seq = np.concatenate([prompt, greedy]).astype(np.int64)
    full = runner.full(seq)

    for nm, arr in (("decode", dec), ("full", full)):
        if not np.all(np.isfinite(arr)):
            die("%s logits are not finite" % nm)
    probs = consistency(prompt, greedy, dec, full, a.tol, a.min_gap)
    p2, gaps, distinct = check_nondegenerate(greedy, dec, a.min_gap, min_distinct, a.max_run)
    probs += p2
    if probs:
        die("seed %d, init-std %g: %s (try another --seed or --init-std)"
            % (a.seed, a.init_std, "; ".join(probs)))

    meta = {"format": "pt", "reference": runner.label, "seed": a.seed,
            "torch": torch.__version__, "init_std": a.init_std,
            "prompt_len": n, "new_tokens": G, "min_top2_gap": "%.6g" % gaps.min(), "lm_head": "tied to transformer.wte.weight (not stored)"}
    if use_hf:
        meta["transformers"] = hf_version()
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "weights.safetensors"), tensors, meta)
    np.save(os.path.join(a.out, "prompt.npy"), prompt.astype(np.int64))
    np.save(os.path.join(a.out, "prefill_logits.npy"), np.ascontiguousarray(dec[0], np.float32))
    np.save(os.path.join(a.out, "decode_logits.npy"), np.ascontiguousarray(dec, np.float32))
    np.save(os.path.join(a.out, "greedy.npy"), greedy.astype(np.int64))
    np.save(os.path.join(a.out, "full_logits.npy"), np.ascontiguousarray(full, np.float32))
    with open(os.path.join(a.out, "config"), "w") as f:
        f.write(config_line(cfg) + "\n")
    print("%s: wrote %s; prompt %s; greedy %s; %d distinct, min top-2 gap %.3g"
          % (a.out, config_line(cfg), prompt.tolist(), greedy.tolist(), distinct, gaps.min()))

    if a.check:
        cfg2, t2, meta2, arrs = load_fixture(a.out)
        if cfg2 != cfg:
            die("config round trip mismatch: %s vs %s" % (cfg2, cfg))
        if [k for k, _ in t2] != [k for k, _ in tensors] or any(
                not np.array_equal(v, v2) for (_, v), (_, v2) in zip(tensors, t2)):
            die("weights do not round-trip")
        # 1. rerun the same reference from the reloaded files: bit-exact
        r2 = HFRunner(cfg2, t2) if use_hf else FallbackRunner(cfg2, t2)
        gr2, dec2 = r2.generate(arrs["prompt"], G)
        if not np.array_equal(gr2, arrs["greedy"]) or not np.array_equal(dec2, arrs["decode_logits"]):
            die("rerun from reloaded files differs")
        if not np.array_equal(r2.full(seq), arrs["full_logits"]):
            die("full forward rerun differs")
        msgs = ["rerun bit-exact"]
        # 2. manual KV-cache loop vs generate's logits
        if use_hf:
            loop = r2.cache_loop(prompt, greedy)
            dl = maxdiff(loop, dec)
            msgs.append("manual KV loop vs generate %.3e" % dl)
            if dl > a.tol:
                die("manual KV-cache loop differs from generate logits by %.3e" % dl)
            # 3. the plain-PyTorch fallback against transformers
            fb = FallbackRunner(cfg2, t2)
            fgr, fdec = fb.generate(prompt, G)
            ffull = fb.full(seq)
            d1, d2 = maxdiff(fdec, dec), maxdiff(ffull, full)
            msgs.append("fallback vs transformers: decode %.3e full %.3e%s"
                        % (d1, d2, " (bit-exact)" if d1 == 0 and d2 == 0 else ""))
            if not np.array_equal(fgr, greedy) or d1 > a.tol or d2 > a.tol:
                die("fallback disagrees with transformers: greedy %s, decode %.3e, full %.3e"
                    % ("equal" if np.array_equal(fgr, greedy) else "DIFFERS", d1, d2))
            # 4. key set equals what save_pretrained writes
            ks = saved_pretrained_keys(r2.m)
            if ks is not None:
                if sorted(ks) != sorted(k for k, _ in tensors):
                    die("save_pretrained keys differ: %s" % sorted(set(ks) ^ set(k for k, _ in tensors)))
                msgs.append("keys == save_pretrained's (%d, no lm_head.weight)" % len(ks))
        # 5. numpy float64
        (df, dd, dp), vp, _ = verify_dir(a.out, a.tol)
        if vp:
            die("; ".join(vp))
        msgs.append("numpy-f64 full %.3e decode %.3e" % (df, dd))
        print("%s: check ok: %s" % (a.out, "; ".join(msgs)))
    return 0


def saved_pretrained_keys(model):
    import tempfile
    try:
        from safetensors import safe_open
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as td:
        model.save_pretrained(td, safe_serialization=True)
        p = os.path.join(td, "model.safetensors")
        if not os.path.exists(p):
            return None
        with safe_open(p, framework="np") as f:
            return list(f.keys())


if __name__ == "__main__":
    sys.exit(main())
