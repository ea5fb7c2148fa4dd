-- mbpo.train: the MBPO outer loop (paper Algorithm 2, as the reference implementation runs
-- it; ../shared/specs/mbpo-algorithm.md section 1) on top of the C modules:
--
--   explore N_init steps with uniform actions into D_env
--   for each epoch, for each of E env steps:
--     every model_train_freq steps: fit the ensemble on D_env, set k from the schedule,
--       resize D_model, branched rollouts of length k from rollout.batch start states
--     one real env step with a policy sample into D_env
--     G SAC updates on mixed batches (real_ratio real rows, the rest from D_model)
--   evaluate the deterministic policy; log a CSV row; checkpoint
--
-- Every option is a config key (M.defaults); `mbpo run` merges a script's table and the
-- command line over them. Each phase is timed; NaN/Inf stops the run naming phase and epoch.
local T = require "mbpo.tensor"
local G = require "mbpo.rng"
local core = require "mbpo.core"
local Env = require "mbpo.env"
local SAC = require "mbpo.sac"
local Ensemble = require "mbpo.ensemble"
local Buffer = require "mbpo.buffer"
local schedule = require "mbpo.schedule"
local rollout = require "mbpo.rollout"
local evaluate = require "mbpo.evaluate"
local checkpoint = require "mbpo.checkpoint"
local Log = require "mbpo.log"

local M = {}

M.defaults = {
  env = "Hopper",              -- task name (mbpo.env.make), or {mjcf = "robot.xml",
                               -- task = "task.lua"} for a custom model (see mbpo.env.from_mjcf)
  seed = 0,
  epochs = 125,
  epoch_length = 1000,         -- env steps per epoch
  init_exploration_steps = 5000,
  max_path_length = 1000,      -- episode cut (not stored as terminal)
  threads = 0,                 -- 0: keep MBPO_THREADS / the default
  precision = "fp32",          -- "bf16": the matrix products of SAC and the model ensemble in
                               -- bf16 with fp32 accumulation (AVX512-BF16 / AMX CPUs)
  stop_return = math.huge,     -- stop once the mean evaluation return reaches this
  model = {
    members = 7, elites = 5,
    hidden = {200, 200, 200, 200},
    activation = "swish",
    weight_decay = {2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4},
    lr = 1e-3, batch = 256,
    train_freq = 250,          -- env steps between model trainings (first at t = 0)
    holdout_ratio = 0.2, holdout_cap = 5000,
    patience = 5, max_epochs = 0, max_seconds = 0,   -- 0: no cap
    learned_bounds = true,     -- learned log-variance bounds (false: fixed 0.5 / -10)
    bootstrap = "replace",     -- with replacement; or "permutation", "none"
    snapshot = "member",       -- or "ensemble"
  },
  rollout = {
    batch = 100000,            -- start states per rollout
    schedule = {20, 150, 1, 15}, -- [a, b, x, y] thresholded linear in epochs, or a function
    retain_epochs = 1,
    keep_terminated = false,   -- true: terminated rows continue (masked variant)
    mean_prediction = false,   -- true: ensemble mean instead of a sample from an elite
    two_sided = false,         -- Hopper: two-sided state bound in the termination function
  },
  sac = {
    hidden = {256, 256}, lr = 3e-4, gamma = 0.99, tau = 5e-3,
    target_entropy = -1.0, init_alpha = 1.0, auto_alpha = true,
    batch = 256,
    updates_per_step = 20,     -- G
    real_ratio = 0.05,
    train_action = "sample",   -- real-env action during training: "sample" or "mean"
  },
  eval = {episodes = 5, every = 1},
  log = {quiet = false, plot = true},
  video = {                    -- videos/epoch-<E>.mp4 every `every` epochs (mbpo.video)
    every = 0,                 -- 0: off
    episodes = 1, width = 480, height = 480,
    camera = "",               -- "": the default ("track"; a custom model's first camera)
  },
}

M.columns = {
  "epoch", "env_steps", "eval_return", "eval_return_std", "eval_length", "train_return",
  "model_loss", "model_holdout_mse", "model_epochs", "rollout_length", "real_size",
  "model_size", "critic_loss", "actor_loss", "alpha", "entropy", "mean_q",
  "time_env", "time_model", "time_rollout", "time_sac", "time_eval", "time_epoch",
  "rollout_nonfinite",
}
M.timing_columns = {time_env = true, time_model = true, time_rollout = true, time_sac = true,
  time_eval = true, time_epoch = true}

-- Model buffer capacity: retain * k * rollout_batch * E / model_train_freq
local function model_capacity(cfg, k)
  return math.max(1, math.floor(cfg.rollout.retain_epochs * k * cfg.rollout.batch *
    cfg.epoch_length / cfg.model.train_freq))
end

-- the env of a config, and its termination function for model rollouts
function M.make_env(cfg)
  if type(cfg.env) == "table" then
    local task = dofile(cfg.env.task)
    local env, err = Env.from_mjcf(cfg.env.mjcf, task)
    if not env then error("custom task: " .. err, 0) end
    local term = task.termination or function(next_obs) return T.zeros(next_obs:size(1)) end
    return env, term
  end
  return Env.make(cfg.env), Env.termination(cfg.env, {two_sided = cfg.rollout.two_sided})
end

local function mean_of(xs)
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  return #xs > 0 and s / #xs or 0 / 0
end

local function std_of(xs)
  if #xs < 2 then return 0 end
  local m, s = mean_of(xs), 0
  for _, x in ipairs(xs) do s = s + (x - m) ^ 2 end
  return math.sqrt(s / (#xs - 1))
end

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- ctor(args) or one line (no traceback) naming what could not be built: sizes the config
-- checks cannot know (e.g. a buffer too large for the task's widths) end the run cleanly
local function build(what, ctor, args)
  local ok, obj = pcall(ctor, args)
  if not ok then
    error("cannot build the " .. what .. ": " .. tostring(obj):gsub("^[^:]*%.lua:%d+: ", ""), 0)
  end
  return obj
end

-- M.run(cfg, opts) with opts {dir=run directory or nil, resume=true, log=logger}
function M.run(cfg, opts)
  opts = opts or {}
  if cfg.threads and cfg.threads > 0 then core.set_threads(cfg.threads) end
  local env, termination = M.make_env(cfg)
  local eval_env = M.make_env(cfg)
  local obs_dim, act_dim = env.obs_dim, env.act_dim
  local k_of = schedule.resolve(cfg.rollout.schedule)

  -- generators: one stream per consumer so that each is reproducible on its own
  local rng = {
    explore = G.new(cfg.seed, 1), act = G.new(cfg.seed, 2), rollout = G.new(cfg.seed, 3),
    batch = G.new(cfg.seed, 4), eval = G.new(cfg.seed, 5),
  }
  local agent = build("agent", SAC.new, {obs = obs_dim, act = act_dim, hidden = cfg.sac.hidden, lr = cfg.sac.lr,
    gamma = cfg.sac.gamma, tau = cfg.sac.tau, target_entropy = cfg.sac.target_entropy,
    init_alpha = cfg.sac.init_alpha, auto_alpha = cfg.sac.auto_alpha, batch = cfg.sac.batch,
    seed = cfg.seed * 1000 + 11,
    precision = cfg.precision})
  local m = cfg.model
  if #m.weight_decay ~= #m.hidden + 1 then
    error(string.format("config: model.weight_decay has %d values but model.hidden has %d " ..
      "layers (it needs one value per linear layer: %d)", #m.weight_decay, #m.hidden,
      #m.hidden + 1), 0)
  end
  local ens = build("model", Ensemble.new, {inputs = obs_dim + act_dim, outputs = obs_dim + 1,
    members = m.members, elites = m.elites, hidden = m.hidden, activation = m.activation,
    weight_decay = m.weight_decay, lr = m.lr, seed = cfg.seed * 1000 + 13,
    bounds = m.learned_bounds and "learned" or "fixed", bootstrap = m.bootstrap,
    snapshot = m.snapshot, batch = m.batch, patience = m.patience,
    holdout_ratio = m.holdout_ratio, holdout_cap = m.holdout_cap,
    prediction = cfg.rollout.mean_prediction and "mean" or "sample", precision = cfg.precision})
  local total_steps = cfg.init_exploration_steps + cfg.epochs * cfg.epoch_length
  local real = build("real buffer", Buffer.new, {obs = obs_dim, act = act_dim,
    capacity = math.max(total_steps, 1)})
  -- the schedule's k: an integer >= 0 whose model buffer fits (one line otherwise)
  local function rollout_length(epoch, info)
    local v = k_of(epoch, info)
    local kk = math.type(v) == "integer" and v or (type(v) == "number" and math.tointeger(v))
    if not kk or kk < 0 or model_capacity(cfg, kk) > require("mbpo.schema").max_rows then
      error(string.format("config key 'rollout.schedule' gave rollout length %s at epoch %d; " ..
        "it must be an integer >= 0 whose model buffer fits", tostring(v), epoch), 0)
    end
    return kk
  end
  local k = rollout_length(1, {})
  local mbuf = build("model buffer", Buffer.new, {obs = obs_dim, act = act_dim,
    capacity = model_capacity(cfg, k)})

  -- loop state (saved in checkpoints)
  -- t: the next env step of the current epoch (non-zero only in a checkpoint written on an
  -- interrupt); sac_sum / sac_n / model: this epoch's sums and last model training
  local st = {epoch = 0, env_steps = 0, k = k, ep_return = 0.0, ep_length = 0,
    last_train_return = 0 / 0, last_eval = 0 / 0, episodes = 0, t = 0,
    sac_sum = {}, sac_n = 0, model = {}}
  local obs

  if opts.dir then
    local ok, err = checkpoint.lock(opts.dir)
    if not ok then error(err, 0) end
  end
  if opts.resume then
    local parts, where = checkpoint.load(opts.dir)
    if not parts then error("cannot resume: " .. where, 0) end
    if type(parts.loop) ~= "table" then
      error("cannot resume: the checkpoint has no loop state", 0)
    end
    M.check_counters(parts.loop.counters, cfg, parts.real_buffer)
    local function restore(name, obj, tree)
      local ok, rerr = checkpoint.restore(name, obj, tree)
      if not ok then error("cannot resume: " .. rerr, 0) end
    end
    restore("agent", agent, parts.agent)
    restore("model", ens, parts.model)
    restore("real buffer", real, parts.real_buffer)
    -- resumed with more epochs: the real buffer grows (it must never drop real data)
    if real:capacity() < total_steps then real:resize(total_steps) end
    st = parts.loop.counters
    mbuf = build("model buffer", Buffer.new, {obs = obs_dim, act = act_dim,
      capacity = model_capacity(cfg, st.k)})
    restore("model buffer", mbuf, parts.model_buffer)
    restore("env", env, parts.loop.env)
    restore("eval env", eval_env, parts.loop.eval_env)
    for name, g in pairs(rng) do
      local ok, rerr = pcall(g.set_state, g, (parts.loop.rng or {})[name])
      if not ok then
        error("cannot resume: the checkpoint's rng " .. name .. ": " .. tostring(rerr), 0)
      end
    end
    if opts.on_resume then opts.on_resume(st) end
    obs = parts.loop.obs
    k = st.k
  else
    obs = env:reset{seed = cfg.seed}
    eval_env:reset{seed = cfg.seed + 100000}
  end

  -- videos need GL, the camera and ffmpeg: checked once before the first epoch
  local video_every = opts.dir and cfg.video and cfg.video.every or 0
  if video_every > 0 then
    local ok, err = require("mbpo.video").check(cfg)
    if not ok then error("video.every: " .. err, 0) end
  end

  local log = opts.log or Log.new{dir = opts.dir, columns = M.columns,
    resume_epoch = opts.resume and st.epoch or nil, quiet = cfg.log.quiet}
  local phase_t = {}
  local phase = "start"
  local epoch_start = core.clock()
  local run_start = core.clock()
  local epochs_done_here = 0

  local function progress(force)
    local eta
    if epochs_done_here > 0 then
      eta = (core.clock() - run_start) / epochs_done_here * (cfg.epochs - st.epoch)
    end
    log:progress({epoch = math.min(st.epoch + 1, cfg.epochs), epochs = cfg.epochs, steps = st.env_steps,
      eval = st.last_eval == st.last_eval and st.last_eval or nil, phase = phase, eta = eta}, force)
  end

  local function timed(name, f, ...)
    phase = name
    progress(false)
    local t0 = core.clock()
    local a, b, c = f(...)
    phase_t[name] = (phase_t[name] or 0) + core.clock() - t0
    return a, b, c
  end

  local function fail(what)
    error(string.format("%s at epoch %d (env step %d); the last good checkpoint is kept",
      what, st.epoch + 1, st.env_steps), 0)
  end

  -- one real env step with action `a`; stores the transition, handles episode ends
  local function env_step(a)
    local next_obs, r, terminated, truncated = env:step(a)
    st.ep_length = st.ep_length + 1
    st.ep_return = st.ep_return + r
    real:add(obs, a, r, next_obs, terminated and 1 or 0)
    st.env_steps = st.env_steps + 1
    if terminated or truncated or st.ep_length >= cfg.max_path_length then
      st.last_train_return = st.ep_return
      st.episodes = st.episodes + 1
      st.ep_return, st.ep_length = 0.0, 0
      obs = env:reset()
    else
      obs = next_obs
    end
  end

  -- initial exploration with uniform actions in [-1, 1]
  if not opts.resume then
    log:line("mbpo: %s, obs %d, act %d, %d epochs of %d steps, seed %d%s",
      type(cfg.env) == "table" and cfg.env.mjcf or cfg.env, obs_dim, act_dim, cfg.epochs,
      cfg.epoch_length, cfg.seed, opts.dir and (", run directory " .. opts.dir) or "")
    phase = "explore"
    local t0 = core.clock()
    for _ = 1, cfg.init_exploration_steps do
      env_step(T.rand(act_dim, rng.explore):mul_(2):sub_(1))
    end
    phase_t.env = core.clock() - t0
  else
    log:line("mbpo: resumed from %s at epoch %d (env step %d)", opts.dir, st.epoch, st.env_steps)
  end

  local function train_model()
    checkpoint.fault("model")
    local n = real:size()
    local data = real:rows()
    local inputs = T.cat({data.obs, data.act}, 2)
    local targets = T.cat({data.reward:view(n, 1), data.next_obs - data.obs}, 2)
    local info = ens:fit(inputs, targets, {holdout_ratio = m.holdout_ratio,
      holdout_cap = m.holdout_cap, patience = m.patience,
      max_epochs = m.max_epochs > 0 and m.max_epochs or nil,
      max_seconds = m.max_seconds > 0 and m.max_seconds or nil, batch = m.batch})
    local hold = info.holdout_mse
    local elites_mse = {}
    for _, e in ipairs(info.elites) do elites_mse[#elites_mse + 1] = hold[e] end
    local mi = {loss = info.train_loss[#info.train_loss], holdout = mean_of(elites_mse),
      epochs = info.epochs}
    st.model = mi
    if not (finite(mi.loss or 0) and finite(mi.holdout)) then
      fail("model training produced NaN/Inf (loss " .. tostring(mi.loss) ..
        ", holdout MSE " .. tostring(mi.holdout) .. ")")
    end
  end

  local function do_rollouts()
    checkpoint.fault("rollout")
    local newk = rollout_length(st.epoch + 1, {holdout_mse = st.model.holdout, loss = st.model.loss})
    if newk ~= st.k or mbuf:capacity() ~= model_capacity(cfg, newk) then
      st.k = newk
      mbuf:resize(model_capacity(cfg, newk))
    end
    local info, err = rollout.run{real = real, model_buffer = mbuf, agent = agent,
      ensemble = ens, termination = termination, batch = cfg.rollout.batch, length = st.k,
      rng = rng.rollout, keep_terminated = cfg.rollout.keep_terminated}
    if not info then fail("rollout: " .. err) end
    st.nonfinite = (st.nonfinite or 0) + info.nonfinite
  end

  -- G updates in one call: each samples a mixed batch from D_env and D_model (rng.batch) and
  -- adds its statistics into st.sac_sum, bit for bit the per-update Lua loop
  local function sac_updates()
    local G = cfg.sac.updates_per_step
    checkpoint.fault("sac", G)
    local n, closs, aloss = agent:update_mixed(real, mbuf, G, cfg.sac.real_ratio, rng.batch,
      st.sac_sum)
    st.sac_n = st.sac_n + n
    if n < G then
      fail(string.format("SAC update produced NaN/Inf (critic loss %s, actor loss %s)",
        tostring(closs), tostring(aloss)))
    end
  end

  local function save()
    phase = "checkpoint"
    progress(true)
    local ok, err = checkpoint.save(opts.dir, M.state_parts(st, agent, ens, real, mbuf, env,
      eval_env, rng, obs))
    if not ok then error(err, 0) end
  end

  while st.epoch < cfg.epochs do
    epoch_start = core.clock()
    if st.t == 0 then
      phase_t = {env = phase_t.env or 0}
      if st.epoch > 0 or opts.resume then phase_t.env = 0 end
      st.sac_sum, st.sac_n = {}, 0
      st.nonfinite = 0
    end
    for t = st.t, cfg.epoch_length - 1 do
      if t % m.train_freq == 0 then
        timed("model", train_model)
        timed("rollout", do_rollouts)
      end
      timed("env", function()
        local a = agent:act(obs, {deterministic = cfg.sac.train_action == "mean"}, rng.act)
        env_step(a)
      end)
      timed("sac", sac_updates)
      st.t = t + 1
      -- a safe point: on Ctrl-C / SIGTERM (deferred by `mbpo run`) save and stop here
      if core.interrupted() then
        if opts.dir then save() end
        log:close()
        error("interrupted", 0)
      end
    end
    st.t = 0
    -- evaluation every eval.every epochs and at the last one (other rows: no eval columns)
    local returns, lengths = {}, {}
    local evaluated = (st.epoch + 1) % cfg.eval.every == 0 or st.epoch + 1 == cfg.epochs
    if evaluated then
      checkpoint.fault("eval")
      returns, lengths = timed("eval", evaluate.run, eval_env, agent, cfg.eval.episodes,
        cfg.max_path_length)
      st.last_eval = mean_of(returns)
    end
    st.epoch = st.epoch + 1
    epochs_done_here = epochs_done_here + 1
    local row = {
      epoch = st.epoch, env_steps = st.env_steps,
      eval_return = evaluated and st.last_eval or nil,
      eval_return_std = evaluated and std_of(returns) or nil,
      eval_length = evaluated and mean_of(lengths) or nil,
      train_return = st.last_train_return, model_loss = st.model.loss,
      model_holdout_mse = st.model.holdout, model_epochs = st.model.epochs,
      rollout_length = st.k, real_size = real:size(), model_size = mbuf:size(),
      critic_loss = st.sac_n > 0 and st.sac_sum.critic_loss / st.sac_n or nil,
      actor_loss = st.sac_n > 0 and st.sac_sum.actor_loss / st.sac_n or nil,
      alpha = st.sac_n > 0 and st.sac_sum.alpha / st.sac_n or nil,
      entropy = st.sac_n > 0 and st.sac_sum.entropy / st.sac_n or nil,
      mean_q = st.sac_n > 0 and st.sac_sum.q_mean / st.sac_n or nil,
      time_env = phase_t.env, time_model = phase_t.model, time_rollout = phase_t.rollout,
      time_sac = phase_t.sac, time_eval = phase_t.eval, time_epoch = core.clock() - epoch_start,
      rollout_nonfinite = st.nonfinite or 0,
    }
    log:row(row)
    log:line("epoch %3d  steps %7d  eval %9.2f (+-%.1f)  train %9.2f  k %2d  model mse %.4g  " ..
      "alpha %.3g  %.1fs", st.epoch, st.env_steps, st.last_eval, row.eval_return_std or 0 / 0,
      st.last_train_return, st.k, st.model.holdout or 0 / 0, row.alpha or 0 / 0, row.time_epoch)
    if opts.dir then
      save()
      if cfg.log.plot then
        local plot = require "mbpo.plot"
        plot.plot({opts.dir}, opts.dir .. "/curve.png")
      end
    end
    -- a video of the policy on an env of its own (no generator of the run is drawn from)
    if video_every > 0 and st.epoch % video_every == 0 then
      local info, verr = require("mbpo.video").epoch(cfg, agent, opts.dir, st.epoch)
      if info then log:line("mbpo: wrote %s (return %.2f)", info.path, info.returns[1])
      else log:line("mbpo: warning: no video of epoch %d: %s", st.epoch, verr) end
    end
    if core.interrupted() then
      log:close()
      error("interrupted", 0)
    end
    if evaluated and st.last_eval >= cfg.stop_return then
      log:line("mbpo: evaluation return %.2f reached stop_return %g at epoch %d",
        st.last_eval, cfg.stop_return, st.epoch)
      break
    end
  end
  log:close()
  return {eval_return = st.last_eval, epochs = st.epoch, env_steps = st.env_steps}
end

-- the loop counters of a checkpoint against the config and the data they describe: env steps
-- = exploration + finished epochs x epoch length + steps into the epoch, and the real buffer
-- holds one row per env step; raises one line naming the first that does not fit
function M.check_counters(st, cfg, real_state)
  local function bad(what)
    error("cannot resume: the checkpoint's loop counters do not fit (" .. what .. ")", 0)
  end
  if type(st) ~= "table" then bad("none found") end
  for _, key in ipairs({"epoch", "env_steps", "t", "k"}) do
    if math.type(st[key]) ~= "integer" then bad(key .. " = " .. tostring(st[key])) end
  end
  if st.epoch < 0 or st.epoch > cfg.epochs then
    bad(string.format("epoch %d, the config has %d epochs", st.epoch, cfg.epochs))
  end
  if st.t < 0 or st.t > cfg.epoch_length then
    bad(string.format("step %d into an epoch of %d", st.t, cfg.epoch_length))
  end
  local want = cfg.init_exploration_steps + st.epoch * cfg.epoch_length + st.t
  if st.env_steps ~= want then
    bad(string.format("env step %d at epoch %d + %d steps, expected %d", st.env_steps, st.epoch,
      st.t, want))
  end
  local rows = real_state and real_state.size
  if math.type(rows) == "integer" and rows ~= math.min(st.env_steps, real_state.capacity or rows) then
    bad(string.format("the real buffer holds %d rows after %d env steps", rows, st.env_steps))
  end
  if st.k < 0 then bad("rollout length " .. st.k) end
end

-- the parts of a checkpoint
function M.state_parts(st, agent, ens, real, mbuf, env, eval_env, rng, obs)
  local rs = {}
  for name, g in pairs(rng) do rs[name] = g:state() end
  return {
    agent = agent:state(), model = ens:state(), real_buffer = real:state(),
    model_buffer = mbuf:state(),
    loop = {counters = st, env = env:state(), eval_env = eval_env:state(), rng = rs, obs = obs},
  }
end

return M
