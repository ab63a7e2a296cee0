-- expect: __gc is not allowed
-- A finalizer that calls the builder while another builder call holds a
-- pointer into the graph's arrays (use-after-free before the sandbox
-- refused finalizers).
local n = 0
local function bomb()
  setmetatable({}, {__gc = function() -- error here
    n = n + 1
    for i = 1, 50 do dsc.input("gc" .. n .. "_" .. i, {4}) end
  end})
end
for i = 1, 1000 do bomb() end
local x = dsc.input("x", {2, 8})
for i = 1, 200 do x = dsc.relu(x) end
dsc.output("y", x)
