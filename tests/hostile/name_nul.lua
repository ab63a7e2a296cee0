-- expect: NUL byte
local x = dsc.input("x\0y", {2, 4}) -- error here
dsc.output("y", x)
