-- expect: string.gsub could take
-- A replacement of 100000 escapes expanded at each of 200001 empty
-- matches: 2e10 steps inside one C call (minutes), charged ahead.
local s = ("x"):rep(200000)
local r = ("%0"):rep(100000)
local out = s:gsub("", r) -- error here
