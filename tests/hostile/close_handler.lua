-- expect: __close is not allowed
-- A to-be-closed variable's handler runs on scope exit and on errors.
do
  local x <close> = setmetatable({}, {__close = function() -- error here
    while true do end
  end})
end
