-- Specs of mbpo.sac: construction and its errors, acting (tables and tensors), the update's
-- inputs and results, state round trips that continue bit for bit, and a learning test: SAC
-- alone solves a small continuous control task written here (no simulator).
local SAC = require "mbpo.sac"
local Rng = require "mbpo.rng"
local T = require "mbpo.tensor"

-- a random batch as Lua tables of rows
local function table_batch(rng, B, O, A)
  local b = {obs = {}, act = {}, reward = {}, next_obs = {}, done = {}}
  for i = 1, B do
    local o, o2, a = {}, {}, {}
    for j = 1, O do o[j], o2[j] = rng:uniform(-1, 1), rng:uniform(-1, 1) end
    for j = 1, A do a[j] = rng:uniform(-1, 1) end
    b.obs[i], b.next_obs[i], b.act[i] = o, o2, a
    b.reward[i] = rng:uniform(-1, 1)
    b.done[i] = i % 4 == 0 and 1 or 0
  end
  return b
end

local function small(extra)
  local cfg = {obs = 3, act = 2, hidden = {16, 16}, batch = 8, seed = 3}
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return SAC.new(cfg)
end

local STATS = {"q1_loss", "q2_loss", "critic_loss", "actor_loss", "alpha_loss", "alpha", "q_mean",
               "q_pi", "target_mean", "entropy"}

describe("SAC.new", function()
  it("has a version and builds an agent with the reference defaults", function()
    check(type(SAC._VERSION) == "string", "no _VERSION")
    local a = SAC.new{obs = 11, act = 3}
    local c = a:config()
    eq(c.obs, 11); eq(c.act, 3); eq(#c.hidden, 2); eq(c.hidden[1], 256)
    near(c.actor_lr, 3e-4, 1e-6); near(c.gamma, 0.99, 1e-6); near(c.tau, 5e-3, 1e-6)
    eq(c.target_entropy, SAC.fields.target_entropy.default)
    eq(c.auto_alpha, true); eq(c.batch, 256)
    near(a:alpha(), 1, 1e-7)
    eq(a:updates(), 0)
    check(tostring(a):find("mbpo.Sac", 1, true), "tostring: %s", tostring(a))
  end)

  it("takes a precision: fp32 (default) or bf16, kept in its config", function()
    eq(small():config().precision, "fp32")
    raises(function() small{precision = "fp16"} end,
      "SAC.new: precision must be one of fp32, bf16, got 'fp16'")
    raises(function() small{precision = 16} end,
      'SAC.new: precision must be one of fp32, bf16, got 16')
    local ok, a = pcall(small, {precision = "bf16"})
    if not ok then -- a CPU without native bf16 refuses in one line
      check(tostring(a):find("use precision=fp32", 1, true), "message: %s", tostring(a))
      return
    end
    eq(a:config().precision, "bf16")
    local b = SAC.new(a:state().config)
    eq(b:config().precision, "bf16", "config round trip")
  end)

  it("rejects bad configurations with the values in the message", function()
    raises(SAC.new, "SAC.new: obs is required (an integer in [1, 1048576])", {act = 2})
    raises(SAC.new, "SAC.new: unknown option 'hiden' (nearest: hidden, seed, obs)",
      {obs = 3, act = 1, hiden = {8}})
    raises(SAC.new, "SAC.new: hidden must be a list of 1 to 7 integers, got 0 values",
      {obs = 3, act = 1, hidden = {}})
    raises(SAC.new, "SAC.new: hidden[2] must be an integer in [1, 65536], got -1",
      {obs = 3, act = 1, hidden = {8, -1}})
    raises(SAC.new, "SAC.new: gamma must be a number in [0, 1], got 1.5",
      {obs = 3, act = 1, gamma = 1.5})
    raises(SAC.new, "SAC.new: init_alpha must be a number > 0, got 0",
      {obs = 3, act = 1, init_alpha = 0})
    raises(SAC.new, "SAC.new: auto_alpha must be true or false, got 1",
      {obs = 3, act = 1, auto_alpha = 1})
    raises(SAC.new, "SAC.new: lr must be a number > 0, got 'fast'", {obs = 3, act = 1, lr = "fast"})
    raises(SAC.new, "SAC.new: batch must be an integer in [1, 16777216], got 2.5",
      {obs = 3, act = 1, batch = 2.5})
    raises(SAC.new, "table expected", 3)
  end)
end)

describe("agent:act", function()
  it("acts on one row or a batch of rows given as tables", function()
    local a = small()
    local one = a:act({0.1, -0.2, 0.3}, {deterministic = true})
    eq(#one, 2)
    local many = a:act({{0.1, -0.2, 0.3}, {1, 2, 3}}, {deterministic = true})
    eq(#many, 2); eq(#many[1], 2)
    for j = 1, 2 do
      eq(many[1][j], one[j], "row 1 of the batch equals the single row")
      check(one[j] > -1 and one[j] < 1, "action %g outside (-1, 1)", one[j])
    end
  end)

  it("draws from the given generator, else from its own", function()
    local a = small()
    local o = {0.5, 0.5, -0.5}
    local x = a:act(o, nil, Rng.new(9))
    local y = a:act(o, {}, Rng.new(9))
    eq(x[1], y[1]); eq(x[2], y[2])
    local before = a:state().rng
    local z = a:act(o, {deterministic = false}, Rng.new(10))
    check(z[1] ~= x[1], "different generators gave the same action")
    eq(a:state().rng, before, "a given generator leaves the agent's own")
    a:act(o)
    check(a:state().rng ~= before, "no generator: the agent's own advances")
  end)

  it("returns tensors for tensors, into opts.out when given", function()
    local a = small()
    local out = a:act(T.zeros(5, 3))
    eq(out:size(1), 5); eq(out:size(2), 2)
    local v = a:act(T.zeros(3), {deterministic = true})
    eq(v:dim(), 1); eq(v:size(1), 2)
    local buf = T.zeros(4, 2)
    check(rawequal(a:act(T.zeros(4, 3), {out = buf}), buf), "out not returned")
    raises(function() a:act(T.zeros(4, 5)) end,
      "sac:act: obs must be a contiguous [N x 3] tensor, got [4 x 5]")
    raises(function() a:act(T.zeros(4, 3), {out = T.zeros(3, 2)}) end,
      "opts.out must be a contiguous [4 x 2] tensor, got [3 x 2]")
    raises(function() a:act({1, 2}) end, "obs has 2 numbers, expected 3")
    raises(function() a:act("x") end, "obs must be a tensor or a table, got string")
  end)
end)

describe("agent:update", function()
  it("returns every statistic as a number and reuses a given table", function()
    local a = small()
    local b = table_batch(Rng.new(1), 8, 3, 2)
    local st = a:update(b)
    for _, k in ipairs(STATS) do
      check(math.type(st[k]) == "float" and st[k] == st[k], "%s = %s", k, tostring(st[k]))
    end
    near(st.critic_loss, st.q1_loss + st.q2_loss, 1e-12)
    near(st.alpha, 1, 1e-7, "the first update uses init_alpha")
    eq(a:updates(), 1)
    local again = a:update(b, st)
    check(rawequal(again, st), "stats table not reused")
    check(a:alpha() < 1, "temperature did not move: %g", a:alpha())
  end)

  it("takes a batch table or five arguments, tables or tensors, with the same result", function()
    local b = table_batch(Rng.new(2), 8, 3, 2)
    local x, y = small(), small()
    local sx = x:update(b)
    local sy = y:update(b.obs, b.act, b.reward, b.next_obs, b.done)
    for _, k in ipairs(STATS) do eq(sx[k], sy[k], k) end
    -- tensors (zeros: the tensor module has no fill yet) against tables of zeros
    local z, w = small(), small()
    local zb = {obs = {}, act = {}, reward = {}, next_obs = {}, done = {}}
    for i = 1, 8 do
      zb.obs[i], zb.act[i], zb.next_obs[i] = {0, 0, 0}, {0, 0}, {0, 0, 0}
      zb.reward[i], zb.done[i] = 0, 0
    end
    local sz = z:update{obs = T.zeros(8, 3), act = T.zeros(8, 2), reward = T.zeros(8),
                        next_obs = T.zeros(8, 3), done = T.zeros(8, 1)}
    local sw = w:update(zb)
    for _, k in ipairs(STATS) do eq(sz[k], sw[k], k) end
  end)

  it("checks the batch's fields and shapes", function()
    local a = small()
    local b = table_batch(Rng.new(3), 8, 3, 2)
    b.done = nil
    raises(function() a:update(b) end, "batch.done is missing")
    b = table_batch(Rng.new(3), 8, 3, 2)
    b.act[8] = nil
    raises(function() a:update(b) end, "act has 7 rows, expected 8")
    b = table_batch(Rng.new(3), 8, 3, 2)
    b.obs[2] = {1, 2}
    raises(function() a:update(b) end,
      "sac:update: obs: ragged nested table, [2] has 2 elements, expected 3")
    raises(function() a:update{obs = T.zeros(8, 4), act = T.zeros(8, 2), reward = T.zeros(8),
                               next_obs = T.zeros(8, 3), done = T.zeros(8)} end,
           "sac:update: obs must be a contiguous [N x 3] tensor, got [8 x 4]")
    raises(function() a:update{obs = T.zeros(8, 3), act = T.zeros(8, 2), reward = T.zeros(7),
                               next_obs = T.zeros(8, 3), done = T.zeros(8)} end,
           "reward has 7 rows, expected 8")
    eq(a:updates(), 0, "failed updates changed nothing")
  end)

  it("reports non-finite losses instead of raising", function()
    local a = small()
    local b = table_batch(Rng.new(4), 8, 3, 2)
    b.reward[5] = 0 / 0
    local st = a:update(b)
    check(st.q1_loss ~= st.q1_loss, "NaN reward gave q1_loss %g", st.q1_loss)
  end)

  it("keeps the temperature fixed when auto_alpha is false", function()
    local a = small{auto_alpha = false, init_alpha = 0.25}
    local b = table_batch(Rng.new(5), 8, 3, 2)
    for _ = 1, 5 do a:update(b) end
    near(a:alpha(), 0.25, 1e-7)
  end)

  it("counts its FLOPs", function()
    local a = SAC.new{obs = 11, act = 3}
    local f = a:flops()
    check(f > 0.5e9 and f < 0.6e9, "Hopper update %g FLOP", f)
    near(a:flops(512), 2 * f, 1e-12, "linear in the batch")
  end)
end)

describe("agent:update_mixed", function()
  local Buffer = require "mbpo.buffer"
  local core = require "mbpo.core"

  -- a real and a model buffer of random rows
  local function buffers(O, A, nreal, nmodel)
    local g = Rng.new(11)
    local real = Buffer.new{obs = O, act = A, capacity = nreal}
    local model = Buffer.new{obs = O, act = A, capacity = nmodel}
    for _, bn in ipairs{{real, nreal}, {model, nmodel}} do
      local n = bn[2]
      local done = T.rand({n}, g):gt(0.8)
      bn[1]:add_batch(T.randn({n, O}, g), T.rand({n, A}, g):mul_(2):sub_(1), T.randn({n}, g),
        T.randn({n, O}, g), done)
    end
    return real, model
  end

  it("is bit for bit the Lua loop of sample_mixed + update + sums, at 1 and 2 threads", function()
    local saved = core.threads()
    for _, th in ipairs{1, 2} do
      core.set_threads(th)
      local real, model = buffers(3, 2, 50, 300)
      local a, b = small(), small()
      local ga, gb = Rng.new(21), Rng.new(21)
      -- sums that already hold a value continue from it
      local suma, sumb, batch = {q_pi = 0.5}, {q_pi = 0.5}, nil
      for step = 1, 4 do
        -- the loop train.lua ran before update_mixed
        for _ = 1, 5 do
          batch = Buffer.sample_mixed(real, model, 8, 0.25, ga, batch)
          local r = a:update(batch)
          for k, v in pairs(r) do suma[k] = (suma[k] or 0) + v end
        end
        eq(b:update_mixed(real, model, 5, 0.25, gb, sumb), 5, "finite updates, step " .. step)
      end
      for _, k in ipairs(STATS) do eq(sumb[k], suma[k], k .. " sum at " .. th .. " threads") end
      local sa, sb = a:state(), b:state()
      eq(sb.rng, sa.rng, "agent generator")
      eq(gb:uniform(0, 1), ga:uniform(0, 1), "batch generator")
      for _, k in ipairs{"pi", "pi_m", "pi_v", "q", "q_target", "q_m", "q_v"} do
        eq(sb[k]:sub(sa[k]):abs():max(), 0, k .. " at " .. th .. " threads")
      end
      eq(sb.log_alpha, sa.log_alpha); eq(b:updates(), 20)
      -- all from the real buffer while the model buffer is empty; n = 0 changes nothing
      local empty = Buffer.new{obs = 3, act = 2, capacity = 10}
      local before = b:state().pi
      eq(b:update_mixed(real, empty, 0, 0.25, gb, sumb), 0)
      eq(b:state().pi:sub(before):abs():max(), 0, "n = 0")
      eq(b:update_mixed(real, empty, 2, 0.25, gb, sumb), 2)
    end
    core.set_threads(saved)
  end)

  it("in bf16 (weight images kept across the call's updates) is bit for bit one update " ..
    "a call", function()
    -- hidden layers of 64 and a batch of 64: the middle products run in bf16; each update
    -- call rounds the weights once and every Adam step refreshes what it changed, so the
    -- second and later updates of one call must see the stepped weights exactly as a fresh
    -- call does
    local cfg = {obs = 5, act = 3, hidden = {64, 64}, batch = 64, seed = 4, precision = "bf16"}
    local ok, a = pcall(SAC.new, cfg)
    if not ok then
      check(tostring(a):find("use precision=fp32", 1, true), "refusal: %s", tostring(a))
      return
    end
    local saved = core.threads()
    for _, th in ipairs{1, 2} do
      core.set_threads(th)
      a = SAC.new(cfg)
      local b = SAC.new(cfg)
      local real, model = buffers(5, 3, 200, 600)
      local ga, gb, suma, sumb, batch = Rng.new(8), Rng.new(8), {}, {}, nil
      for step = 1, 3 do
        for _ = 1, 4 do
          batch = Buffer.sample_mixed(real, model, 64, 0.25, ga, batch)
          local r = a:update(batch)
          for k, v in pairs(r) do suma[k] = (suma[k] or 0) + v end
        end
        eq(b:update_mixed(real, model, 4, 0.25, gb, sumb), 4, "step " .. step)
        -- weights changed between calls are seen by the next call
        if step == 2 then
          local st = a:state()
          st.pi:mul_(0.5); st.q:mul_(0.5)
          a:load_state(st)
          b:load_state(st)
        end
      end
      for _, k in ipairs(STATS) do eq(sumb[k], suma[k], k .. " sum at " .. th .. " threads") end
      local sa, sb = a:state(), b:state()
      for _, k in ipairs{"pi", "pi_m", "q", "q_target", "q_m", "q_v"} do
        eq(sb[k]:sub(sa[k]):abs():max(), 0, k .. " at " .. th .. " threads")
      end
      check(sa.pi:sub(SAC.new(cfg):state().pi):abs():max() > 0, "the agent learned")
    end
    core.set_threads(saved)
  end)

  it("stops at the first non-finite update and reports its losses", function()
    local real, model = buffers(3, 2, 50, 300)
    local bad = Buffer.new{obs = 3, act = 2, capacity = 5}
    local nan = T.full({5}, 0 / 0)
    bad:add_batch(T.zeros(5, 3), T.zeros(5, 2), nan, T.zeros(5, 3), T.zeros(5))
    local a, sums = small(), {}
    eq(a:update_mixed(real, model, 3, 0.25, Rng.new(1), sums), 3)
    local before = sums.critic_loss
    local n, closs, aloss = a:update_mixed(bad, model, 3, 0.5, Rng.new(1), sums)
    eq(n, 0, "no finite update")
    check(closs ~= closs, "critic loss %s", tostring(closs))
    check(type(aloss) == "number", "actor loss returned")
    eq(sums.critic_loss, before, "the bad update is not summed")
  end)

  it("checks its arguments", function()
    local real = buffers(3, 2, 50, 300)
    local other = Buffer.new{obs = 4, act = 2, capacity = 5}
    other:add_batch(T.zeros(5, 4), T.zeros(5, 2), T.zeros(5), T.zeros(5, 4), T.zeros(5))
    local a = small()
    raises(function() a:update_mixed(other, other, 1, 0.5, Rng.new(1), {}) end,
      "buffer rows have obs=4 act=2, the agent obs=3 act=2")
    raises(function() a:update_mixed(real, other, 1, 0.5, Rng.new(1), {}) end, "widths differ")
    raises(function() a:update_mixed(real, real, -1, 0.5, Rng.new(1), {}) end, "n must be in")
    raises(function() a:update_mixed(real, real, 1, 1.5, Rng.new(1), {}) end, "outside [0, 1]")
    raises(function() a:update_mixed(real, real, 1, 0.5, Rng.new(1)) end, "table expected")
    raises(function() a:update_mixed({}, real, 1, 0.5, Rng.new(1), {}) end, "mbpo.Buffer expected")
  end)
end)

describe("agent:state", function()
  it("continues bit for bit after load_state into a new agent", function()
    local rng = Rng.new(6)
    local batches = {}
    for i = 1, 6 do batches[i] = table_batch(rng, 8, 3, 2) end
    local a = small()
    for i = 1, 3 do a:update(batches[i]) end
    local st = a:state()
    eq(st.updates, 3); eq(st.pi_t, 3); eq(st.q_t, 3); eq(st.alpha_t, 3)
    eq(tostring(st.rng), "mbpo.Array U64 [4]")
    eq(st.q:size(1), 2)
    local b = SAC.new(st.config)
    check(rawequal(b:load_state(st), b), "load_state returns the agent")
    for i = 4, 6 do
      local sa, sb = a:update(batches[i]), b:update(batches[i])
      for _, k in ipairs(STATS) do eq(sb[k], sa[k], k .. " after resume") end
    end
    local o = {0.3, 0.1, -0.4}
    local xa, xb = a:act(o), b:act(o) -- own generators, also restored
    eq(xa[1], xb[1]); eq(xa[2], xb[2])
    eq(a:alpha(), b:alpha())
  end)

  it("raises one line for a state that does not fit, leaving the agent as it was", function()
    local a = small()
    local o = {0.3, 0.1, -0.4}
    local before = a:act(o, {deterministic = true})
    local other = SAC.new{obs = 3, act = 2, hidden = {8}}:state()
    raises(function() a:load_state(other) end, "sac:load_state: layout is 'obs 3, act 2, " ..
      "hidden {8}' in the state, 'obs 3, act 2, hidden {16,16}' in this agent")
    other.layout = nil -- without its layout: the first missing block is named
    raises(function() a:load_state(other) end,
      "sac:load_state: the state has no layout ('obs 3, act 2, hidden {16,16}' in this agent)")
    other.layout = a:state().layout -- the shapes of the arrays are checked: both named
    raises(function() a:load_state(other) end, "sac:load_state: pi is F32 [" ..
      other.pi:size(1) .. "] in the state, F32 [" .. a:state().pi:size(1) .. "] in this agent")
    local st = a:state()
    st.rng = "zz"
    raises(function() a:load_state(st) end, "rng is 'zz' in the state, U64 [4] in this agent")
    st = small{seed = 99}:state()
    st.q_t = -1
    raises(function() a:load_state(st) end, "sac:load_state: q_t is -1: a count must be >= 0")
    st = small{seed = 99}:state()
    st.log_alpha = "x"
    raises(function() a:load_state(st) end, "log_alpha is 'x' in the state, a number in this agent")
    local after = a:act(o, {deterministic = true})
    eq(after[1], before[1]); eq(after[2], before[2])
    raises(function() a:load_state(3) end, "table expected")
  end)

  it("can be closed", function()
    local a = small()
    a:close()
    raises(function() a:act({1, 2, 3}) end, "agent has been closed")
    check(tostring(a):find("closed", 1, true), "tostring of a closed agent")
  end)
end)

-- Learning test ---------------------------------------------------------------------------
-- A point on [-1, 1] must reach a goal g in [-0.7, 0.7]: obs = {x, g}, x' = clip(x + 0.25 a),
-- reward -|x' - g|, episodes of 15 steps (the time limit is not terminal), gamma 0.9.
-- 200 uniform-random steps, then one update (batch 64 from all data) per environment step.
-- Solved: after UPDATES updates the deterministic policy's return over 20 fixed episodes is
-- within 0.6 of the oracle policy's (which moves straight to the goal; about -0.59 there,
-- about -8 for a policy that does not move) and its mean final distance is below 0.05.
local UPDATES, H, SPEED = 3000, 15, 0.25

local function clamp(v, lo, hi) return v < lo and lo or (v > hi and hi or v) end
local function step(o, a)
  local x = clamp(o[1] + SPEED * a, -1, 1); return {x, o[2]}, -math.abs(x - o[2])
end

-- mean return and final distance of policy(o) -> a over 20 fixed episodes
local function evaluate(policy)
  local g = Rng.new(777)
  local ret, dist = 0, 0
  for _ = 1, 20 do
    local o = {g:uniform(-1, 1), g:uniform(-0.7, 0.7)}
    for _ = 1, H do
      local r
      o, r = step(o, policy(o))
      ret = ret + r / 20
    end
    dist = dist + math.abs(o[1] - o[2]) / 20
  end
  return ret, dist
end

local function train(seed)
  local agent = SAC.new{obs = 2, act = 1, hidden = {64, 64}, lr = 1e-3, gamma = 0.9, batch = 64,
                        seed = seed}
  local rng = Rng.new(seed, 1)
  local data = {}
  local batch = {obs = {}, act = {}, reward = {}, next_obs = {}, done = {}}
  local o, t = {rng:uniform(-1, 1), rng:uniform(-0.7, 0.7)}, 0
  for i = 1, 200 + UPDATES do
    local a = i <= 200 and {rng:uniform(-1, 1)} or agent:act(o, nil, rng)
    local o2, r = step(o, a[1])
    data[#data + 1] = {o, a, r, o2}
    t = t + 1
    if t == H then o, t = {rng:uniform(-1, 1), rng:uniform(-0.7, 0.7)}, 0 else o = o2 end
    if i > 200 then
      for j = 1, 64 do
        local d = data[rng:integer(#data)]
        batch.obs[j], batch.act[j], batch.reward[j], batch.next_obs[j], batch.done[j] =
          d[1], d[2], d[3], d[4], 0
      end
      agent:update(batch)
    end
  end
  return agent
end

describe("learning", function()
  local oracle = evaluate(function(o) return clamp((o[2] - o[1]) / SPEED, -1, 1) end)
  local still = evaluate(function() return 0 end)
  for seed = 1, 3 do
    it("solves the point-reaching task within " .. UPDATES .. " updates, seed " .. seed, function()
      local agent = train(seed)
      eq(agent:updates(), UPDATES)
      local ret, dist = evaluate(function(o) return agent:act(o, {deterministic = true})[1] end)
      check(ret > oracle - 0.6 and dist < 0.05,
            "return %.3f (oracle %.3f, still %.3f), final distance %.3f", ret, oracle, still, dist)
    end)
  end
end)
