-- expect: reached the end
-- Options tables are read raw: an __index that calls the builder never
-- runs inside another builder call.
local x = dsc.input("x", {4, 2, 8})
local calls = 0
local opts = setmetatable({heads = 2}, {__index = function(t, k)
  calls = calls + 1
  for i = 1, 100 do dsc.input("n" .. calls .. "_" .. i, {1}) end
end})
local a = dsc.attention(x, x, x, opts)
assert(calls == 0)
error("reached the end") -- error here
