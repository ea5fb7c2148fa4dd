-- A MOPO-style rollout scheme (Yu et al. 2020, "MOPO: Model-based Offline Policy
-- Optimization"): the branched rollouts of mbpo.rollout.run, with each model reward penalised
-- by the ensemble's disagreement, r - lambda * u(s, a), where u is the norm of the standard
-- deviation, across the elites, of their predicted means of [reward, next_obs - obs].
-- A rollout scheme is a file (or module) returning a function with the signature of
-- mbpo.rollout.run: f{real=, model_buffer=, agent=, ensemble=, termination=, batch=, length=,
-- rng=, keep_terminated=} -> {steps=, transitions=, mean_length=, nonfinite=} or nil, message.
--   mbpo run tests/lua/data/tiny.lua rollout.fn=examples/mopo_rollout.lua
local T = require "mbpo.tensor"

local lambda = 1.0   -- the penalty's weight

-- u(obs, act) [N]: || std over the elites of their mean prediction || per row
local function disagreement(ens, obs, act)
  local elites = ens:elites()
  if #elites < 2 then return T.zeros(obs:size(1)) end
  local mean = ens:predict(T.cat({obs, act}, 2))   -- [members x N x outputs]
  return mean:index_select(1, elites):std(1):square():sum(2):sqrt()
end

return function(o)
  local obs = o.real:sample_obs(o.batch, o.rng)
  local added, steps = 0, 0
  for _ = 1, o.length do
    local n = obs:size(1)
    if n == 0 then break end
    local act = o.agent:act(obs, {deterministic = false}, o.rng)
    local next_obs, reward = o.ensemble:step(obs, act, o.rng)
    if not (next_obs:isfinite():all() and reward:isfinite():all()) then
      return nil, string.format("the model predicted NaN or Inf at step %d", steps + 1)
    end
    reward = reward - disagreement(o.ensemble, obs, act):mul_(lambda)
    local done = o.termination(next_obs)
    o.model_buffer:add_batch(obs, act, reward, next_obs, done)
    added = added + n
    if done:sum() > 0 then next_obs = next_obs:masked_select(done:eq(0)) end
    obs = next_obs
    steps = steps + 1
  end
  return {steps = steps, transitions = added, mean_length = added / o.batch, nonfinite = 0}
end
