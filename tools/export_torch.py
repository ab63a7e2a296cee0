#!/usr/bin/env python3
"""PyTorch reference exporter for dsc test fixtures.

Builds one of the seed-article models, perturbs every parameter away from its
default init, runs it (eval mode, no_grad) on random inputs and writes:

    DIR/weights.safetensors   full state_dict, float32 (own writer, no pip pkg)
    DIR/<input>.npy           tokens.npy (seed_encoder) / x.npy (seed_attention)
    DIR/<output>.npy          logits.npy (seed_encoder) / y.npy (seed_attention)
    DIR/config                one line of dsc flags: "-D key=value ..."

Models
  seed_encoder    the seed's section-5.2 DeepSeekModel (nn.Embedding ->
                  nn.TransformerEncoder(post-norm, ReLU, batch_first=False) ->
                  nn.Linear), built as DeepSeekModel(vocab, d_model, vocab)
                  with nhead/num_layers/dim_feedforward passed through.
                  keys: vocab d_model heads layers d_ff seq batch
                  tokens.npy (seq, batch) int64|int32 -> logits.npy (seq, batch, vocab)
  seed_attention  the seed's section-3 SelfAttention + FeedForward,
                  y = ff(self_attn(x)).
                  keys: input_dim d_k d_v d_ff batch seq ff_in
                  x.npy (batch, seq, input_dim) f32 -> y.npy (batch, seq, ff_in)

Checking
  --check         after exporting, reload the files with this script's own
                  safetensors parser, rerun the torch model (must be bit-exact)
                  and compare against an independent numpy float64 reference
                  (must agree within 1e-4).
  --verify DIR    numpy-only: run the float64 reference on an existing fixture
                  directory and report the max abs diff against its stored
                  output (torch not needed).  --dump DIR2 additionally writes
                  the reference's intermediates as .npy files for debugging.

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
except ImportError:  # pragma: no cover - reported in main() so --help still works
    np = None


def die(msg):
    sys.stderr.write("export_torch.py: error: %s\n" % msg)
    sys.exit(1)


# --------------------------------------------------------------------------
# model configuration
# --------------------------------------------------------------------------

# ordered: this is also the order written to DIR/config
DEFAULTS = {
    "seed_encoder": [
        ("vocab", 1000), ("d_model", 256), ("heads", 4), ("layers", 2),
        ("d_ff", 2048), ("seq", 16), ("batch", 20),
    ],
    "seed_attention": [
        ("input_dim", 512), ("d_k", 64), ("d_v", 64), ("d_ff", 2048),
        ("batch", 32), ("seq", 10), ("ff_in", 512),
    ],
}

IO_NAMES = {
    "seed_encoder": ("tokens.npy", "logits.npy"),
    "seed_attention": ("x.npy", "y.npy"),
}


def parse_defines(model, defs):
    """-D key=value list -> ordered dict of ints (defaults filled in)."""
    keys = [k for k, _ in DEFAULTS[model]]
    given = {}
    for d in defs or []:
        if "=" not in d:
            die("bad -D '%s': expected key=value" % d)
        k, v = d.split("=", 1)
        k = k.strip()
        if k not in keys:
            die("unknown -D key '%s' for model %s (valid keys: %s)"
                % (k, model, ", ".join(keys)))
        try:
            iv = int(v.strip(), 0)
        except ValueError:
            die("-D %s=%s: value must be an integer" % (k, v))
        if iv <= 0:
            die("-D %s=%s: value must be a positive integer" % (k, v))
        given[k] = iv
    cfg = {}
    for k, dv in DEFAULTS[model]:
        cfg[k] = given.get(k, dv)
    return cfg


def config_line(model, cfg):
    return " ".join("-D %s=%d" % (k, cfg[k]) for k, _ in DEFAULTS[model])


def read_config_file(path, model=None):
    with open(path) as f:
        toks = f.read().split()
    defs = []
    i = 0
    while i < len(toks):
        if toks[i] == "-D" and i + 1 < len(toks):
            defs.append(toks[i + 1])
            i += 2
        elif toks[i].startswith("-D") and len(toks[i]) > 2:
            defs.append(toks[i][2:])
            i += 1
        else:
            die("%s: unexpected token '%s'" % (path, toks[i]))
    kv = {}
    for d in defs:
        k, v = d.split("=", 1)
        kv[k] = int(v, 0)
    return kv


def guess_model(kv):
    for m, spec in DEFAULTS.items():
        if set(kv) == set(k for k, _ in spec):
            return m
    die("cannot tell the model from config keys %s" % sorted(kv))


# --------------------------------------------------------------------------
# safetensors (own writer / reader)
# --------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray float32).  Packed in order."""
    header = {}
    blobs = []
    off = 0
    for name, arr in tensors:
        a = np.ascontiguousarray(arr, dtype="<f4")
        b = a.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> (list of (name, np.ndarray float32) in file order, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: too short" % path)
    (hlen,) = struct.unpack("<Q", data[:8])
    if 8 + hlen > len(data):
        raise ValueError("%s: header length %d beyond file" % (path, hlen))
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    meta = header.pop("__metadata__", None)
    out = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if info["dtype"] != "F32":
            raise ValueError("%s: %s has dtype %s" % (path, name, info["dtype"]))
        b, e = info["data_offsets"]
        n = int(np.prod(info["shape"])) if info["shape"] else 1
        if e - b != 4 * n or base + e > len(data):
            raise ValueError("%s: bad offsets for %s" % (path, name))
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=base + b)
        out.append((name, arr.reshape(info["shape"]).astype(np.float32)))
    return out, meta


# --------------------------------------------------------------------------
# torch models (class bodies copied from the seed article)
# --------------------------------------------------------------------------

def build_torch_model(model, cfg):
    import torch
    import torch.nn as nn

    if model == "seed_encoder":
        # Seed section 5.2, verbatim except that nhead / num_layers /
        # dim_feedforward are parameters (defaults = the seed's values;
        # dim_feedforward default = PyTorch's default 2048).
        class DeepSeekModel(nn.Module):
            def __init__(self, input_dim, hidden_dim, output_dim,
                         nhead=4, num_layers=2, dim_feedforward=2048):
                super(DeepSeekModel, self).__init__()
                self.embedding = nn.Embedding(input_dim, hidden_dim)
                self.transformer_layer = nn.TransformerEncoderLayer(
                    d_model=hidden_dim, nhead=nhead, dim_feedforward=dim_feedforward)
                self.transformer_encoder = nn.TransformerEncoder(
                    self.transformer_layer, num_layers=num_layers)
                self.fc = nn.Linear(hidden_dim, output_dim)

            def forward(self, x):
                embedded = self.embedding(x)
                output = self.transformer_encoder(embedded)
                output = self.fc(output)
                return output

        if cfg["d_model"] % cfg["heads"] != 0:
            die("d_model (%d) must be divisible by heads (%d)" % (cfg["d_model"], cfg["heads"]))
        return DeepSeekModel(cfg["vocab"], cfg["d_model"], cfg["vocab"],
                             nhead=cfg["heads"], num_layers=cfg["layers"],
                             dim_feedforward=cfg["d_ff"])

    if model == "seed_attention":
        # Seed section 3, verbatim.
        class SelfAttention(nn.Module):
            def __init__(self, input_dim, d_k, d_v):
                super(SelfAttention, self).__init__()
                self.W_Q = nn.Linear(input_dim, d_k)
                self.W_K = nn.Linear(input_dim, d_k)
                self.W_V = nn.Linear(input_dim, d_v)

            def forward(self, X):
                Q = self.W_Q(X)
                K = self.W_K(X)
                V = self.W_V(X)

                scores = torch.matmul(Q, K.transpose(-2, -1)) / torch.sqrt(torch.tensor(Q.size(-1), dtype=torch.float32))
                weights = torch.softmax(scores, dim=-1)
                output = torch.matmul(weights, V)
                return output

        class FeedForward(nn.Module):
            def __init__(self, input_dim, d_ff):
                super(FeedForward, self).__init__()
                self.fc1 = nn.Linear(input_dim, d_ff)
                self.fc2 = nn.Linear(d_ff, input_dim)
                self.relu = nn.ReLU()

            def forward(self, x):
                z1 = self.fc1(x)
                z2 = self.relu(z1)
                output = self.fc2(z2)
                return output

        class SeedAttentionFF(nn.Module):
            def __init__(self, input_dim, d_k, d_v, ff_in, d_ff):
                super(SeedAttentionFF, self).__init__()
                self.self_attn = SelfAttention(input_dim, d_k, d_v)
                self.ff = FeedForward(ff_in, d_ff)

            def forward(self, x):
                return self.ff(self.self_attn(x))

        return SeedAttentionFF(cfg["input_dim"], cfg["d_k"], cfg["d_v"],
                               cfg["ff_in"], cfg["d_ff"])

    die("unknown model %s" % model)


def perturb(torch_model):
    """Move every parameter away from its default init (uses the global RNG)."""
    import torch
    import torch.nn as nn
    ln_params = set()
    for mod in torch_model.modules():
        if isinstance(mod, nn.LayerNorm):
            ln_params.add(id(mod.weight))
            ln_params.add(id(mod.bias))
    with torch.no_grad():
        for mod in torch_model.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
        for name, p in torch_model.named_parameters():
            if id(p) in ln_params:
                continue
            p.add_(0.05 * torch.randn_like(p))


# dsc's own random weights (compiler/io/weights.c), so a fixture at full
# size need not carry its megabytes of weights: `dsc run --seed SEED`
# regenerates exactly these.  Each key's values are the splitmix64 sequence
# (compiler/util/rng.h) seeded by FNV-1a of the key xor SEED; value j is
# u = (r >> 40) / 2^24 mapped by the key's init rule: LayerNorm weight
# 1 + 0.1 (2u - 1), LayerNorm bias 0.1 (2u - 1), anything else
# (2u - 1) / sqrt(fan_in) with fan_in the key's last dimension, all in
# float32 as dsc computes them.
_M64 = (1 << 64) - 1


def dsc_random_values(key, shape, init, seed):
    h = (1469598103934665603 ^ seed) & _M64
    for byte in key.encode("utf-8"):
        h = ((h ^ byte) * 1099511628211) & _M64
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        z = np.uint64(h) + np.uint64(0x9e3779b97f4a7c15) * \
            np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
    v = np.float32(2) * u - np.float32(1)
    if init == "ones":
        v = np.float32(1) + np.float32(0.1) * v
    elif init == "zeros":
        v = np.float32(0.1) * v
    else:
        v = v / np.sqrt(np.float32(shape[-1]))
    return v.astype(np.float32).reshape(shape)


def load_dsc_random_weights(torch_model, seed):
    """Replace every parameter by dsc's random value for its key."""
    import torch
    import torch.nn as nn
    init = {}
    for name, mod in torch_model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            init[name + ".weight"] = "ones"
            init[name + ".bias"] = "zeros"
    with torch.no_grad():
        for key, p in torch_model.state_dict().items():
            v = dsc_random_values(key, tuple(p.shape),
                                  init.get(key, "uniform"), seed)
            p.copy_(torch.from_numpy(v))


def make_input(model, cfg, tokens_dtype):
    import torch
    if model == "seed_encoder":
        t = torch.randint(0, cfg["vocab"], (cfg["seq"], cfg["batch"]), dtype=torch.int64)
        return t.numpy().astype(tokens_dtype)
    x = torch.randn(cfg["batch"], cfg["seq"], cfg["input_dim"], dtype=torch.float32)
    return x.numpy().astype(np.float32)


def run_torch(torch_model, inp):
    import torch
    torch_model.eval()
    with torch.no_grad():
        out = torch_model(torch.from_numpy(np.ascontiguousarray(inp)))
    return np.ascontiguousarray(out.detach().cpu().numpy().astype(np.float32))


# --------------------------------------------------------------------------
# numpy float64 reference (independent of torch; the C side debugs against it)
# --------------------------------------------------------------------------

def _linear(x, w, b):
    return x @ w.T + b


def _layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)     # biased variance
    return (x - mu) / np.sqrt(var + eps) * w + b


def _softmax(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def numpy_reference(model, cfg, W, inp, dump=None):
    """W: dict name -> float array.  Returns float64 output.

    dump: optional dict that receives named intermediates.
    """
    def put(name, v):
        if dump is not None:
            dump[name] = np.array(v, dtype=np.float64)

    W = {k: np.asarray(v, dtype=np.float64) for k, v in W.items()}
    if model == "seed_encoder":
        d, H = cfg["d_model"], cfg["heads"]
        hd = d // H
        tok = np.asarray(inp).astype(np.int64)          # (S, B)
        S, B = tok.shape
        x = W["embedding.weight"][tok]                   # (S, B, d)
        put("embed", x)
        for l in range(cfg["layers"]):
            p = "transformer_encoder.layers.%d." % l
            ipw, ipb = W[p + "self_attn.in_proj_weight"], W[p + "self_attn.in_proj_bias"]
            q = _linear(x, ipw[0:d], ipb[0:d])
            k = _linear(x, ipw[d:2 * d], ipb[d:2 * d])
            v = _linear(x, ipw[2 * d:3 * d], ipb[2 * d:3 * d])
            # (S, B, d) -> (B, H, S, hd)
            sh = lambda t: t.reshape(S, B, H, hd).transpose(1, 2, 0, 3)
            q, k, v = sh(q), sh(k), sh(v)
            scores = (q / math.sqrt(hd)) @ k.transpose(0, 1, 3, 2)   # (B, H, S, S)
            attn = _softmax(scores)
            ctx = attn @ v                                           # (B, H, S, hd)
            ctx = ctx.transpose(2, 0, 1, 3).reshape(S, B, d)
            sa = _linear(ctx, W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"])
            put("l%d.attn_probs" % l, attn)
            put("l%d.attn_out" % l, sa)
            x = _layernorm(x + sa, W[p + "norm1.weight"], W[p + "norm1.bias"])
            put("l%d.norm1" % l, x)
            h = np.maximum(_linear(x, W[p + "linear1.weight"], W[p + "linear1.bias"]), 0.0)
            put("l%d.ff_hidden" % l, h)
            ff = _linear(h, W[p + "linear2.weight"], W[p + "linear2.bias"])
            x = _layernorm(x + ff, W[p + "norm2.weight"], W[p + "norm2.bias"])
            put("l%d.out" % l, x)
        y = _linear(x, W["fc.weight"], W["fc.bias"])
        put("logits", y)
        return y

    if model == "seed_attention":
        x = np.asarray(inp, dtype=np.float64)
        q = _linear(x, W["self_attn.W_Q.weight"], W["self_attn.W_Q.bias"])
        k = _linear(x, W["self_attn.W_K.weight"], W["self_attn.W_K.bias"])
        v = _linear(x, W["self_attn.W_V.weight"], W["self_attn.W_V.bias"])
        scores = (q @ k.transpose(0, 2, 1)) / math.sqrt(q.shape[-1])
        attn = _softmax(scores)
        o = attn @ v
        put("attn_probs", attn)
        put("attn_out", o)
        if o.shape[-1] != W["ff.fc1.weight"].shape[1]:
            raise ValueError("attention output width %d != fc1 input width %d"
                             % (o.shape[-1], W["ff.fc1.weight"].shape[1]))
        h = np.maximum(_linear(o, W["ff.fc1.weight"], W["ff.fc1.bias"]), 0.0)
        put("ff_hidden", h)
        y = _linear(h, W["ff.fc2.weight"], W["ff.fc2.bias"])
        put("y", y)
        return y

    die("unknown model %s" % model)


def load_fixture(dirpath, model=None):
    cfgpath = os.path.join(dirpath, "config")
    if not os.path.isfile(cfgpath):
        die("%s: no config file" % dirpath)
    kv = read_config_file(cfgpath)
    m = model or guess_model(kv)
    cfg = parse_defines(m, ["%s=%d" % (k, v) for k, v in kv.items()])
    tensors, meta = read_safetensors(os.path.join(dirpath, "weights.safetensors"))
    iname, oname = IO_NAMES[m]
    inp = np.load(os.path.join(dirpath, iname))
    out = np.load(os.path.join(dirpath, oname))
    return m, cfg, tensors, inp, out


def verify_dir(dirpath, tol=1e-4, dump_dir=None):
    """numpy-only check of an existing fixture.  Returns max abs diff."""
    m, cfg, tensors, inp, out = load_fixture(dirpath)
    dump = {} if dump_dir else None
    ref = numpy_reference(m, cfg, dict(tensors), inp, dump)
    if ref.shape != out.shape:
        die("%s: reference shape %s != stored output shape %s" % (dirpath, ref.shape, out.shape))
    diff = float(np.max(np.abs(ref - out.astype(np.float64)))) if out.size else 0.0
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        for k, v in dump.items():
            np.save(os.path.join(dump_dir, k + ".npy"), v)
    return m, diff


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):           # usage errors exit 1 like all others
        self.print_usage(sys.stderr)
        die(message)


def main(argv=None):
    ap = _Parser(
        prog="export_torch.py",
        description="Export a seed-article PyTorch model, random inputs and "
                    "reference outputs as a dsc test fixture.",
        epilog="Keys: seed_encoder: vocab d_model heads layers d_ff seq batch; "
               "seed_attention: input_dim d_k d_v d_ff batch seq ff_in. "
               "Numpy-only check of an existing fixture: export_torch.py --verify DIR")
    ap.add_argument("--model", choices=sorted(DEFAULTS))
    ap.add_argument("-D", dest="defs", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed (default 0)")
    ap.add_argument("--tokens-dtype", choices=["int64", "int32"], default="int64",
                    help="dtype of tokens.npy for seed_encoder (default int64)")
    ap.add_argument("--out", metavar="DIR", help="output directory (created if missing)")
    ap.add_argument("--check", action="store_true",
                    help="after export: reload the files, rerun torch (bit-exact) and "
                         "compare with the numpy float64 reference (within 1e-4)")
    ap.add_argument("--verify", metavar="DIR",
                    help="numpy-only: compare the float64 reference with DIR's stored output")
    ap.add_argument("--dump", metavar="DIR2",
                    help="with --verify: write reference intermediates as .npy into DIR2")
    ap.add_argument("--tol", type=float, default=1e-4, help="tolerance for checks (default 1e-4)")
    ap.add_argument("--dsc-weights", metavar="SEED", type=int,
                    help="use the random weights `dsc run --seed SEED` makes "
                         "instead of perturbed PyTorch ones, and write no "
                         "weights file (the test regenerates them)")
    ap.add_argument("--rows", metavar="N", type=int,
                    help="with --dsc-weights: keep N rows of the output "
                         "(rows.npy, <output>_rows.npy) plus every row's "
                         "argmax (argmax.npy) and mean and RMS "
                         "(row_stats.npy), not the whole output")
    a = ap.parse_args(argv)
    if np is None:
        die("cannot import numpy with %s; use a python3 that has numpy and torch "
            "(e.g. /usr/bin/python3)" % sys.executable)

    if a.verify:
        if a.model or a.out:
            ap.error("--verify takes no --model/--out")
        m, diff = verify_dir(a.verify, a.tol, a.dump)
        ok = diff <= a.tol
        print("%s: %s numpy-f64 reference max abs diff %.3e (%s)"
              % (a.verify, m, diff, "ok" if ok else "FAIL > %g" % a.tol))
        return 0 if ok else 1
    if a.dump:
        ap.error("--dump requires --verify")
    if not a.model:
        ap.error("--model is required")
    if not a.out:
        ap.error("--out is required")

    cfg = parse_defines(a.model, a.defs)
    if a.tokens_dtype != "int64" and a.model != "seed_encoder":
        die("--tokens-dtype only applies to --model seed_encoder")

    try:
        import torch
    except ImportError:
        die("cannot import torch with %s; use a python3 that has torch "
            "(e.g. /usr/bin/python3)" % sys.executable)

    if a.rows is not None and a.dsc_weights is None:
        ap.error("--rows requires --dsc-weights")
    torch.manual_seed(a.seed)
    model = build_torch_model(a.model, cfg)
    if a.dsc_weights is not None:
        load_dsc_random_weights(model, a.dsc_weights)
    else:
        perturb(model)
    model.eval()
    inp = make_input(a.model, cfg, np.int64 if a.tokens_dtype == "int64" else np.int32)
    try:
        out = run_torch(model, inp)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[0]
        hint = ""
        if a.model == "seed_attention" and cfg["ff_in"] != cfg["d_v"]:
            hint = (" (the attention output is d_v=%d wide but FeedForward expects "
                    "ff_in=%d; the seed's defaults have this mismatch; use -D ff_in=%d)"
                    % (cfg["d_v"], cfg["ff_in"], cfg["d_v"]))
        die("PyTorch forward pass of %s failed: %s%s" % (a.model, msg, hint))

    sd = model.state_dict()
    tensors = [(k, v.detach().cpu().numpy().astype(np.float32)) for k, v in sd.items()]
    for k, v in tensors:
        if not np.all(np.isfinite(v)):
            die("parameter %s is not finite" % k)
    if not np.all(np.isfinite(out)):
        die("output is not finite")

    os.makedirs(a.out, exist_ok=True)
    iname, oname = IO_NAMES[a.model]
    if a.dsc_weights is not None:
        return write_dsc_weights_fixture(a, cfg, tensors, inp, out)
    write_safetensors(os.path.join(a.out, "weights.safetensors"), tensors,
                      metadata={"model": a.model, "seed": a.seed,
                                "torch": torch.__version__})
    np.save(os.path.join(a.out, iname), np.ascontiguousarray(inp))
    np.save(os.path.join(a.out, oname), np.ascontiguousarray(out, dtype=np.float32))
    with open(os.path.join(a.out, "config"), "w") as f:
        f.write(config_line(a.model, cfg) + "\n")

    if a.check:
        # 1. round trip through our own parser + a freshly built model
        m2, cfg2, t2, inp2, out2 = load_fixture(a.out, a.model)
        if cfg2 != cfg:
            die("config round trip mismatch: %s vs %s" % (cfg2, cfg))
        if [k for k, _ in t2] != [k for k, _ in tensors]:
            die("safetensors key order/names do not round-trip")
        for (k, v), (_, v2) in zip(tensors, t2):
            if v.shape != v2.shape or not np.array_equal(v, v2):
                die("tensor %s does not round-trip" % k)
        if inp2.dtype != inp.dtype or not np.array_equal(inp2, inp):
            die("input does not round-trip")
        if out2.dtype != np.float32 or not np.array_equal(out2, out):
            die("output does not round-trip")
        fresh = build_torch_model(a.model, cfg2)
        fresh.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in t2}, strict=True)
        rerun = run_torch(fresh, inp2)
        if not np.array_equal(rerun, out2):
            die("rerun from reloaded weights differs: max %.3e"
                % float(np.max(np.abs(rerun - out2))))
        # 2. independent numpy float64 reference
        ref = numpy_reference(a.model, cfg2, dict(t2), inp2)
        diff = float(np.max(np.abs(ref - out2.astype(np.float64)))) if out2.size else 0.0
        print("%s: round trip ok (bit-exact rerun); numpy-f64 reference max abs diff %.3e"
              % (a.out, diff))
        if not diff <= a.tol:
            die("numpy reference differs from torch by %.3e > %g" % (diff, a.tol))
    else:
        print("%s: wrote %s (%s)" % (a.out, a.model, config_line(a.model, cfg)))
    return 0


def write_dsc_weights_fixture(a, cfg, tensors, inp, out):
    """A fixture over dsc's random weights: config, seed (for dsc run
    --seed), the input and the output (or N rows of it and per-row
    summaries).  --check compares torch with the numpy float64 reference
    on the whole output first."""
    iname, oname = IO_NAMES[a.model]
    if a.check:
        ref = numpy_reference(a.model, cfg, dict(tensors), inp)
        diff = float(np.max(np.abs(ref - out.astype(np.float64))))
        print("%s: numpy-f64 reference max abs diff %.3e" % (a.out, diff))
        if not diff <= a.tol:
            die("numpy reference differs from torch by %.3e > %g" % (diff, a.tol))
    np.save(os.path.join(a.out, iname), np.ascontiguousarray(inp))
    with open(os.path.join(a.out, "config"), "w") as f:
        f.write(config_line(a.model, cfg) + "\n")
    with open(os.path.join(a.out, "seed"), "w") as f:
        f.write("%d\n" % a.dsc_weights)
    if a.rows is None:
        np.save(os.path.join(a.out, oname), out)
        return 0
    flat = out.reshape(-1, out.shape[-1])
    rows = np.unique(np.linspace(0, flat.shape[0] - 1, a.rows).round()
                     .astype(np.int64))
    stem = oname[:-len(".npy")]
    np.save(os.path.join(a.out, "rows.npy"), rows)
    np.save(os.path.join(a.out, stem + "_rows.npy"),
            np.ascontiguousarray(flat[rows], dtype=np.float32))
    np.save(os.path.join(a.out, "argmax.npy"),
            flat.argmax(axis=1).astype(np.int64).reshape(out.shape[:-1]))
    f64 = flat.astype(np.float64)
    stats = np.stack([f64.mean(axis=1), np.sqrt((f64 * f64).mean(axis=1))], 1)
    np.save(os.path.join(a.out, "row_stats.npy"), stats)
    print("%s: %d of %d rows, argmax and row stats (dsc weights, seed %d)"
          % (a.out, len(rows), flat.shape[0], a.dsc_weights))
    return 0


if __name__ == "__main__":
    sys.exit(main())
