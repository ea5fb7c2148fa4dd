-- mbpo.test: a small spec runner for tests/lua/*_spec.lua, run inside the embedded
-- interpreter by `mbpo test`. A spec file calls the globals describe/it and the helpers
-- of this module (check, near, raises). The last line printed is "N passed, N failed".
local lfs = require "lfs"

local M = {}

local passed, failed, current = 0, 0, {}

-- file and process helpers shared by the specs (require "mbpo.test") -------------------

-- a new empty directory under the system's temporary directory
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(lfs.mkdir(p))
  return p
end

-- the whole text of a file, or nil when it cannot be read
function M.read(path) return (require("mbpo.io").read_text(path)) end

-- writes text to a file (raises on failure)
function M.write(path, text)
  local f = assert(io.open(path, "w"))
  assert(f:write(text))
  assert(f:close())
end

-- the path of this binary (the mbpo that runs the specs)
function M.exe()
  return lfs.symlinkattributes("/proc/self/exe", "target")
end

-- runs a shell command line; returns its exit code, stdout+stderr
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- runs this binary with args (a shell-quoted string) from the source root, with an optional
-- environment prefix ("MBPO_THREADS=1"); returns exit code, stdout+stderr
function M.mbpo(args, envs)
  return M.sh(string.format("cd %q && %s %q %s", MBPO_ROOT or ".", envs or "", M.exe(), args))
end

-- progress.csv without the time_* columns, as text (what must match between runs)
function M.csv_without_timing(path)
  local header, rows = require("mbpo.log").read_csv(path)
  assert(header, "no csv at " .. path)
  local keep = {}
  for _, c in ipairs(header) do if not c:match("^time_") then keep[#keep + 1] = c end end
  local lines = {table.concat(keep, ",")}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(keep) do cells[i] = tostring(r[c]) end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  return table.concat(lines, "\n") .. "\n", #rows
end

-- a rows x cols Lua matrix of uniform values in [-a, a] drawn from the mbpo.rng generator g
function M.randmat(g, rows, cols, a)
  local m = {}
  for i = 1, rows do
    m[i] = {}
    for j = 1, cols do m[i][j] = g:uniform(-a, a) end
  end
  return m
end

-- the Lua arrays a and b have the same length and equal elements (what names them)
function M.same_list(a, b, what)
  M.eq(#a, #b, what .. " length")
  for i = 1, #b do M.eq(a[i], b[i], what .. "[" .. i .. "]") end
end

-- assertion helpers, exported as globals inside spec files ------------------------------

-- check(cond, fmt, ...): fails the current test with the formatted message
function M.check(cond, fmt, ...)
  if not cond then
    error(string.format(fmt or "check failed", ...), 2)
  end
  return cond
end

-- eq(a, b [, what])
function M.eq(a, b, what)
  if a ~= b then
    error(string.format("%s: expected %s, got %s", what or "eq", tostring(b), tostring(a)), 2)
  end
end

-- near(a, b, tol [, what]): |a - b| <= tol * max(1, |b|) (relative past 1, absolute below)
function M.near(a, b, tol, what)
  tol = tol or 1e-6
  local scale = math.max(1, math.abs(b))
  if not (math.abs(a - b) <= tol * scale) then
    error(string.format("%s: expected %.9g, got %.9g (tol %g)", what or "near", b, a, tol), 2)
  end
end

-- raises(f, pattern): f must raise an error whose message contains pattern (plain text)
function M.raises(f, pattern, ...)
  local ok, err = pcall(f, ...)
  if ok then error("expected an error matching '" .. pattern .. "', got none", 2) end
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    error("expected an error containing '" .. pattern .. "', got: " .. err, 2)
  end
  return err
end

local function describe(name, body)
  current[#current + 1] = name
  body()
  current[#current] = nil
end

local function it(name, body)
  local full = table.concat(current, " ") .. " " .. name
  local ok, err = xpcall(body, debug.traceback)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    io.write("FAIL ", full, "\n  ", tostring(err):gsub("\n", "\n  "), "\n")
  end
end

local function spec_files(dir)
  local files = {}
  if lfs.attributes(dir, "mode") ~= "directory" then return files end
  for f in lfs.dir(dir) do
    if f:match("_spec%.lua$") then files[#files + 1] = dir .. "/" .. f end
  end
  table.sort(files)
  return files
end

function M.main(args)
  local files = {}
  for _, a in ipairs(args) do
    if lfs.attributes(a, "mode") == "directory" then
      for _, f in ipairs(spec_files(a)) do files[#files + 1] = f end
    else
      files[#files + 1] = a
    end
  end
  if #files == 0 then files = spec_files((MBPO_ROOT or ".") .. "/tests/lua") end
  if #files == 0 then
    io.stderr:write("mbpo test: no spec files found\n")
    return 1
  end
  local env_base = {describe = describe, it = it, check = M.check, eq = M.eq, near = M.near,
                    raises = M.raises}
  for _, f in ipairs(files) do
    local env = setmetatable({}, {__index = function(_, k)
      local v = env_base[k]
      if v ~= nil then return v end
      return _G[k]
    end})
    local chunk, err = loadfile(f, "t", env)
    if not chunk then
      failed = failed + 1
      io.write("FAIL ", f, ": ", err, "\n")
    else
      current = {f:match("([^/]+)_spec%.lua$")}
      local t0 = os.clock()
      local before_p, before_f = passed, failed
      local ok, e = xpcall(chunk, debug.traceback)
      if not ok then
        failed = failed + 1
        io.write("FAIL ", f, " (outside a test): ", tostring(e), "\n")
      end
      io.write(string.format("  %-40s %3d passed, %d failed (%.1fs)\n", f:match("[^/]+$"),
        passed - before_p, failed - before_f, os.clock() - t0))
    end
  end
  io.write(string.format("%d passed, %d failed\n", passed, failed))
  return failed == 0 and 0 or 1
end

return M
