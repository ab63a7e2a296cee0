-- expect: __len
-- table.sort asks __len, which could answer the guard and the sort
-- differently.
local t = setmetatable({3, 2, 1}, {__len = function() return 3 end})
table.sort(t) -- error here
