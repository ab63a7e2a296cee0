#!/usr/bin/env python3
"""DeepSeek-V3 reference exporter for dsc's fixtures (needs torch and
transformers >= 5 with DeepseekV3ForCausalLM, e.g. a venv with
`pip install torch transformers safetensors numpy`).

    export_deepseek_v3.py --preset NAME --out DIR [--seed N] [--set KEY=JSON]
                          [--shards N] [--check-dsc build/dsc]
    export_deepseek_v3.py --router-ties OUT.npz

Builds a small random DeepseekV3ForCausalLM, moves every parameter and the
router's e_score_correction_bias away from its init, rounds them to
bfloat16 (so the checkpoint is half the size and every engine sees the same
values), and writes:

    DIR/config.json          the configuration as the published checkpoints
                             write it (rope_theta and a nested rope_scaling,
                             q_lora_rank null when absent)
    DIR/model.safetensors    (or, with --shards N, N model-0000i-of-0000N
                             files and model.safetensors.index.json)
                             BF16 weights under the published names: one
                             model.layers.N.mlp.experts.E.{gate,up,down}_proj
                             per expert (what transformers 5 saves), plus a
                             multi-token-prediction layer
                             model.layers.<num_hidden_layers>.* that dsc
                             must list and ignore
    DIR/config_transformers5.json  the same as transformers 5 saves it
                             (rope_parameters, rope_theta inside)
    DIR/prompt.npy           int32 (n,)      the prompt
    DIR/prompt_logits.npy    float32 (n, V)  logits of every prompt position
                             (one forward over the prompt)
    DIR/decode_logits.npy    float32 (G, V)  row j: the logits greedy token
                             j is chosen from (row 0 from the prompt, then one
                             cached step per token)
    DIR/greedy.npy           int32 (G,)      model.generate(greedy)

The reference is the model transformers loads back from DIR (config.json
and the per-expert weights), so the fixture also proves transformers reads
them as written.  Seeds are refused unless every greedy step has a top-2
logit gap >= --min-gap and every routing decision (group and expert
choice) a margin >= --min-route-gap, so float rounding cannot flip them;
presets that say so must also show group-limited routing changing a
choice.  --router-ties writes tie-heavy router inputs and torch.topk's
indices for the kernel tests.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

PRESETS = {
    # YaRN, q_lora_rank, 4 groups of which 2 kept (routing excludes groups).
    "deepseek_yarn": dict(
        vocab_size=96, hidden_size=32, intermediate_size=48,
        moe_intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
        q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=16,
        n_shared_experts=1, num_experts_per_tok=4, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, norm_topk_prob=True,
        first_k_dense_replace=1, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=64, tie_word_embeddings=False,
        rope_interleave=True,
        rope_scaling={"type": "yarn", "factor": 4.0,
                      "original_max_position_embeddings": 16,
                      "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                      "mscale_all_dim": 0.8},
        _needs_group_exclusion=True, _prompt=9, _new=12),
    # No RoPE scaling, q_proj (q_lora_rank null), one group, tied
    # embeddings, halves RoPE layout, unnormalized weights.
    "deepseek_plain": dict(
        vocab_size=80, hidden_size=32, intermediate_size=40,
        moe_intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        q_lora_rank=None, kv_lora_rank=24, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=12, n_routed_experts=8,
        n_shared_experts=2, num_experts_per_tok=2, n_group=1, topk_group=1,
        routed_scaling_factor=1.5, norm_topk_prob=False,
        first_k_dense_replace=1, rms_norm_eps=1e-5, rope_theta=500.0,
        max_position_embeddings=48, tie_word_embeddings=True,
        rope_interleave=False, rope_scaling=None,
        _needs_group_exclusion=False, _prompt=7, _new=10),
    # The benchmark's shape (never committed): hidden 1024, 8 layers,
    # 32 experts of which 4 active.
    "deepseek_bench": dict(
        vocab_size=4096, hidden_size=1024, intermediate_size=2816,
        moe_intermediate_size=512, num_hidden_layers=8, num_attention_heads=16,
        q_lora_rank=384, kv_lora_rank=256, qk_nope_head_dim=64,
        qk_rope_head_dim=32, v_head_dim=64, n_routed_experts=32,
        n_shared_experts=1, num_experts_per_tok=4, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, norm_topk_prob=True,
        first_k_dense_replace=1, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=1024, tie_word_embeddings=False,
        rope_interleave=True, rope_scaling=None,
        _needs_group_exclusion=False, _prompt=8, _new=64),
}


def die(msg):
    print("export_deepseek_v3.py: error: " + msg, file=sys.stderr)
    sys.exit(1)


def published_config(p):
    """config.json as DeepSeek's checkpoints write it."""
    c = {k: v for k, v in p.items() if not k.startswith("_")}
    c.update(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
             hidden_act="silu", attention_bias=False, torch_dtype="bfloat16",
             num_key_value_heads=c["num_attention_heads"],
             num_nextn_predict_layers=1, topk_method="noaux_tc",
             scoring_func="sigmoid", bos_token_id=0, eos_token_id=1)
    return c


def perturb(model, gen, tied):
    """Every parameter and the correction bias away from its init, then
    rounded to bfloat16.  A tied embedding is kept small: as the LM head
    too, a large one only ever predicts the token it just read."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=gen)
            elif name.endswith("embed_tokens.weight"):
                v = torch.randn(p.shape, generator=gen)
                if tied:
                    v = v * 2 / math.sqrt(p.shape[-1])
            else:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1])
            p.copy_(v.to(torch.bfloat16).float())
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_((0.1 * torch.randn(b.shape, generator=gen))
                        .to(torch.bfloat16).float())


def mtp_tensors(cfg, gen):
    """A multi-token-prediction layer's keys, as the published checkpoints
    have them (model.layers.<num_hidden_layers>.*); dsc ignores them."""
    n, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    p = "model.layers.%d." % n
    return {p + "enorm.weight": torch.ones(d), p + "hnorm.weight": torch.ones(d),
            p + "eh_proj.weight": torch.randn(d, 2 * d, generator=gen),
            p + "shared_head.norm.weight": torch.ones(d)}


class RouteWatch:
    """Margins of every routing decision the router makes, from its input."""

    def __init__(self):
        self.min_gap = float("inf")
        self.excluded = 0

    def hook(self, module, inputs, output):
        x = inputs[0].reshape(-1, module.hidden_dim).float()
        s = torch.sigmoid(x @ module.weight.float().t())
        c = (s + module.e_score_correction_bias).double()
        e, g, k = module.num_experts, module.num_group, module.top_k
        top2 = c.view(-1, g, e // g).topk(min(2, e // g), dim=-1)[0].sum(-1)
        for row in range(c.shape[0]):
            gs = top2[row].sort(descending=True)[0]
            if module.topk_group < g:
                self.min_gap = min(self.min_gap, float(
                    gs[module.topk_group - 1] - gs[module.topk_group]))
            keep = top2[row].topk(module.topk_group)[1]
            mask = torch.full((e,), -math.inf, dtype=torch.float64)
            for gi in keep.tolist():
                mask[gi * (e // g):(gi + 1) * (e // g)] = 0
            masked = (c[row] + mask).sort(descending=True)[0]
            if k < e and math.isfinite(masked[k]):
                self.min_gap = min(self.min_gap, float(masked[k - 1] - masked[k]))
            free = set(c[row].topk(k)[1].tolist())
            chosen = set((c[row] + mask).topk(k)[1].tolist())
            self.excluded += free != chosen


def export(name, out, seed, min_gap, min_route_gap, write, shards=1):
    try:
        from transformers import AutoConfig, DeepseekV3ForCausalLM
    except ImportError as e:
        sys.exit("export_deepseek_v3.py: error: needs transformers >= 5 "
                 "(DeepseekV3ForCausalLM): %s" % e)
    from safetensors.torch import save_file
    p = PRESETS[name]
    cfg_json = published_config(p)
    gen = torch.Generator().manual_seed(seed)
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg_json, f, indent=2)
        config = AutoConfig.from_pretrained(tmp)
        torch.manual_seed(seed)
        model = DeepseekV3ForCausalLM(config).eval()
        perturb(model, gen, p["tie_word_embeddings"])
        model.save_pretrained(tmp + "/hf")
        from safetensors import safe_open
        tensors = {}
        with safe_open(tmp + "/hf/model.safetensors", "pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
        if p["tie_word_embeddings"]:
            tensors.pop("lm_head.weight", None)
        tensors.update(mtp_tensors(p, gen))
        tensors = {k: v.to(torch.bfloat16).contiguous()
                   for k, v in tensors.items()}
        os.makedirs(tmp + "/fx", exist_ok=True)
        with open(tmp + "/fx/config.json", "w") as f:
            json.dump(cfg_json, f, indent=2)
            f.write("\n")
        meta = {"format": "pt", "seed": str(seed),
                "transformers": __import__("transformers").__version__,
                "torch": torch.__version__}
        files = ["model.safetensors"]
        if shards > 1:
            keys = sorted(tensors)
            files = ["model-%05d-of-%05d.safetensors" % (i + 1, shards)
                     for i in range(shards)]
            weight_map = {k: files[i * shards // len(keys)]
                          for i, k in enumerate(keys)}
            for f in files:
                save_file({k: tensors[k] for k in keys if weight_map[k] == f},
                          tmp + "/fx/" + f, metadata=meta)
            with open(tmp + "/fx/model.safetensors.index.json", "w") as f:
                json.dump({"metadata": {"total_size": sum(
                    v.numel() * 2 for v in tensors.values())},
                    "weight_map": weight_map}, f, indent=2)
                f.write("\n")
            files.append("model.safetensors.index.json")
        else:
            save_file(tensors, tmp + "/fx/model.safetensors", metadata=meta)
        # The reference: what transformers loads back from the fixture.
        ref = DeepseekV3ForCausalLM.from_pretrained(
            tmp + "/fx", dtype=torch.float32).eval()
        watch = RouteWatch()
        for m in ref.modules():
            if type(m).__name__ == "DeepseekV3TopkRouter":
                m.register_forward_hook(watch.hook)
        n, G = p["_prompt"], p["_new"]
        prompt = torch.randint(0, p["vocab_size"], (1, n), generator=gen)
        with torch.no_grad():
            prompt_logits = ref(prompt).logits[0].float()
            out_ids = ref.generate(prompt, do_sample=False, max_new_tokens=G,
                                   min_new_tokens=G, use_cache=True,
                                   pad_token_id=None, eos_token_id=None)
            greedy = out_ids[0, n:]
            # Every decode step's logits, through the cache, one at a time.
            res = ref(prompt, use_cache=True)
            cache = res.past_key_values
            rows = [res.logits[0, -1]]
            for j in range(G - 1):
                res = ref(greedy[j].view(1, 1), past_key_values=cache,
                          use_cache=True)
                cache = res.past_key_values
                rows.append(res.logits[0, -1])
            decode = torch.stack(rows).float()
        if not torch.equal(decode.argmax(-1), greedy):
            return "greedy tokens differ from the argmax of the decode logits"
        top2 = decode.topk(2, dim=-1)[0]
        gap = float((top2[:, 0] - top2[:, 1]).min())
        ptop2 = prompt_logits.topk(2, dim=-1)[0]
        if gap < min_gap:
            return "greedy top-2 gap %.2g < %.2g" % (gap, min_gap)
        if watch.min_gap < min_route_gap:
            return "routing margin %.2g < %.2g" % (watch.min_gap, min_route_gap)
        if p["_needs_group_exclusion"] and watch.excluded == 0:
            return "group-limited routing never changed a choice"
        if len(set(greedy.tolist())) < 3:
            return "degenerate continuation %s" % greedy.tolist()
        print("%s seed %d: greedy %s, top-2 gap %.3g (prompt %.3g), routing "
              "margin %.3g, %d choices changed by groups" % (
                  name, seed, greedy.tolist(), gap,
                  float((ptop2[:, 0] - ptop2[:, 1]).min()), watch.min_gap,
                  watch.excluded))
        if write:
            os.makedirs(out, exist_ok=True)
            for f in ["config.json"] + files:
                shutil.copy(tmp + "/fx/" + f, os.path.join(out, f))
            save_config_v5(out)
            np.save(os.path.join(out, "prompt.npy"),
                    prompt[0].numpy().astype(np.int32))
            np.save(os.path.join(out, "prompt_logits.npy"),
                    prompt_logits.numpy().astype(np.float32))
            np.save(os.path.join(out, "decode_logits.npy"),
                    decode.numpy().astype(np.float32))
            np.save(os.path.join(out, "greedy.npy"),
                    greedy.numpy().astype(np.int32))
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def router_ties(out):
    """Rows full of equal values and torch.topk(sorted=False)'s picks."""
    gen = torch.Generator().manual_seed(5)
    cases = []
    for n, k in [(8, 3), (16, 4), (64, 8), (256, 8), (9, 2), (5, 5),
                 (200, 4), (32, 1), (1024, 8), (64, 1), (128, 2)]:
        for trial in range(6):
            levels = torch.tensor([0.0, 0.25, 0.5, 1.0, -math.inf])
            x = levels[torch.randint(0, 2 + trial % 4, (n,), generator=gen)]
            if trial == 5:
                x = torch.zeros(n)
            idx = torch.topk(x, k, sorted=False)[1]
            cases.append((x.numpy().astype(np.float32),
                          idx.numpy().astype(np.int64)))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    xs = np.concatenate([c[0] for c in cases]).astype(np.float32)
    ks = np.concatenate([c[1] for c in cases]).astype(np.int64)
    ns = np.array([[len(c[0]), len(c[1])] for c in cases], dtype=np.int64)
    np.save(out + "_x.npy", xs)
    np.save(out + "_idx.npy", ks.astype(np.int32))
    np.save(out + "_nk.npy", ns.astype(np.int32))
    # The whole router (DeepseekV3TopkRouter) on logits full of equal
    # values: 16 experts in 4 groups, 2 kept, 4 chosen; the router's weight
    # the identity, so its input is its logits.
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import \
        DeepseekV3TopkRouter
    cfg = DeepseekV3Config(hidden_size=16, n_routed_experts=16, n_group=4,
                           topk_group=2, num_experts_per_tok=4,
                           routed_scaling_factor=2.5, norm_topk_prob=True)
    router = DeepseekV3TopkRouter(cfg)
    with torch.no_grad():
        router.weight.copy_(torch.eye(16))
        router.e_score_correction_bias.copy_(
            torch.tensor([0.0, 0.5] * 8))
    levels = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    logits = levels[torch.randint(0, 4, (64, 16), generator=gen)]
    logits[:8] = 0.0
    with torch.no_grad():
        _, w, idx = router(logits)
    np.save(out + "_router_logits.npy", logits.numpy().astype(np.float32))
    np.save(out + "_router_bias.npy",
            router.e_score_correction_bias.numpy().astype(np.float32))
    np.save(out + "_router_idx.npy", idx.numpy().astype(np.int32))
    np.save(out + "_router_w.npy", w.numpy().astype(np.float32))
    print("wrote %d tie cases and 64 router rows to %s_*.npy" % (len(cases),
                                                                 out))


def save_config_v5(out):
    """config_transformers5.json: the same configuration as transformers 5's
    save_pretrained writes it (rope_parameters with rope_theta inside, not
    rope_scaling), which dsc --config must read alike."""
    from transformers import AutoConfig
    tmp = tempfile.mkdtemp()
    try:
        AutoConfig.from_pretrained(out).save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "config.json"),
                    os.path.join(out, "config_transformers5.json"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_dsc(dsc, out):
    """Run dsc generate on the fixture in out as a user would (--config,
    the published weights, --prompt-logits), JIT and AOT: prompt logits
    within 1e-4, the greedy continuation identical."""
    import subprocess
    prompt = np.load(os.path.join(out, "prompt.npy"))
    greedy = np.load(os.path.join(out, "greedy.npy"))
    ref = np.load(os.path.join(out, "prompt_logits.npy"))
    weights = os.path.join(out, "model.safetensors.index.json")
    if not os.path.exists(weights):
        weights = os.path.join(out, "model.safetensors")
    worst = 0.0
    for aot in (False, True):
        got_path = os.path.join(out, "dsc_prompt_logits.npy")
        cmd = [dsc, "generate", "models/deepseek_v3.lua", "--config",
               os.path.join(out, "config.json"), "--weights", weights,
               "--prompt", ",".join(map(str, prompt)), "-n", str(len(greedy)),
               "--threads", "1", "--prompt-logits", got_path] + \
              (["--aot"] if aot else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            die("dsc failed: %s" % r.stderr.strip())
        ids = [int(t) for t in r.stdout.strip().split(",")]
        got = np.load(got_path)
        os.remove(got_path)
        d = float(np.abs(got - ref).max())
        worst = max(worst, d)
        mode = "aot" if aot else "jit"
        print("dsc %s: prompt logits max |dsc - transformers| = %.3g; greedy "
              "%s" % (mode, d, "identical" if ids == greedy.tolist()
                      else "DIFFERS: %s" % ids))
        if ids != greedy.tolist() or d > 1e-4:
            die("dsc does not match transformers on %s" % out)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=0,
                    help="first seed to try (default 0)")
    ap.add_argument("--tries", type=int, default=50)
    ap.add_argument("--min-gap", type=float, default=2e-3)
    ap.add_argument("--min-route-gap", type=float, default=1e-4)
    ap.add_argument("--router-ties", metavar="PREFIX")
    ap.add_argument("--set", action="append", default=[],
                    metavar="KEY=JSON", help="change a key of the preset "
                    "(a held-out configuration), e.g. --set hidden_size=48")
    ap.add_argument("--check-dsc", metavar="DSC",
                    help="then run this dsc on the result (JIT and AOT) and "
                    "fail unless it matches")
    ap.add_argument("--shards", type=int, default=1,
                    help="write N shards and model.safetensors.index.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.router_ties:
        router_ties(a.router_ties)
        return
    if not a.preset or not a.out:
        die("--preset and --out are required")
    for kv in a.set:
        key, _, value = kv.partition("=")
        if key not in PRESETS[a.preset] or key.startswith("_"):
            if key != "rope_scaling":
                die("--set %s: not a key of preset %s" % (kv, a.preset))
        PRESETS[a.preset][key] = json.loads(value)
    for seed in range(a.seed, a.seed + a.tries):
        why = export(a.preset, a.out, seed, a.min_gap, a.min_route_gap, True,
                     a.shards)
        if why is None:
            if a.check_dsc:
                check_dsc(a.check_dsc, a.out)
            return
        print("%s seed %d refused: %s" % (a.preset, seed, why))
    die("no seed in %d tries passed; try another --seed" % a.tries)


if __name__ == "__main__":
    main()
