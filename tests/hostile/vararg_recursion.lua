-- expect: out of memory
-- Each call copies all the arguments and adds one: the stack grows until
-- its block is refused.
local function g(...) return g(1, ...) end -- error here
g() -- error here
