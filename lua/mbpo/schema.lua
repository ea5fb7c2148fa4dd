-- mbpo.schema: the range and enum of every key of mbpo.train's defaults, checked on the
-- whole resolved config before anything is created. schema.check(cfg) returns nil on
-- success, or one line naming the key and the value.
local M = {}

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end
local function show(v)
  if type(v) == "table" and v.mjcf then return "{mjcf = " .. tostring(v.mjcf) .. ", task = " ..
    tostring(v.task) .. "}" end
  if type(v) == "table" then
    local p = {}
    for i, x in ipairs(v) do p[i] = tostring(x) end
    return "{" .. table.concat(p, ",") .. "}"
  end
  return tostring(v)
end

local function int(lo, hi)
  return function(v)
    if math.type(v) ~= "integer" and not (type(v) == "number" and finite(v) and v == math.floor(v)) then
      return "an integer"
    end
    if lo and v < lo then return "an integer >= " .. lo end
    if hi and v > hi then return "an integer <= " .. hi end
  end
end
local function num(lo, hi, lo_open, hi_open)
  return function(v)
    if type(v) ~= "number" or not finite(v) then return "a finite number" end
    if lo and (v < lo or (lo_open and v == lo)) then
      return "a number " .. (lo_open and "> " or ">= ") .. lo end
    if hi and (v > hi or (hi_open and v == hi)) then
      return "a number " .. (hi_open and "< " or "<= ") .. hi end
  end
end
local function enum(...)
  local set = {...}
  return function(v)
    for _, s in ipairs(set) do if v == s then return end end
    return "one of " .. table.concat(set, ", ")
  end
end
-- a list of 1..maxn integers in [lo, hi] (layer widths)
local function int_list(lo, hi, maxn)
  return function(v)
    if type(v) ~= "table" or #v == 0 then return "a non-empty list of integers" end
    if #v > maxn then return "a list of at most " .. maxn .. " integers" end
    for _, x in ipairs(v) do
      if int(lo, hi)(x) then return "a list of integers in [" .. lo .. ", " .. hi .. "]" end
    end
  end
end
-- "path/or.module": an existing Lua file or a module on package.path (mbpo.harness.load)
local function lua_source(v)
  if type(v) ~= "string" then return "a Lua file or module name (a string)" end
  local ok, err = require("mbpo.harness").locate(v)
  if not ok then return err end
end
local function boolean(v) if type(v) ~= "boolean" then return "true or false" end end

-- a frame side of a video: H.264 in yuv420p needs even sizes
local function even_size(v)
  return int(16, 4096)(v) or (v % 2 ~= 0 and "an even integer in [16, 4096]" or nil)
end

-- the first model training needs at least this many real rows (train + holdout split)
M.min_exploration = 10
-- the most rows a buffer may have (2^31 - 1: row indices are C ints)
M.max_rows = 2147483647

-- a built-in task name (any spelling mbpo.env accepts) or {mjcf = FILE, task = FILE} of
-- readable files
local function task(v)
  local Env = require "mbpo.env"
  local names = "one of " .. table.concat(Env.tasks(), ", ") .. " or {mjcf = \"robot.xml\", " ..
    "task = \"task.lua\"}"
  if type(v) == "string" then
    if not pcall(Env.termination, v) then return names end
    return
  end
  if type(v) ~= "table" or type(v.mjcf) ~= "string" or type(v.task) ~= "string" then
    return names
  end
  for _, k in ipairs({"mjcf", "task"}) do
    local f = io.open(v[k], "r")
    if not f then return names .. " naming readable files (cannot open " .. k .. " file '" ..
      v[k] .. "')" end
    f:close()
  end
end

M.fields = {
  ["env"] = task,
  ["seed"] = int(),
  ["epochs"] = int(1),
  ["epoch_length"] = int(1),
  ["init_exploration_steps"] = int(M.min_exploration),
  ["max_path_length"] = int(1),
  ["threads"] = int(0, 256),
  ["precision"] = enum("fp32", "bf16"),
  ["stop_return"] = function(v) if type(v) ~= "number" or v ~= v then return "a number" end end,
  ["loop"] = lua_source,
  ["model.members"] = int(1, 64),
  ["model.elites"] = int(1),
  ["model.hidden"] = int_list(1, 65536, 7),
  ["model.activation"] = enum("swish", "relu"),
  ["model.weight_decay"] = function(v)
    if type(v) ~= "table" then return "a list of numbers" end
    for _, x in ipairs(v) do if num(0)(x) then return "a list of numbers >= 0" end end
  end,
  ["model.lr"] = num(0, nil, true),
  ["model.batch"] = int(1, 1048576),
  ["model.train_freq"] = int(1),
  ["model.holdout_ratio"] = num(0, 1, false, true),
  ["model.holdout_cap"] = int(1),
  ["model.patience"] = int(1),
  ["model.max_epochs"] = int(0),
  ["model.max_seconds"] = num(0),
  ["model.learned_bounds"] = boolean,
  ["model.bootstrap"] = enum("replace", "permutation", "none"),
  ["model.snapshot"] = enum("member", "ensemble"),
  ["rollout.batch"] = int(1),
  ["rollout.schedule"] = function(v)
    if type(v) == "function" then return end
    if type(v) == "number" then return int(0)(v) and "a function, {a, b, x, y} or an integer >= 0" end
    if type(v) ~= "table" or #v ~= 4 then return "a function or a list {a, b, x, y}" end
    for i = 1, 4 do if type(v[i]) ~= "number" or not finite(v[i]) then
      return "a list {a, b, x, y} of finite numbers" end end
    if v[1] == v[2] then return "a list {a, b, x, y} with a ~= b" end
    if int(0)(v[3]) or int(0)(v[4]) then return "a list {a, b, x, y} with integers x, y >= 0" end
  end,
  ["rollout.retain_epochs"] = int(1),
  ["rollout.fn"] = lua_source,
  ["rollout.keep_terminated"] = boolean,
  ["rollout.mean_prediction"] = boolean,
  ["rollout.two_sided"] = boolean,
  ["sac.hidden"] = int_list(1, 65536, 7),
  ["sac.lr"] = num(0, nil, true),
  ["sac.gamma"] = num(0, 1),
  ["sac.tau"] = num(0, 1, true),
  ["sac.target_entropy"] = num(),
  ["sac.init_alpha"] = num(0, nil, true),
  ["sac.auto_alpha"] = boolean,
  ["sac.batch"] = int(1, 16777216),
  ["sac.updates_per_step"] = int(0),
  ["sac.real_ratio"] = num(0, 1),
  ["sac.train_action"] = enum("sample", "mean"),
  ["eval.episodes"] = int(1, 10000),
  ["eval.every"] = int(1),
  ["video.every"] = int(0),
  ["video.episodes"] = int(1, 1000),
  ["video.width"] = even_size,
  ["video.height"] = even_size,
  ["video.camera"] = function(v)
    if type(v) ~= "string" then return "a camera name (a string)" end
  end,
  ["log.quiet"] = boolean,
  ["log.plot"] = boolean,
}

local function get(cfg, key)
  local node = cfg
  for p in key:gmatch("[^%.]+") do
    if type(node) ~= "table" then return nil end
    node = node[p]
  end
  return node
end

function M.check(cfg)
  local keys = {}
  for k in pairs(M.fields) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = get(cfg, k)
    local want = M.fields[k](v)
    if want then
      return string.format("config key '%s' must be %s, got %s", k, want, show(v))
    end
  end
  -- buffer rows: env steps of the whole run, and model rows at the longest rollout
  local real_rows = cfg.init_exploration_steps + cfg.epochs * cfg.epoch_length
  if real_rows > M.max_rows then
    return string.format("config keys 'init_exploration_steps' + 'epochs' x 'epoch_length' " ..
      "make a real buffer of %.0f rows, more than %d", real_rows, M.max_rows)
  end
  local s = cfg.rollout.schedule
  local kmax = type(s) == "table" and math.max(s[3], s[4]) or type(s) == "number" and s or 1
  local model_rows = cfg.rollout.retain_epochs * math.max(kmax, 1) * cfg.rollout.batch *
    cfg.epoch_length / cfg.model.train_freq
  if model_rows > M.max_rows then
    return string.format("config keys 'rollout.retain_epochs' x rollout length x " ..
      "'rollout.batch' x 'epoch_length' / 'model.train_freq' make a model buffer of %.0f rows, " ..
      "more than %d", model_rows, M.max_rows)
  end
  local m = cfg.model
  if m.elites > m.members then
    return string.format("config key 'model.elites' must be <= model.members (%d), got %d",
      m.members, m.elites)
  end
  if #m.weight_decay ~= #m.hidden + 1 then
    return string.format("config key 'model.weight_decay' has %d values but model.hidden has %d " ..
      "layers (it needs one value per linear layer: %d)", #m.weight_decay, #m.hidden, #m.hidden + 1)
  end
  return nil
end

return M
