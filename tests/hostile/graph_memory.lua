-- expect: out of memory
-- memory: 2000000
-- Every byte the graph keeps counts against the memory limit.
local x = dsc.input("x", {2, 4})
local k = ("k"):rep(240)
for i = 1, 1e9 do
  dsc.weight(k .. i, {4, 4}) -- error here
end
