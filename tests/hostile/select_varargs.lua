-- expect: instruction budget
-- select over 10000 arguments, in a loop.
local function f(...)
  while true do -- error here
    local n = select("#", ...) -- error here
  end
end
f(table.unpack({}, 1, 10000))
