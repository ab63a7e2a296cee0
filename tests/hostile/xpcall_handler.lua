-- expect: instruction budget
-- xpcall's handler runs inside the budget hook (hook off) once the budget
-- runs out: an endless handler hung dsc.
while true do -- error here
  xpcall(function() while true do end end, function(e) while true do end end) -- error here
end
