-- mbpo.train, the algorithm, on fake run objects (no env, model or agent): the order and
-- counts of its phases in an epoch, a resume in the middle of one, and the bookkeeping of a
-- real env step (the transition stored, episode ends, the path-length cut).
local T = require "mbpo.tensor"
local train = require "mbpo.train"

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
end)
