-- mbpo.env: the binding of the six tasks and of custom MJCF models: names, spaces, reset and
-- step results, the golden trace through Lua, exact checkpoint round trips, set_state,
-- the termination functions, from_mjcf with Lua task tables and its error messages,
-- MuJoCo errors as Lua errors, and the evaluation episodes of mbpo.evaluate.
local io_ = require "mbpo.io"
local E = require "mbpo.env"
local evaluate = require "mbpo.evaluate"
local G = require "mbpo.rng"
local T = require "mbpo.tensor"

-- "11" or "4 x 3": the shape of a tensor (nil when not a tensor)
local function shape(t)
  if not T.is_tensor(t) then return tostring(t) end
  return table.concat(t:size(), " x ")
end

local root = MBPO_ROOT or "."

-- the doubles of an F64 array from env:state()
local function doubles(a)
  eq(a:dtype(), "F64", "env state arrays are doubles")
  return a:totable()
end

-- every bit of an F64 array, as text
local function exact(a)
  local t = {}
  for i = 1, #a do t[i] = string.format("%a", a[i]) end
  return table.concat(t, " ")
end

local function sine_action(n, t)
  local a = {}
  for i = 1, n do a[i] = 0.5 * math.sin(0.1 * t + (i - 1)) end
  return a
end

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

describe("env", function()
  it("makes the six tasks under every accepted name with the spec's spaces", function()
    eq(E._VERSION ~= nil, true, "_VERSION")
    local want = {
      {{"InvertedPendulum", "InvertedPendulum-v2", "inverted_pendulum"}, 4, 1, 0.04},
      {{"Hopper", "Hopper-v2", "hopper"}, 11, 3, 0.008},
      {{"Walker2d", "Walker2d-v2", "walker2d"}, 17, 6, 0.008},
      {{"HalfCheetah", "HalfCheetah-v2", "half_cheetah"}, 17, 6, 0.05},
      {{"Ant", "Ant-v2", "ant", "AntTruncatedObs-v2"}, 27, 8, 0.05},
      {{"Humanoid", "Humanoid-v2", "humanoid", "HumanoidTruncatedObs-v2"}, 45, 17, 0.015},
    }
    local names = E.tasks()
    eq(#names, 6, "task count")
    for k, w in ipairs(want) do
      eq(names[k], w[1][1], "task list order")
      for _, alias in ipairs(w[1]) do
        local env = E.make(alias)
        eq(env.name, w[1][1], alias .. " name")
        eq(env.obs_dim, w[2], alias .. " obs_dim")
        eq(env.act_dim, w[3], alias .. " act_dim")
        near(env.dt, w[4], 1e-12, alias .. " dt")
        eq(env.max_steps, 1000, alias .. " max_steps")
        env:close()
      end
    end
    raises(function() E.make("Pong") end, "unknown task 'Pong'")
    raises(function() E.make("Hopper", {max_steps = 0}) end,
           "E.make: max_steps must be an integer >= 1, got 0")
    eq(E.make("Hopper", {max_steps = 7}).max_steps, 7, "max_steps option")
  end)

  it("resets and steps with tensors out, tables or tensors in", function()
    local env = E.make("Hopper")
    local obs = env:reset{seed = 3}
    eq(shape(obs), "11", "reset obs")
    local o, r, term, trunc = env:step({0.1, -0.2, 0.3})
    eq(shape(o), "11", "step obs")
    eq(math.type(r), "float", "reward type")
    eq(term, false, "terminated")
    eq(trunc, false, "truncated")
    eq(env.steps, 1, "step counter")
    o = env:step(T.zeros(3))
    eq(o:numel(), 11, "tensor action")
    local out = T.zeros(11)
    local o2 = env:step({0, 0, 0}, out)
    eq(rawequal(o2, out), true, "obs_out is returned")
    local ctrl_lo, ctrl_hi = env:ctrl_range()
    eq(#ctrl_lo, 3, "ctrl range size")
    eq(ctrl_hi[2], 1.0, "hopper ctrl high")
    eq(select(2, E.make("Humanoid"):ctrl_range())[1], 0.4, "humanoid ctrl high")
  end)

  it("rejects bad actions and bad episode order with messages naming them", function()
    local env = E.make("Hopper")
    raises(function() env:step({0, 0, 0}) end, "step before reset")
    env:reset()
    raises(function() env:step({0, 0}) end, "env:step: action has 2 values, Hopper expects 3")
    raises(function() env:step(T.zeros(4)) end, "env:step: action has 4 values, Hopper expects 3")
    raises(function() env:step({0, 0 / 0, 0}) end, "env:step: action[2] is NaN (Hopper)")
    raises(function() env:step({math.huge, 0, 0}) end, "env:step: action[1] is infinite")
    raises(function() env:step({0, "x", 0}) end, "env:step: action[2] is not a number")
    raises(function() env:step("abc") end, "action must be an mbpo.Tensor or a table")
    raises(function() env:step({0, 0, 0}, T.zeros(5)) end, "obs_out must be a contiguous [11]")
    eq(env.steps, 0, "rejected actions did not step")
    -- zero action: the hopper falls after a while; stepping on is refused until a reset
    local term, trunc
    repeat _, _, term, trunc = env:step({0, 0, 0}) until term or trunc
    eq(term, true, "zero-action hopper terminates")
    raises(function() env:step({0, 0, 0}) end, "step after the episode ended")
    env:reset()
    env:step({0, 0, 0})
    env:close()
    raises(function() env:step({0, 0, 0}) end, "closed")
    eq(tostring(env), "mbpo.Env (closed)", "closed tostring")
  end)

  it("reproduces the spec's golden trace through the Lua API", function()
    -- specs/gym-tasks.md 8.3, Hopper and Humanoid (the C test covers all six)
    local want = {Hopper = {42, 40.900213, {-0.008671, 1.308251, -0.213507}},
                  Humanoid = {21, 102.317113, {-0.051069, 0.025667, 0.997638}}}
    for name, w in pairs(want) do
      local env = E.make(name)
      env:reset{noise_scale = 0}
      local ret, t, term = 0, 0, false
      while t < 100 and not term do
        local _, r
        _, r, term = env:step(sine_action(env.act_dim, t))
        ret = ret + r
        t = t + 1
      end
      eq(t, w[1], name .. " steps")
      near(ret, w[2], 1e-4, name .. " return")
      local q = doubles(env:state().qpos)
      for i = 1, 3 do near(q[i], w[3][i], 1e-4, name .. " qpos") end
    end
  end)

  it("saves and restores its exact state, rng included", function()
    for _, name in ipairs(E.tasks()) do
      local g = G.new(8)
      local a = E.make(name, {seed = 5})
      a:reset()
      local function run(env, k, log)
        for _ = 1, k do
          local u = {}
          for i = 1, env.act_dim do u[i] = g:uniform(-1, 1) end
          local _, r, term, trunc = env:step(u)
          if log then log[#log + 1] = string.format("%a ", r) .. exact(env:state().qpos) end
          if term or trunc then env:reset() end
        end
      end
      run(a, 12)
      local s, gs = a:state(), g:state()
      eq(tostring(s.rng), "mbpo.Array U64 [4]", "rng words")
      eq(s.name, name, "state name")
      local l1, l2 = {}, {}
      run(a, 40, l1)
      local b = E.make(name, {seed = 123})
      b:load_state(s)
      g:set_state(gs)
      run(b, 40, l2)
      for i = 1, #l1 do eq(l2[i], l1[i], name .. " resumed step " .. i) end
      -- the rng field is the format of mbpo.rng's g:state()
      G.new(1):set_state(s.rng)
    end
    local env = E.make("Hopper")
    env:reset()
    local s = env:state()
    raises(function() E.make("Walker2d"):load_state(s) end,
           "env:load_state: name is 'Hopper' in the state, 'Walker2d' in this env")
    s.qpos = io_.array("F64", {1, 2, 3, 4, 5})
    raises(function() env:load_state(s) end,
           "env:load_state: qpos is F64 [5] in the state, F64 [6] in this env")
    s = env:state()
    s.rng = "xyz"
    raises(function() env:load_state(s) end, "rng is 'xyz' in the state, U64 [4] in this env")
    -- a state of an older build stored doubles as hex text: one line says so
    s = env:state()
    s.qvel = string.rep("0", 16 * 6)
    raises(function() env:load_state(s) end, "env:load_state: qvel is hex text: the state was " ..
           "written by an older mbpo, which stored doubles as hex strings " ..
           "(this one stores F64 numbers)")
  end)

  it("gets and sets qpos/qvel like Gym's set_state", function()
    local env = E.make("Walker2d")
    env:reset{seed = 1}
    env:step(sine_action(6, 0))
    local qpos, qvel, steps = env:get_state()
    eq(shape(qpos), "9", "qpos tensor")
    eq(shape(qvel), "9", "qvel tensor")
    eq(steps, 1, "steps")
    local want_q = {0.1, 1.2, 0.05, -0.1, -0.2, 0.1, -0.3, -0.1, 0.2}
    local want_v = {0.5, 0, 0, 0.1, 0, 0, 0, 0, 0.25}
    local obs = env:set_state(want_q, want_v)
    eq(obs:numel(), 17, "set_state obs")
    local s = env:state()
    local q, v = doubles(s.qpos), doubles(s.qvel)
    for i = 1, 9 do
      eq(q[i], want_q[i], "qpos written exactly")
      eq(v[i], want_v[i], "qvel written exactly")
    end
    eq(env.steps, 1, "set_state keeps the step counter")
    env:set_state(qpos, qvel) -- tensors work too
    raises(function() env:set_state({1, 2}, want_v) end, "qpos has 2 values, Walker2d expects 9")
    raises(function() env:set_state(want_q, {0, 0, 0, 0, 0, 0 / 0, 0, 0, 0}) end,
           "qvel[6] is not finite")
    -- a huge velocity makes MuJoCo warn (bad qvel) and reset its data: a Lua warning, not an error
    local hopper = E.make("Hopper")
    hopper:reset{noise_scale = 0}
    hopper:set_state({0, 1.25, 0, 0, 0, 0}, {0, 0, 0, 1e12, 0, 0})
    local _, r = hopper:step({0, 0, 0})
    eq(math.type(r), "float", "stepping on after the warning")
  end)

  it("seeds its reset noise and scales it", function()
    local env = E.make("Hopper")
    env:reset{seed = 42}
    local a = env:state().qpos
    env:reset{seed = 42}
    eq(env:state().qpos, a, "same seed, same reset")
    env:reset{seed = 43}
    check(env:state().qpos ~= a, "a different seed gives a different reset")
    env:reset{noise_scale = 0}
    local q = doubles(env:state().qpos)
    eq(q[2], 1.25, "noise_scale 0 keeps qpos0")
    eq(q[1], 0.0, "noise_scale 0 keeps qpos0")
    env:reset{noise_scale = 1}
    q = doubles(env:state().qpos)
    check(q[1] ~= 0 and math.abs(q[1]) <= 0.005, "noise within U(-0.005, 0.005): %g", q[1])
    raises(function() env:reset{noise_scale = -1} end,
      "env:reset: noise_scale must be a number >= 0, got -1")
    raises(function() env:reset{seed = 1.5} end, "seed must be an integer")
    raises(function() env:reset{sead = 1} end, "env:reset: unknown option 'sead' (nearest: seed")
    raises(function() evaluate.episodes(env, function() end, 1, {max_step = 1}) end,
      "evaluate.episodes: unknown option 'max_step'")
  end)

  it("evaluates MBPO's termination functions on rows", function()
    local f = E.termination("Hopper")
    local function row(h, ang, rest, width)
      local r = {h, ang}
      for i = 3, width or 11 do r[i] = rest or 0 end
      return r
    end
    local d = f({row(1.2, 0.1), row(0.69, 0), row(0.71, 0), row(1, 0.21), row(1, -0.19),
                 row(1, 0, 150), row(1, 0, -150), row(0 / 0, 0)})
    local want = {0, 1, 0, 1, 0, 1, 0, 1}
    for i = 1, #want do eq(d[i], want[i], "hopper row " .. i) end
    d = E.termination("hopper", {two_sided = true})({row(1, 0, -150), row(1, 0, -99)})
    eq(d[1], 1, "two-sided lower bound")
    eq(d[2], 0, "two-sided inside")
    -- MBPO's (obs, act, next_obs) calling convention
    eq(f(nil, nil, {row(0.5, 0)})[1], 1, "three-argument form")
    local ant = E.termination("AntTruncatedObs-v2")
    local z = {}
    for i = 1, 27 do z[i] = 0 end
    z[1] = 1.0
    eq(ant({z})[1], 0, "ant z = 1 inclusive")
    z[1] = 1.01
    eq(ant({z})[1], 1, "ant z above 1")
    local hum = E.termination("Humanoid")
    local h = {}
    for i = 1, 45 do h[i] = 0 end
    h[1] = 0.99
    eq(hum({h})[1], 1, "humanoid low")
    h[1] = 1.5
    eq(hum({h})[1], 0, "humanoid healthy")
    -- tensors in, tensors out
    local out = f(T.zeros(5, 11))
    eq(shape(out), "5", "batch result")
    eq(shape(f(T.zeros(11))), "1", "single row")
    raises(function() f(T.zeros(5, 12)) end,
           "termination(Hopper): next_obs must be a contiguous [N x 11] tensor, got [5 x 12]")
    raises(function() f({{1, 2}}) end, "row 1 has 2 values, Hopper expects 11")
    raises(function() E.termination("Pong") end, "unknown task 'Pong'")
    raises(function() f("x") end, "next_obs must be an mbpo.Tensor")
    -- the env's own
    local env = E.make("Walker2d")
    local d2 = env:termination({row(1.2, 0.5, 0, 17), row(2.5, 0, 0, 17)})
    eq(d2[1], 0, "env:termination healthy walker")
    eq(d2[2], 1, "env:termination walker too high")
    eq(env:termination_fn()({row(0.5, 0, 0, 17)})[1], 1, "env:termination_fn")
  end)

  it("agrees with the env's own termination on real transitions", function()
    -- Hopper: obs rebuilt from the exact state (qpos[2:6], clipped qvel) through the table path
    local env = E.make("Hopper", {seed = 9})
    local f = env:termination_fn()
    local g = G.new(10)
    local seen = {[true] = 0, [false] = 0}
    for _ = 1, 20 do
      env:reset()
      local term, trunc
      repeat
        _, _, term, trunc = env:step({g:uniform(-1, 1), g:uniform(-1, 1), g:uniform(-1, 1)})
        local s = env:state()
        local q, v = doubles(s.qpos), doubles(s.qvel)
        local o = {}
        for i = 2, 6 do o[#o + 1] = q[i] end
        for i = 1, 6 do o[#o + 1] = math.max(-10, math.min(10, v[i])) end
        eq(f({o})[1] == 1, term, "termination function vs env")
        seen[term] = seen[term] + 1
      until term or trunc
    end
    check(seen[true] > 0 and seen[false] > 0, "both outcomes seen")
  end)

  it("runs evaluation episodes of a policy", function()
    local env = E.make("InvertedPendulum")
    local calls = 0
    local policy = function(obs)
      calls = calls + 1
      eq(obs:numel(), 4, "policy sees the obs tensor")
      return {0.0}
    end
    local ret, len = evaluate.episodes(env, policy, 4, {seed = 3})
    eq(#ret, 4, "returns")
    eq(#len, 4, "lengths")
    local total = 0
    for i = 1, 4 do
      eq(ret[i], len[i] * 1.0, "pendulum pays 1 per step")
      check(len[i] >= 1 and len[i] < 1000, "length %d", len[i])
      total = total + len[i]
    end
    eq(calls, total, "one policy call per step")
    local ret2 = evaluate.episodes(env, policy, 4, {seed = 3})
    for i = 1, 4 do eq(ret2[i], ret[i], "seeded evaluation is reproducible") end
    local _, capped = evaluate.episodes(E.make("HalfCheetah"),
      function() return {0, 0, 0, 0, 0, 0} end, 1, {max_steps = 10})
    eq(capped[1], 10, "opts.max_steps caps an episode")
    raises(function() evaluate.episodes(env, function() return {1, 2} end, 1) end,
           "action has 2 values, InvertedPendulum expects 1")
  end)

  it("bounds and checks the episode count before allocating anything", function()
    local env = E.make("InvertedPendulum")
    local p = function() return {0} end
    for _, n in ipairs({1.5e9, 3e9, 1000001, -1, 1.5, 0 / 0, math.huge, "2", true}) do
      raises(function() evaluate.episodes(env, p, n) end,
             "evaluate.episodes: n_episodes must be an integer in [0, 1000000], got "
             .. tostring(n))
    end
    local ret = evaluate.episodes(env, p, 0)
    eq(#ret, 0, "zero episodes: empty returns")
    ret = evaluate.episodes(env, p, 2.0)
    eq(#ret, 2, "an integral float is accepted")
  end)
end)

describe("env from_mjcf", function()
  local dir = root .. "/examples/custom_mjcf"
  local xml = dir .. "/arm2d.xml"

  it("runs a custom model with a Lua task table", function()
    local task = dofile(dir .. "/task.lua")
    local env = assert(E.from_mjcf(xml, task, {seed = 2}))
    eq(env.name, "arm2d", "name from the file")
    eq(env.custom, true, "custom")
    eq(env.obs_dim, 8, "obs_dim from the first observation")
    eq(env.act_dim, 2, "act_dim = nu")
    near(env.dt, 0.02, 1e-12, "dt = timestep * frame_skip")
    eq(env.max_steps, 100, "max_steps from the task")
    local obs = env:reset()
    eq(shape(obs), "8", "obs")
    -- reward recomputed here from the state and the model's geometry (0.1 + 0.11 m links)
    local o, r, term, trunc = env:step({0.5, -2.0})
    eq(term, false, "never terminates")
    eq(trunc, false, "not truncated yet")
    local q = doubles(env:state().qpos)
    local xs = doubles(env:state().xpos)   -- fingertip is body 4 (world, upper, lower, tip)
    local tipx, tipy = xs[10], xs[11]
    local dist = math.sqrt((tipx - 0.10) ^ 2 + (tipy - 0.12) ^ 2)
    near(r, -dist - 0.01 * (0.25 + 1.0), 1e-12, "reward (ctrl clipped to 1)")
    check(q[1] ~= 0, "the arm moved")
    local steps = 1
    repeat _, _, term, trunc = env:step({0, 0}); steps = steps + 1 until term or trunc
    eq(steps, 100, "truncated at max_steps")
    eq(env:termination(T.zeros(3, 8)):numel(), 3, "task.termination")
    -- state round trip works for custom envs too
    env:reset()
    local s = env:state()
    local r1 = select(2, env:step({0.3, 0.3}))
    env:load_state(s)
    eq(select(2, env:step({0.3, 0.3})), r1, "custom resume")
  end)

  it("passes views that expose the simulation and expire after the call", function()
    local kept
    local task = {
      observation = function(view)
        kept = view
        local q = view:qpos()
        eq(shape(q), "2", "qpos tensor")
        eq(view.nq, 2, "nq")
        eq(view.nbody, 4, "nbody")
        eq(shape(view:xpos()), "4 x 3", "xpos tensor")
        eq(shape(view:cfrc_ext()), "4 x 6", "cfrc_ext tensor")
        local x, y, z = view:xpos("fingertip")
        eq(view:xpos(4, 1), x, "body by index")
        check(z ~= nil and y ~= nil, "three coordinates")
        local m = view:body_mass("upper")
        check(m > 0, "mass %g", m)
        raises(function() view:xpos("nope") end, "no body named 'nope'")
        raises(function() view:qpos(3) end, "index 3 out of range [1, 2]")
        return {view:qpos(1), view:qpos(2), view:qvel(1)}
      end,
      reward = function(view, action, before)
        eq(#action, 2, "action table")
        check(view:time() > before:time(), "before is earlier")
        return view:qpos(1) - before:qpos(1)
      end,
      terminated = function(view) return view:qpos(1) > 0.5 end,
    }
    local env = assert(E.from_mjcf(xml, task))
    eq(env.obs_dim, 3, "obs_dim 3")
    env:reset{noise_scale = 0}
    local _, r = env:step({1, 0})
    check(r > 0, "reward is the shoulder's progress: %g", r)
    raises(function() kept:qpos(1) end, "only valid inside the task callback")
    -- push the shoulder until the task terminates
    local term
    for _ = 1, 200 do
      _, _, term = env:step({1, 0})
      if term then break end
    end
    eq(term, true, "task.terminated ends the episode")
    eq(env:termination_fn(), nil, "no task.termination")
    raises(function() env:termination(T.zeros(1, 3)) end, "has no task.termination function")
  end)

  it("refuses env:close() inside its own callbacks and stays usable", function()
    for _, field in ipairs({"observation", "reset", "reward", "terminated"}) do
      local task = dofile(dir .. "/task.lua")
      local env
      local armed = false
      local orig = task[field] or function() return nil, nil end
      task[field] = function(...)
        if armed then armed = false; env:close() end
        return orig(...)
      end
      env = assert(E.from_mjcf(xml, task, {seed = 1}))
      env:reset()
      armed = true
      raises(function() env:reset(); env:step({0, 0}) end,
             "cannot close an env inside its own task callback")
      check(tostring(env) ~= "mbpo.Env (closed)", "%s: still open after the refusal", field)
      env:reset()
      local obs = env:step({0.1, 0.1})
      eq(obs:numel(), 8, field .. ": the env still steps")
      -- __close of a to-be-closed variable inside the callback is refused the same way
      armed = false
      task[field] = function(...)
        if armed then armed = false; local c <close> = env end
        return orig(...)
      end
      armed = true
      raises(function() env:reset(); env:step({0, 0}) end, "cannot close an env inside")
      -- an explicit __gc call inside a callback is a no-op, not a free
      task[field] = function(...)
        if armed then armed = false; getmetatable(env).__gc(env) end
        return orig(...)
      end
      armed = true
      env:reset(); env:step({0, 0})
      check(tostring(env) ~= "mbpo.Env (closed)", "%s: __gc inside a callback frees nothing", field)
      env:close()
      eq(tostring(env), "mbpo.Env (closed)", field .. ": closes after the callbacks")
    end
  end)

  it("reports load failures as nil, message with MuJoCo's text", function()
    local task = dofile(dir .. "/task.lua")
    local env, msg = E.from_mjcf("/nonexistent/robot.xml", task)
    eq(env, nil, "bad path")
    check(msg:find("cannot open '/nonexistent/robot.xml'", 1, true), "bad path message: %s", msg)
    local bad = write_file("<mujoco><worldbody><body></worldbody></mujoco>")
    env, msg = E.from_mjcf(bad, task)
    eq(env, nil, "malformed XML")
    check(msg:find("does not load", 1, true) and msg:find("XML", 1, true),
          "malformed message: %s", msg)
    check(not msg:find("\n"), "one line: %s", msg)
    os.remove(bad)
    local noact = write_file("<mujoco><worldbody><body><joint type='slide'/><geom size='.1'/>" ..
                             "</body></worldbody></mujoco>")
    env, msg = E.from_mjcf(noact, task)
    eq(env, nil, "no actuators")
    check(msg:find("no actuators", 1, true), "no actuators message: %s", msg)
    os.remove(noact)
  end)

  it("raises one clear message for a bad task table", function()
    local base = dofile(dir .. "/task.lua")
    local function without(field)
      local t = {}
      for k, v in pairs(base) do t[k] = v end
      t[field] = nil
      return t
    end
    raises(function() E.from_mjcf(xml, without("reward")) end,
           "from_mjcf: task.reward must be a function, got nil")
    raises(function() E.from_mjcf(xml, without("observation")) end,
           "from_mjcf: task.observation must be a function, got nil")
    raises(function() E.from_mjcf(xml, without("terminated")) end,
           "from_mjcf: task.terminated must be a function, got nil")
    raises(function() E.from_mjcf(xml, nil) end, "from_mjcf: task must be a table of functions")
    local t = without("reset")
    t.reset = 3
    raises(function() E.from_mjcf(xml, t) end, "task.reset must be a function or nil, got number")
    t = without("x")
    t.terminated = function() return 1 end
    local env = assert(E.from_mjcf(xml, t))
    env:reset()
    raises(function() env:step({0, 0}) end, "task.terminated must return a boolean, got number")
    t = without("x")
    t.observation = function() return "obs" end
    raises(function() E.from_mjcf(xml, t) end, "task.observation must return an mbpo.Tensor")
    t = without("x")
    t.reward = function() error("boom") end
    env = assert(E.from_mjcf(xml, t))
    env:reset()
    raises(function() env:step({0, 0}) end, "task.reward:")
    t = without("x")
    t.frame_skip = 0
    raises(function() E.from_mjcf(xml, t) end,
           "from_mjcf: task: frame_skip must be an integer in [1, 100000], got 0")
  end)

  it("places a custom task's errors at the caller, as the C methods' own errors", function()
    -- the task runner is Lua (lua/mbpo/env.lua): its messages must still point at the line
    -- that called the env's method (or the view's), never into the library
    local here = debug.getinfo(1, "S").short_src
    local function at(err, pattern)
      check(err:find(here .. ":%d+: " .. pattern), "position of: %s", err)
      check(not err:find("mbpo/env.lua", 1, true), "library position in: %s", err)
    end
    local base = dofile(dir .. "/task.lua")
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    t.reward = nil
    at(raises(function() E.from_mjcf(xml, t) end, "task.reward must be"), "from_mjcf")
    t.reward, t.frame_skip = base.reward, 0
    at(raises(function() E.from_mjcf(xml, t) end, "frame_skip must be"), "from_mjcf: task")
    t.frame_skip = nil
    local env = assert(E.from_mjcf(xml, t))
    env:reset()
    t.reward = function() return {} end
    at(raises(function() env:step({0, 0}) end, "must return a number"), "task.reward must")
    t.reward = function(v) local q = v:qpos(5); return q end
    local err = raises(function() env:step({0, 0}) end, "index 5 out of range [1, 2]")
    at(err, "task.reward: " .. here:gsub("%p", "%%%0") .. ":%d+: view:qpos: index 5")
    t.reset = function() return {1, 2, 3} end
    at(raises(function() env:reset() end, "qpos has 3 values"), "task.reset: qpos has 3")
    t.termination = nil
    at(raises(function() env:termination(T.zeros(1, 8)) end, "no task.termination"),
       "env:termination: custom task")
    t.termination = function() error("own message", 0) end
    eq(raises(function() env:termination(T.zeros(1, 8)) end, "own"), "own message",
       "task.termination's error as it is")
  end)

  it("turns a MuJoCo error inside mj_step into a Lua error", function()
    -- the stack fits the compiler's contact-free check but not the falling box's contacts
    local path = write_file([[
      <mujoco><size nstack='200'/>
        <worldbody><geom type='plane' size='5 5 .1'/>
          <body name='a' pos='0 0 0.102'><joint name='j' type='free'/>
            <geom type='box' size='.1 .1 .1'/></body>
        </worldbody>
        <actuator><motor joint='j' gear='1'/></actuator>
      </mujoco>]])
    local task = {observation = function(v) return {v:qpos(3)} end,
                  reward = function() return 0 end, terminated = function() return false end}
    local env = assert(E.from_mjcf(path, task))
    env:reset{noise_scale = 0}
    local err = raises(function() for _ = 1, 300 do env:step({0}) end end, "MuJoCo error")
    check(err:find("Stack overflow", 1, true), "MuJoCo's text: %s", err)
    raises(function() env:step({0}) end, "step before reset")
    env:reset()
    os.remove(path)
  end)
end)
