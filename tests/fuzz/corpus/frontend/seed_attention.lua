-- The seed's section 3 example: SelfAttention(input_dim, d_k, d_v), a
-- single head with biased nn.Linear projections and scores scaled by
-- 1/sqrt(d_k), followed by FeedForward(ff_in, d_ff).
--
-- As printed in the seed, FeedForward is built with input_dim = 512 while
-- the attention output is d_v = 64 wide; PyTorch fails at run time, dsc at
-- compile time.  Compile with -D ff_in=64 for the evident fix.

local cfg = dsc.config {
  input_dim = 512,
  d_k = 64,
  d_v = 64,
  d_ff = 2048,
  batch = 32,
  seq = 10,
  ff_in = 512,     -- FeedForward's input_dim as the seed wrote it
}

local function self_attention(x, prefix, input_dim, d_k, d_v)
  local q = nn.linear(x, prefix .. ".W_Q", input_dim, d_k)
  local k = nn.linear(x, prefix .. ".W_K", input_dim, d_k)
  local v = nn.linear(x, prefix .. ".W_V", input_dim, d_v)
  return dsc.attention(q, k, v, {heads = 1, batch_first = true})
end

local function feed_forward(x, prefix, input_dim, d_ff)
  local z1 = nn.linear(x, prefix .. ".fc1", input_dim, d_ff)
  local z2 = dsc.relu(z1)
  return nn.linear(z2, prefix .. ".fc2", d_ff, input_dim)
end

local x = dsc.input("x", {cfg.batch, cfg.seq, cfg.input_dim})
local a = self_attention(x, "self_attn", cfg.input_dim, cfg.d_k, cfg.d_v)
local y = feed_forward(a, "ff", cfg.ff_in, cfg.d_ff)

dsc.output("y", y)
