-- expect: instruction budget
-- Each call pushes 200000 values in C: charged, the loop ends at the budget.
local t = {}
while true do -- error here
  local a = table.unpack(t, 1, 200000)
end
