local ok, e = pcall(dsc.linear, dsc.input("x", {2, 3}), dsc.weight("w", {4, 5}))
assert(not ok)
local x = dsc.input("y", {1})
dsc.output("o", dsc.add(x, x))
