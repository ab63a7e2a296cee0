#!/usr/bin/env python3
"""PyTorch peer of `dsc bench --train`: one step of the seed's training loop
(zero_grad, forward, nn.CrossEntropyLoss against the input tokens,
backward, Adam) on the seed's model and batch, in train mode (dropout 0.1,
as the seed runs it).  One warm-up, then the median of --runs steps; prints
one JSON line with the step's ms and the process's peak RSS.

usage: bench_train_torch.py [-D key=value ...] [--threads T] [--runs N]
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torch as et  # noqa: E402
from peer_threads import pin_threads  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-D", dest="defs", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    pin_threads(args.threads)
    import torch
    import torch.nn as nn
    import torch.optim as optim
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = et.parse_defines("seed_encoder", args.defs)
    model = et.build_torch_model("seed_encoder", cfg)
    input_data = torch.randint(0, cfg["vocab"], (cfg["seq"], cfg["batch"]))
    output_dim = cfg["vocab"]
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    model.train()
    times = []
    for i in range(args.runs + 1):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        output = model(input_data)
        target = input_data
        loss = criterion(output.view(-1, output_dim), target.view(-1))
        loss.backward()
        optimizer.step()
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(json.dumps({
        "engine": "PyTorch %s eager" % torch.__version__.split("+")[0],
        "threads": args.threads, "runs": args.runs,
        "median_ms": round(times[len(times) // 2], 4),
        "min_ms": round(times[0], 4),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
