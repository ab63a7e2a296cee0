-- expect: __gc is not allowed
-- A finalizer runs with the instruction hook off, on any allocation and
-- after the budget is spent: an endless loop there hangs dsc.
setmetatable({}, {__gc = function() while true do end end}) -- error here
