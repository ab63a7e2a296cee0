-- expect: __mode is not allowed
-- Chains through ephemeron tables make the collector's work quadratic.
local tables = {}
for i = 1, 10000 do
  tables[i] = setmetatable({}, {__mode = "k"}) -- error here
end
