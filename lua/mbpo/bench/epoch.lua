-- `mbpo bench epoch [TASK]`: one whole MBPO epoch at the reference sizes (task Hopper unless
-- named), from a state with 50 000 real rows (random-policy transitions), with a fixed
-- amount of work so that runs compare:
--   env      1000 real steps (policy act + simulator + buffer add)
--   model    4 trainings of the ensemble on all real rows, each exactly MODEL_EPOCHS epochs
--   rollout  4 rollouts of 100 000 start states at k = 1, and again at k = 15
--   sac      20 000 updates (20 per env step, one update_mixed call per step)
-- in each native precision, printing seconds per phase and the epoch at k = 1 and k = 15,
-- then the SAC phase's time per update beside `mbpo bench sac`'s method timed in this process
-- at the same threads and precision (see compare_sac),
-- beside a "peer-equivalent epoch": the same counts of the PyTorch peer's kernels timed in
-- this run (SAC update, ensemble training step, 100k-row predict, 100k-row act; the env
-- phase counted as ours), and the lines
--   summary epoch <precision> ours <s> peer <s> ratio <N.NN>x      (k = 15, the long epochs)
-- Environment: MBPO_BENCH_MODEL_EPOCHS (default 5), MBPO_BENCH_EPOCH_SCALE (default 1: a
-- fraction of every count, for a quick look; the summary then says so).
local bench = require "mbpo.bench"
local core = require "mbpo.core"
local Env = require "mbpo.env"
local Buffer = require "mbpo.buffer"
local Ensemble = require "mbpo.ensemble"
local SAC = require "mbpo.sac"
local G = require "mbpo.rng"
local T = require "mbpo.tensor"
local rollout = require "mbpo.rollout"
local sacbench = require "mbpo.bench.sac"

local REAL, ROWS, G_UPD, STEPS = 50000, 100000, 20, 1000

-- one environment step with the agent's sampled action into buf; returns the next obs
local function env_step(env, buf, agent, obs, rng)
  local a = agent and agent:act(obs, {}, rng) or T.rand({env.act_dim}, rng):mul_(2):sub_(1)
  local o2, r, term, trunc = env:step(a)
  buf:add(obs, a, r, o2, term and 1 or 0)
  if term or trunc then return env:reset() end
  return o2
end

-- The SAC update after the phase, three ways in alternating rounds (the machine may be
-- shared: each way sees the same noise), ms per update, median and best round:
--   bench  `mbpo bench sac`'s method: a fresh agent of the same config, 10 warm-up updates,
--          then agent:update on one fixed random batch
--   agent  the epoch's agent (20 000 updates into training), agent:update on one fixed batch
--          sampled from the buffers: what the agent's state costs
--   loop   the epoch's agent, one env step then update_mixed of 20 updates (only the latter
--          timed), as in the phase: what sampling and the interleaving cost
-- the pool's counters (core.pool_stats) between two snapshots, per update: the share of
-- tasks run by the worker(s), sections run alone by the caller, worker sleeps (each one a
-- wake-up later) and the caller's wait for workers in microseconds
local function pool_delta(a, b, updates)
  local tasks = (b.caller_tasks - a.caller_tasks) + (b.worker_tasks - a.worker_tasks)
  return {share = tasks > 0 and (b.worker_tasks - a.worker_tasks) / tasks or 0,
          alone = (b.alone - a.alone) / updates, sleeps = (b.sleeps - a.sleeps) / updates,
          wait = (b.wait - a.wait) / updates * 1e6}
end

local function pool_text(d)
  return string.format("worker ran %.0f%% of tasks, %.2f sections alone, %.3f worker sleeps, "
    .. "caller waited %.0f us", 100 * d.share, d.alone, d.sleeps, d.wait)
end

local function compare_sac(prec, O, A, agent, real, mbuf, rng, step, rounds, reps)
  local fresh = SAC.new{obs = O, act = A, seed = 1, precision = prec}
  local fixed = sacbench.random_batch(O, A, 256)
  local mine = Buffer.sample_mixed(real, mbuf, 256, 0.05, rng)
  local st, sums = {}, {}
  for _ = 1, 10 do fresh:update(fixed, st) end
  local per = {bench = {}, agent = {}, loop = {}}
  local zero = core.pool_stats()
  local pool = {bench = zero, agent = zero, loop = zero}
  -- adds the pool counters of one way's round into its running total
  local function add(k, a, b)
    local t = {}
    for f, v in pairs(pool[k]) do t[f] = v + (b[f] - a[f]) end
    pool[k] = t
  end
  local calls = math.max(1, reps // G_UPD)
  for r = 1, rounds do
    local p0, t0 = core.pool_stats(), core.clock()
    for _ = 1, reps do fresh:update(fixed, st) end
    per.bench[r] = (core.clock() - t0) / reps * 1e3
    local p1 = core.pool_stats()
    add("bench", p0, p1)
    t0 = core.clock()
    for _ = 1, reps do agent:update(mine, st) end
    per.agent[r] = (core.clock() - t0) / reps * 1e3
    local p2 = core.pool_stats()
    add("agent", p1, p2)
    local t = 0
    for _ = 1, calls do
      step()
      local q0 = core.pool_stats()
      t0 = core.clock()
      agent:update_mixed(real, mbuf, G_UPD, 0.05, rng, sums)
      t = t + core.clock() - t0
      add("loop", q0, core.pool_stats())
    end
    per.loop[r] = t / (calls * G_UPD) * 1e3
  end
  fresh:close()
  local out = {}
  for k, xs in pairs(per) do
    local best = math.huge
    for _, x in ipairs(xs) do best = math.min(best, x) end
    out[k] = {median = bench.median(xs), best = best,
              pool = pool_delta(zero, pool[k], rounds * (k == "loop" and calls * G_UPD or reps))}
  end
  return out
end

local function epoch_once(task, prec, scale, model_epochs)
  local env = Env.make(task)
  local O, A = env.obs_dim, env.act_dim
  local rng = G.new(1)
  local real = Buffer.new{obs = O, act = A, capacity = REAL + STEPS}
  local obs = env:reset{seed = 1}
  local nreal = math.max(1000, math.floor(REAL * scale))
  for _ = 1, nreal do obs = env_step(env, real, nil, obs, rng) end
  local agent = SAC.new{obs = O, act = A, seed = 1, precision = prec}
  local ens = Ensemble.new{inputs = O + A, outputs = O + 1, seed = 1, precision = prec}
  local term = Env.termination(task)
  local rows = math.max(1000, math.floor(ROWS * scale))
  local mbuf = Buffer.new{obs = O, act = A, capacity = rows * 15 * 4}
  local t = {}
  local function timed(name, f)
    local t0 = core.clock()
    f()
    t[name] = (t[name] or 0) + core.clock() - t0
  end
  -- model: 4 trainings of exactly model_epochs epochs (patience never stops them early)
  local train_steps = 0
  for _ = 1, 4 do
    local d = real:rows()
    local n = real:size()
    local x = T.cat({d.obs, d.act}, 2)
    local y = T.cat({d.reward:view(n, 1), d.next_obs - d.obs}, 2)
    timed("model", function()
      local info = ens:fit(x, y, {max_epochs = model_epochs, patience = model_epochs + 1})
      local ntrain = n - math.min(5000, math.floor(n * 0.2))
      train_steps = train_steps + info.epochs * math.ceil(ntrain / 256)
    end)
  end
  -- rollouts at k = 1 and k = 15, four of each
  for _, k in ipairs{1, 15} do
    for _ = 1, 4 do
      timed("rollout_k" .. k, function()
        assert(rollout.run{real = real, model_buffer = mbuf, agent = agent, ensemble = ens,
          termination = term, batch = rows, length = k, rng = rng})
      end)
    end
  end
  -- env steps and SAC updates, interleaved as in the loop
  local sums, steps = {}, math.max(10, math.floor(STEPS * scale))
  local before, phase = core.pool_stats(), core.pool_stats()
  for _ = 1, steps do
    timed("env", function() obs = env_step(env, real, agent, obs, rng) end)
    local p0 = core.pool_stats()
    timed("sac", function() agent:update_mixed(real, mbuf, G_UPD, 0.05, rng, sums) end)
    local p1 = core.pool_stats()
    for f, v in pairs(phase) do phase[f] = v + (p1[f] - p0[f]) end
  end
  local cmp = compare_sac(prec, O, A, agent, real, mbuf, rng,
    function() obs = env_step(env, real, agent, obs, rng) end, 5, 100)
  return t, {train_steps = train_steps, updates = steps * G_UPD, rows = rows, steps = steps,
             obs = O, act = A, sac = cmp, phase_pool = pool_delta(before, phase, steps * G_UPD)}
end

-- the lines of our epoch in one precision: the phases, the SAC update timed three ways, the
-- pool counters
local function report_ours(prec, t, c)
  io.write(string.format("ours %s: env %.1f s, model %.1f s, rollouts k=1 %.1f s, k=15 %.1f s, "
    .. "sac %.1f s (%.2f ms/update); epoch k=1 %.1f s, k=15 %.1f s\n", prec, t.env, t.model,
    t.rollout_k1, t.rollout_k15, t.sac, t.sac / c.updates * 1e3,
    t.env + t.model + t.rollout_k1 + t.sac, t.env + t.model + t.rollout_k15 + t.sac))
  local m = c.sac
  io.write(string.format("ours %s sac per update: phase %.3f ms; then 5 rounds, median (best): "
    .. "bench sac's method %.3f (%.3f), epoch's agent on a fixed batch %.3f (%.3f), "
    .. "update_mixed after env steps %.3f (%.3f); phase / bench sac %.2fx, loop / bench sac "
    .. "%.2fx (%d threads)\n", prec, t.sac / c.updates * 1e3, m.bench.median, m.bench.best,
    m.agent.median, m.agent.best, m.loop.median, m.loop.best,
    t.sac / c.updates * 1e3 / m.bench.median, m.loop.median / m.bench.median, core.threads()))
  if core.threads() > 1 then
    io.write(string.format("ours %s pool per update: phase: %s\n  bench sac's method: %s\n"
      .. "  epoch's agent on a fixed batch: %s\n  update_mixed after env steps: %s\n", prec,
      pool_text(c.phase_pool), pool_text(m.bench.pool), pool_text(m.agent.pool),
      pool_text(m.loop.pool)))
  end
end

local function run(opts)
  local task = opts.task or "Hopper"
  local scale = tonumber(os.getenv("MBPO_BENCH_EPOCH_SCALE") or "") or opts.scale or 1
  local model_epochs = tonumber(os.getenv("MBPO_BENCH_MODEL_EPOCHS") or "") or
    opts.model_epochs or 5
  io.write(string.format("task %s, %d threads, %d model epochs per training, scale %g\n",
    task, core.threads(), model_epochs, scale))
  local results, counts = {}, nil
  for _, prec in ipairs(opts.precisions or sacbench.precisions({})) do
    local t, c = epoch_once(task, prec, scale, model_epochs)
    counts = c
    results[#results + 1] = {prec, t}
    report_ours(prec, t, c)
    io.flush()
  end
  -- the peer's kernels at the same shapes, the same counts
  local peer, msg = bench.peer("sac,train,predict", counts.obs, counts.act, {1, 2}, "--iters 100")
  local pact = opts.peer ~= false and sacbench.peer_act(counts.obs, counts.act, counts.rows)
  if not (peer and peer.sac and peer.train and peer.predict and pact) then
    io.write("peer: ", tostring(msg or "no result"), "\n")
    for _, r in ipairs(results) do
      local t = r[2]
      sacbench.summary("epoch", r[1], (t.env + t.model + t.rollout_k15 + t.sac) * 1e3, nil)
    end
    return
  end
  -- predict is timed on ROWS rows; scale it to the rows of this run
  local pred = peer.predict.ms / 1e3 * counts.rows / ROWS
  local pt = {sac = peer.sac.ms_per_update / 1e3 * counts.updates,
              model = peer.train.ms_per_step / 1e3 * counts.train_steps,
              rollout_k1 = 4 * 1 * (pred + pact / 1e3),
              rollout_k15 = 4 * 15 * (pred + pact / 1e3)}
  io.write(string.format("peer-equivalent (%s, best thread setting per kernel): model %.1f s "
    .. "(%d training steps), rollouts k=1 %.1f s, k=15 %.1f s, sac %.1f s (%.2f ms/update)\n",
    peer.sac.peer or "torch", pt.model, counts.train_steps, pt.rollout_k1, pt.rollout_k15, pt.sac,
    peer.sac.ms_per_update))
  for _, r in ipairs(results) do
    local prec, t = r[1], r[2]
    local ours = t.env + t.model + t.rollout_k15 + t.sac
    local theirs = t.env + pt.model + pt.rollout_k15 + pt.sac
    local ours1 = t.env + t.model + t.rollout_k1 + t.sac
    local theirs1 = t.env + pt.model + pt.rollout_k1 + pt.sac
    io.write(string.format("%s epoch k=1: ours %.1f s, peer-equivalent %.1f s (%.2fx); k=15: "
      .. "ours %.1f s, peer-equivalent %.1f s (%.2fx)\n", prec, ours1, theirs1, theirs1 / ours1,
      ours, theirs, theirs / ours))
    io.write(string.format("summary epoch %s ours %.3f peer %.3f ratio %.2fx\n", prec, ours * 1e3,
      theirs * 1e3, theirs / ours))
  end
end

return {
  description = "one whole MBPO epoch (50k real rows, k = 1 and 15, 20 000 SAC updates) "
    .. "beside a peer-equivalent epoch",
  run = run,
}
