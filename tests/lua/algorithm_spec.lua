-- mbpo.train, the algorithm, on fake run objects (no env, model or agent): the order and
-- counts of its phases in an epoch, a resume in the middle of one, the bookkeeping of a
-- real env step (the transition stored, episode ends, the path-length cut), and the counts
-- the paper fixes over whole epochs of the real phases (fake env, agent, ensemble and
-- rollout scheme; real buffers): model trainings at t % train_freq == 0 from t = 0, G agent
-- updates per env step, the rollout length of each epoch from the schedule, the model
-- buffer's capacity after each change of k and its newest rows kept. Terminated rows leaving
-- a rollout: tests/lua/rollout_spec.lua (mbpo.rollout, the default rollout.fn).
local T = require "mbpo.tensor"
local train = require "mbpo.train"
local Buffer = require "mbpo.buffer"
local Rng = require "mbpo.rng"

-- a run object that records the phases it is asked to time and the safe points
local function fake_run(cfg, t)
  local run = {cfg = cfg, st = {t = t or 0, epoch = 0}, calls = {}}
  function run:timed(name, f, ...)
    self.calls[#self.calls + 1] = name
    return f(...)
  end
  function run:step_done(step)
    self.calls[#self.calls + 1] = "|"
    self.st.t = step + 1
  end
  function run:eval_due() return true end
  return run
end

-- M.epoch with the phases stubbed (restored afterwards)
local function epoch_calls(cfg, t)
  local names = {"train_model", "rollout", "env_step", "update_agent", "evaluate"}
  local saved = {}
  for _, n in ipairs(names) do saved[n], train[n] = train[n], function() end end
  local run = fake_run(cfg, t)
  local ok, err = pcall(train.epoch, run)
  for _, n in ipairs(names) do train[n] = saved[n] end
  assert(ok, err)
  return table.concat(run.calls, " "), run
end

-- the ids (rewards) of a buffer's rows, in order, as text
local function ids(buf)
  if buf:size() == 0 then return "" end
  local out = {}
  for i, v in ipairs(buf:rows().reward:to_table()) do out[i] = math.tointeger(v) end
  return table.concat(out, " ")
end

-- the ids a..b as text
local function range(a, b)
  local out = {}
  for i = a, b do out[#out + 1] = i end
  return table.concat(out, " ")
end

-- a run object over fake env, agent, ensemble and rollout scheme and real buffers: epochs of
-- 6 env steps after 4 exploration steps, train_freq 2, G = 3, rollout batch 2, retain 2,
-- the schedule k of epoch e = ks[e]; rec records what each phase was asked
local function counting_run(ks)
  local rec = {fits = {}, asked = {}, lengths = {}, caps = {}, kept = {}, updates = {}}
  local next_id, steps, run = 0, 0, nil
  run = {
    cfg = {epoch_length = 6, init_exploration_steps = 4, max_path_length = 1000,
      model = {train_freq = 2, holdout_ratio = 0.2, holdout_cap = 10, patience = 1,
        max_epochs = 0, max_seconds = 0, batch = 4},
      rollout = {batch = 2, retain_epochs = 2, keep_terminated = false},
      sac = {updates_per_step = 3, real_ratio = 0.25, train_action = "sample"}},
    st = {epoch = 0, env_steps = 0, k = ks[1], ep_return = 0.0, ep_length = 0, episodes = 0,
      t = 0, sac_sum = {}, sac_n = 0, model = {}},
    rng = {explore = Rng.new(1, 1), act = Rng.new(1, 2), rollout = Rng.new(1, 3),
      batch = Rng.new(1, 4)},
    obs = T.zeros(1),
    env = {act_dim = 1,
      step = function(_, a)
        steps = steps + 1
        return T.full(1, steps), 1.0, false, false
      end,
      reset = function() return T.zeros(1) end},
    agent = {
      act = function() return T.zeros(1) end,
      update_mixed = function(agent, real, mb, g, ratio, rng, sums)
        rec.updates[#rec.updates + 1] = {steps = steps, g = g}
        check(agent == run.agent and real == run.real and mb == run.model_buffer and
          ratio == 0.25 and rng == run.rng.batch and sums == run.st.sac_sum,
          "update_mixed arguments of update %d", #rec.updates)
        return g, 0.5, 0.25
      end},
    model = {fit = function(_, inputs, targets, o)
      rec.fits[#rec.fits + 1] = inputs:size(1)
      eq(targets:size(1), inputs:size(1), "targets of fit " .. #rec.fits)
      eq(o.holdout_ratio, 0.2, "holdout ratio passed to fit")
      return {elites = {1}, holdout_mse = {0.5}, train_loss = {2.0}, epochs = 3}
    end},
    rollout_fn = function(o)
      eq(o.batch, 2, "rollout batch")
      check(o.rng == run.rng.rollout, "rollout rng")
      -- what D_model holds when the rollout starts (after any resize), then batch x length
      -- new rows numbered on
      rec.lengths[#rec.lengths + 1] = o.length
      rec.caps[#rec.caps + 1] = o.model_buffer:capacity()
      rec.kept[#rec.kept + 1] = ids(o.model_buffer)
      local n = o.batch * o.length
      local r = T.zeros(n)
      for i = 1, n do next_id = next_id + 1; r:set(i, next_id) end
      o.model_buffer:add_batch(T.zeros(n, 1), T.zeros(n, 1), r, T.zeros(n, 1), T.zeros(n))
      return {transitions = n, nonfinite = 0}
    end,
  }
  run.real = Buffer.new{obs = 1, act = 1, capacity = 100}
  -- D_model as built for epoch 1: retain * k * rollout_batch * E / train_freq = 2*2*2*6/2
  run.model_buffer = Buffer.new{obs = 1, act = 1, capacity = 24}
  function run:timed(_, f, ...) return f(...) end
  function run.step_done(r, t) r.st.t = t + 1 end
  function run.eval_due() return false end
  function run.fail(_, what) error(what, 0) end
  function run.rollout_length(_, epoch)
    rec.asked[#rec.asked + 1] = epoch
    return ks[epoch]
  end
  return run, rec
end

describe("algorithm", function()
  it("trains the model and rolls out at t % train_freq == 0 from t = 0, then steps", function()
    local calls, run = epoch_calls({epoch_length = 4, model = {train_freq = 2}})
    eq(calls, "model rollout env sac | env sac | model rollout env sac | env sac | eval",
      "phases of an epoch")
    eq(run.st.t, 0, "t after the epoch")
  end)

  it("continues an interrupted epoch at its next env step", function()
    local calls = epoch_calls({epoch_length = 6, model = {train_freq = 3}}, 2)
    eq(calls, "env sac | model rollout env sac | env sac | env sac | eval", "phases")
  end)

  it("stores each real transition and resets at episode ends and the path-length cut", function()
    local added, resets, steps = {}, 0, 0
    local env = {act_dim = 1,
      step = function(_, a)
        steps = steps + 1
        return T.full(2, steps), 1.5, steps == 2, false   -- terminated at the 2nd step
      end,
      reset = function() resets = resets + 1; return T.zeros(2) end}
    local run = {cfg = {max_path_length = 3, init_exploration_steps = 6}, env = env,
      obs = T.zeros(2), rng = {explore = require("mbpo.rng").new(1)},
      real = {add = function(_, o, a, r, o2, d) added[#added + 1] = {a = a:item(), d = d} end},
      st = {ep_length = 0, ep_return = 0.0, env_steps = 0, episodes = 0}}
    train.explore(run)
    eq(#added, 6, "transitions stored")
    eq(run.st.env_steps, 6, "env steps")
    for i, x in ipairs(added) do
      check(x.a >= -1 and x.a <= 1, "action %d = %g outside [-1, 1]", i, x.a)
      eq(x.d, i == 2 and 1 or 0, "done flag of step " .. i)
    end
    -- episodes: steps 1-2 (terminated), 3-5 (cut at 3), 6 (running)
    eq(run.st.episodes, 2, "episodes")
    eq(resets, 2, "resets")
    eq(run.st.ep_length, 1, "length of the running episode")
    eq(run.st.last_train_return, 4.5, "return of the last finished episode")
  end)

  it("fixes the counts of model trainings, agent updates, rollout lengths and D_model", function()
    local E, G, explore = 6, 3, 4
    local ks = {2, 3, 1}
    local run, rec = counting_run(ks)
    train.start(run)
    for _ = 1, #ks do
      train.epoch(run)
      run.st.epoch = run.st.epoch + 1
    end
    -- trainings at t = 0, 2, 4 of each epoch, on all of D_env so far (the first: exploration)
    eq(table.concat(rec.fits, " "), "4 6 8 10 12 14 16 18 20", "D_env rows at each training")
    eq(table.concat(rec.asked, " "), "1 1 1 2 2 2 3 3 3", "epoch of each schedule lookup")
    eq(table.concat(rec.lengths, " "), "2 2 2 3 3 3 1 1 1", "rollout length of each rollout")
    -- capacity 2 * k * 2 * 6 / 2 = 12 k: 24, 36, then 12 when k falls to 1
    eq(table.concat(rec.caps, " "), "24 24 24 36 36 36 12 12 12", "D_model capacity")
    eq(run.st.k, 1, "k after the last epoch")
    -- growing keeps every row; shrinking to 12 keeps the newest 12 of the 30 rows, in order
    eq(rec.kept[1], "", "D_model before the first rollout")
    eq(rec.kept[4], range(1, 12), "rows kept when k grows (to capacity 36)")
    eq(rec.kept[7], range(19, 30), "rows kept when k shrinks (to capacity 12)")
    eq(ids(run.model_buffer), range(25, 36), "D_model at the end")
    -- one call of G updates after each of the 18 env steps of the epochs
    eq(#rec.updates, #ks * E, "update calls")
    for i, u in ipairs(rec.updates) do
      eq(u.steps, explore + i, "env steps before update call " .. i)
      eq(u.g, G, "updates asked in call " .. i)
    end
    eq(run.st.sac_n, #ks * E * G, "agent updates counted")
    eq(run.st.env_steps, explore + #ks * E, "env steps")
    eq(run.real:size(), explore + #ks * E, "D_env rows")
  end)
end)
