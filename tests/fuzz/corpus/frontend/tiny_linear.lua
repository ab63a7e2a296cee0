local x = dsc.input("x", {2, 4})
local w = dsc.weight("w", {3, 4})
local b = dsc.weight("b", {3}, {init = "zeros"})
dsc.output("y", dsc.relu(dsc.linear(x, w, b)))
