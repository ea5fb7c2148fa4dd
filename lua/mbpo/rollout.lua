-- mbpo.rollout: branched model rollouts (the heart of MBPO), as a short Lua loop over
-- coarse C calls, so that it can be read and changed:
--   start states from D_env -> k times: policy sample -> one random elite per row ->
--   termination function -> transitions into D_model; terminated rows stop.
-- Rows whose prediction holds a NaN or Inf are dropped (never stored, not stepped again) and
-- counted, as the reference drops them; only a step where every row is non-finite fails.
local M = {}

-- rows of t (an [N x D] tensor) where mask (an [N] 0/1 tensor) is 1; t itself when all are
local function rows(t, mask, n)
  if mask:sum() < n then return t:masked_select(mask) end
  return t
end

-- M.run{real=, model_buffer=, agent=, ensemble=, termination=, batch=, length=, rng=,
--       keep_terminated=false} -> stats {steps=, transitions=, mean_length=, nonfinite=},
--       or nil and a message when every row of a step is NaN/Inf
-- `termination(next_obs)` returns an [N] 0/1 tensor (1 = done).
-- keep_terminated=false: terminated rows stop. true (the masked variant): every row is
-- stepped k times, but a row's transitions are stored only until it terminates.
function M.run(o)
  local obs = o.real:sample_obs(o.batch, o.rng)
  local added, steps, nonfinite = 0, 0, 0
  local alive = nil -- masked variant: [N] 1 while the row has not terminated
  for _ = 1, o.length do
    local n = obs:size(1)
    if n == 0 then break end
    local act = o.agent:act(obs, {deterministic = false}, o.rng)
    local next_obs, reward = o.ensemble:step(obs, act, o.rng)
    if not (next_obs:isfinite():all() and reward:isfinite():all()) then
      local ok = next_obs:isfinite():all(2):mul_(reward:view(n, 1):isfinite():all(2)):view(n)
      local good = math.tointeger(ok:sum())
      if good == 0 then
        return nil, string.format("the model predicted NaN or Inf for all %d rows of step %d",
          n, steps + 1)
      end
      nonfinite = nonfinite + (n - good)
      obs, act, next_obs, reward = rows(obs, ok, n), rows(act, ok, n), rows(next_obs, ok, n),
        rows(reward:view(n, 1), ok, n):view(good)
      if alive then alive = rows(alive:view(n, 1), ok, n):view(good) end
      n = good
    end
    local done = o.termination(next_obs)
    if o.keep_terminated then
      local store = alive or done:eq(0):fill_(1)
      local m = math.tointeger(store:sum())
      if m > 0 then
        o.model_buffer:add_batch(rows(obs, store, n), rows(act, store, n),
          rows(reward:view(n, 1), store, n):view(m), rows(next_obs, store, n),
          rows(done:view(n, 1), store, n):view(m))
      end
      added = added + m
      alive = store:mul(done:eq(0))
      obs = next_obs
    else
      o.model_buffer:add_batch(obs, act, reward, next_obs, done)
      added = added + n
      obs = rows(next_obs, done:eq(0), n)
    end
    steps = steps + 1
  end
  return {steps = steps, transitions = added, mean_length = added / o.batch,
    nonfinite = nonfinite}
end

return M
