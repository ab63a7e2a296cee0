-- expect: instruction budget
-- Each `..` copies 200 KB inside one VM instruction: the bytes allocated
-- are charged, the loop ends at the budget.
local s = ("x"):rep(100000)
while true do -- error here
  local t = s .. s -- error here
end -- error here
