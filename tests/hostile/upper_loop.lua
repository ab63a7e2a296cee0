-- expect: instruction budget
-- Each call makes a 200 KB string in C: charged, the loop ends at the budget.
local s = ("x"):rep(200000)
while true do -- error here
  local u = s:upper() -- error here
  local l = s:lower() -- error here
  local r = s:reverse() -- error here
  local f = string.format("%s%s", s, "y") -- error here
end -- error here
