#!/usr/bin/env python3
"""run_model.py — the Python package: compile a Lua model and run it on a
.npy input, as `dsc run --input/--output` does.

    pip install ./python      # once, from dsc's checkout
    python3 examples/run_model.py models/seed_encoder.lua -D d_model=64 \\
        --weights w.safetensors --input tokens=x.npy --output logits=y.npy
"""
import argparse
import sys

import numpy as np

import dsc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("-D", dest="defines", action="append", default=[],
                   metavar="KEY=VALUE")
    p.add_argument("--weights")
    p.add_argument("--threads", type=int)
    p.add_argument("--aot", action="store_true")
    p.add_argument("--input", action="append", default=[], metavar="NAME=F.npy")
    p.add_argument("--output", action="append", default=[],
                   metavar="NAME=F.npy")
    a = p.parse_args()
    try:
        m = dsc.compile(a.model, weights=a.weights, threads=a.threads,
                        aot=a.aot,
                        defines=dict(d.split("=", 1) for d in a.defines))
        inputs = {name: np.load(path)
                  for name, path in (i.split("=", 1) for i in a.input)}
        outputs = m(**inputs)
    except dsc.Error as e:
        print(e, file=sys.stderr)
        return 1
    for name, path in (o.split("=", 1) for o in a.output):
        np.save(path, outputs[name])
    for name, y in outputs.items():
        print("%s %s: mean %.6g, argmax of the first row %d"
              % (name, list(y.shape), y.mean(), y.reshape(-1, y.shape[-1])[0]
                 .argmax()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
