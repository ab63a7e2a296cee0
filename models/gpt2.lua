-- Hugging Face transformers' GPT2LMHeadModel in eval mode, as a decoder
-- step: n new tokens at positions pos..pos+n-1 (the whole prompt at first,
-- then one at a time), with every layer's keys and values kept in a cache.
-- The output is the logits of the last token.  Weight keys are
-- transformers' state_dict names; the LM head is tied to wte.

local cfg = dsc.config {
  vocab = 50257,
  ctx = 1024,      -- n_positions: the most tokens a sequence can hold
  d_model = 768,   -- n_embd
  heads = 12,      -- n_head
  layers = 12,     -- n_layer
  eps = 1e-5,      -- layer_norm_epsilon
}
local d = cfg.d_model

local tokens = dsc.input("tokens", {cfg.ctx}, "int32", {dynamic = true})

local wte = dsc.weight("transformer.wte.weight", {cfg.vocab, d})
local wpe = dsc.weight("transformer.wpe.weight", {cfg.ctx, d})
local x = dsc.embedding(tokens, wte) + dsc.positions(tokens, wpe)
for i = 0, cfg.layers - 1 do
  x = nn.gpt2_block(x, "transformer.h." .. i, cfg)
end

-- Only the last token's logits are needed to pick the next one.
x = nn.layernorm(dsc.last(x), "transformer.ln_f", d, cfg.eps)
local lm_head = dsc.weight("transformer.wte.weight", {cfg.vocab, d})
dsc.output("logits", dsc.linear(x, lm_head))
