-- expect: table.concat could take
-- table.concat to math.maxinteger over a table that answers every index.
local t = setmetatable({}, {__index = function() return "" end})
local s = table.concat(t, "", 1, math.maxinteger) -- error here
