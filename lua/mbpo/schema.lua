-- mbpo.schema: the range and enum of every key of mbpo.train's defaults, checked on the
-- whole resolved config before anything is created. schema.check(cfg) returns nil on
-- success, or one line naming the key and the value.
local M = {}

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end
local function show(v)
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
local function int_list(lo)
  return function(v)
    if type(v) ~= "table" or #v == 0 then return "a non-empty list of integers" end
    for _, x in ipairs(v) do if int(lo)(x) then return "a list of integers >= " .. lo end end
  end
end
local function boolean(v) if type(v) ~= "boolean" then return "true or false" end end

-- the first model training needs at least this many real rows (train + holdout split)
M.min_exploration = 10

M.fields = {
  ["seed"] = int(),
  ["epochs"] = int(1),
  ["epoch_length"] = int(1),
  ["init_exploration_steps"] = int(M.min_exploration),
  ["max_path_length"] = int(1),
  ["threads"] = int(0, 256),
  ["precision"] = enum("fp32", "bf16"),
  ["stop_return"] = function(v) if type(v) ~= "number" or v ~= v then return "a number" end end,
  ["model.members"] = int(1, 1000),
  ["model.elites"] = int(1),
  ["model.hidden"] = int_list(1),
  ["model.activation"] = enum("swish", "relu"),
  ["model.weight_decay"] = function(v)
    if type(v) ~= "table" then return "a list of numbers" end
    for _, x in ipairs(v) do if num(0)(x) then return "a list of numbers >= 0" end end
  end,
  ["model.lr"] = num(0, nil, true),
  ["model.batch"] = int(1),
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
  ["rollout.keep_terminated"] = boolean,
  ["rollout.mean_prediction"] = boolean,
  ["rollout.two_sided"] = boolean,
  ["sac.hidden"] = int_list(1),
  ["sac.lr"] = num(0, nil, true),
  ["sac.gamma"] = num(0, 1),
  ["sac.tau"] = num(0, 1, true),
  ["sac.target_entropy"] = num(),
  ["sac.init_alpha"] = num(0, nil, true),
  ["sac.auto_alpha"] = boolean,
  ["sac.batch"] = int(1),
  ["sac.updates_per_step"] = int(0),
  ["sac.real_ratio"] = num(0, 1),
  ["sac.train_action"] = enum("sample", "mean"),
  ["eval.episodes"] = int(1, 10000),
  ["eval.every"] = int(1),
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
