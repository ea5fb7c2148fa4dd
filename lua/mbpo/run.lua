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
  local train = require "mbpo.train"
  local cfg, err = config.merge(train.defaults, script_cfg, train.defaults)
  if not cfg then return nil, err end
  cfg, err = config.apply_overrides(cfg, train.defaults, flat, order)
  if not cfg then return nil, err end
  local bad = require("mbpo.schema").check(cfg)
  if bad then return nil, bad end
  return cfg
end

function M.main(args)
  local o, err = parse_args(args)
  if not o then return require("mbpo.cli").usage("run: " .. err) end
  local cfg, dir
  if o.resume then
    dir = o.resume:gsub("/+$", "")
    if o.script then return require("mbpo.cli").usage("run: give either SCRIPT.lua or --resume DIR") end
    local cpath = dir .. "/config.lua"
    if not lfs.attributes(cpath) then return die("cannot resume: no " .. cpath) end
    local ok, res = config.load_sandboxed(cpath)
    if not ok then return die("cannot resume: " .. res) end
    if type(res) ~= "table" then return die("cannot resume: " .. cpath .. " returns no table") end
    cfg, err = M.resolve(res, o.flat, o.order)
    if not cfg then return die(err) end
    local ck, cerr = require("mbpo.checkpoint").find(dir)
    if not ck then return die("cannot resume: " .. cerr) end
  else
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
      return die(o.script .. " must return a config table (or nothing), got a " .. type(res))
    end
    cfg, err = M.resolve(res, o.flat, o.order)
    if not cfg then return die(err) end
    local name = o.script:match("([^/]+)%.lua$") or "run"
    dir = o.out or string.format("runs/%s-%d-%s", name, cfg.seed, os.date("%Y%m%d-%H%M%S"))
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
    local f = io.open(dir .. "/config.lua", "w")
    if not f then return die("cannot write " .. dir .. "/config.lua") end
    f:write(config.to_lua(cfg, string.format("resolved config of `mbpo run %s`\n%s",
      table.concat(args, " "), "run again with: mbpo run " .. dir .. "/config.lua")))
    f:close()
  end
  local train = require "mbpo.train"
  -- Ctrl-C / SIGTERM: the loop saves a checkpoint at its next safe point, then stops
  local core = require "mbpo.core"
  core.defer_interrupts(true)
  local ok, res = xpcall(train.run, MBPO_MSGHANDLER, cfg, {dir = dir, resume = o.resume ~= nil})
  core.defer_interrupts(false)
  if not ok then
    local msg = tostring(res)
    if msg:match("^interrupted") or require("mbpo.core").interrupted() then
      io.stderr:write("mbpo: interrupted; checkpoint saved; resume with: mbpo run --resume ",
        dir, "\n")
      return 130
    end
    return die(msg)
  end
  return 0
end

return M
