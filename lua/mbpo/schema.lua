-- mbpo.schema: every key of a run config, its default, range and doc (M.settings; keys of a
-- core struct take them from the struct's field table, e.g. mbpo.sac.fields), checked on the
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

-- a checker that also carries its range as text (for mbpo help config)
local function ranged(text, f)
  return setmetatable({range = text}, {__call = function(_, v) return f(v) end})
end
local function bounds(what, lo, hi, lo_open, hi_open)
  if lo and hi then
    return string.format("%s in %s%s, %s%s", what, lo_open and "(" or "[", lo, hi,
      hi_open and ")" or "]")
  end
  if lo then return what .. (lo_open and " > " or " >= ") .. lo end
  if hi then return what .. (hi_open and " < " or " <= ") .. hi end
  return what
end

local function int(lo, hi)
  return ranged(bounds("an integer", lo, hi), function(v)
    if math.type(v) ~= "integer" and
      not (type(v) == "number" and finite(v) and v == math.floor(v)) then
      return "an integer"
    end
    if lo and v < lo then return "an integer >= " .. lo end
    if hi and v > hi then return "an integer <= " .. hi end
  end)
end
local function num(lo, hi, lo_open, hi_open)
  return ranged(bounds((lo or hi) and "a number" or "a finite number", lo, hi, lo_open, hi_open),
    function(v)
    if type(v) ~= "number" or not finite(v) then return "a finite number" end
    if lo and (v < lo or (lo_open and v == lo)) then
      return "a number " .. (lo_open and "> " or ">= ") .. lo end
    if hi and (v > hi or (hi_open and v == hi)) then
      return "a number " .. (hi_open and "< " or "<= ") .. hi end
  end)
end
local function enum(...)
  local set = {...}
  return function(v)
    for _, s in ipairs(set) do if v == s then return end end
    return "one of " .. table.concat(set, ", ")
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
local even_size = ranged("an even integer in [16, 4096]", function(v)
  return int(16, 4096)(v) or (v % 2 ~= 0 and "an even integer in [16, 4096]" or nil)
end)

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

-- a checker from a core field (mbpo.sac.fields ...): its type, range and enum, one home
local function from_field(f)
  if f.type == "boolean" then return boolean end
  if f.type == "string" then return enum(table.unpack(f.values)) end
  local isint = f.type:find("integer") ~= nil
  local lo, hi = f.min > -math.huge and f.min or nil, f.max < math.huge and f.max or nil
  if isint and hi and hi >= 2147483647 then hi = nil end
  local one = isint and int(lo, hi) or num(lo, hi, f.open_min, f.open_max)
  if not f.type:find("^list") then
    return function(v) return one(v) and f.range end
  end
  local each = f.range:gsub("^an integer", "integers"):gsub("^a number", "numbers")
  local what = f.type:match("of (%a+)")
  return function(v)
    if type(v) ~= "table" or (#v == 0 and not f.linked) then
      return "a non-empty list of " .. what
    end
    if #v > f.max_count then return "a list of at most " .. f.max_count .. " " .. what end
    for _, x in ipairs(v) do if one(x) then return "a list of " .. each end end
  end
end

-- Settings of a run config, one row each: key, default, checker (returns what the value must
-- be, or nil), one-line doc. Keys of a core struct (name = the struct field and constructor
-- key) take default, type, range and doc from its field table: {key, core = field}.
local SAC, Ens = require "mbpo.sac", require "mbpo.ensemble"
local S, E, F = SAC.fields, Ens.fields, Ens.fit_fields
M.settings = {
  {"env", "Hopper", task, "task name, or {mjcf = \"robot.xml\", task = \"task.lua\"} " ..
    "(mbpo.env.from_mjcf)"},
  {"seed", 0, int(), "seed of every generator of the run"},
  {"epochs", 125, int(1), "epochs of the run"},
  {"epoch_length", 1000, int(1), "env steps per epoch"},
  {"init_exploration_steps", 5000, int(M.min_exploration), "random-action steps before epoch 1"},
  {"max_path_length", 1000, int(1), "episode cut (not stored as terminal)"},
  {"threads", 0, int(0, 256), "threads (0: MBPO_THREADS or the default)"},
  {"precision", core = S.precision},
  {"stop_return", math.huge, function(v)
    if type(v) ~= "number" or v ~= v then return "a number" end end,
    "stop once the mean evaluation return reaches this"},
  {"loop", "mbpo.train", lua_source, "the training loop: a Lua file or module returning " ..
    "{start = f(run), epoch = f(run)} (examples/dyna_loop.lua)"},
  {"model.members", core = E.members}, {"model.elites", core = E.elites},
  {"model.hidden", core = E.hidden}, {"model.activation", core = E.activation},
  {"model.weight_decay", core = E.weight_decay}, {"model.lr", core = E.lr},
  {"model.batch", core = E.batch},
  {"model.train_freq", 250, int(1), "env steps between model trainings (first at t = 0)"},
  {"model.holdout_ratio", core = E.holdout_ratio}, {"model.holdout_cap", core = E.holdout_cap},
  {"model.patience", core = E.patience}, {"model.max_epochs", core = F.max_epochs},
  {"model.max_seconds", core = F.max_seconds},
  {"model.bounds", core = E.bounds},
  {"model.bootstrap", core = E.bootstrap}, {"model.snapshot", core = E.snapshot},
  {"rollout.batch", 100000, int(1), "start states per rollout"},
  {"rollout.schedule", {20, 150, 1, 15}, function(v)
    if type(v) == "function" then return end
    if type(v) == "number" then
      return int(0)(v) and "a function, {a, b, x, y} or an integer >= 0"
    end
    if type(v) ~= "table" or #v ~= 4 then return "a function or a list {a, b, x, y}" end
    for i = 1, 4 do if type(v[i]) ~= "number" or not finite(v[i]) then
      return "a list {a, b, x, y} of finite numbers" end end
    if v[1] == v[2] then return "a list {a, b, x, y} with a ~= b" end
    if int(0)(v[3]) or int(0)(v[4]) then return "a list {a, b, x, y} with integers x, y >= 0" end
  end, "rollout length: {a, b, x, y} linear from x at epoch a to y at epoch b, or f(epoch)"},
  {"rollout.retain_epochs", 1, int(1), "epochs of model rollouts the model buffer keeps"},
  {"rollout.fn", "mbpo.rollout", lua_source, "the rollout scheme: a Lua file or module " ..
    "returning a function like mbpo.rollout.run (examples/mopo_rollout.lua)"},
  {"rollout.keep_terminated", false, boolean, "terminated rows continue (masked variant)"},
  {"rollout.prediction", core = E.prediction},
  {"rollout.two_sided", false, boolean, "Hopper: two-sided state bound in the termination"},
  {"sac.hidden", core = S.hidden}, {"sac.lr", core = S.lr}, {"sac.gamma", core = S.gamma},
  {"sac.tau", core = S.tau}, {"sac.target_entropy", core = S.target_entropy},
  {"sac.init_alpha", core = S.init_alpha}, {"sac.auto_alpha", core = S.auto_alpha},
  {"sac.batch", core = S.batch},
  {"sac.updates_per_step", 20, int(0), "SAC updates per env step (G)"},
  {"sac.real_ratio", 0.05, num(0, 1), "share of real rows in each SAC batch"},
  {"sac.train_action", "sample", enum("sample", "mean"), "real-env action while training"},
  {"eval.episodes", 5, int(1, 10000), "evaluation episodes"},
  {"eval.every", 1, int(1), "epochs between evaluations (and the last epoch)"},
  {"log.quiet", false, boolean, "no progress line"},
  {"log.plot", true, boolean, "write curve.png after each epoch"},
  {"video.every", 0, int(0), "epochs between videos/epoch-<E>.mp4 (0: off)"},
  {"video.episodes", 1, int(1, 1000), "episodes per video"},
  {"video.width", 480, even_size, "frame width"},
  {"video.height", 480, even_size, "frame height"},
  {"video.camera", "", function(v)
    if type(v) ~= "string" then return "a camera name (a string)" end
  end, "camera (\"\": \"track\", or a custom model's first camera)"},
}

-- key -> checker of every setting
M.fields = {}
for _, r in ipairs(M.settings) do M.fields[r[1]] = r.core and from_field(r.core) or r[3] end

-- Keys renamed to their constructor's names: old key -> {new key, old value -> new value}.
-- The configs of older builds (committed results, run directories, scripts) use the old
-- names; M.upgrade and M.upgrade_overrides translate them exactly on load.
M.renamed = {
  ["model.learned_bounds"] = {"model.bounds", function(b) return b and "learned" or "fixed" end},
  ["rollout.mean_prediction"] = {"rollout.prediction",
    function(b) return b and "mean" or "sample" end},
}

local function renamed_keys()
  local keys = {}
  for k in pairs(M.renamed) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- a copy of a script's or config.lua's table with every old key replaced by its new one
-- (the rest shared): cfg | nil, one line when an old key is not a boolean, or when the table
-- sets both the old and the new key to different values
function M.upgrade(cfg)
  if type(cfg) ~= "table" then return cfg end
  local out = cfg
  for _, old in ipairs(renamed_keys()) do
    local new, conv = M.renamed[old][1], M.renamed[old][2]
    local sect, oname = old:match("^([^%.]+)%.(.+)$")
    local nname = new:match("%.(.+)$")
    local node = out[sect]
    if type(node) == "table" and node[oname] ~= nil then
      local v = node[oname]
      if type(v) ~= "boolean" then
        return nil, string.format("config key '%s' expects a boolean, got a %s (%s)", old,
          type(v), tostring(v))
      end
      local nv = conv(v)
      if node[nname] ~= nil and node[nname] ~= nv then
        return nil, string.format("config sets both '%s' = %s (the old name of '%s', " ..
          "meaning %s) and '%s' = %s; keep one", old, tostring(v), new, string.format("%q", nv),
          new, show(node[nname]))
      end
      if out == cfg then
        out = {}
        for k, x in pairs(cfg) do out[k] = x end
      end
      local copy = {}
      for k, x in pairs(node) do copy[k] = x end
      copy[oname], copy[nname] = nil, nv
      out[sect] = copy
    end
  end
  return out
end

-- command-line overrides {[key] = text} applied in `order`, with every old key replaced by
-- its new one: flat, order (new tables) | nil, one line (an old key's text is not a boolean,
-- or the old and the new key are both given with different meanings)
function M.upgrade_overrides(flat, order)
  local f, o, given = {}, {}, {}
  for _, key in ipairs(order) do
    local r, text = M.renamed[key], flat[key]
    local new, value = key, text
    if r then
      local l = text:lower()
      local b
      if l == "true" or l == "1" or l == "yes" or l == "on" then b = true
      elseif l == "false" or l == "0" or l == "no" or l == "off" then b = false
      else
        return nil, string.format("config key '%s' expects true or false, got '%s'", key, text)
      end
      new, value = r[1], r[2](b)
    end
    local prev = given[new]
    if prev and f[new] ~= value then
      local old, other = r and key or prev, r and prev or key
      return nil, string.format("overrides set both %s=%s and %s=%s: '%s' is the old name " ..
        "of '%s' (%s=%s means %s=%s); keep one", old, flat[old], other, flat[other], old, new,
        old, flat[old], new, r and value or f[new])
    end
    if not prev then o[#o + 1] = new end
    given[new], f[new] = key, value
  end
  return f, o
end

-- the nested defaults table of the settings (a fresh copy each call)
function M.defaults()
  local d = {}
  for _, r in ipairs(M.settings) do
    local node, key = d, r[1]
    for part, dot in key:gmatch("([^%.]+)(%.?)") do
      if dot == "" then
        local v = r.core and r.core.default or r[2]
        if type(v) == "table" then v = table.move(v, 1, #v, 1, {}) end
        node[part] = v
      else
        node[part] = node[part] or {}
        node = node[part]
      end
    end
  end
  return d
end

-- Help ----------------------------------------------------------------------------------

local function shown(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local p = {}
    for i, x in ipairs(v) do p[i] = shown(x) end
    return "{" .. table.concat(p, ", ") .. "}"
  end
  if v == math.huge then return "inf" end
  return tostring(v)
end

-- the rows of the help: {key, type, default, range, doc} of the run config, then of every
-- constructor's field table
function M.help_rows()
  local sections = {{title = "run config (mbpo run SCRIPT.lua key=value; mbpo.schema)", rows = {}}}
  for _, r in ipairs(M.settings) do
    local f, chk = r.core, M.fields[r[1]]
    local d, ty = r[2], nil
    if f then
      ty, d = f.type, f.default
    else
      ty = math.type(d) or type(d)
      ty = ({float = "number", table = "list", string = "string"})[ty] or ty
      if r[1] == "env" then ty = "string or table" end
      if r[1] == "rollout.schedule" then ty = "list or function" end
    end
    local range = f and ((f.max_count and "each " or "") .. f.range) or
      (type(chk) == "table" and chk.range) or chk(nil) or ""
    local doc = f and (f.doc .. " (core field " .. f.name .. ")") or r[4]
    table.insert(sections[1].rows, {r[1], ty, shown(d), range, doc})
  end
  local Buffer, Env = require "mbpo.buffer", require "mbpo.env"
  for _, t in ipairs({{"SAC.new", "mbpo.sac.fields", SAC.fields},
      {"Ensemble.new", "mbpo.ensemble.fields", Ens.fields},
      {"ens:fit", "mbpo.ensemble.fit_fields", F},
      {"Buffer.new", "mbpo.buffer.fields", Buffer.fields},
      {"env.make", "mbpo.env.fields", Env.fields},
      {"env.from_mjcf task", "mbpo.env.task_fields", Env.task_fields}}) do
    local sec = {title = t[1] .. " options (" .. t[2] .. ")", rows = {}}
    for _, f in ipairs(t[3]) do
      local d = f.required and "required" or f.default == nil and "-" or shown(f.default)
      table.insert(sec.rows, {f.name, f.type, d, (f.max_count and "each " or "") .. f.range, f.doc})
    end
    sections[#sections + 1] = sec
  end
  return sections
end

-- the text of mbpo help config: aligned columns, or markdown tables (the README's)
function M.help(markdown)
  local out = {}
  for _, sec in ipairs(M.help_rows()) do
    if markdown then
      out[#out + 1] = "**" .. sec.title .. "**\n\n| key | type | default | range | doc |\n" ..
        "|---|---|---|---|---|"
      for _, r in ipairs(sec.rows) do
        local c = {}
        for i, x in ipairs(r) do c[i] = (i == 1 and "`" .. x .. "`" or x):gsub("|", "\\|") end
        out[#out + 1] = "| " .. table.concat(c, " | ") .. " |"
      end
    else
      out[#out + 1] = sec.title .. ":"
      local w = {0, 0, 0, 0}
      for _, r in ipairs(sec.rows) do for i = 1, 4 do w[i] = math.max(w[i], #r[i]) end end
      for _, r in ipairs(sec.rows) do
        local c = {}
        for i = 1, 4 do c[i] = r[i] .. string.rep(" ", w[i] - #r[i]) end
        out[#out + 1] = "  " .. table.concat(c, "  ") .. "  " .. r[5]
      end
    end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

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
