-- nn.lua — dsc's library of blocks, built on the dsc.* builder API.
--
-- Each block mirrors a PyTorch module and reads its weights under the same
-- state_dict names, so a model file reads like the PyTorch it reproduces.
-- Copy any of these into your model file and change it: they use nothing
-- a model file cannot use.

local nn = {}

-- nn.Linear(in_features, out_features): y = x Wᵀ + b.
-- Weights: prefix.weight [out, in], prefix.bias [out] (unless bias = false).
function nn.linear(x, prefix, in_features, out_features, opts)
  local w = dsc.weight(prefix .. ".weight", {out_features, in_features})
  local b = nil
  if not (opts and opts.bias == false) then
    b = dsc.weight(prefix .. ".bias", {out_features})
  end
  return dsc.linear(x, w, b)
end

-- nn.Embedding(vocab, dim).  Weight: prefix.weight [vocab, dim].
function nn.embedding(ids, prefix, vocab, dim)
  return dsc.embedding(ids, dsc.weight(prefix .. ".weight", {vocab, dim}))
end

-- nn.LayerNorm(dim, eps).  Weights: prefix.weight, prefix.bias [dim].
function nn.layernorm(x, prefix, dim, eps)
  local g = dsc.weight(prefix .. ".weight", {dim}, {init = "ones"})
  local b = dsc.weight(prefix .. ".bias", {dim}, {init = "zeros"})
  return dsc.layernorm(x, g, b, {eps = eps or 1e-5})
end

-- nn.MultiheadAttention(d_model, heads) as used inside
-- nn.TransformerEncoderLayer: Q, K and V are rows [0, d), [d, 2d), [2d, 3d)
-- of prefix.in_proj_weight [3d, d] and prefix.in_proj_bias [3d].  They stay
-- three linears here; the fuse-qkv pass puts them back together, so models
-- with separate q/k/v weights get the same benefit.
-- x is [seq, batch, d] (or [batch, seq, d] with opts.batch_first).
function nn.multihead_attention(x, prefix, d_model, heads, opts)
  local d = d_model
  local function proj(i)
    local rows = {i * d, d}
    local w = dsc.weight(prefix .. ".in_proj_weight", {3 * d, d}, {rows = rows})
    local b = dsc.weight(prefix .. ".in_proj_bias", {3 * d}, {rows = rows})
    return dsc.linear(x, w, b)
  end
  local q, k, v = proj(0), proj(1), proj(2)
  local a = dsc.attention(q, k, v, {
    heads = heads,
    causal = opts and opts.causal or false,
    batch_first = opts and opts.batch_first or false,
    dropout = opts and opts.dropout or 0,
  })
  return nn.linear(a, prefix .. ".out_proj", d, d)
end

-- nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
-- with PyTorch's defaults: post-norm, ReLU, LayerNorm eps 1e-5, dropout
-- 0.1 where PyTorch has it (on the attention weights, after self_attn,
-- after the ReLU, after linear2) -- active in `dsc train` only.
--   x = norm1(x + dropout1(self_attn(x)))
--   x = norm2(x + dropout2(linear2(dropout(relu(linear1(x))))))
-- cfg: d_model, heads, d_ff (2048), eps (1e-5), batch_first (false),
-- dropout (0.1).
function nn.transformer_encoder_layer(x, prefix, cfg)
  local d, eps = cfg.d_model, cfg.eps or 1e-5
  local d_ff = cfg.d_ff or 2048
  local p = cfg.dropout or 0.1
  local a = nn.multihead_attention(x, prefix .. ".self_attn", d, cfg.heads,
                                   {batch_first = cfg.batch_first, dropout = p})
  x = nn.layernorm(x + dsc.dropout(a, p), prefix .. ".norm1", d, eps)
  local h = dsc.dropout(dsc.relu(nn.linear(x, prefix .. ".linear1", d, d_ff)), p)
  local f = dsc.dropout(nn.linear(h, prefix .. ".linear2", d_ff, d), p)
  return nn.layernorm(x + f, prefix .. ".norm2", d, eps)
end

-- GPT-2's Conv1D(out, in): y = x W + b with W stored [in, out] (the
-- transpose of nn.Linear's); dsc repacks it at compile time.
-- Weights: prefix.weight [in, out], prefix.bias [out].  opts.rows =
-- {first, count} takes output features first.. only (a slice of c_attn).
function nn.conv1d(x, prefix, in_features, out_features, opts)
  local rows = opts and opts.rows
  local w = dsc.weight(prefix .. ".weight", {in_features, out_features},
                       {transpose = true, rows = rows})
  local b = dsc.weight(prefix .. ".bias", {out_features}, {rows = rows})
  return dsc.linear(x, w, b)
end

-- transformers' GPT2Attention for a decoder step: Q, K and V are the three
-- column blocks of c_attn (fuse-qkv makes them one GEMM again); causal
-- attention over the KV cache; then c_proj.  x is [tokens, d_model].
function nn.gpt2_attention(x, prefix, d_model, heads)
  local d = d_model
  local function proj(i)
    return nn.conv1d(x, prefix .. ".c_attn", d, 3 * d, {rows = {i * d, d}})
  end
  local a = dsc.kv_attention(proj(0), proj(1), proj(2), {heads = heads})
  return nn.conv1d(a, prefix .. ".c_proj", d, d)
end

-- transformers' GPT2MLP: c_fc, gelu_new (the tanh form), c_proj.
function nn.gpt2_mlp(x, prefix, d_model, d_inner)
  local h = dsc.gelu(nn.conv1d(x, prefix .. ".c_fc", d_model, d_inner),
                     {approximate = "tanh"})
  return nn.conv1d(h, prefix .. ".c_proj", d_inner, d_model)
end

-- transformers' GPT2Block: pre-norm.
--   x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
function nn.gpt2_block(x, prefix, cfg)
  local d = cfg.d_model
  local a = nn.gpt2_attention(nn.layernorm(x, prefix .. ".ln_1", d, cfg.eps),
                              prefix .. ".attn", d, cfg.heads)
  x = x + a
  local m = nn.gpt2_mlp(nn.layernorm(x, prefix .. ".ln_2", d, cfg.eps),
                        prefix .. ".mlp", d, 4 * d)
  return x + m
end

-- ---- DeepSeek-V3: transformers' DeepseekV3ForCausalLM ---------------------

-- DeepseekV3RMSNorm: weight * x / sqrt(mean(x²) + eps).  Weight: prefix.weight.
function nn.rmsnorm(x, prefix, dim, eps)
  return dsc.rmsnorm(x, dsc.weight(prefix .. ".weight", {dim}, {init = "ones"}),
                     {eps = eps})
end

-- DeepseekV3MLP: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases.
-- residual, when given, is added by down_proj's epilogue.
function nn.swiglu_mlp(x, prefix, dim, inter, residual)
  local g = nn.linear(x, prefix .. ".gate_proj", dim, inter, {bias = false})
  local u = nn.linear(x, prefix .. ".up_proj", dim, inter, {bias = false})
  local d = nn.linear(dsc.silu_mul(g, u), prefix .. ".down_proj", inter, dim,
                      {bias = false})
  if residual then return d + residual end
  return d
end

-- The get_mscale of transformers' YaRN.
local function yarn_mscale(scale, m)
  if scale <= 1 then return 1.0 end
  return 0.1 * m * math.log(scale) + 1.0
end

-- RoPE options of mla_attention from an HF config (rope_theta and the
-- rope_scaling.* keys), as modeling_rope_utils' _compute_yarn_parameters
-- and DeepseekV3Attention's softmax scale compute them.
-- transformers 5's rope_parameters (rope_theta inside) take the place of
-- rope_theta and rope_scaling when they name a rope_type.
function nn.deepseek_rope(cfg)
  local qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
  local group = "rope_scaling."
  local base = cfg.rope_theta
  local v5 = cfg["rope_parameters.rope_type"]
  if v5 == "" then v5 = cfg["rope_parameters.type"] end
  if v5 ~= "" then
    group = "rope_parameters."
    if cfg["rope_parameters.rope_theta"] ~= 0 then
      base = cfg["rope_parameters.rope_theta"]
    end
  end
  local function rs(key) return cfg[group .. key] end
  local o = {rope_theta = base, rope_interleave = cfg.rope_interleave,
             scale = qk ^ -0.5}
  local kind = rs("type")
  if kind == "" then kind = rs("rope_type") end
  if kind == "" or kind == "default" then return o end
  if kind ~= "yarn" then
    error(group .. "type '" .. kind .. "' is not supported (only yarn)")
  end
  local f = rs("factor")
  local m, m_all = rs("mscale"), rs("mscale_all_dim")
  local attn = rs("attention_factor")
  if attn == 0 then
    if m ~= 0 and m_all ~= 0 then
      attn = yarn_mscale(f, m) / yarn_mscale(f, m_all)
    else
      attn = yarn_mscale(f, 1)
    end
  end
  local fast, slow = rs("beta_fast"), rs("beta_slow")
  if fast == 0 then fast = 32 end
  if slow == 0 then slow = 1 end
  local orig = rs("original_max_position_embeddings")
  if orig == 0 then orig = cfg.max_position_embeddings end
  local dim = cfg.qk_rope_head_dim
  local function correction_dim(rot)
    return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))
  end
  local low, high = correction_dim(fast), correction_dim(slow)
  if rs("truncate") then
    low, high = math.floor(low), math.ceil(high)
  end
  o.yarn, o.yarn_factor = true, f
  o.yarn_low, o.yarn_high = math.max(low, 0), math.min(high, dim - 1)
  o.rope_attn = attn
  if m_all ~= 0 then
    local s = yarn_mscale(f, m_all)
    o.scale = o.scale * s * s
  end
  return o
end

-- DeepseekV3Attention (multi-head latent attention) for a decoder step.
-- q: q_a_proj -> q_a_layernorm -> q_b_proj, or q_proj when q_lora_rank is
-- 0 (null); kv_a_proj_with_mqa -> the latent (kv_a_layernorm) and the
-- shared rope key, cached; kv_b_proj folded into the query and output
-- sides (the absorbed form); o_proj.  The two latent norms keep RMSNorm's
-- default eps, 1e-6, whatever rms_norm_eps says (as in transformers and
-- DeepSeek's inference/model.py).
function nn.deepseek_mla(x, prefix, cfg)
  local d, h = cfg.hidden_size, cfg.num_attention_heads
  local qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
  local r, rope = cfg.kv_lora_rank, cfg.qk_rope_head_dim
  local bias = {bias = cfg.attention_bias}
  local q
  if cfg.q_lora_rank == 0 then
    q = nn.linear(x, prefix .. ".q_proj", d, h * qk, {bias = false})
  else
    q = nn.linear(x, prefix .. ".q_a_proj", d, cfg.q_lora_rank, bias)
    q = nn.rmsnorm(q, prefix .. ".q_a_layernorm", cfg.q_lora_rank, 1e-6)
    q = nn.linear(q, prefix .. ".q_b_proj", cfg.q_lora_rank, h * qk,
                  {bias = false})
  end
  local kv = nn.linear(x, prefix .. ".kv_a_proj_with_mqa", d, r + rope, bias)
  local norm = dsc.weight(prefix .. ".kv_a_layernorm.weight", {r},
                          {init = "ones"})
  local kv_b = dsc.weight(prefix .. ".kv_b_proj.weight",
                          {h * (cfg.qk_nope_head_dim + cfg.v_head_dim), r})
  local o = nn.deepseek_rope(cfg)
  o.heads, o.eps = h, 1e-6
  local a = dsc.mla_attention(q, kv, norm, kv_b, o)
  return nn.linear(a, prefix .. ".o_proj", h * cfg.v_head_dim, d, bias)
end

-- DeepseekV3MoE plus the residual: residual + shared_experts(x) + the
-- routed experts, each reading its weights only when a token chose it.
function nn.deepseek_moe(x, prefix, cfg, residual)
  local d, e = cfg.hidden_size, cfg.n_routed_experts
  local inter = cfg.moe_intermediate_size
  if cfg.n_shared_experts < 1 then
    error("n_shared_experts must be at least 1")
  end
  local acc = nn.swiglu_mlp(x, prefix .. ".shared_experts", d,
                            inter * cfg.n_shared_experts, residual)
  local logits = dsc.linear(x, dsc.weight(prefix .. ".gate.weight", {e, d}))
  local bias = dsc.weight(prefix .. ".gate.e_score_correction_bias", {e},
                          {init = "zeros"})
  local route = dsc.moe_route(logits, bias, {
    top_k = cfg.num_experts_per_tok, n_group = cfg.n_group,
    topk_group = cfg.topk_group, norm = cfg.norm_topk_prob,
    scale = cfg.routed_scaling_factor})
  for i = 0, e - 1 do
    local p = prefix .. ".experts." .. i
    acc = dsc.moe_expert(acc, x, route,
      dsc.weight(p .. ".gate_proj.weight", {inter, d}),
      dsc.weight(p .. ".up_proj.weight", {inter, d}),
      dsc.weight(p .. ".down_proj.weight", {d, inter}),
      {expert = i, top_k = cfg.num_experts_per_tok, bf16 = cfg.moe_bf16})
  end
  return acc
end

-- DeepseekV3DecoderLayer i: pre-norm; a dense SwiGLU MLP below
-- first_k_dense_replace, the MoE from there on.
function nn.deepseek_v3_layer(x, prefix, i, cfg)
  local d, eps = cfg.hidden_size, cfg.rms_norm_eps
  x = x + nn.deepseek_mla(nn.rmsnorm(x, prefix .. ".input_layernorm", d, eps),
                          prefix .. ".self_attn", cfg)
  local h = nn.rmsnorm(x, prefix .. ".post_attention_layernorm", d, eps)
  if i < cfg.first_k_dense_replace then
    return nn.swiglu_mlp(h, prefix .. ".mlp", d, cfg.intermediate_size, x)
  end
  return nn.deepseek_moe(h, prefix .. ".mlp", cfg, x)
end

return nn
