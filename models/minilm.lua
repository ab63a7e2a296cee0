-- sentence-transformers/all-MiniLM-L6-v2: Hugging Face transformers'
-- BertModel in eval mode (post-LN, exact-erf GELU, learned positions,
-- token type 0), then sentence-transformers' mean pooling over each
-- sentence's real tokens and L2 normalization.  Keys are the checkpoint's
-- (model.safetensors; its pooler.* and position_ids go unused).  Any BERT
-- of this family runs with -D: the defaults are MiniLM-L6-H384's
-- config.json.
--
-- A forward embeds up to `sentences` sentences packed one after another
-- into `tokens` rows, without padding: sentence b is the next lengths[b]
-- rows ([CLS] ... [SEP]); attention stays within each sentence and the
-- mean is over its rows.  Rows after the last sentence are computed but
-- belong to none; sentences of length 0 embed as zeros.  dsc embed
-- tokenizes, packs about 1024 tokens per forward and compiles this for the
-- few token counts it needs (multiples of 64).

local cfg = dsc.config {
  vocab_size = 30522,
  hidden_size = 384,
  num_hidden_layers = 6,
  num_attention_heads = 12,
  intermediate_size = 1536,
  max_position_embeddings = 512,
  type_vocab_size = 2,
  layer_norm_eps = 1e-12,
  tokens = 256,    -- rows per forward: all sentences' tokens
  sentences = 16, -- most sentences per forward
  hidden_act = "gelu",                    -- what this file computes; a
  position_embedding_type = "absolute",   -- config.json saying otherwise is refused
}
if cfg.hidden_act ~= "gelu" then
  error("hidden_act is '" .. cfg.hidden_act .. "': this model computes exact-erf 'gelu'")
end
if cfg.position_embedding_type ~= "absolute" then
  error("position_embedding_type is '" .. cfg.position_embedding_type ..
        "': this model computes 'absolute'")
end
local d, eps = cfg.hidden_size, cfg.layer_norm_eps
local rows = {cfg.tokens}

local input_ids = dsc.input("input_ids", rows, "int32")
local token_type_ids = dsc.input("token_type_ids", rows, "int32")
local position_ids = dsc.input("position_ids", rows, "int32")  -- within its sentence
local lengths = dsc.input("lengths", {cfg.sentences}, "int32")

-- BertEmbeddings: word + token type + position, then LayerNorm.
local x = nn.embedding(input_ids, "embeddings.word_embeddings",
                       cfg.vocab_size, d)
x = x + nn.embedding(token_type_ids, "embeddings.token_type_embeddings",
                     cfg.type_vocab_size, d)
x = x + nn.embedding(position_ids, "embeddings.position_embeddings",
                     cfg.max_position_embeddings, d)
x = nn.layernorm(x, "embeddings.LayerNorm", d, eps)

-- BertLayer: self-attention, then the feed-forward block, each followed by
-- a residual add and LayerNorm.
local function bert_layer(x, p)
  local q = nn.linear(x, p .. ".attention.self.query", d, d)
  local k = nn.linear(x, p .. ".attention.self.key", d, d)
  local v = nn.linear(x, p .. ".attention.self.value", d, d)
  local a = dsc.masked_attention(q, k, v, lengths,
                                 {heads = cfg.num_attention_heads})
  a = nn.linear(a, p .. ".attention.output.dense", d, d)
  x = nn.layernorm(a + x, p .. ".attention.output.LayerNorm", d, eps)
  local h = dsc.gelu(nn.linear(x, p .. ".intermediate.dense", d,
                               cfg.intermediate_size))
  h = nn.linear(h, p .. ".output.dense", cfg.intermediate_size, d)
  return nn.layernorm(h + x, p .. ".output.LayerNorm", d, eps)
end

for i = 0, cfg.num_hidden_layers - 1 do
  x = bert_layer(x, "encoder.layer." .. i)
end

-- sentence-transformers' Pooling (mean over real tokens) and Normalize.
dsc.output("embeddings", dsc.l2_normalize(dsc.mean_pool(x, lengths)))
