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

return nn
