-- expect: reached the end
-- __gc, __mode and __close added to a metatable after setmetatable: the
-- table has its own copy, so none of them ever runs.
local mt = {}
local objects = {}
for i = 1, 1000 do objects[i] = setmetatable({}, mt) end
mt.__gc = function() while true do end end
mt.__mode = "k"
mt.__close = function() while true do end end
assert(getmetatable(objects[1]) == mt)
objects = nil
local junk = {}
for i = 1, 20000 do junk[i % 100 + 1] = {i, tostring(i)} end
error("reached the end") -- error here
