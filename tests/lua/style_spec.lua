-- The Lua library stays short per function (issue 11: no function in lua/mbpo over 60 lines).
-- Functions are found by our layout: a line that starts a named function (`function f(`,
-- `local function f(`, `x = function(`) ends at the first later line with the same indent
-- that starts with `end`. Function literals inside an expression are counted in their parent.
local lfs = require "lfs"

local LIMIT = 60
local HEAD = {"^(%s*)local%s+function%s", "^(%s*)function%s", "^(%s*)[%w_.:%[%]\"]+%s*=%s*function%s*%(",
  "^(%s*)local%s+[%w_]+%s*=%s*function%s*%("}

-- {name = "file:line", lines = n} for each function of the text longer than limit
local function long_functions(text, name, limit)
  local lines, out = {}, {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  for i, l in ipairs(lines) do
    local indent
    for _, p in ipairs(HEAD) do indent = indent or l:match(p) end
    if indent and not l:match("%f[%w]end[%s,)]*$") then
      local j = i + 1
      while j <= #lines and not lines[j]:match("^" .. indent .. "end%f[^%w_]") do j = j + 1 end
      check(j <= #lines, "%s:%d: no `end` at the function's indent", name, i)
      if j - i + 1 > limit then out[#out + 1] = {name = name .. ":" .. i, lines = j - i + 1} end
    end
  end
  return out
end

local function lua_files(dir, out)
  for f in lfs.dir(dir) do
    local p = dir .. "/" .. f
    if f:sub(1, 1) ~= "." then
      if lfs.attributes(p, "mode") == "directory" then lua_files(p, out)
      elseif f:match("%.lua$") then out[#out + 1] = p end
    end
  end
  return out
end

describe("style", function()
  it("finds a long function and its length (the checker itself)", function()
    local body = {"local function f(x)"}
    for k = 1, 60 do body[#body + 1] = "  x = x + " .. k end
    body[#body + 1] = "end"
    body[#body + 1] = "local g = function(y) return y end"
    local long = long_functions(table.concat(body, "\n"), "t", LIMIT)
    eq(#long, 1)
    eq(long[1].name, "t:1")
    eq(long[1].lines, 62)
    eq(#long_functions(table.concat(body, "\n", 1, 59) .. "\nend", "t", LIMIT), 0)
  end)

  it("no function in lua/mbpo is over " .. LIMIT .. " lines", function()
    local files = lua_files(MBPO_ROOT .. "/lua/mbpo", {})
    check(#files >= 20, "found %d files", #files)
    local bad = {}
    for _, f in ipairs(files) do
      local fh = assert(io.open(f))
      local text = fh:read("a")
      fh:close()
      for _, l in ipairs(long_functions(text, f:sub(#MBPO_ROOT + 2), LIMIT)) do
        bad[#bad + 1] = l.name .. " (" .. l.lines .. " lines)"
      end
    end
    check(#bad == 0, "functions over %d lines: %s", LIMIT, table.concat(bad, ", "))
  end)
end)
