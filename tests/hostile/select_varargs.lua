-- expect: instruction budget
-- select over 100000 arguments, in a loop.
local function f(...)
  while true do -- error here
    local n = select("#", ...)
  end
end
f(table.unpack({}, 1, 100000))
