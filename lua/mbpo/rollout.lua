-- mbpo.rollout: branched model rollouts (the heart of MBPO), as a short Lua loop over
-- coarse C calls, so that it can be read and changed:
--   start states from D_env -> k times: policy sample -> one random elite per row ->
--   termination function -> transitions into D_model; terminated rows stop.
local M = {}

-- M.run{real=, model_buffer=, agent=, ensemble=, termination=, batch=, length=, rng=,
--       keep_terminated=false} -> stats {steps=, transitions=, mean_length=}, or nil and a
--       message when the model predicts NaN/Inf
-- `termination(next_obs)` returns an [N] 0/1 tensor (1 = done).
function M.run(o)
  local obs = o.real:sample_obs(o.batch, o.rng)
  local added, steps = 0, 0
  for _ = 1, o.length do
    local n = obs:size(1)
    if n == 0 then break end
    local act = o.agent:act(obs, {deterministic = false}, o.rng)
    local next_obs, reward = o.ensemble:step(obs, act, o.rng)
    if not (next_obs:isfinite():all() and reward:isfinite():all()) then
      return nil, "the model predicted NaN or Inf"
    end
    local done = o.termination(next_obs)
    o.model_buffer:add_batch(obs, act, reward, next_obs, done)
    added = added + n
    steps = steps + 1
    if o.keep_terminated then
      obs = next_obs
    else
      local keep = done:eq(0)
      if keep:sum() < n then obs = next_obs:masked_select(keep) else obs = next_obs end
    end
  end
  return {steps = steps, transitions = added, mean_length = added / o.batch}
end

return M
