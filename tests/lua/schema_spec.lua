-- mbpo.schema: the type, range and enum of every config key, the checks across keys, and the
-- nearest-name suggestions of mbpo.config for keys that do not exist
local schema = require "mbpo.schema"
local config = require "mbpo.config"
local train = require "mbpo.train"
local Env = require "mbpo.env"

-- the defaults with one dotted key set to v
local function with(key, v)
  local cfg = config.copy(train.defaults)
  local node, last = cfg, nil
  for p in key:gmatch("[^%.]+") do
    if last then node = node[last] end
    last = p
  end
  node[last] = v
  return cfg
end

local function bad(key, v, want)
  local msg = schema.check(with(key, v))
  check(msg, "%s = %s accepted", key, tostring(v))
  check(msg:find(want, 1, true), "%s = %s: '%s' not in: %s", key, tostring(v), want, msg)
  return msg
end

local function good(key, v)
  local msg = schema.check(with(key, v))
  check(msg == nil, "%s = %s refused: %s", key, tostring(v), tostring(msg))
end

describe("schema", function()
  it("accepts the defaults and the tiny test config", function()
    eq(schema.check(train.defaults), nil)
    local cfg = assert(require("mbpo.run").resolve(dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua"),
      {}, {}))
    eq(schema.check(cfg), nil)
  end)

  it("has one field per config key, and no other", function()
    local keys = config.keys(train.defaults)
    local set = {}
    for _, k in ipairs(keys) do
      set[k] = true
      check(schema.fields[k], "config key %s has no schema field", k)
    end
    for k in pairs(schema.fields) do check(set[k], "schema field %s is not a config key", k) end
  end)

  it("refuses a value of the wrong type for every key, naming the key and the value", function()
    for key in pairs(schema.fields) do
      -- a string is the wrong type for every key but the free-form names (a camera name is
      -- checked against the model when rendering): those get a table
      local wrong = key == "video.camera" and {} or "zz"
      local msg = schema.check(with(key, wrong))
      check(msg, "%s = %s accepted", key, tostring(wrong))
      check(msg:find("config key '" .. key .. "' must be ", 1, true), "%s: %s", key, msg)
      check(wrong ~= "zz" or msg:find("got zz", 1, true), "%s: %s", key, msg)
      msg = schema.check(with(key, nil))
      check(msg and msg:find("'" .. key .. "'", 1, true), "%s = nil: %s", key, tostring(msg))
    end
  end)

  it("checks integers: type and bounds, integral floats accepted", function()
    good("epochs", 1); good("epochs", 3.0)
    bad("epochs", 0, "'epochs' must be an integer >= 1, got 0")
    bad("epochs", 1.5, "must be an integer, got 1.5")
    bad("epochs", math.huge, "must be an integer, got inf")
    bad("epochs", 0 / 0, "must be an integer")
    good("threads", 0); good("threads", 256)
    bad("threads", 257, "'threads' must be an integer <= 256, got 257")
    bad("threads", -1, "'threads' must be an integer >= 0, got -1")
    good("init_exploration_steps", schema.min_exploration)
    bad("init_exploration_steps", schema.min_exploration - 1,
      "an integer >= " .. schema.min_exploration)
    good("eval.episodes", 10000)
    bad("eval.episodes", 10001, "an integer <= 10000")
    good("model.members", 64); good("model.elites", 1)
    bad("model.members", 65, "an integer in [1, 64]")
    good("sac.updates_per_step", 0)
    bad("sac.batch", 16777217, "an integer in [1, 16777216]")
    good("seed", -3)
  end)

  it("checks numbers: finite, open and closed bounds", function()
    good("sac.gamma", 0); good("sac.gamma", 1)
    bad("sac.gamma", 1 + 1e-9, "'sac.gamma' must be a number in [0, 1]")
    bad("sac.gamma", -1e-9, "a number in [0, 1]")
    good("sac.tau", 1e-9)
    bad("sac.tau", 0, "'sac.tau' must be a number in (0, 1], got 0")
    good("model.holdout_ratio", 0)
    bad("model.holdout_ratio", 1, "a number in [0, 1), got 1")
    bad("model.lr", 0, "a number > 0")
    bad("sac.lr", 0 / 0, "a number > 0")
    bad("sac.lr", math.huge, "a number > 0")
    good("sac.target_entropy", -1e6)
    bad("sac.target_entropy", -math.huge, "a finite number")
    good("stop_return", math.huge)
    bad("stop_return", 0 / 0, "'stop_return' must be a number")
    good("model.max_seconds", 0)
    bad("model.max_seconds", -1, "must be a number >= 0, got -1")
  end)

  it("checks enums and booleans, listing the choices", function()
    good("model.activation", "relu")
    bad("model.activation", "Swish", "'model.activation' must be one of relu, swish, got Swish")
    good("model.bootstrap", "none")
    bad("model.bootstrap", "yes", "one of replace, permutation, none")
    bad("model.snapshot", "last", "one of member, ensemble")
    good("sac.train_action", "mean")
    bad("sac.train_action", "meen", "one of sample, mean, got meen")
    good("log.plot", false)
    bad("log.plot", 1, "'log.plot' must be true or false, got 1")
  end)

  it("checks layer lists: non-empty, widths in range, depth bounded", function()
    good("sac.hidden", {1}); good("sac.hidden", {65536, 3})
    bad("sac.hidden", {}, "a non-empty list of integers")
    bad("sac.hidden", {0}, "a list of integers in [1, 65536], got {0}")
    bad("sac.hidden", {65537}, "in [1, 65536]")
    bad("sac.hidden", {8, 2.5}, "in [1, 65536]")
    bad("sac.hidden", {8, 8, 8, 8, 8, 8, 8, 8}, "a list of at most 7 integers")
    -- model.hidden and its weight decays: one value per linear layer
    local cfg = with("model.hidden", {32, 32})
    local msg = schema.check(cfg)
    check(msg and msg:find("'model.weight_decay' has 5 values but model.hidden has 2 layers " ..
      "(it needs one value per linear layer: 3)", 1, true), tostring(msg))
    cfg.model.weight_decay = {0, 0, 0}
    eq(schema.check(cfg), nil)
    cfg.model.weight_decay = {0, -1, 0}
    check(schema.check(cfg):find("a list of numbers >= 0", 1, true), "negative decay")
  end)

  it("checks schedules: functions, numbers and {a, b, x, y}", function()
    good("rollout.schedule", function() return 1 end)
    good("rollout.schedule", {1, 100, 1, 20})
    good("rollout.schedule", 3)
    good("rollout.schedule", {5, 1, 20, 1}) -- decreasing is allowed
    bad("rollout.schedule", -1, "a function, {a, b, x, y} or an integer >= 0")
    bad("rollout.schedule", {1, 2}, "a function or a list {a, b, x, y}, got {1,2}")
    bad("rollout.schedule", {1, 1, 1, 2}, "with a ~= b")
    bad("rollout.schedule", {1, 2, 1.5, 2}, "with integers x, y >= 0")
    bad("rollout.schedule", {1, 2, 1, -2}, "with integers x, y >= 0")
    bad("rollout.schedule", {1, 0 / 0, 1, 2}, "of finite numbers")
  end)

  it("checks the relations between keys", function()
    local cfg = with("model.elites", 8)
    eq(schema.check(cfg), "config key 'model.elites' must be <= model.members (7), got 8")
    cfg = with("epochs", 1000000)
    cfg.epoch_length = 1000000
    check(schema.check(cfg):find("make a real buffer of 1000000005000 rows, more than " ..
      schema.max_rows, 1, true), "real rows")
    cfg = with("rollout.batch", 10000000)
    cfg.rollout.schedule = {1, 2, 1, 100}
    check(schema.check(cfg):find("make a model buffer of 4000000000 rows", 1, true), "model rows")
    cfg.rollout.schedule = {1, 2, 1, 10}
    eq(schema.check(cfg), nil, "400M model rows are allowed")
  end)

  it("checks the task: built-in names and readable custom files", function()
    for _, name in ipairs(Env.tasks()) do good("env", name) end
    bad("env", "Hoper", "must be one of InvertedPendulum, Hopper, Walker2d")
    bad("env", "Hoper", "got Hoper")
    local xml, lua = os.tmpname(), os.tmpname()
    good("env", {mjcf = xml, task = lua})
    bad("env", {mjcf = xml}, "or {mjcf = \"robot.xml\", task = \"task.lua\"}")
    os.remove(lua)
    bad("env", {mjcf = xml, task = lua}, "cannot open task file '" .. lua .. "'")
    os.remove(xml)
  end)

  -- model.learned_bounds / rollout.mean_prediction (booleans) of older builds are now the
  -- constructor's model.bounds / rollout.prediction (enums)
  it("translates the old names of renamed keys exactly, in tables and overrides", function()
    local run = require "mbpo.run"
    local tiny = MBPO_ROOT .. "/tests/lua/data/tiny.lua"
    local function resolve(set, flat, order)
      local c = dofile(tiny)
      for k, v in pairs(set) do
        local sect, name = k:match("^(%a+)%.(.+)$")
        c[sect][name] = v
      end
      local cfg, err = run.resolve(c, flat or {}, order or {})
      return cfg, err, c
    end
    for _, case in ipairs({{true, "learned", false, "sample"}, {false, "fixed", true, "mean"}}) do
      local old, err, given = resolve({["model.learned_bounds"] = case[1],
        ["rollout.mean_prediction"] = case[3]})
      check(old, tostring(err))
      local new = assert(resolve({["model.bounds"] = case[2], ["rollout.prediction"] = case[4]}))
      eq(old.model.bounds, case[2])
      eq(old.rollout.prediction, case[4])
      eq(old.model.learned_bounds, nil)
      eq(old.rollout.mean_prediction, nil)
      eq(config.to_lua(old), config.to_lua(new), "old-name config resolves as the new-name one")
      eq(given.model.learned_bounds, case[1], "the script's own table is left as it was")
      -- both names with the same meaning: accepted
      local both = assert(resolve({["model.learned_bounds"] = case[1], ["model.bounds"] = case[2]}))
      eq(config.to_lua(both), config.to_lua(assert(resolve({["model.bounds"] = case[2]}))))
      -- command-line overrides, any boolean spelling
      local flat = {["model.learned_bounds"] = case[1] and "yes" or "OFF",
        ["rollout.mean_prediction"] = tostring(case[3])}
      local o = assert(resolve({}, flat, {"model.learned_bounds", "rollout.mean_prediction"}))
      local n = assert(resolve({}, {["model.bounds"] = case[2], ["rollout.prediction"] = case[4]},
        {"model.bounds", "rollout.prediction"}))
      eq(config.to_lua(o), config.to_lua(n), "old-name overrides resolve as the new-name ones")
    end
    -- defaults unchanged: learned bounds, sampled steps
    local d = assert(resolve({}))
    eq(d.model.bounds, "learned")
    eq(d.rollout.prediction, "sample")
  end)

  it("refuses in one line a config setting an old and a new name to different values", function()
    local run = require "mbpo.run"
    local c = dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua")
    c.model.learned_bounds, c.model.bounds = true, "fixed"
    local cfg, err = run.resolve(c, {}, {})
    eq(cfg, nil)
    eq(err, "config sets both 'model.learned_bounds' = true (the old name of 'model.bounds', " ..
      "meaning \"learned\") and 'model.bounds' = fixed; keep one")
    c = dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua")
    c.rollout.mean_prediction, c.rollout.prediction = false, "mean"
    cfg, err = run.resolve(c, {}, {})
    check(err and err:find("'rollout.mean_prediction' = false (the old name of " ..
      "'rollout.prediction', meaning \"sample\")", 1, true), tostring(err))
    c = dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua")
    c.model.learned_bounds = "fixed"
    cfg, err = run.resolve(c, {}, {})
    eq(err, "config key 'model.learned_bounds' expects a boolean, got a string (fixed)")
    -- overrides, in either order
    c = dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua")
    local flat = {["model.learned_bounds"] = "false", ["model.bounds"] = "learned"}
    for _, order in ipairs({{"model.learned_bounds", "model.bounds"},
        {"model.bounds", "model.learned_bounds"}}) do
      cfg, err = run.resolve(c, flat, order)
      eq(err, "overrides set both model.learned_bounds=false and model.bounds=learned: " ..
        "'model.learned_bounds' is the old name of 'model.bounds' (model.learned_bounds=false " ..
        "means model.bounds=fixed); keep one")
    end
    cfg, err = run.resolve(c, {["rollout.mean_prediction"] = "maybe"}, {"rollout.mean_prediction"})
    eq(err, "config key 'rollout.mean_prediction' expects true or false, got 'maybe'")
    check(not err:find("\n"), "one line")
  end)

  it("resolves a committed run's old-name config.lua as its new-name rewrite", function()
    local f = MBPO_ROOT .. "/results/hopper/seed1/config.lua"
    local text = assert(io.open(f)):read("a")
    check(text:find("learned_bounds = true", 1, true) and
      text:find("mean_prediction = false", 1, true), "an old-name config: " .. f)
    local newtext = text:gsub("learned_bounds = true", "bounds = \"learned\"")
      :gsub("mean_prediction = false", "prediction = \"sample\"")
    local tmp = os.tmpname()
    local h = assert(io.open(tmp, "w"))
    h:write(newtext)
    h:close()
    local run = require "mbpo.run"
    local _, a = assert(config.load_sandboxed(f))
    local _, b = assert(config.load_sandboxed(tmp))
    os.remove(tmp)
    local ra, rb = assert(run.resolve(a, {}, {})), assert(run.resolve(b, {}, {}))
    eq(config.to_lua(ra), config.to_lua(rb))
    eq(ra.model.bounds, "learned")
    eq(ra.rollout.prediction, "sample")
  end)

  it("suggests the nearest valid names for an unknown key", function()
    local function first(key) return config.closest(train.defaults, key):match("^'([^']+)'") end
    eq(first("epoch"), "epochs")
    eq(first("sac.hiden"), "sac.hidden")
    eq(first("modle.lr"), "model.lr")
    eq(first("rollout.bach"), "rollout.batch")
    eq(first("eval.episode"), "eval.episodes")
    local three = config.closest(train.defaults, "sed")
    eq(select(2, three:gsub("'[^']+'", "")), 3, "three suggestions: " .. three)
    check(three:find("'seed'", 1, true), three)
    eq(config.distance("kitten", "sitting"), 3)
    eq(config.distance("", "abc"), 3)
    eq(config.distance("same", "same"), 0)
  end)
end)
