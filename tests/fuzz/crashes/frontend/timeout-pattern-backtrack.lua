-- string.find backtracked for years inside C, where the instruction hook
-- never fires (issue "Bad input never crashes dsc")
local x = dsc.input("x", {2})
string.find(("a"):rep(3000), ".-.-.-.-b")
dsc.output("y", dsc.relu(x))
