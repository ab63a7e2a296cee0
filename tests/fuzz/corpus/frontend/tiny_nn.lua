local tokens = dsc.input("tokens", {4, 2}, "int32")
local x = nn.embedding(tokens, "emb", 10, 8)
x = nn.transformer_encoder_layer(x, "layer", {d_model = 8, heads = 2, d_ff = 16})
assert(tostring(x):find(x.dtype, 1, true) and x.shape[1] == 4 and x.rank == 3 and x.name)
local s = ("%d"):format(#x.shape) .. string.rep("ab", 3, ",")
assert(s:find("b,a", 1, true) and s:match("(%d)a") and s:gsub("a", "c"))
for k in s:gmatch("%a+") do local _ = k end
local t = {3, 1, 2}; table.sort(t); table.insert(t, 1, 0); table.remove(t, 2)
dsc.output("logits", nn.linear(x, "fc", 8, 10))
