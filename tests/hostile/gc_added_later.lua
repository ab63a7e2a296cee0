-- expect: reached the end
-- __gc, __mode and __close added to a metatable after setmetatable: the
-- table has its own copy, so none of them ever takes effect.
local mt = {}
local objects, cache = {}, setmetatable({}, mt)
for i = 1, 1000 do objects[i] = setmetatable({}, mt) end
mt.__gc = function() while true do end end
mt.__mode = "k"
mt.__close = function() while true do end end
assert(getmetatable(objects[1]) == mt)
cache[{}] = true
objects = nil
-- Garbage enough for several collections: a weak key would be gone.
for i = 1, 200000 do local _ = {i} end
assert(next(cache) ~= nil, "__mode added later took effect")
assert(not pcall(function() local x <close> = setmetatable({}, mt) end))
error("reached the end") -- error here
