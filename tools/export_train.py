#!/usr/bin/env python3
"""PyTorch reference for `dsc train`: the seed's training loop, verbatim.

Builds the seed's DeepSeekModel (tools/export_torch.py's copy of section
5.2), perturbs its parameters away from the default init (or loads
--weights), draws a batch of tokens (or loads --tokens), and runs

    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    for epoch in range(num_epochs):
        optimizer.zero_grad()
        output = model(input_data)
        target = input_data
        loss = criterion(output.view(-1, output_dim), target.view(-1))
        loss.backward()
        if epoch == 0:
            et.write_safetensors(os.path.join(args.out, "grads.safetensors"),
                                 [(k, p.grad.detach().numpy())
                                  for k, p in model.named_parameters()
                                  if p.grad is not None])
        optimizer.step()
        print(f'Epoch {epoch+1}/{num_epochs}, Loss: {loss.item()}')

in train mode, with every dropout probability set to --dropout (default 0:
deterministic, so dsc can be held to it).  Writes

    DIR/weights.safetensors   the initial state_dict (every key)
    DIR/tokens.npy            input_data, int64 [seq, batch]
    DIR/losses.npy            each epoch's loss.item(), float32 [epochs]
    DIR/trained.safetensors   the state_dict after the last step
    DIR/grads.safetensors     the first step's gradients (.grad of every
                              parameter that has one)
    DIR/config                dsc flags: "-D key=value ... -D dropout=P"
    DIR/train_args            dsc train flags: "--epochs N --lr LR [--weight-decay WD]"

Usage: /usr/bin/python3 tools/export_train.py -D d_model=32 ... --out DIR
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torch as et  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-D", dest="defs", action="append", default=[],
                    metavar="KEY=VALUE")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", help="initial weights (safetensors)")
    ap.add_argument("--tokens", help="input_data (.npy, [seq, batch])")
    ap.add_argument("--out", required=True, metavar="DIR")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn as nn
    import torch.optim as optim

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = et.parse_defines("seed_encoder", args.defs)
    model = et.build_torch_model("seed_encoder", cfg)
    if args.weights:
        tensors, _ = et.read_safetensors(args.weights)
        model.load_state_dict({k: torch.from_numpy(v.copy())
                               for k, v in tensors})
    else:
        et.perturb(model)
    for mod in model.modules():  # nn.TransformerEncoderLayer's dropouts
        if isinstance(mod, nn.Dropout):
            mod.p = args.dropout
        if isinstance(mod, nn.MultiheadAttention):
            mod.dropout = args.dropout
    if args.tokens:
        input_data = torch.from_numpy(np.load(args.tokens).astype(np.int64))
    else:
        input_data = torch.randint(0, cfg["vocab"], (cfg["seq"], cfg["batch"]))

    os.makedirs(args.out, exist_ok=True)
    et.write_safetensors(os.path.join(args.out, "weights.safetensors"),
                         [(k, v.detach().numpy())
                          for k, v in model.state_dict().items()])
    np.save(os.path.join(args.out, "tokens.npy"), input_data.numpy())

    # The seed's loop (section 5.2).
    output_dim = cfg["vocab"]
    num_epochs = args.epochs
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr,
                           weight_decay=args.weight_decay)
    model.train()
    losses = []
    for epoch in range(num_epochs):
        optimizer.zero_grad()
        output = model(input_data)
        target = input_data
        loss = criterion(output.view(-1, output_dim), target.view(-1))
        loss.backward()
        if epoch == 0:
            et.write_safetensors(os.path.join(args.out, "grads.safetensors"),
                                 [(k, p.grad.detach().numpy())
                                  for k, p in model.named_parameters()
                                  if p.grad is not None])
        optimizer.step()
        print(f'Epoch {epoch+1}/{num_epochs}, Loss: {loss.item()}')
        losses.append(loss.item())

    np.save(os.path.join(args.out, "losses.npy"),
            np.array(losses, dtype=np.float32))
    et.write_safetensors(os.path.join(args.out, "trained.safetensors"),
                         [(k, v.detach().numpy())
                          for k, v in model.state_dict().items()])
    with open(os.path.join(args.out, "config"), "w") as f:
        f.write("%s -D dropout=%g\n" % (et.config_line("seed_encoder", cfg),
                                         args.dropout))
    with open(os.path.join(args.out, "train_args"), "w") as f:
        f.write("--epochs %d --lr %r%s\n" % (
            args.epochs, args.lr, " --weight-decay %r" % args.weight_decay
            if args.weight_decay else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
