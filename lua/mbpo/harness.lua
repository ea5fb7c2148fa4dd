-- mbpo.harness: everything around the algorithm of a run. It builds the env, agent, model
-- and buffers of a config into a run object, locks the run directory, resumes from its
-- checkpoint, times the phases, shows progress, writes the CSV row, saves a checkpoint per
-- epoch (and on Ctrl-C / SIGTERM), stops on NaN/Inf or stop_return. The algorithm itself (a
-- loop: mbpo.train by default, or the config's `loop`) is a table of functions over the run
-- object: loop.epoch(run) per epoch; optionally loop.start(run) once on a fresh run and
-- loop.build(run) once the objects are built, before a resume restores them.
--
-- State declared once on the run object is checkpointed and restored automatically: the
-- counters table run.st (a loop may add its own keys), run.obs, the rng streams and the
-- objects listed in run.parts (M.parts; a loop's build(run) may add its own).
local T = require "mbpo.tensor"
local G = require "mbpo.rng"
local core = require "mbpo.core"
local Env = require "mbpo.env"
local SAC = require "mbpo.sac"
local Ensemble = require "mbpo.ensemble"
local Buffer = require "mbpo.buffer"
local schedule = require "mbpo.schedule"
local checkpoint = require "mbpo.checkpoint"
local Log = require "mbpo.log"

local M = {}

-- the defaults of a run config: one row per key in mbpo.schema.settings (keys of the C
-- structs take theirs from the structs' field tables: mbpo.sac.fields, mbpo.ensemble.fields)
M.defaults = require("mbpo.schema").defaults()

M.columns = {
  "epoch", "env_steps", "eval_return", "eval_return_std", "eval_length", "train_return",
  "model_loss", "model_holdout_mse", "model_epochs", "rollout_length", "real_size",
  "model_size", "critic_loss", "actor_loss", "alpha", "entropy", "mean_q",
  "time_env", "time_model", "time_rollout", "time_sac", "time_eval", "time_epoch",
  "rollout_nonfinite", "time_sac_wait", "time_cpu",
}
-- time_sac_wait: seconds of the SAC phase the caller spent waiting for the pool's worker
-- threads (core.pool_stats().wait); a large share means the other core was not the run's.
-- time_cpu: CPU seconds of the process (all its threads: os.clock) over the epoch; unlike
-- time_epoch it hardly depends on other jobs sharing the cores.
M.timing_columns = {time_env = true, time_model = true, time_rollout = true, time_sac = true,
  time_eval = true, time_epoch = true, time_sac_wait = true, time_cpu = true}

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

M.mean, M.std, M.finite = mean_of, std_of, finite
M.model_capacity = model_capacity

-- "path/or.module" of a config: "file" (ends in .lua or holds a /) or "module", or nil,
-- message when there is no such file or module
function M.locate(spec)
  if type(spec) ~= "string" or spec == "" then return nil, "a file or module name" end
  if spec:match("%.lua$") or spec:find("/", 1, true) then
    local f = io.open(spec, "r")
    if not f then return nil, "an existing Lua file (cannot open '" .. spec .. "')" end
    f:close()
    return "file"
  end
  if package.loaded[spec] or package.preload[spec] or package.searchpath(spec, package.path) then
    return "module"
  end
  return nil, "an existing Lua file or module (no file or module '" .. spec .. "')"
end

-- the value of config key `key` ("path/or.module"): what the file or module returns; a table
-- with a function `field` stands for that function when `field` is given. One line otherwise.
function M.load(key, spec, field)
  local kind, err = M.locate(spec)
  if not kind then error("config key '" .. key .. "' must be " .. err, 0) end
  local ok, v = pcall(kind == "file" and dofile or require, spec)
  if not ok then
    error("config key '" .. key .. "': " .. tostring(v):gsub("^[^:]*%.lua:%d+: ", ""), 0)
  end
  if field and type(v) == "table" and type(v[field]) == "function" then v = v[field] end
  return v
end

-- Run: the run object's methods (progress, timing, failures, safe points, checkpoints)
local Run = {}
Run.__index = Run

-- the progress line (phase, epoch, steps, last evaluation, eta); forced or rate-limited
function Run:progress(force)
  local st, eta = self.st, nil
  if self.epochs_done > 0 then
    eta = (core.clock() - self.run_start) / self.epochs_done * (self.cfg.epochs - st.epoch)
  end
  self.log:progress({epoch = math.min(st.epoch + 1, self.cfg.epochs), epochs = self.cfg.epochs,
    steps = st.env_steps, eval = st.last_eval == st.last_eval and st.last_eval or nil,
    phase = self.phase, eta = eta}, force)
end

-- f(...) as the phase `name`: shown in the progress line, its time added to time_<name>
function Run:timed(name, f, ...)
  self.phase = name
  self:progress(false)
  local t0, w0 = core.clock(), core.pool_stats().wait
  local a, b, c = f(...)
  self.phase_t[name] = (self.phase_t[name] or 0) + core.clock() - t0
  self.phase_w[name] = (self.phase_w[name] or 0) + core.pool_stats().wait - w0
  return a, b, c
end

-- ends the run with one line naming what went wrong, the epoch and the env step
function Run:fail(what)
  error(string.format("%s at epoch %d (env step %d); the last good checkpoint is kept",
    what, self.st.epoch + 1, self.st.env_steps), 0)
end

-- the schedule's k for `epoch`: an integer >= 0 whose model buffer fits (one line otherwise)
function Run:rollout_length(epoch, info)
  local v = self.k_of(epoch, info)
  local kk = math.type(v) == "integer" and v or (type(v) == "number" and math.tointeger(v))
  if not kk or kk < 0 or model_capacity(self.cfg, kk) > require("mbpo.schema").max_rows then
    error(string.format("config key 'rollout.schedule' gave rollout length %s at epoch %d; " ..
      "it must be an integer >= 0 whose model buffer fits", tostring(v), epoch), 0)
  end
  return kk
end

-- whether this epoch ends with an evaluation: every eval.every epochs and at the last one
function Run:eval_due()
  local e = self.st.epoch + 1
  return e % self.cfg.eval.every == 0 or e == self.cfg.epochs
end

-- the end of env step t of an epoch: a safe point where Ctrl-C / SIGTERM (deferred by
-- `mbpo run`) saves a checkpoint and stops
function Run:step_done(t)
  self.st.t = t + 1
  if core.interrupted() then
    if self.opts.dir then self:save() end
    self.log:close()
    error("interrupted", 0)
  end
end

-- the objects whose state() is a part of the checkpoint: part name, run field, message name
-- (each run starts with a copy in run.parts)
M.parts = {{"agent", "agent", "agent"}, {"model", "model", "model"},
  {"real_buffer", "real", "real buffer"}, {"model_buffer", "model_buffer", "model buffer"}}

-- the parts of a checkpoint of the run
function M.state_parts(run)
  local parts, rs = {}, {}
  for _, p in ipairs(run.parts) do parts[p[1]] = run[p[2]]:state() end
  for name, g in pairs(run.rng) do rs[name] = g:state() end
  parts.loop = {counters = run.st, env = run.env:state(), eval_env = run.eval_env:state(),
    rng = rs, obs = run.obs}
  return parts
end

-- writes a complete checkpoint into the run directory
function Run:save()
  self.phase = "checkpoint"
  self:progress(true)
  local ok, err = checkpoint.save(self.opts.dir, M.state_parts(self))
  if not ok then error(err, 0) end
end

-- the agent and the model ensemble of a config
local function build_learners(cfg, obs_dim, act_dim)
  local agent = build("agent", SAC.new, {obs = obs_dim, act = act_dim, hidden = cfg.sac.hidden,
    lr = cfg.sac.lr, gamma = cfg.sac.gamma, tau = cfg.sac.tau,
    target_entropy = cfg.sac.target_entropy, init_alpha = cfg.sac.init_alpha,
    auto_alpha = cfg.sac.auto_alpha, batch = cfg.sac.batch, seed = cfg.seed * 1000 + 11,
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
    bounds = m.bounds, bootstrap = m.bootstrap,
    snapshot = m.snapshot, batch = m.batch, patience = m.patience,
    holdout_ratio = m.holdout_ratio, holdout_cap = m.holdout_cap,
    prediction = cfg.rollout.prediction, precision = cfg.precision})
  return agent, ens
end
M.build_learners = build_learners

-- the model buffer for rollouts of length k
function Run:new_model_buffer(k)
  return build("model buffer", Buffer.new, {obs = self.env.obs_dim, act = self.env.act_dim,
    capacity = model_capacity(self.cfg, k)})
end

-- M.new(cfg, opts) -> a run object: the config's objects and fresh loop state
function M.new(cfg, opts)
  if cfg.threads and cfg.threads > 0 then core.set_threads(cfg.threads) end
  local run = setmetatable({cfg = cfg, opts = opts, phase_t = {}, phase_w = {}, phase = "start",
    epochs_done = 0, run_start = core.clock(), parts = {table.unpack(M.parts)}}, Run)
  run.env, run.termination = M.make_env(cfg)
  run.eval_env = M.make_env(cfg)
  local obs_dim, act_dim = run.env.obs_dim, run.env.act_dim
  run.k_of = schedule.resolve(cfg.rollout.schedule)
  -- generators: one stream per consumer so that each is reproducible on its own
  run.rng = {explore = G.new(cfg.seed, 1), act = G.new(cfg.seed, 2),
    rollout = G.new(cfg.seed, 3), batch = G.new(cfg.seed, 4), eval = G.new(cfg.seed, 5)}
  run.agent, run.model = build_learners(cfg, obs_dim, act_dim)
  run.total_steps = cfg.init_exploration_steps + cfg.epochs * cfg.epoch_length
  run.real = build("real buffer", Buffer.new, {obs = obs_dim, act = act_dim,
    capacity = math.max(run.total_steps, 1)})
  local k = run:rollout_length(1, {})
  run.model_buffer = run:new_model_buffer(k)
  run.rollout_fn = M.load("rollout.fn", cfg.rollout.fn, "run")
  if type(run.rollout_fn) ~= "function" then
    error("config key 'rollout.fn': " .. cfg.rollout.fn .. " returns no function", 0)
  end
  -- loop state (saved in checkpoints)
  -- t: the next env step of the current epoch (non-zero only in a checkpoint written on an
  -- interrupt); sac_sum / sac_n / model: this epoch's sums and last model training
  run.st = {epoch = 0, env_steps = 0, k = k, ep_return = 0.0, ep_length = 0,
    last_train_return = 0 / 0, last_eval = 0 / 0, episodes = 0, t = 0,
    sac_sum = {}, sac_n = 0, model = {}}
  return run
end

-- restores the run's state from the checkpoint of opts.dir (one line when it does not fit)
local function resume(run)
  local cfg, opts = run.cfg, run.opts
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
  for _, p in ipairs(run.parts) do
    -- the model buffer's capacity is that of the checkpoint's rollout length
    if p[1] == "model_buffer" then
      run.model_buffer = run:new_model_buffer(parts.loop.counters.k)
    end
    restore(p[3], run[p[2]], parts[p[1]])
    -- resumed with more epochs: the real buffer grows (it must never drop real data)
    if p[1] == "real_buffer" and run.real:capacity() < run.total_steps then
      run.real:resize(run.total_steps)
    end
  end
  run.st = parts.loop.counters
  restore("env", run.env, parts.loop.env)
  restore("eval env", run.eval_env, parts.loop.eval_env)
  for name, g in pairs(run.rng) do restore("rng " .. name, g, (parts.loop.rng or {})[name]) end
  if opts.on_resume then opts.on_resume(run.st) end
  run.obs = parts.loop.obs
end

-- the start of an epoch: timers and this epoch's sums reset, unless it continues one that an
-- interrupt cut (the exploration's time counts in the first epoch's time_env)
local function begin_epoch(run)
  local st = run.st
  run.epoch_start, run.epoch_cpu = core.clock(), os.clock()
  run.eval = nil
  if st.t == 0 then
    local first = st.epoch == 0 and not run.opts.resume
    run.phase_t, run.phase_w = {env = first and run.phase_t.explore or 0}, {}
    st.sac_sum, st.sac_n = {}, 0
    st.nonfinite = 0
  end
end

-- the CSV row of the epoch just finished (M.columns); no eval columns when not evaluated
local function row_of(run)
  local st, ev, pt = run.st, run.eval, run.phase_t
  local function sac(key) return st.sac_n > 0 and st.sac_sum[key] / st.sac_n or nil end
  return {
    epoch = st.epoch, env_steps = st.env_steps,
    eval_return = ev and st.last_eval or nil,
    eval_return_std = ev and std_of(ev.returns) or nil,
    eval_length = ev and mean_of(ev.lengths) or nil,
    train_return = st.last_train_return, model_loss = st.model.loss,
    model_holdout_mse = st.model.holdout, model_epochs = st.model.epochs,
    rollout_length = st.k, real_size = run.real:size(), model_size = run.model_buffer:size(),
    critic_loss = sac("critic_loss"), actor_loss = sac("actor_loss"), alpha = sac("alpha"),
    entropy = sac("entropy"), mean_q = sac("q_mean"),
    time_env = pt.env, time_model = pt.model, time_rollout = pt.rollout,
    time_sac = pt.sac, time_eval = pt.eval, time_epoch = core.clock() - run.epoch_start,
    rollout_nonfinite = st.nonfinite or 0, time_sac_wait = run.phase_w.sac,
    time_cpu = os.clock() - run.epoch_cpu,
  }
end

-- the end of an epoch: CSV row and line, checkpoint, curve, video; true when the run stops
local function end_epoch(run)
  local st, cfg, opts, log = run.st, run.cfg, run.opts, run.log
  st.epoch = st.epoch + 1
  run.epochs_done = run.epochs_done + 1
  local row = row_of(run)
  log:row(row)
  log:line("epoch %3d  steps %7d  eval %9.2f (+-%.1f)  train %9.2f  k %2d  model mse %.4g  " ..
    "alpha %.3g  %.1fs", st.epoch, st.env_steps, st.last_eval, row.eval_return_std or 0 / 0,
    st.last_train_return, st.k, st.model.holdout or 0 / 0, row.alpha or 0 / 0, row.time_epoch)
  if opts.dir then
    run:save()
    if cfg.log.plot then require("mbpo.plot").plot({opts.dir}, opts.dir .. "/curve.png") end
  end
  -- a video of the policy on an env of its own (no generator of the run is drawn from)
  if run.video_every > 0 and st.epoch % run.video_every == 0 then
    local info, verr = require("mbpo.video").epoch(cfg, run.agent, opts.dir, st.epoch)
    if info then log:line("mbpo: wrote %s (return %.2f)", info.path, info.returns[1])
    else log:line("mbpo: warning: no video of epoch %d: %s", st.epoch, verr) end
  end
  if core.interrupted() then
    log:close()
    error("interrupted", 0)
  end
  if run.eval and st.last_eval >= cfg.stop_return then
    log:line("mbpo: evaluation return %.2f reached stop_return %g at epoch %d",
      st.last_eval, cfg.stop_return, st.epoch)
    return true
  end
end

-- the run's start: lock, resume or reset, video check, logger, first line
local function start(run, loop)
  local cfg, opts = run.cfg, run.opts
  if opts.dir then
    local ok, err = checkpoint.lock(opts.dir)
    if not ok then error(err, 0) end
  end
  if opts.resume then
    resume(run)
  else
    run.obs = run.env:reset{seed = cfg.seed}
    run.eval_env:reset{seed = cfg.seed + 100000}
  end
  -- videos need GL, the camera and ffmpeg: checked once before the first epoch
  run.video_every = opts.dir and cfg.video and cfg.video.every or 0
  if run.video_every > 0 then
    local ok, err = require("mbpo.video").check(cfg)
    if not ok then error("video.every: " .. err, 0) end
  end
  run.log = opts.log or Log.new{dir = opts.dir, columns = M.columns,
    resume_epoch = opts.resume and run.st.epoch or nil, quiet = cfg.log.quiet,
    append = opts.restart}
  if opts.resume then
    run.log:line("mbpo: resumed from %s at epoch %d (env step %d)", opts.dir, run.st.epoch,
      run.st.env_steps)
    return
  end
  if opts.restart then
    run.log:line("mbpo: %s has no complete checkpoint (the run stopped in its first epoch " ..
      "or while writing its first checkpoint): nothing to resume, so it starts again from " ..
      "its config.lua", opts.dir)
  end
  run.log:line("mbpo: %s, obs %d, act %d, %d epochs of %d steps, seed %d%s",
    type(cfg.env) == "table" and cfg.env.mjcf or cfg.env, run.env.obs_dim, run.env.act_dim,
    cfg.epochs, cfg.epoch_length, cfg.seed, opts.dir and (", run directory " .. opts.dir) or "")
  if loop.start then loop.start(run) end
end

-- M.run(cfg, opts [, loop]) with opts {dir=run directory or nil, resume=true, log=logger,
-- on_resume=f(counters), restart=true (a fresh start in the directory of a run stopped
-- before its first checkpoint: log.txt is kept)}: the loop (default: the config's `loop`)
-- run epoch by epoch
function M.run(cfg, opts, loop)
  opts = opts or {}
  loop = loop or M.load("loop", cfg.loop or M.defaults.loop)
  if type(loop) ~= "table" or type(loop.epoch) ~= "function" then
    error("config key 'loop': " .. tostring(cfg.loop) .. " must return a table with a " ..
      "function epoch(run) (and optionally start(run))", 0)
  end
  local run = M.new(cfg, opts)
  if loop.build then loop.build(run) end
  start(run, loop)
  while run.st.epoch < cfg.epochs do
    begin_epoch(run)
    loop.epoch(run)
    if end_epoch(run) then break end
  end
  run.log:close()
  local st = run.st
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
  if math.type(rows) == "integer" and
      rows ~= math.min(st.env_steps, real_state.capacity or rows) then
    bad(string.format("the real buffer holds %d rows after %d env steps", rows, st.env_steps))
  end
  if st.k < 0 then bad("rollout length " .. st.k) end
end

return M
