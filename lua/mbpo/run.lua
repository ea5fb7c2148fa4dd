-- mbpo.run: `mbpo run SCRIPT.lua [key=value ...] [--out DIR] [--resume DIR]`.
-- A script returns a config table (merged over mbpo.train's defaults, every key and type
-- checked), or runs its own loop and returns nothing. Overrides from the command line are
-- applied on top. The resolved config is written to the run directory as config.lua, which
-- is itself a script that can be run again. --resume continues a run from its checkpoint.
local config = require "mbpo.config"
local lfs = require "lfs"

local M = {}

local function die(msg)
  io.stderr:write("mbpo: ", msg, "\n")
  return 1
end

-- creates path and its missing parents; returns true and the topmost directory it created
-- (nil when path existed), or nil, message
local function mkdir_p(path)
  local acc = path:sub(1, 1) == "/" and "" or "."
  local first
  for part in path:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not lfs.attributes(acc) then
      local ok, err = lfs.mkdir(acc)
      if not ok then return nil, err end
      first = first or acc
    end
  end
  return true, first
end

-- the keys a --resume may change: they alter no state a checkpoint holds (network sizes, the
-- task, capacities and the other settings stay those the run was made with)
M.resume_keys = {epochs = true, stop_return = true, threads = true, ["eval.episodes"] = true,
  ["eval.every"] = true, ["log.quiet"] = true, ["log.plot"] = true, ["model.max_seconds"] = true,
  ["video.every"] = true, ["video.episodes"] = true, ["video.width"] = true,
  ["video.height"] = true, ["video.camera"] = true}

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function get(cfg, key)
  for p in key:gmatch("[^%.]+") do
    if type(cfg) ~= "table" then return nil end
    cfg = cfg[p]
  end
  return cfg
end

local function show(v)
  if type(v) == "table" then
    local p = {}
    for i, x in ipairs(v) do p[i] = tostring(x) end
    if #p > 0 then return "{" .. table.concat(p, ",") .. "}" end
  end
  return tostring(v)
end

-- nil, or one line: the first override of a --resume that changes a key not in resume_keys
local function resume_refusal(base, cfg, order)
  for _, key in ipairs(order) do
    if not M.resume_keys[key] and not same(get(base, key), get(cfg, key)) then
      local allowed = {}
      for k in pairs(M.resume_keys) do allowed[#allowed + 1] = k end
      table.sort(allowed)
      return string.format("cannot resume with %s=%s: the run was made with %s = %s, and a " ..
        "resume keeps it (network sizes, the task, capacities and the loop's settings are " ..
        "those of the checkpoint; a resume may change only %s); start a new run with --out " ..
        "for other values", key, show(get(cfg, key)), key, show(get(base, key)),
        table.concat(allowed, ", "))
    end
  end
end

-- the leading comment lines of a file ("" when none)
local function header_of(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local lines = {}
  for line in f:lines() do
    local c = line:match("^%-%- ?(.*)$")
    if not c then break end
    lines[#lines + 1] = c
  end
  f:close()
  return table.concat(lines, "\n")
end

-- after a fresh run failed before its first checkpoint: remove what this command created (the
-- directory it made, or, in a directory that was empty, the files the run writes)
local function clean_failed(dir, created)
  if require("mbpo.checkpoint").find(dir) then return false end
  if created then
    require("mbpo.checkpoint").rmtree(created)
  else
    for _, f in ipairs({"config.lua", "progress.csv", "progress.csv.tmp", "log.txt", ".lock",
        "curve.png"}) do os.remove(dir .. "/" .. f) end
    for _, d in ipairs({"checkpoint", "checkpoint.tmp", "checkpoint.old"}) do
      require("mbpo.checkpoint").rmtree(dir .. "/" .. d)
    end
  end
  return true
end

-- parses argv after "run": script, overrides (flat + order), options
local function parse_args(args)
  local o = {flat = {}, order = {}}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--out" or a == "--resume" then
      local v = args[i + 1]
      if not v then return nil, a .. " needs a directory" end
      o[a:sub(3)] = v
      i = i + 2
    elseif a:match("^%-%-") then
      return nil, "unknown option '" .. a .. "'"
    elseif a:find("=", 1, true) then
      local k, v = a:match("^([%a_][%w_%.]*)=(.*)$")
      if not k then return nil, "bad override '" .. a .. "' (expected key=value)" end
      if o.flat[k] == nil then o.order[#o.order + 1] = k end
      o.flat[k] = v
      i = i + 1
    elseif not o.script then
      o.script = a
      i = i + 1
    else
      return nil, "unexpected argument '" .. a .. "'"
    end
  end
  return o
end

-- loads a script or config.lua in a sandbox-free environment; returns its value
local function load_script(path, overrides)
  local chunk, err = loadfile(path)
  if not chunk then
    return nil, (err:gsub("^cannot open (%S+)", "cannot open script %1"))
  end
  local ok, res = xpcall(chunk, MBPO_MSGHANDLER, overrides)
  if not ok then return nil, tostring(res) end
  return true, res
end

-- resolves a script's config: defaults <- script table <- overrides
function M.resolve(script_cfg, flat, order)
  local train, schema = require "mbpo.train", require "mbpo.schema"
  -- keys renamed since older builds (model.learned_bounds -> model.bounds ...), exactly
  local up, uerr = schema.upgrade(script_cfg)
  if not up then return nil, uerr end
  flat, order = schema.upgrade_overrides(flat, order)
  if not flat then return nil, order end
  local cfg, err = config.merge(train.defaults, up, train.defaults)
  if not cfg then return nil, err end
  cfg, err = config.apply_overrides(cfg, train.defaults, flat, order)
  if not cfg then return nil, err end
  local bad = require("mbpo.schema").check(cfg) or config.unserialisable(cfg)
  if bad then return nil, bad end
  return cfg
end

-- the epochs a run directory's progress.csv records (0 when it has none or no file)
local function epochs_recorded(dir)
  local _, rows = require("mbpo.log").read_csv(dir .. "/progress.csv")
  return type(rows) == "table" and #rows or 0
end

-- writes a resumed run's config.lua (atomically) with the accepted overrides of o and a
-- header line naming them; true, or nil and one line
local function record_overrides(cpath, cfg, o)
  local kv = {}
  for _, key in ipairs(o.order) do kv[#kv + 1] = key .. "=" .. o.flat[key] end
  local head = header_of(cpath)
  head = (head ~= "" and head .. "\n" or "") .. "resumed with " .. table.concat(kv, " ")
  local okw, werr = require("mbpo.io").write_text(cpath, config.to_lua(cfg, head))
  if not okw then return nil, "cannot resume: cannot write " .. cpath .. ": " .. tostring(werr) end
  return true
end

-- A --resume of a run stopped before its first checkpoint was complete (killed in its first
-- epoch, or while writing the checkpoint at its end: progress.csv then records that one
-- epoch): the uninterrupted run is the same config run from its start, so it starts again in
-- its directory (log.txt keeps the first attempt's lines, progress.csv is begun again);
-- config.lua takes the accepted overrides. The directory is locked first, so a run still in
-- its first epoch there is refused rather than rewritten. {cfg=, dir=, restart=true} or an
-- exit code (after one line).
local function prepare_restart(dir, cpath, cfg, o)
  local ok, err = require("mbpo.checkpoint").lock(dir)
  if not ok then return die("cannot resume: " .. err) end
  if #o.order > 0 then
    local okw, werr = record_overrides(cpath, cfg, o)
    if not okw then return die(werr) end
  end
  return {cfg = cfg, dir = dir, restart = true}
end

-- a --resume DIR: the config of DIR/config.lua with the overrides a resume may change;
-- {cfg=, dir=, on_resume=} or an exit code (after one line)
local function prepare_resume(o)
  local dir = o.resume:gsub("/+$", "")
  if o.script then
    return require("mbpo.cli").usage("run: give either SCRIPT.lua or --resume DIR")
  end
  local cpath = dir .. "/config.lua"
  if not lfs.attributes(cpath) then return die("cannot resume: no " .. cpath) end
  local ok, res = config.load_sandboxed(cpath)
  if not ok then return die("cannot resume: " .. res) end
  if type(res) ~= "table" then return die("cannot resume: " .. cpath .. " returns no table") end
  local cfg, err = M.resolve(res, o.flat, o.order)
  if not cfg then return die(err) end
  local base
  base, err = M.resolve(res, {}, {})
  if not base then return die("cannot resume: " .. cpath .. ": " .. err) end
  local refusal = resume_refusal(base, cfg, o.order)
  if refusal then return die(refusal) end
  local ck, cerr = require("mbpo.checkpoint").find(dir)
  if not ck then
    local n = epochs_recorded(dir)
    -- none was ever put in place (a checkpoint/ or checkpoint.old/ left without its
    -- manifest is a damaged one)
    local never = not lfs.attributes(dir .. "/checkpoint") and
      not lfs.attributes(dir .. "/checkpoint.old")
    if n <= 1 and never then return prepare_restart(dir, cpath, cfg, o) end
    return die(string.format("cannot resume: %s (progress.csv records %d epoch%s: the " ..
      "checkpoint was removed or damaged)", cerr, n, n == 1 and "" or "s"))
  end
  -- accepted overrides are kept in config.lua (atomically), once the checkpoint has been
  -- restored, so that a later plain --resume continues with them
  local on_resume
  if #o.order > 0 then
    on_resume = function()
      local okw, werr = record_overrides(cpath, cfg, o)
      if not okw then error(werr, 0) end
    end
  end
  return {cfg = cfg, dir = dir, on_resume = on_resume}
end

-- a new run of a script: its resolved config written to the new run directory; {cfg=,
-- dir=, created=} or an exit code (after one line; 0 for a script that ran its own loop)
local function prepare_new(o, args)
  if not o.script then return require("mbpo.cli").usage("run: missing SCRIPT.lua") end
  local ok, res = load_script(o.script, o.flat)
  if not ok then return die(res) end
  -- a script that runs its own loop says so by returning true (or an exit code)
  if res == true then return 0 end
  if math.type(res) == "integer" then return res end
  if res == nil then
    return die(o.script .. " returned nothing; a training script must `return` a config " ..
      "table (a script running its own loop returns true)")
  end
  if type(res) ~= "table" then
    return die(o.script .. " must return a config table (or true when it runs its own loop), " ..
      "got a " .. type(res))
  end
  local cfg, err = M.resolve(res, o.flat, o.order)
  if not cfg then return die(err) end
  local name = o.script:match("([^/]+)%.lua$") or "run"
  local dir = o.out or string.format("runs/%s-%d-%s", name, cfg.seed, os.date("%Y%m%d-%H%M%S"))
  if lfs.attributes(dir .. "/checkpoint") or lfs.attributes(dir .. "/progress.csv") then
    return die("run directory " .. dir .. " already holds a run; use --resume " .. dir ..
      " to continue it or another --out")
  end
  if o.out and lfs.attributes(dir, "mode") == "directory" then
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then
        return die("--out " .. dir .. " is a non-empty directory that is not a run " ..
          "directory; give a new or empty directory")
      end
    end
  end
  local okd, derr = mkdir_p(dir)
  if not okd then return die("cannot create run directory " .. dir .. ": " .. tostring(derr)) end
  local created = derr
  local okw, werr = require("mbpo.io").write_text(dir .. "/config.lua", config.to_lua(cfg,
    string.format("resolved config of `mbpo run %s`\n%s", table.concat(args, " "),
    "run again with: mbpo run " .. dir .. "/config.lua")))
  if not okw then
    clean_failed(dir, created)
    return die("cannot write " .. dir .. "/config.lua: " .. tostring(werr))
  end
  return {cfg = cfg, dir = dir, created = created}
end

function M.main(args)
  local o, err = parse_args(args)
  if not o then return require("mbpo.cli").usage("run: " .. err) end
  -- overrides by a renamed key (model.learned_bounds=false) become the new key's, so that a
  -- --resume checks and records them under the name config.lua holds
  local flat, order = require("mbpo.schema").upgrade_overrides(o.flat, o.order)
  if not flat then return die(order) end
  o.flat, o.order = flat, order
  local p
  if o.resume then p = prepare_resume(o) else p = prepare_new(o, args) end
  if type(p) ~= "table" then return p end
  local cfg, dir, created, on_resume = p.cfg, p.dir, p.created, p.on_resume
  -- Ctrl-C / SIGTERM: the loop saves a checkpoint at its next safe point, then stops
  local core = require "mbpo.core"
  core.defer_interrupts(true)
  local ok, res = xpcall(require("mbpo.harness").run, MBPO_MSGHANDLER, cfg, {dir = dir,
    resume = o.resume ~= nil and not p.restart, restart = p.restart, on_resume = on_resume})
  core.defer_interrupts(false)
  if not ok then
    local msg = tostring(res)
    if msg:match("^interrupted") or require("mbpo.core").interrupted() then
      io.stderr:write("mbpo: interrupted; checkpoint saved; resume with: mbpo run --resume ",
        dir, "\n")
      return 130
    end
    if not o.resume and clean_failed(dir, created) then
      msg = msg:gsub("; the last good checkpoint is kept$", "") .. " (no checkpoint had been " ..
        "written: what this run created in " .. dir .. " was removed)"
    end
    return die(msg)
  end
  return 0
end

return M
