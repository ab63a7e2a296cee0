local cfg = dsc.config{d = 8, heads = 2, causal = false, name = "q"}
local x = dsc.input("x", {3, 2, cfg.d})
local w = dsc.weight("in_proj_weight", {3 * cfg.d, cfg.d})
local function part(i)
  return dsc.linear(x, dsc.weight("in_proj_weight", {3 * cfg.d, cfg.d},
                                  {rows = {i * cfg.d, cfg.d}}))
end
local a = dsc.attention(part(0), part(1), part(2),
                        {heads = cfg.heads, causal = cfg.causal})
local y = dsc.gelu(dsc.linear(a, dsc.weight("o", {cfg.d, cfg.d})), {approximate = "tanh"}) + x
local g = dsc.weight("g", {cfg.d}, {init = "ones"})
local z = dsc.layernorm(y, g, dsc.weight("beta", {cfg.d}), {eps = 1e-6})
dsc.output("z", dsc.softmax(z))
dsc.output("t", x + x)
