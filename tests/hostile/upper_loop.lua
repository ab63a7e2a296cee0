-- expect: instruction budget
-- Each call makes a 200 KB string in C: charged, the loop ends at the budget.
local s = ("x"):rep(200000)
while true do -- error here
  local u = s:upper()
  local l = s:lower()
  local r = s:reverse()
  local f = string.format("%s%s", s, "y")
end
