-- The Dyna loop of examples/dyna.lua as a loop on the harness of mbpo.train, so that `mbpo
-- run` gives it a run directory, progress.csv, checkpoints and --resume: every
-- model.train_freq env steps, fit the model and add one-step model transitions from
-- rollout.batch real start states; then one real env step and sac.updates_per_step SAC
-- updates on mixed batches, one call each; an evaluation at the end of the epoch.
-- A loop is a file (or module) returning {start = f(run), epoch = f(run)} (see mbpo.harness);
-- state it keeps in run.st is checkpointed and restored with the rest.
--   mbpo run tests/lua/data/tiny.lua loop=examples/dyna_loop.lua
local Buffer = require "mbpo.buffer"
local mbpo = require "mbpo.train"   -- the phases this loop shares with MBPO

local L = {}

-- one-step rollouts from real start states into the model buffer
local function dyna_rollouts(run)
  local rng = run.rng.rollout
  local s = run.real:sample_obs(run.cfg.rollout.batch, rng)
  local a = run.agent:act(s, {}, rng)
  local s2, r = run.model:step(s, a, rng)
  run.model_buffer:add_batch(s, a, r, s2, run.termination(s2))
end

-- the SAC updates of one env step, each on a fresh mixed batch; statistics summed per epoch
local function updates(run)
  local st, sac = run.st, run.cfg.sac
  for _ = 1, sac.updates_per_step do
    run.batch = Buffer.sample_mixed(run.real, run.model_buffer, sac.batch, sac.real_ratio,
      run.rng.batch, run.batch)
    for k, v in pairs(run.agent:update(run.batch)) do st.sac_sum[k] = (st.sac_sum[k] or 0) + v end
    st.sac_n = st.sac_n + 1
  end
end

-- a fresh run: rollouts of length 1 (the model buffer holds rollout.retain_epochs of them),
-- then uniform exploration as in MBPO
function L.start(run)
  run.st.k = 1
  run.model_buffer:resize(require("mbpo.harness").model_capacity(run.cfg, 1))
  run:timed("explore", mbpo.explore, run)
end

-- one epoch; a run resumed from an interrupt continues at env step st.t
function L.epoch(run)
  local st, cfg = run.st, run.cfg
  for t = st.t, cfg.epoch_length - 1 do
    if t % cfg.model.train_freq == 0 then
      run:timed("model", mbpo.train_model, run)
      run:timed("rollout", dyna_rollouts, run)
    end
    run:timed("env", mbpo.env_step, run)
    run:timed("sac", updates, run)
    run:step_done(t)
  end
  st.t = 0
  if run:eval_due() then run:timed("eval", mbpo.evaluate, run) end
end

return L
