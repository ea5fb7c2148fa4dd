-- mbpo.train: the MBPO algorithm (paper Algorithm 2, as the reference implementation runs
-- it; ../shared/specs/mbpo-algorithm.md section 1), as phases over a run object:
--
--   explore N_init steps with uniform actions into D_env
--   for each epoch, for each of E env steps:
--     every model_train_freq steps: fit the ensemble on D_env (train_model), set k from the
--       schedule, resize D_model, branched rollouts of length k from rollout.batch start
--       states (rollout)
--     one real env step with a policy sample into D_env (env_step)
--     G SAC updates on mixed batches: real_ratio real rows, the rest from D_model (update_agent)
--   evaluate the deterministic policy (evaluate)
--
-- Everything else (building the objects of a config, resume, checkpoints, timing, progress,
-- the CSV row, interrupts, the stop rule) is mbpo.harness. The run object `run` holds the
-- config (run.cfg), the envs (run.env, run.eval_env, run.termination), run.agent, run.model
-- (the ensemble), the buffers run.real and run.model_buffer, the rng streams run.rng, the
-- current observation run.obs and the checkpointed counters run.st. Another loop on the same
-- harness: config key `loop` (examples/dyna_loop.lua); another rollout scheme: `rollout.fn`.
local T = require "mbpo.tensor"
local harness = require "mbpo.harness"
local rollout = require "mbpo.rollout"
local evaluate = require "mbpo.evaluate"
local checkpoint = require "mbpo.checkpoint"

local M = {}

-- the algorithm's phases -----------------------------------------------------------------

-- one real env step with action a (default: a policy sample); stores the transition in D_env
-- and handles episode ends
function M.env_step(run, a)
  local st, cfg, env = run.st, run.cfg, run.env
  a = a or run.agent:act(run.obs, {deterministic = cfg.sac.train_action == "mean"}, run.rng.act)
  local next_obs, r, terminated, truncated = env:step(a)
  st.ep_length = st.ep_length + 1
  st.ep_return = st.ep_return + r
  run.real:add(run.obs, a, r, next_obs, terminated and 1 or 0)
  st.env_steps = st.env_steps + 1
  if terminated or truncated or st.ep_length >= cfg.max_path_length then
    st.last_train_return = st.ep_return
    st.episodes = st.episodes + 1
    st.ep_return, st.ep_length = 0.0, 0
    run.obs = env:reset()
  else
    run.obs = next_obs
  end
end

-- initial exploration: init_exploration_steps env steps with uniform actions in [-1, 1]
function M.explore(run)
  for _ = 1, run.cfg.init_exploration_steps do
    M.env_step(run, T.rand(run.env.act_dim, run.rng.explore):mul_(2):sub_(1))
  end
end

-- fits the ensemble on D_env: inputs [obs, act], targets [reward, next_obs - obs]
function M.train_model(run)
  checkpoint.fault("model")
  local m, real = run.cfg.model, run.real
  local n, data = real:size(), real:rows()
  local inputs = T.cat({data.obs, data.act}, 2)
  local targets = T.cat({data.reward:view(n, 1), data.next_obs - data.obs}, 2)
  local info = run.model:fit(inputs, targets, {holdout_ratio = m.holdout_ratio,
    holdout_cap = m.holdout_cap, patience = m.patience,
    max_epochs = m.max_epochs > 0 and m.max_epochs or nil,
    max_seconds = m.max_seconds > 0 and m.max_seconds or nil, batch = m.batch})
  local elites_mse = {}
  for _, e in ipairs(info.elites) do elites_mse[#elites_mse + 1] = info.holdout_mse[e] end
  local mi = {loss = info.train_loss[#info.train_loss], holdout = harness.mean(elites_mse),
    epochs = info.epochs}
  run.st.model = mi
  if not (harness.finite(mi.loss or 0) and harness.finite(mi.holdout)) then
    run:fail("model training produced NaN/Inf (loss " .. tostring(mi.loss) ..
      ", holdout MSE " .. tostring(mi.holdout) .. ")")
  end
end

-- k from the schedule (D_model resized to retain its rollouts), then branched rollouts of
-- length k from rollout.batch start states into D_model (the scheme of config rollout.fn)
function M.rollout(run)
  checkpoint.fault("rollout")
  local st, cfg = run.st, run.cfg
  local k = run:rollout_length(st.epoch + 1, {holdout_mse = st.model.holdout, loss = st.model.loss})
  if k ~= st.k or run.model_buffer:capacity() ~= harness.model_capacity(cfg, k) then
    st.k = k
    run.model_buffer:resize(harness.model_capacity(cfg, k))
  end
  local info, err = run.rollout_fn{real = run.real, model_buffer = run.model_buffer,
    agent = run.agent, ensemble = run.model, termination = run.termination,
    batch = cfg.rollout.batch, length = st.k, rng = run.rng.rollout,
    keep_terminated = cfg.rollout.keep_terminated}
  if not info then run:fail("rollout: " .. tostring(err)) end
  st.nonfinite = (st.nonfinite or 0) + (info.nonfinite or 0)
end

-- G SAC updates in one call: each on a mixed batch from D_env and D_model (rng.batch), its
-- statistics added into st.sac_sum, bit for bit the per-update Lua loop
function M.update_agent(run)
  local st, G = run.st, run.cfg.sac.updates_per_step
  checkpoint.fault("sac", G)
  local n, closs, aloss = run.agent:update_mixed(run.real, run.model_buffer, G,
    run.cfg.sac.real_ratio, run.rng.batch, st.sac_sum)
  st.sac_n = st.sac_n + n
  if n < G then
    run:fail(string.format("SAC update produced NaN/Inf (critic loss %s, actor loss %s)",
      tostring(closs), tostring(aloss)))
  end
end

-- eval.episodes episodes of the deterministic policy on the eval env
function M.evaluate(run)
  checkpoint.fault("eval")
  local returns, lengths = evaluate.run(run.eval_env, run.agent, run.cfg.eval.episodes,
    run.cfg.max_path_length)
  run.eval = {returns = returns, lengths = lengths}
  run.st.last_eval = harness.mean(returns)
end

-- the loop (what mbpo.harness runs) -------------------------------------------------------

-- once, on a fresh run
function M.start(run)
  run:timed("explore", M.explore, run)
end

-- one epoch; a run resumed from an interrupt continues at env step st.t
function M.epoch(run)
  local st, cfg = run.st, run.cfg
  for t = st.t, cfg.epoch_length - 1 do
    if t % cfg.model.train_freq == 0 then
      run:timed("model", M.train_model, run)
      run:timed("rollout", M.rollout, run)
    end
    run:timed("env", M.env_step, run)
    run:timed("sac", M.update_agent, run)
    run:step_done(t)
  end
  st.t = 0
  if run:eval_due() then run:timed("eval", M.evaluate, run) end
end

-- the harness's settings under their former names (a run: mbpo.harness.run(cfg, opts))
M.defaults, M.columns, M.timing_columns = harness.defaults, harness.columns,
  harness.timing_columns
M.make_env, M.check_counters = harness.make_env, harness.check_counters

return M
