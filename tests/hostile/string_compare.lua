-- expect: CPU time limit
-- cpu: 1
-- Comparing two 250 KB strings of NUL bytes is ~2 ms inside one VM
-- instruction that nothing can charge ahead: the CPU-time limit stops it.
local a = ("\0"):rep(250000)
local b = ("\0"):rep(250000)
while true do -- error here
  local _ = a < b -- error here
end -- error here
