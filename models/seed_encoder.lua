-- The seed's DeepSeekModel (section 5.2):
--   nn.Embedding -> nn.TransformerEncoder(nn.TransformerEncoderLayer(
--   d_model, nhead=4), num_layers=2) -> nn.Linear to the vocabulary,
-- trained (dsc train) with nn.CrossEntropyLoss() against target = the
-- input tokens, as the seed's loop does.
-- batch_first=False, as in PyTorch's default: tokens are [seq, batch].

local cfg = dsc.config {
  vocab = 1000,    -- input_dim = output_dim = vocab_size
  d_model = 256,   -- hidden_dim
  heads = 4,       -- nhead
  layers = 2,      -- num_layers
  d_ff = 2048,     -- dim_feedforward (PyTorch's default)
  seq = 16,        -- positions: dimension 0 of the seed's (16, 20) input
  batch = 20,      -- sequences: dimension 1
  dropout = 0.1,   -- PyTorch's default; active in dsc train only
}

local tokens = dsc.input("tokens", {cfg.seq, cfg.batch}, "int32")

local x = nn.embedding(tokens, "embedding", cfg.vocab, cfg.d_model)
for i = 0, cfg.layers - 1 do
  x = nn.transformer_encoder_layer(x, "transformer_encoder.layers." .. i, {
    d_model = cfg.d_model, heads = cfg.heads, d_ff = cfg.d_ff,
    dropout = cfg.dropout,
  })
end
local logits = nn.linear(x, "fc", cfg.d_model, cfg.vocab)

dsc.output("logits", logits)
dsc.loss(dsc.cross_entropy(logits, tokens))
