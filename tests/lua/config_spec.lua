-- mbpo.config and mbpo.schedule: overrides, type checks, typos, serialisation; schedules
local C = require "mbpo.config"
local S = require "mbpo.schedule"

local defaults = {
  seed = 0, epochs = 10, env = "Hopper", lr = 3e-4, flag = true,
  rollout = {batch = 100000, schedule = {20, 150, 1, 15}},
  sac = {hidden = {256, 256}, updates = 20},
}

describe("config", function()
  it("applies dotted overrides with parsed types", function()
    local cfg = C.copy(defaults)
    local flat = {["rollout.batch"] = "50000", seed = "3", lr = "1e-3", flag = "false",
      ["sac.hidden"] = "64,64", env = "Ant"}
    local order = {"rollout.batch", "seed", "lr", "flag", "sac.hidden", "env"}
    assert(C.apply_overrides(cfg, defaults, flat, order))
    eq(cfg.rollout.batch, 50000)
    eq(math.type(cfg.rollout.batch), "integer")
    eq(cfg.seed, 3)
    eq(cfg.lr, 1e-3)
    eq(cfg.flag, false)
    eq(cfg.sac.hidden[2], 64)
    eq(cfg.env, "Ant")
    eq(defaults.rollout.batch, 100000, "defaults untouched")
  end)

  it("names the closest keys for a typo", function()
    local cfg = C.copy(defaults)
    local ok, err = C.apply_overrides(cfg, defaults, {["rollout.bach"] = "1"}, {"rollout.bach"})
    eq(ok, nil)
    check(err:find("unknown config key 'rollout.bach'", 1, true), err)
    check(err:find("'rollout.batch'", 1, true), err)
    ok, err = C.apply_overrides(cfg, defaults, {sed = "1"}, {"sed"})
    check(err:find("did you mean 'seed'", 1, true), err)
    ok, err = C.apply_overrides(cfg, defaults, {["seed.x"] = "1"}, {"seed.x"})
    check(err:find("unknown config key 'seed.x'", 1, true), err)
  end)

  it("rejects values of the wrong type", function()
    local cfg = C.copy(defaults)
    local ok, err = C.apply_overrides(cfg, defaults, {seed = "abc"}, {"seed"})
    check(not ok and err:find("expects a number, got 'abc'", 1, true), tostring(err))
    ok, err = C.apply_overrides(cfg, defaults, {seed = "1.5"}, {"seed"})
    check(not ok and err:find("expects an integer", 1, true), tostring(err))
    ok, err = C.apply_overrides(cfg, defaults, {flag = "maybe"}, {"flag"})
    check(not ok and err:find("expects true or false", 1, true), tostring(err))
    ok, err = C.apply_overrides(cfg, defaults, {rollout = "1"}, {"rollout"})
    check(not ok and err:find("unknown config key 'rollout'", 1, true), tostring(err))
  end)

  it("merges a script table with key and type checks", function()
    local m = assert(C.merge(defaults, {epochs = 3, rollout = {batch = 10}}, defaults))
    eq(m.epochs, 3); eq(m.rollout.batch, 10); eq(m.rollout.schedule[2], 150)
    local ok, err = C.merge(defaults, {rollout = {bach = 1}}, defaults)
    check(not ok and err:find("'rollout.bach'", 1, true) and
      err:find("'rollout.batch'", 1, true), err)
    ok, err = C.merge(defaults, {epochs = "ten"}, defaults)
    check(not ok and err:find("expects a number, got a string", 1, true), err)
    -- a custom task instead of a task name
    assert(C.merge(defaults, {env = {mjcf = "a.xml", task = "t.lua"}}, defaults))
    ok, err = C.merge(defaults, {env = {mjcf = "a.xml"}}, defaults)
    check(not ok and err:find("{mjcf = ", 1, true), tostring(err))
    -- a schedule function may replace the list
    assert(C.merge(defaults, {rollout = {schedule = function(e) return e end}}, defaults))
  end)

  it("writes a config that loads back equal", function()
    local src = C.to_lua(defaults, "resolved config")
    local back = assert(load(src))()
    eq(back.rollout.batch, 100000); eq(back.lr, 3e-4); eq(back.sac.hidden[1], 256)
    eq(back.env, "Hopper"); eq(back.flag, true)
  end)
end)

describe("schedule", function()
  it("computes the thresholded linear schedule", function()
    local k = S.linear(20, 150, 1, 15)
    eq(k(1), 1); eq(k(20), 1); eq(k(150), 15); eq(k(400), 15)
    -- a naive evaluation of the formula at every epoch
    for e = 0, 200 do
      local want = math.floor(math.min(math.max(1 + (e - 20) / 130 * 14, 1), 15))
      eq(k(e), want, "epoch " .. e)
    end
    eq(S.resolve({20, 100, 1, 25})(60), 13)
    eq(S.resolve(3)(99), 3)
    raises(function() S.linear(1, 1, 1, 2) end, "a and b must differ")
    raises(function() S.resolve("x") end, "rollout schedule must be")
  end)
end)
