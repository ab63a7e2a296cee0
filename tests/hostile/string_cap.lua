-- expect: is longer than the limit
-- Strings are capped: comparing or hashing one is work no hook sees.
local s = ("x"):rep(100000)
s = s .. s .. s -- error here
