-- `mbpo bench sac`: one SAC update (batch 256, two hidden layers of 256) for Hopper shapes
-- (obs 11, act 3) and Ant shapes (27, 8), at 1 and 2 threads, beside the PyTorch CPU peer
-- (its best of 1 and 2 threads, run in the same benchmark), and a batched act over 100 000
-- rows (the rollout's policy call). GFLOP/s counts the matrix products the update does
-- (agent:flops(): 2 per multiply-add; elementwise work not counted).
-- Timing: per setting, `rounds` rounds of `reps` updates; the median round is reported with
-- the fastest and slowest, so a noisy (shared) machine shows as a wide spread.
-- Options (`mbpo bench sac` passes none): {reps =, rounds =, shapes = {{name, obs, act}},
-- threads = {1, 2}, peer = false to skip the peer}.
local bench = require "mbpo.bench"
local core = require "mbpo.core"
local SAC = require "mbpo.sac"
local Rng = require "mbpo.rng"
local T = require "mbpo.tensor"

local M = {description = "SAC update (batch 256, 256x256 nets) for Hopper and Ant shapes, and a 100k-row act, beside the PyTorch peer"}

-- random [rows x cols] tensor in (-1, 1): the stochastic actions of a throwaway agent
-- (keeps this benchmark to the sac module's own calls)
local function random_rows(rows, cols, seed)
  local gen = SAC.new{obs = 1, act = cols, hidden = {8}, seed = seed, batch = 1}
  local out = T.zeros(rows, cols)
  gen:act(T.zeros(rows, 1), {out = out}, Rng.new(seed))
  return out
end

-- median, min and max seconds per call of f over `rounds` rounds of `reps` calls
local function timeit(f, reps, rounds)
  local med, per = bench.time(f, reps, rounds)
  local lo, hi = math.huge, 0
  for _, t in ipairs(per) do lo, hi = math.min(lo, t), math.max(hi, t) end
  return med, lo, hi
end

function M.run(opts)
  opts = opts or {}
  local reps, rounds = opts.reps or 50, opts.rounds or 9
  local shapes = opts.shapes or {{"hopper", 11, 3}, {"ant", 27, 8}}
  local threads = opts.threads or {1, 2}
  local saved = core.threads()
  local B = 256
  io.write(string.format("%-8s %-7s %7s %10s %10s %9s %18s\n", "task", "shape", "threads",
    "ms/update", "updates/s", "GFLOP/s", "spread ms (min-max)"))
  local results = {}
  for _, sh in ipairs(shapes) do
    local name, obs, act = sh[1], sh[2], sh[3]
    local batch = {obs = random_rows(B, obs, 1), act = random_rows(B, act, 2),
                   reward = random_rows(B, 1, 3), next_obs = random_rows(B, obs, 4),
                   done = T.zeros(B)}
    local best = math.huge
    for _, th in ipairs(threads) do
      core.set_threads(th)
      local agent = SAC.new{obs = obs, act = act, batch = B, seed = 1}
      local flops = agent:flops(B)
      local stats = {}
      for _ = 1, 20 do agent:update(batch, stats) end -- warm-up: caches, pool threads
      local t, lo, hi = timeit(function() agent:update(batch, stats) end, reps, rounds)
      best = math.min(best, t)
      io.write(string.format("%-8s %-7s %7d %10.3f %10.1f %9.1f %8.3f - %-8.3f\n", name,
        obs .. "x" .. act, th, t * 1e3, 1 / t, flops / t / 1e9, lo * 1e3, hi * 1e3))
      agent:close()
    end
    results[#results + 1] = {name = name, obs = obs, act = act, best = best}
  end
  -- the peer, same shapes, its best of 1 and 2 threads
  if opts.peer ~= false then
    for _, r in ipairs(results) do
      local peer, err = bench.peer("sac", r.obs, r.act, {1, 2})
      if not peer then
        io.write("peer: ", err, "\n")
        break
      end
      local p = peer.sac
      if p then
        io.write(string.format("%-8s peer %s, best at %d thread(s): %.3f ms/update (%.1f updates/s);"
          .. " ours %.3f ms: ratio %.2fx\n", r.name, p.peer or "?", p.threads or 0, p.ms_per_update,
          p.updates_per_s, r.best * 1e3, p.ms_per_update / (r.best * 1e3)))
      end
    end
  end
  if opts.act == false then core.set_threads(saved); return results end
  -- batched act over a rollout batch (deterministic and sampled)
  local N = 100000
  for _, sh in ipairs(shapes) do
    local name, obs, act = sh[1], sh[2], sh[3]
    local x, out = random_rows(N, obs, 5), T.zeros(N, act)
    local g = Rng.new(7)
    for _, th in ipairs(threads) do
      core.set_threads(th)
      local agent = SAC.new{obs = obs, act = act, seed = 1}
      local td = timeit(function() agent:act(x, {deterministic = true, out = out}) end, 2, 5)
      local ts = timeit(function() agent:act(x, {out = out}, g) end, 2, 5)
      io.write(string.format("%-8s act %d rows, %d thread(s): deterministic %.1f ms, sampled %.1f ms"
        .. " (%.2f M rows/s)\n", name, N, th, td * 1e3, ts * 1e3, N / ts / 1e6))
      agent:close()
    end
  end
  core.set_threads(saved)
  return results
end

return M
