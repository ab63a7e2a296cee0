-- DeepSeek-V3: Hugging Face transformers' DeepseekV3ForCausalLM in eval
-- mode, as a decoder step (n new tokens at positions pos..; the latent
-- cache keeps kv_lora_rank + qk_rope_head_dim floats per token and layer).
-- The keys are those of an HF config.json (--config config.json sets
-- them; null becomes 0 or ""), nested rope_scaling as rope_scaling.KEY;
-- the defaults are a small model, not the 671B one.  Weight keys are the
-- published checkpoints' (one tensor per expert).

local cfg = dsc.config {
  vocab_size = 1024,
  hidden_size = 256,
  intermediate_size = 512,        -- the dense layers' MLP
  moe_intermediate_size = 128,    -- each expert's
  num_hidden_layers = 3,
  num_attention_heads = 4,
  q_lora_rank = 96,               -- 0 (null): one q_proj
  kv_lora_rank = 64,
  qk_nope_head_dim = 32,
  qk_rope_head_dim = 16,
  v_head_dim = 32,
  n_routed_experts = 16,
  n_shared_experts = 1,
  num_experts_per_tok = 4,
  n_group = 4,
  topk_group = 2,
  routed_scaling_factor = 2.5,
  norm_topk_prob = true,
  first_k_dense_replace = 1,
  rms_norm_eps = 1e-6,
  rope_theta = 10000.0,
  rope_interleave = true,
  attention_bias = false,
  max_position_embeddings = 512,
  tie_word_embeddings = false,
  ["rope_scaling.type"] = "",     -- "yarn", or none
  ["rope_scaling.rope_type"] = "",
  ["rope_scaling.factor"] = 1.0,
  ["rope_scaling.beta_fast"] = 32.0,
  ["rope_scaling.beta_slow"] = 1.0,
  ["rope_scaling.mscale"] = 0.0,  -- 0: absent
  ["rope_scaling.mscale_all_dim"] = 0.0,
  ["rope_scaling.attention_factor"] = 0.0,
  ["rope_scaling.original_max_position_embeddings"] = 0,
  ["rope_scaling.truncate"] = true,
  -- transformers 5 saves rope_parameters (rope_theta inside) instead;
  -- when it names a rope_type, its keys are used.
  ["rope_parameters.rope_type"] = "",
  ["rope_parameters.type"] = "",
  ["rope_parameters.rope_theta"] = 0.0,
  ["rope_parameters.factor"] = 1.0,
  ["rope_parameters.beta_fast"] = 32.0,
  ["rope_parameters.beta_slow"] = 1.0,
  ["rope_parameters.mscale"] = 0.0,
  ["rope_parameters.mscale_all_dim"] = 0.0,
  ["rope_parameters.attention_factor"] = 0.0,
  ["rope_parameters.original_max_position_embeddings"] = 0,
  ["rope_parameters.truncate"] = true,
  context = 0,  -- tokens the cache holds; 0: max_position_embeddings
  -- Routed experts' weights kept in bfloat16, as published: exact for a
  -- BF16 checkpoint, half the bytes a token reads (false: float32).
  -- Under -fweights=bf16 or q8 they take that format like every linear.
  moe_bf16 = true,
}
local d = cfg.hidden_size
local ctx = cfg.context > 0 and cfg.context or cfg.max_position_embeddings

local tokens = dsc.input("tokens", {ctx}, "int32", {dynamic = true})
local x = nn.embedding(tokens, "model.embed_tokens", cfg.vocab_size, d)
for i = 0, cfg.num_hidden_layers - 1 do
  x = nn.deepseek_v3_layer(x, "model.layers." .. i, i, cfg)
end

-- Only the last token's logits are needed to pick the next one.
x = nn.rmsnorm(dsc.last(x), "model.norm", d, cfg.rms_norm_eps)
local head = cfg.tie_word_embeddings and "model.embed_tokens" or "lm_head"
dsc.output("logits", dsc.linear(x, dsc.weight(head .. ".weight",
                                              {cfg.vocab_size, d})))
