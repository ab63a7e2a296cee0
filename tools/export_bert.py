#!/usr/bin/env python3
"""BERT sentence-embedding reference for dsc's models/minilm.lua fixtures.

Builds a random small transformers BertModel (eval mode), embeds a few
sentences of different lengths as one right-padded batch with an attention
mask, then applies sentence-transformers' mean pooling over the real tokens
and L2 normalization (its Pooling + Normalize modules), and writes:

    DIR/weights.safetensors  float32, BertModel's state_dict names (pooler.*
                             included, as checkpoints have it)
    DIR/ids.txt              one sentence per line: its token ids, comma-
                             separated, [CLS]=1 ... [SEP]=2 included
    DIR/embeddings.npy       float32 (sentences, hidden): the embeddings
    DIR/config               "-D vocab_size=V -D hidden_size=D ..." for
                             models/minilm.lua

Weights: every parameter drawn from torch's RNG (LayerNorm weight
1+0.1*randn, bias 0.1*randn, the rest 0.05*randn), so nothing sits at its
default.  A float64 run of the same model checks the float32 reference
(--check).

Needs torch and transformers (/work/venv/bin/python or any venv with
transformers 4.40):
  python tools/export_bert.py --out tests/fixtures/bert_small --seed 3
"""

import argparse
import os

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=61)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=64)
    ap.add_argument("--positions", type=int, default=40)
    ap.add_argument("--eps", type=float, default=1e-12)
    ap.add_argument("--lengths", default="2,9,17,5,33,3,12",
                    help="tokens per sentence, [CLS] and [SEP] included")
    args = ap.parse_args()

    from transformers import BertConfig, BertModel
    import transformers

    torch.manual_seed(args.seed)
    cfg = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                     num_hidden_layers=args.layers,
                     num_attention_heads=args.heads,
                     intermediate_size=args.intermediate,
                     max_position_embeddings=args.positions,
                     type_vocab_size=2, layer_norm_eps=args.eps,
                     hidden_act="gelu", hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = BertModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "LayerNorm.bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.05 * torch.randn_like(p))

    lengths = [int(x) for x in args.lengths.split(",")]
    assert all(2 <= n <= args.positions for n in lengths)
    gen = torch.Generator().manual_seed(args.seed + 1)
    sentences = []
    for n in lengths:
        body = torch.randint(5, args.vocab, (n - 2,), generator=gen).tolist()
        sentences.append([1] + body + [2])
    seq = max(lengths)
    ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for i, s in enumerate(sentences):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1

    def embed(m, dtype):
        m = m.to(dtype)
        with torch.no_grad():
            h = m(input_ids=ids, attention_mask=mask).last_hidden_state
            # sentence-transformers' Pooling (mean) and Normalize
            mk = mask.unsqueeze(-1).expand(h.size()).to(h.dtype)
            pooled = (h * mk).sum(1) / torch.clamp(mk.sum(1), min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    e32 = embed(model, torch.float32).numpy()
    state = {k: v.detach().float().contiguous()
             for k, v in model.state_dict().items() if v.is_floating_point()}
    e64 = embed(model, torch.float64).numpy()
    err = float(np.abs(e32 - e64).max())
    print("export_bert: float32 vs float64 max |diff| %.3g" % err)
    assert err < 1e-5

    from safetensors.torch import save_file
    os.makedirs(args.out, exist_ok=True)
    save_file(state, os.path.join(args.out, "weights.safetensors"),
              metadata={"format": "pt", "seed": str(args.seed),
                        "torch": torch.__version__,
                        "transformers": transformers.__version__})
    with open(os.path.join(args.out, "ids.txt"), "w") as f:
        for s in sentences:
            f.write(",".join(map(str, s)) + "\n")
    np.save(os.path.join(args.out, "embeddings.npy"), e32.astype(np.float32))
    with open(os.path.join(args.out, "config"), "w") as f:
        f.write("-D vocab_size=%d -D hidden_size=%d -D num_hidden_layers=%d "
                "-D num_attention_heads=%d -D intermediate_size=%d "
                "-D max_position_embeddings=%d -D layer_norm_eps=%g\n" % (
                    args.vocab, args.hidden, args.layers, args.heads,
                    args.intermediate, args.positions, args.eps))


if __name__ == "__main__":
    main()
