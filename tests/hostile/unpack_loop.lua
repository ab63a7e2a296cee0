-- expect: instruction budget
-- Each call pushes 20000 values in C: charged, the loop ends at the budget.
local t = {}
while true do -- error here
  local a = table.unpack(t, 1, 20000) -- error here
end
