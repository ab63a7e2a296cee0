-- C loops the instruction hook never saw
local x = dsc.input("x", {2})
pcall(string.rep, "", math.maxinteger)
pcall(table.move, {}, 1, math.maxinteger - 1, 2)
pcall(table.insert, setmetatable({}, {__len = function() return 1e15 end}), 1, 0)
table.remove(setmetatable({}, {__len = function() return 1e15 end}), 1)
dsc.output("y", dsc.relu(x))
