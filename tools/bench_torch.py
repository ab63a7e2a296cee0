#!/usr/bin/env python3
"""The peers of `dsc bench`: PyTorch eager, and ONNX Runtime when installed.

Runs the same model and workload as `dsc bench` — the seed's DeepSeekModel,
built by tools/export_torch.py's own code — under torch.inference_mode()
with torch.set_num_threads(T), up to 20 warm-ups then N timed forwards, and prints
one JSON line per engine in dsc bench's format:

    {"model": "seed_encoder", "mode": "torch", "threads": 1, "runs": 10,
     "median_ms": ..., "min_ms": ..., "max_ms": ..., "p50_ms": ...,
     "p90_ms": ..., "p99_ms": ..., "gflop": ...,
     "gflops": ..., "blas": "openblas-pthread", ...}

and with onnxruntime importable, the same model exported by
torch.onnx.export and run with intra_op_num_threads=T ("mode":
"onnxruntime").

Peers are optional: when no python with torch can be found the script says
so on stderr and exits 0 printing no rows.  If this python lacks torch it
re-runs itself with the first of $DSC_TORCH_PYTHON, /usr/bin/python3,
python3 that has it (Debian's python3-torch lives under /usr/bin/python3).

    tools/bench_torch.py --model seed_encoder -D seq=16 -D batch=20 \\
        --threads 1 --runs 10 [--weights W.safetensors] [--gflop G]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from peer_threads import pin_threads

HERE = os.path.dirname(os.path.abspath(__file__))
REEXEC = "DSC_BENCH_TORCH_REEXEC"


def note(msg):
    sys.stderr.write("bench_torch.py: note: %s\n" % msg)


def die(msg):
    sys.stderr.write("bench_torch.py: error: %s\n" % msg)
    sys.exit(1)


def has_torch():
    try:
        import torch  # noqa: F401
        import numpy  # noqa: F401
        return True
    except ImportError:
        return False


def find_torch_python():
    """Re-exec into a python that has torch and numpy; None if there is none."""
    seen = {os.path.realpath(sys.executable)}
    cands = [os.environ.get("DSC_TORCH_PYTHON"), "/usr/bin/python3",
             shutil.which("python3")]
    for c in cands:
        if not c or not os.path.exists(c) or os.path.realpath(c) in seen:
            continue
        seen.add(os.path.realpath(c))
        try:
            ok = subprocess.run([c, "-c", "import torch, numpy"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return c
    return None


def model_flop(model, cfg):
    """GFLOP of one forward, counted as dsc's bench_graph_flop does
    (compiler/bench.c): 2*M*N*K per linear plus one per element for bias,
    activation and residual; attention 2*seq*seq*(dqk+dv)*heads*batch;
    layernorm 8 per element."""
    if model != "seed_encoder":
        return 0.0
    m = cfg["seq"] * cfg["batch"]
    d, f, v, h = cfg["d_model"], cfg["d_ff"], cfg["vocab"], cfg["heads"]
    layer = (2 * m * 3 * d * d + m * 3 * d            # q, k, v + bias
             + 2 * cfg["seq"] ** 2 * (2 * d // h) * h * cfg["batch"]
             + 2 * m * d * d + 2 * m * d              # out_proj + bias + add
             + 8 * m * d                              # norm1
             + 2 * m * f * d + 2 * m * f              # linear1 + bias + relu
             + 2 * m * d * f + 2 * m * d              # linear2 + bias + add
             + 8 * m * d)                             # norm2
    return (cfg["layers"] * layer + 2 * m * v * d + m * v) / 1e9


def blas_in_use():
    """Which BLAS library this process mapped (Debian's alternatives pick
    netlib's reference BLAS unless OpenBLAS or BLIS is installed)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower()}
    except OSError:
        return "unknown"
    names = set()
    for lib in libs:
        real = os.path.realpath(lib)
        parent = os.path.basename(os.path.dirname(real))
        base = os.path.basename(real)
        if "openblas" in real:
            names.add("openblas" + ("-" + parent.split("-", 1)[1]
                                    if parent.startswith("openblas-") else ""))
        elif "blis" in real:
            names.add("blis")
        elif "mkl" in real:
            names.add("mkl")
        elif parent == "blas" or base.startswith("libblas"):
            names.add("netlib")
        else:
            names.add(base)
    return "+".join(sorted(names)) or "none"


WARMUP = 20  # untimed calls first, as dsc bench (BENCH_WARMUP)


def timed(fn, runs):
    for _ in range(min(WARMUP, max(1, runs // 10))):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def quantile(sorted_times, q):
    """Nearest rank, as dsc bench: the smallest value with at least q*n
    values at or below it."""
    n = len(sorted_times)
    rank = min(n, max(1, int(q * n + 0.999999)))
    return sorted_times[rank - 1]


def row(mode, model, cfg, threads, times, gflop, **extra):
    med = statistics.median(times)
    st = sorted(times)
    r = {"model": model, "config": {k: str(v) for k, v in cfg.items()},
         "mode": mode, "threads": threads, "runs": len(times),
         "median_ms": round(med, 4), "min_ms": round(min(times), 4),
         "max_ms": round(max(times), 4),
         "p50_ms": round(quantile(st, 0.50), 4),
         "p90_ms": round(quantile(st, 0.90), 4),
         "p99_ms": round(quantile(st, 0.99), 4), "gflop": gflop,
         "gflops": round(gflop / (med / 1e3), 3) if med > 0 else 0}
    r.update(extra)
    print(json.dumps(r, separators=(",", ":")), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench_torch.py",
                                 description="PyTorch / ONNX Runtime peers of dsc bench")
    ap.add_argument("--model", default="seed_encoder", choices=["seed_encoder"])
    ap.add_argument("-D", dest="defs", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=0, help="0: one per core")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", help="safetensors state_dict (default: random)")
    ap.add_argument("--gflop", type=float,
                    help="flop count to report (default: counted here as dsc does)")
    ap.add_argument("--engines", default="torch,onnxruntime",
                    help="comma-separated: torch, onnxruntime")
    a = ap.parse_args(argv)
    if a.runs < 1:
        die("--runs must be >= 1")
    threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in ("torch", "onnxruntime"):
            die("unknown engine '%s'" % e)

    pin_threads(threads)

    if not has_torch():
        other = None if os.environ.get(REEXEC) else find_torch_python()
        if not other:
            note("no python with torch and numpy found (tried %s, "
                 "$DSC_TORCH_PYTHON, /usr/bin/python3, python3); no peer rows"
                 % sys.executable)
            return 0
        os.environ[REEXEC] = "1"
        os.execv(other, [other, os.path.abspath(__file__)] +
                 (sys.argv[1:] if argv is None else list(argv)))

    import numpy as np
    import torch
    sys.path.insert(0, HERE)
    import export_torch as ex

    warnings.filterwarnings("ignore")
    cfg = ex.parse_defines(a.model, a.defs)
    gflop = a.gflop if a.gflop is not None else model_flop(a.model, cfg)
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    model = ex.build_torch_model(a.model, cfg)
    if a.weights:
        tensors, _ = ex.read_safetensors(a.weights)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors},
                              strict=True)
    model.eval()
    tokens = torch.randint(0, cfg["vocab"], (cfg["seq"], cfg["batch"]),
                           dtype=torch.int64)

    if "torch" in engines:
        with torch.inference_mode():
            times = timed(lambda: model(tokens), a.runs)
        row("torch", a.model, cfg, torch.get_num_threads(), times, gflop,
            torch=torch.__version__, blas=blas_in_use())

    if "onnxruntime" in engines:
        try:
            import onnxruntime as ort
        except ImportError:
            note("onnxruntime is not installed for %s; no ONNX Runtime row"
                 % sys.executable)
            return 0
        tmp = tempfile.mkdtemp(prefix="dsc-bench-onnx-")
        try:
            path = os.path.join(tmp, a.model + ".onnx")
            with torch.no_grad():
                torch.onnx.export(model, (tokens,), path, input_names=["tokens"],
                                  output_names=["logits"], opset_version=14)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = {"tokens": tokens.numpy().astype(np.int64)}
            times = timed(lambda: sess.run(None, feed), a.runs)
        except Exception as e:  # an exporter or runtime gap: no row, not a failure
            note("ONNX Runtime run failed: %s" % str(e).strip().splitlines()[0])
            return 0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        row("onnxruntime", a.model, cfg, threads, times, gflop,
            onnxruntime=ort.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
