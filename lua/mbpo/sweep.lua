-- mbpo.sweep: `mbpo sweep SCRIPT.lua [SCRIPT.lua ...] seed=1-5 [key=v1,v2 ...] --out DIR [-j N]`.
-- Expands the grid (scripts x settings x seeds), writes DIR/sweep.lua (the cells, each with its
-- command and run directory) and runs the cells N at a time on this machine, or as a Slurm job
-- array (--slurm). Every cell is resume-or-start (`mbpo sweep --cell DIR N`): a cell marked DONE
-- is skipped, a cell with a checkpoint or a config.lua is resumed (`mbpo run --resume` starts a
-- run killed before its first checkpoint again, keeping its log), anything else is started
-- from scratch.
-- `mbpo sweep --status DIR` prints one line per cell and a summary.
local lfs = require "lfs"
local config = require "mbpo.config"

local M = {}

local function die(msg)
  io.stderr:write("mbpo: sweep: ", msg, "\n")
  return 1
end

local function usage(msg) return require("mbpo.cli").usage("sweep: " .. msg) end

local function exe()
  return lfs.symlinkattributes("/proc/self/exe", "target") or MBPO_ARGV[0]
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return lfs.currentdir() .. "/" .. p
end

local function read(path) return (require("mbpo.io").read_text(path)) end

local function write(path, s)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(s)
  f:close()
  return true
end

local function mkdir_p(path)
  local acc = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not lfs.attributes(acc) then
      local ok, err = lfs.mkdir(acc)
      if not ok then return nil, err end
    end
  end
  return true
end

local function ncores()
  local p = io.popen("nproc 2>/dev/null")
  local n = p and tonumber(p:read("a"):match("%d+"))
  if p then p:close() end
  return n or 1
end

-- seed=1-5 or seed=1,3,7; other keys: v1,v2,...
local function parse_values(key, spec)
  local vals = {}
  if key == "seed" then
    for part in spec:gmatch("[^,]+") do
      local a, b = part:match("^(%-?%d+)%-(%-?%d+)$")
      if a then
        a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
        if b < a then return nil, "empty range seed=" .. part end
        for s = a, b do vals[#vals + 1] = tostring(s) end
      elseif part:match("^%-?%d+$") then vals[#vals + 1] = part
      else
        return nil, "bad seed value '" .. part .. "' in seed=" .. spec .. " (expected 1-5 or 1,2,3)"
      end
    end
  else
    for part in (spec .. ","):gmatch("([^,]*),") do
      if part == "" then return nil, "empty value in " .. key .. "=" .. spec end
      vals[#vals + 1] = part
    end
  end
  if #vals == 0 then return nil, "no values in " .. key .. "=" .. spec end
  return vals
end

local function parse_args(args)
  local o = {scripts = {}, keys = {}, values = {}, jobs = 1}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--out" or a == "--status" or a == "--sbatch" or a == "-j" then
      local v = args[i + 1]
      if not v then return nil, a .. " needs a value" end
      if a == "-j" then
        o.jobs = math.tointeger(tonumber(v))
        if not o.jobs or o.jobs < 1 then
          return nil, "-j needs a positive integer, got '" .. v .. "'"
        end
      else o[a:sub(3)] = v end
      i = i + 2
    elseif a == "--slurm" then o.slurm = true; i = i + 1
    elseif a == "--cell" then
      o.cell_dir, o.cell = args[i + 1], math.tointeger(tonumber(args[i + 2] or ""))
      if not o.cell_dir or not o.cell then return nil, "--cell needs DIR and a cell number" end
      i = i + 3
    elseif a:match("^%-") then return nil, "unknown option '" .. a .. "'"
    elseif a:find("=", 1, true) then
      local k, v = a:match("^([%a_][%w_%.]*)=(.*)$")
      if not k then return nil, "bad grid entry '" .. a .. "' (expected key=v1,v2)" end
      if o.values[k] then return nil, "key " .. k .. " given twice" end
      local vals, err = parse_values(k, v)
      if not vals then return nil, err, true end
      o.keys[#o.keys + 1] = k
      o.values[k] = vals
      i = i + 1
    else o.scripts[#o.scripts + 1] = a; i = i + 1 end
  end
  return o
end

local function safe(s) return (tostring(s):gsub("[^%w%._%-=]", "_")) end

-- the cells: scripts x settings (keys other than seed, in the order given) x seeds
local function expand(o)
  local settings = {{}}
  for _, k in ipairs(o.keys) do
    if k ~= "seed" then
      local nxt = {}
      for _, s in ipairs(settings) do
        for _, v in ipairs(o.values[k]) do
          local c = {}
          for j, kv in ipairs(s) do c[j] = kv end
          c[#c + 1] = {k, v}
          nxt[#nxt + 1] = c
        end
      end
      settings = nxt
    end
  end
  local cells = {}
  for _, script in ipairs(o.scripts) do
    local name = script:match("([^/]+)%.lua$") or "run"
    for _, s in ipairs(settings) do
      local tag = name
      for _, kv in ipairs(s) do tag = tag .. "-" .. kv[1] .. "=" .. kv[2] end
      for _, seed in ipairs(o.values.seed) do
        local c = {script = abspath(script), overrides = {}, seed = tonumber(seed),
          group = safe(tag)}
        for _, kv in ipairs(s) do c.overrides[#c.overrides + 1] = kv[1] .. "=" .. kv[2] end
        c.overrides[#c.overrides + 1] = "seed=" .. seed
        c.name = string.format("%03d-%s-seed=%s", #cells + 1, safe(tag), seed)
        cells[#cells + 1] = c
      end
    end
  end
  return cells
end

-- resolves a cell's config the way `mbpo run` does; nil, message on a bad key or value
local function validate(c)
  local flat, order = {}, {}
  for _, kv in ipairs(c.overrides) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    flat[k] = v; order[#order + 1] = k
  end
  local chunk, err = loadfile(c.script)
  if not chunk then return nil, (err:gsub("^cannot open (%S+)", "cannot open script %1")) end
  local ok, res = xpcall(chunk, MBPO_MSGHANDLER, flat)
  if not ok then return nil, (tostring(res):match("^[^\n]*")) end
  if type(res) ~= "table" then return nil, c.script .. " must return a config table" end
  local cfg, cerr = require("mbpo.run").resolve(res, flat, order)
  if not cfg then return nil, cerr end
  return true
end

-- DIR/sweep.lua: identity of the grid + the cells
local function sweep_text(grid, cells, threads)
  local out = {
    "-- mbpo sweep: the cells of this sweep (written by mbpo sweep; do not edit)\nreturn {\n",
    "  grid = ", string.format("%q", grid), ",\n  threads = ", tostring(threads),
    ",\n  cells = {\n"}
  for i, c in ipairs(cells) do
    local ov = {}
    for j, kv in ipairs(c.overrides) do ov[j] = string.format("%q", kv) end
    out[#out + 1] = string.format(
      "    {name = %q, group = %q, seed = %d, script = %q, overrides = {%s}, dir = %q,\n" ..
      "     command = %q},\n", c.name, c.group, c.seed, c.script, table.concat(ov, ", "), c.dir,
      c.command)
  end
  out[#out + 1] = "  },\n}\n"
  return table.concat(out)
end

-- sweep.lua is data: loaded in the sandbox of config.lua files (no io, os, require, load)
function M.load(dir)
  local ok, s = require("mbpo.config").load_sandboxed(dir .. "/sweep.lua")
  if not ok then return nil, s end
  if type(s) ~= "table" or type(s.cells) ~= "table" then
    return nil, dir .. "/sweep.lua is not a sweep file"
  end
  return s
end

local function logpath(dir, c) return dir .. "/logs/" .. c.name .. ".log" end

local function hostname()
  local h = read("/proc/sys/kernel/hostname") or ""
  return (h:gsub("%s+$", ""))
end

-- resume-or-start of cell n (in this process); returns the run's exit code
local function run_cell(dir, n)
  dir = abspath(dir:gsub("/+$", ""))
  local s, err = M.load(dir)
  if not s then return die(err) end
  local c = s.cells[n]
  if not c then return die("no cell " .. n .. " in " .. dir .. " (" .. #s.cells .. " cells)") end
  if lfs.attributes(c.dir .. "/DONE") then return 0 end
  local args
  if require("mbpo.checkpoint").find(c.dir) or lfs.attributes(c.dir .. "/config.lua") then
    args = {"--resume", c.dir}
  else
    if lfs.attributes(c.dir) then os.execute("rm -rf " .. q(c.dir)) end
    args = {c.script}
    for _, kv in ipairs(c.overrides) do args[#args + 1] = kv end
    args[#args + 1] = "--out"; args[#args + 1] = c.dir
  end
  io.stderr:write("mbpo sweep: cell ", n, " ", c.name, ": mbpo run ", table.concat(args, " "), "\n")
  local core = require "mbpo.core"
  os.remove(dir .. "/logs/" .. c.name .. ".rc")
  write(dir .. "/logs/" .. c.name .. ".pid",
    string.format("%d %s\n", core.getpid and core.getpid() or 0, hostname()))
  local rc = require("mbpo.run").main(args)
  if rc == 0 then write(c.dir .. "/DONE", os.date("!%Y-%m-%dT%H:%M:%SZ") .. "\n") end
  write(dir .. "/logs/" .. c.name .. ".rc", rc .. "\n")
  return rc
end

local function cell_state(dir, c)
  if lfs.attributes(c.dir .. "/DONE") then return "done" end
  local rc = read(dir .. "/logs/" .. c.name .. ".rc")
  if rc and rc:match("%d") then
    if tonumber(rc:match("%d+")) ~= 0 then return "failed" end
    return "done"
  end
  -- "PID HOST" written by the cell's process; a live process on this host is running, one on
  -- another host (a Slurm node) is taken as running until its exit code is written
  local pid = read(dir .. "/logs/" .. c.name .. ".pid") or ""
  local p, host = pid:match("^(%d+)%s*(%S*)")
  if p then
    if host ~= "" and host ~= hostname() then return "running" end
    local st = read("/proc/" .. p .. "/stat") or ""
    local state = st:match("^%d+ %b() (%a)")
    if state and state ~= "Z" and state ~= "X" then return "running" end
  end
  return "pending"
end

local function last_error(dir, c)
  local log = read(logpath(dir, c)) or ""
  local last
  for line in log:gmatch("[^\n]+") do
    if line:match("^mbpo:") then last = line end
  end
  return last
end

function M.status(dir)
  dir = dir:gsub("/+$", "")
  local s, err = M.load(dir)
  if not s then return die("cannot read sweep: " .. tostring(err)) end
  local log = require "mbpo.log"
  local count = {pending = 0, running = 0, done = 0, failed = 0}
  for i, c in ipairs(s.cells) do
    local state = cell_state(dir, c)
    count[state] = count[state] + 1
    local epoch, ret = "-", "-"
    local header, rows = nil, nil
    if lfs.attributes(c.dir .. "/progress.csv") then
      header, rows = log.read_csv(c.dir .. "/progress.csv")
    end
    if header and rows and #rows > 0 then
      epoch = tostring(rows[#rows].epoch)
      local r = rows[#rows].eval_return
      ret = type(r) == "number" and string.format("%.2f", r) or tostring(r)
    end
    local line = string.format("%3d %-40s epoch %-5s eval_return %-10s %s",
      i, c.name, epoch, ret, state)
    if state == "failed" then
      line = line .. ": " .. (last_error(dir, c) or "(no error line in log)")
    end
    print(line)
  end
  print(string.format("%d cells: %d done, %d running, %d pending, %d failed", #s.cells, count.done,
    count.running, count.pending, count.failed))
  return count.failed > 0 and 1 or 0
end

-- runs the cells N at a time on this machine; each cell is `mbpo sweep --cell DIR N`
local function run_local(dir, s, jobs)
  local todo = {}
  for i, c in ipairs(s.cells) do
    if not lfs.attributes(c.dir .. "/DONE") then todo[#todo + 1] = i end
  end
  local running, failed, nextk = {}, 0, 1
  local nrun = 0
  while nextk <= #todo or nrun > 0 do
    while nrun < jobs and nextk <= #todo do
      local i = todo[nextk]; nextk = nextk + 1
      local c = s.cells[i]
      local rcf = dir .. "/logs/" .. c.name .. ".rc"
      os.remove(rcf)
      local cmd = string.format(
        "(MBPO_THREADS=%d %s sweep --cell %s %d >>%s 2>&1 & echo $! >%s; wait $!; " ..
        "echo $? >%s.tmp; mv %s.tmp %s) &", s.threads, q(exe()), q(dir), i, q(logpath(dir, c)),
        q(dir .. "/logs/" .. c.name .. ".pid"), q(rcf), q(rcf), q(rcf))
      os.execute(cmd)
      running[i] = true; nrun = nrun + 1
    end
    os.execute("sleep 0.2")
    for i in pairs(running) do
      local c = s.cells[i]
      local rc = read(dir .. "/logs/" .. c.name .. ".rc")
      if rc and rc:match("%d") then
        running[i] = nil; nrun = nrun - 1
        local code = tonumber(rc:match("%d+"))
        if code ~= 0 then
          failed = failed + 1
          io.stderr:write("mbpo: sweep: cell ", c.name, " failed (exit ", code, "): ",
            last_error(dir, c) or "see " .. logpath(dir, c), "\n")
        else
          print("done " .. c.name)
        end
      end
    end
  end
  if failed > 0 then
    return die(failed .. " of " .. #s.cells .. " cells failed; mbpo sweep --status " .. dir)
  end
  print(string.format("sweep %s: %d cells done", dir, #s.cells))
  return 0
end

local function sbatch_text(dir, s, opts)
  local lines = {"#!/bin/bash",
    "#SBATCH --job-name=mbpo-sweep",
    string.format("#SBATCH --array=1-%d", #s.cells),
    string.format("#SBATCH --cpus-per-task=%d", s.threads),
    "#SBATCH --requeue",
    "#SBATCH --open-mode=append",
    "#SBATCH --signal=B:TERM@120",
    string.format("#SBATCH --output=%s/logs/slurm-%%A_%%a.out", dir),
    "# each task resumes or starts its cell; a requeued task continues from the checkpoint",
    string.format("export MBPO_THREADS=%d", s.threads),
    "CELL=$SLURM_ARRAY_TASK_ID",
    string.format("LOG=$(sed -n \"${CELL}p\" %s/logs/cells.txt)", q(dir)),
    string.format("%s sweep --cell %s \"$CELL\" >>\"$LOG\" 2>&1 &", q(exe()), q(dir)),
    "child=$!",
    "trap 'kill -TERM $child 2>/dev/null' TERM",
    "wait $child; rc=$?",
    "if kill -0 $child 2>/dev/null; then wait $child; rc=$?; fi",
    "exit $rc", ""}
  return table.concat(lines, "\n")
end

local function submit_slurm(dir, s, opts)
  local cells = {}
  for i, c in ipairs(s.cells) do cells[i] = logpath(dir, c) end
  write(dir .. "/logs/cells.txt", table.concat(cells, "\n") .. "\n")
  local path = dir .. "/sweep.sbatch"
  local ok, err = write(path, sbatch_text(dir, s, opts))
  if not ok then return die("cannot write " .. path .. ": " .. tostring(err)) end
  local p = io.popen(string.format("sbatch --parsable %s %s 2>&1; echo \"rc=$?\"",
    opts or "", q(path)))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  out = out:gsub("rc=%d+%s*$", ""):gsub("%s+$", "")
  if rc ~= 0 then return die("sbatch failed: " .. out) end
  write(dir .. "/slurm_job", out .. "\n")
  print(string.format("submitted job array %s (%d cells): follow with mbpo sweep --status %s",
    out, #s.cells, dir))
  return 0
end

-- mbpo plot DIR on a sweep: one figure per script and setting (mean and min-max over the seeds
-- that have a progress.csv), DIR/curve-GROUP.png; returns the files written or nil, message
function M.plot(dir, ext)
  dir = dir:gsub("/+$", "")
  local s, err = M.load(dir)
  if not s then return nil, err end
  local groups, order = {}, {}
  for _, c in ipairs(s.cells) do
    if lfs.attributes(c.dir .. "/progress.csv") then
      if not groups[c.group] then groups[c.group] = {}; order[#order + 1] = c.group end
      table.insert(groups[c.group], c.dir)
    end
  end
  if #order == 0 then return nil, "no cell of " .. dir .. " has a progress.csv yet" end
  local files = {}
  for _, g in ipairs(order) do
    local f, perr = require("mbpo.plot").plot(groups[g],
      dir .. "/curve-" .. g .. "." .. (ext or "png"), string.format("%s (%d seeds)", g, #groups[g]))
    if not f then return nil, perr end
    files[#files + 1] = f
  end
  return files
end

-- the grid's identity: scripts, keys and values (not -j, --slurm)
local function grid_identity(o)
  local gparts = {}
  for _, sc in ipairs(o.scripts) do gparts[#gparts + 1] = abspath(sc) end
  for _, k in ipairs(o.keys) do gparts[#gparts + 1] = k .. "=" .. table.concat(o.values[k], ",") end
  return table.concat(gparts, " ")
end

-- MBPO_THREADS of each cell: the cores shared by -j cells; under Slurm, its --cpus-per-task or 1
local function cell_threads(o)
  local threads = math.max(1, ncores() // (o.slurm and 1 or o.jobs))
  if o.slurm then
    threads = 1
    for w in (o.sbatch or ""):gmatch("%-%-cpus%-per%-task=(%d+)") do threads = tonumber(w) end
  end
  return threads
end

function M.main(args)
  local o, err, bad_value = parse_args(args)
  if not o then return bad_value and die(err) or usage(err) end
  if o.cell then return run_cell(o.cell_dir, o.cell) end
  if o.status then return M.status(o.status) end
  if #o.scripts == 0 then return usage("missing SCRIPT.lua") end
  if not o.out then return usage("missing --out DIR") end
  if not o.values.seed then return usage("missing seed=RANGE (e.g. seed=1-5)") end
  for _, sc in ipairs(o.scripts) do
    if not lfs.attributes(sc, "mode") then return die("cannot open script " .. sc) end
  end
  if o.slurm then
    local ok = os.execute("command -v sbatch >/dev/null 2>&1")
    if not ok then return die("--slurm: sbatch not found in PATH (is Slurm installed?)") end
  elseif o.sbatch then return usage("--sbatch needs --slurm") end
  local dir = abspath(o.out:gsub("/+$", ""))
  local cells = expand(o)
  for _, c in ipairs(cells) do
    c.dir = dir .. "/" .. c.name
    local ok, verr = validate(c)
    if not ok then return die("cell " .. c.name .. ": " .. verr) end
  end
  local grid, threads = grid_identity(o), cell_threads(o)
  local s
  if lfs.attributes(dir .. "/sweep.lua") then
    local old, lerr = M.load(dir)
    if not old then return die("cannot read existing sweep: " .. tostring(lerr)) end
    if old.grid ~= grid then
      return die("directory " .. dir .. " holds another sweep (" .. tostring(old.grid) ..
        "); use another --out")
    end
    s = old -- keeps its threads: results are bit-identical only for a fixed MBPO_THREADS
  else
    if lfs.attributes(dir) then
      for f in lfs.dir(dir) do
        if f ~= "." and f ~= ".." then
          return die("directory " .. dir .. " exists and is not a sweep; use another --out")
        end
      end
    end
    local okd, derr = mkdir_p(dir .. "/logs")
    if not okd then return die("cannot create " .. dir .. ": " .. tostring(derr)) end
    for _, c in ipairs(cells) do
      local a = {"mbpo", "run", c.script}
      for _, kv in ipairs(c.overrides) do a[#a + 1] = kv end
      a[#a + 1] = "--out"; a[#a + 1] = c.dir
      c.command = string.format("MBPO_THREADS=%d %s", threads, table.concat(a, " "))
    end
    local ok, werr = write(dir .. "/sweep.lua", sweep_text(grid, cells, threads))
    if not ok then return die("cannot write " .. dir .. "/sweep.lua: " .. tostring(werr)) end
    s = M.load(dir)
  end
  mkdir_p(dir .. "/logs")
  if o.slurm then return submit_slurm(dir, s, o.sbatch) end
  return run_local(dir, s, o.jobs)
end

return M
