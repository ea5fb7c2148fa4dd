-- The Lua library stays short per function (issue 11: no function in lua/mbpo over 60 lines).
-- Functions are found by our layout: a line that starts a named function (`function f(`,
-- `local function f(`, `x = function(`) ends at the first later line with the same indent
-- that starts with `end`. Function literals inside an expression are counted in their parent.
-- Our C and Lua sources keep within 100 columns (STYLE.md), counted in bytes.
local lfs = require "lfs"
local th = require "mbpo.test"

local LIMIT = 60
local HEAD = {"^(%s*)local%s+function%s", "^(%s*)function%s",
  "^(%s*)[%w_.:%[%]\"]+%s*=%s*function%s*%(", "^(%s*)local%s+[%w_]+%s*=%s*function%s*%("}

local COLUMNS = 100
-- the sources the column limit covers: directory, file pattern, whether subdirectories count
local SOURCES = {
  {"src", "%.[ch]$", true}, {"include", "%.h$", true}, {"lua", "%.lua$", true},
  {"tests/c", "%.[ch]$", false}, {"tests/lua", "%.lua$", true}, {"tests/fuzz", "%.[ch]$", false},
  {"tools", "%.c$", false}, {"tools", "%.lua$", false}, {"scripts", "%.lua$", false},
  {"examples", "%.lua$", true},
}
-- vendored third-party code keeps its own style (none in the tree today)
local VENDORED = {vendor = true, third_party = true, thirdparty = true, ["3rdparty"] = true}

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

-- {name = "file:line", length = bytes} for each line of the text longer than limit bytes
local function long_lines(text, name, limit)
  local out, i = {}, 0
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    i = i + 1
    if #l > limit then out[#out + 1] = {name = name .. ":" .. i, length = #l} end
  end
  return out
end

-- the files under dir whose names match pattern, in subdirectories too when deep (sorted)
local function source_files(dir, pattern, deep, out)
  local names = {}
  for f in lfs.dir(dir) do names[#names + 1] = f end
  table.sort(names)
  for _, f in ipairs(names) do
    local p = dir .. "/" .. f
    if f:sub(1, 1) ~= "." and not VENDORED[f] then
      if lfs.attributes(p, "mode") == "directory" then
        if deep then source_files(p, pattern, deep, out) end
      elseif f:match(pattern) then out[#out + 1] = p end
    end
  end
  return out
end

local function read(path) return assert(th.read(path), path) end

describe("style: function length", function()
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
    local files = source_files(MBPO_ROOT .. "/lua/mbpo", "%.lua$", true, {})
    check(#files >= 20, "found %d files", #files)
    local bad = {}
    for _, f in ipairs(files) do
      for _, l in ipairs(long_functions(read(f), f:sub(#MBPO_ROOT + 2), LIMIT)) do
        bad[#bad + 1] = l.name .. " (" .. l.lines .. " lines)"
      end
    end
    check(#bad == 0, "functions over %d lines: %s", LIMIT, table.concat(bad, ", "))
  end)
end)

describe("style: columns", function()
  it("finds the lines over the column limit and their lengths (the checker itself)", function()
    local text = table.concat({"-- ok", ("x"):rep(COLUMNS), ("y"):rep(COLUMNS + 1), "",
      ("z"):rep(150)}, "\n")
    local long = long_lines(text, "t.c", COLUMNS)
    eq(#long, 2)
    eq(long[1].name, "t.c:3"); eq(long[1].length, COLUMNS + 1)
    eq(long[2].name, "t.c:5"); eq(long[2].length, 150)
    eq(#long_lines(text .. "\n", "t.c", 150), 0, "a line of exactly the limit passes")
    eq(#long_lines("", "t.c", COLUMNS), 0)
    -- the file lists honour the pattern and the depth, and skip vendored directories
    local d = th.tmpdir()
    for _, sub in ipairs{"sub", "vendor", "third_party"} do assert(lfs.mkdir(d .. "/" .. sub)) end
    for _, f in ipairs{"a.c", "a.lua", "sub/b.c", "vendor/v.c", "third_party/t.c"} do
      th.write(d .. "/" .. f, text)
    end
    th.same_list(source_files(d, "%.c$", true, {}), {d .. "/a.c", d .. "/sub/b.c"}, "deep")
    th.same_list(source_files(d, "%.c$", false, {}), {d .. "/a.c"}, "shallow")
    eq(#long_lines(read(d .. "/sub/b.c"), "b.c", COLUMNS), 2)
    os.execute(string.format("rm -rf %q", d))
  end)

  it("no line of our C and Lua sources is over " .. COLUMNS .. " columns", function()
    local bad, n = {}, 0
    for _, s in ipairs(SOURCES) do
      for _, f in ipairs(source_files(MBPO_ROOT .. "/" .. s[1], s[2], s[3], {})) do
        n = n + 1
        for _, l in ipairs(long_lines(read(f), f:sub(#MBPO_ROOT + 2), COLUMNS)) do
          bad[#bad + 1] = l.name .. " (" .. l.length .. ")"
        end
      end
    end
    check(n >= 100, "found only %d source files", n)
    check(#bad == 0, "%d lines over %d columns: %s", #bad, COLUMNS, table.concat(bad, ", "))
  end)
end)
