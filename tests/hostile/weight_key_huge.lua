-- expect: is longer than the limit of 256
-- Weight keys were copied with plain malloc, outside the memory cap: ten
-- 100 MB keys made 2.6 GB RSS.
local x = dsc.input("x", {2, 4})
local k = ("k"):rep(257)
local w = dsc.weight(k, {4, 4}) -- error here
dsc.output("y", dsc.linear(x, w))
