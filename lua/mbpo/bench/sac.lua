-- `mbpo bench sac`: one SAC update (batch 256, two hidden layers of 256) for Hopper shapes
-- (obs 11, act 3) and Ant shapes (27, 8), at 1 and 2 threads, beside the PyTorch CPU peer
-- (its best of 1 and 2 threads), and a batched act over 100 000 rows (the rollout's policy
-- call). GFLOP/s counts the matrix products the update does (agent:flops(): 2 per
-- multiply-add; the elementwise work is not counted).
-- The machine may be shared: ours and the peer are measured in alternating rounds (ours at
-- each thread count, then the peer), so both see the same noise; each figure is the median
-- over rounds, with the fastest and slowest round beside it, and the ratio is the peer's
-- median over our best median.
-- Every kernel is measured in each precision (fp32, and bf16 where the CPU has it: the same
-- peer, which runs fp32), and the Hopper figures end in machine-readable lines
--   summary sac_update <precision> ours <ms> peer <ms> ratio <N.NN>x   (and sac_act)
-- (the act peer is tests/peers/torch_act.py: the same policy forward and sample in torch).
-- Options (`mbpo bench sac` passes none): {rounds = 3, reps = 100, shapes = {{name, obs, act}},
-- threads = {1, 2}, peer = false to skip the peer, act = false to skip the act timing,
-- precisions = {"fp32", "bf16"}}.
local bench = require "mbpo.bench"
local core = require "mbpo.core"
local SAC = require "mbpo.sac"
local Rng = require "mbpo.rng"
local T = require "mbpo.tensor"

local M = {description = "SAC update (batch 256, 256x256 nets) for Hopper and Ant shapes, " ..
  "and a 100k-row act, beside the PyTorch peer"}

-- random [rows x cols] tensor in (-1, 1): the sampled actions of a throwaway agent (keeps
-- this benchmark to the sac module's own calls)
local function random_rows(rows, cols, seed)
  local gen = SAC.new{obs = 1, act = cols, hidden = {8}, seed = seed, batch = 1}
  local out = T.zeros(rows, cols)
  gen:act(T.zeros(rows, 1), {out = out}, Rng.new(seed))
  return out
end

local function spread(xs)
  local lo, hi = math.huge, 0
  for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return lo, hi
end

-- the fixed batch every update here runs on (also used by `mbpo bench epoch` to time this
-- benchmark's method beside its SAC phase)
function M.random_batch(obs, act, B)
  return {obs = random_rows(B, obs, 1), act = random_rows(B, act, 2),
          reward = random_rows(B, 1, 3), next_obs = random_rows(B, obs, 4), done = T.zeros(B)}
end

-- the share of the pool's parallel sections between two core.pool_stats() snapshots that the
-- caller ran alone (near 1 when the worker got no core: another process, or the host, held it)
-- and the caller's wait for the worker in seconds
local function alone_share(a, b)
  local n = b.sections - a.sections
  return n > 0 and (b.alone - a.alone) / n or 0, b.wait - a.wait
end
M.alone_share = alone_share

-- one shape: returns {threads = {ms per round}}, {peer ms per round}, peer info, flops,
-- {threads = {alone share per round}}
local function measure(obs, act, opts, precision)
  local B = 256
  local batch = M.random_batch(obs, act, B)
  local agent = SAC.new{obs = obs, act = act, batch = B, seed = 1, precision = precision}
  local stats, ours, peer, info, lone = {}, {}, {}, nil, {}
  for _, th in ipairs(opts.threads) do ours[th], lone[th] = {}, {} end
  for r = 1, opts.rounds do
    for _, th in ipairs(opts.threads) do
      core.set_threads(th)
      for _ = 1, 10 do agent:update(batch, stats) end -- warm-up: caches, pool threads
      local p0, t0 = core.pool_stats(), core.clock()
      for _ = 1, opts.reps do agent:update(batch, stats) end
      ours[th][r] = (core.clock() - t0) / opts.reps * 1e3
      local share, wait = alone_share(p0, core.pool_stats())
      lone[th][r] = {alone = share, wait = wait / (ours[th][r] * opts.reps / 1e3)}
    end
    if opts.peer ~= false and info ~= false then
      local best, err = bench.peer("sac", obs, act, {1, 2}, "--iters " .. opts.reps)
      if best and best.sac then
        peer[r] = best.sac.ms_per_update
        info = info or best.sac
      else
        io.write("peer: ", tostring(err or "no result"), "\n")
        info = false
      end
    end
  end
  return ours, peer, info or nil, agent:flops(B), lone
end

-- one line naming the multi-thread rounds in which the other core was not fully ours (the
-- caller ran most sections alone, or waited for the worker a fifth of the round or more), or
-- nothing; lone[threads][round] = {alone = share of sections, wait = share of the time}
function M.lone_note(label, lone)
  local out = {}
  for th, rounds in pairs(lone) do
    for r, v in ipairs(rounds) do
      if th > 1 and v.alone > 0.5 then
        out[#out + 1] = string.format("%dT round %d (%.0f%% of sections alone)", th, r,
          v.alone * 100)
      elseif th > 1 and v.wait >= 0.2 then
        out[#out + 1] = string.format("%dT round %d (%.0f%% of the time waiting)", th, r,
          v.wait * 100)
      end
    end
  end
  if #out == 0 then return end
  table.sort(out)
  io.write(string.format("%s: the other core was not fully ours in %s: the caller ran the " ..
    "parallel sections alone or waited for the worker (another process or the host held its " ..
    "core); compare such rounds with care\n", label, table.concat(out, ", ")))
end

-- precisions this CPU runs: fp32, and bf16 when SAC.new accepts it
local function precisions(opts)
  if opts.precisions then return opts.precisions end
  local list = {"fp32"}
  if pcall(SAC.new, {obs = 1, act = 1, hidden = {8}, precision = "bf16"}) then
    list[2] = "bf16"
  else
    io.write("bf16: not native on this CPU, fp32 only\n")
  end
  return list
end
M.precisions = precisions

-- the peer's 100k-row act (tests/peers/torch_act.py), best of its thread counts, in ms
local function peer_act(obs, act, rows)
  local path = (MBPO_ROOT or ".") .. "/tests/peers/torch_act.py"
  local best
  for _, th in ipairs{1, 2} do
    local p = io.popen(string.format(
      "/usr/bin/python3 %q --obs %d --act %d --rows %d --threads %d 2>/dev/null",
      path, obs, act, rows, th))
    local out = p:read("a")
    p:close()
    local v = tonumber(out:match('"ms"%s*:%s*([%d%.eE+-]+)'))
    if v and (not best or v < best) then best = v end
  end
  return best
end

M.peer_act = peer_act

-- one machine-readable line (times in ms; peer nil: "nan")
function M.summary(kernel, precision, ours, peer)
  io.write(string.format("summary %s %s ours %.3f peer %s ratio %s\n", kernel, precision, ours,
    peer and string.format("%.3f", peer) or "nan",
    peer and string.format("%.2fx", peer / ours) or "nan"))
end

-- batched act over a rollout batch, deterministic and sampled, into a preallocated out; adds
-- the Hopper rows to summaries
local function bench_act(opts, shapes, precs, summaries)
  local N = 100000
  for _, sh in ipairs(shapes) do
    local name, obs, act = sh[1], sh[2], sh[3]
    local x, out = random_rows(N, obs, 5), T.zeros(N, act)
    local g = Rng.new(7)
    local pms = opts.peer ~= false and name == "hopper" and peer_act(obs, act, N) or nil
    for _, prec in ipairs(precs) do
      local agent = SAC.new{obs = obs, act = act, seed = 1, precision = prec}
      local best = math.huge
      for _, th in ipairs(opts.threads) do
        core.set_threads(th)
        local td = bench.time(function() agent:act(x, {deterministic = true, out = out}) end, 2, 5)
        local ts = bench.time(function() agent:act(x, {out = out}, g) end, 2, 5)
        best = math.min(best, ts * 1e3)
        io.write(string.format("%-7s %s act %d rows, %dT: deterministic %.1f ms, sampled %.1f ms"
          .. " (%.2f M rows/s)\n", name, prec, N, th, td * 1e3, ts * 1e3, N / ts / 1e6))
      end
      if pms then
        io.write(string.format("%-7s peer act %d rows (fp32, best T): %.1f ms\n", name, N, pms))
      end
      if name == "hopper" then summaries[#summaries + 1] = {"sac_act", prec, best, pms} end
      agent:close()
    end
  end
end

function M.run(opts)
  opts = opts or {}
  opts.rounds, opts.reps = opts.rounds or 3, opts.reps or 100
  opts.threads = opts.threads or {1, 2}
  local shapes = opts.shapes or {{"hopper", 11, 3}, {"ant", 27, 8}}
  local saved = core.threads()
  local results, summaries = {}, {}
  local precs = precisions(opts)
  io.write(string.format("%d rounds of %d updates; ms/update: median (fastest - slowest round)\n",
    opts.rounds, opts.reps))
  io.write(string.format("%-7s %-6s %-5s %-14s %9s %10s %8s %17s\n", "task", "shape", "prec",
    "who", "ms/update", "updates/s", "GFLOP/s", "spread ms"))
  for _, sh in ipairs(shapes) do
    local name, obs, act = sh[1], sh[2], sh[3]
    for _, prec in ipairs(precs) do
      local ours, peer, info, flops, lone = measure(obs, act, opts, prec)
      local best = math.huge
      for _, th in ipairs(opts.threads) do
        local m = bench.median(ours[th])
        local lo, hi = spread(ours[th])
        best = math.min(best, m)
        io.write(string.format("%-7s %-6s %-5s %-14s %9.3f %10.1f %8.1f %8.3f - %-8.3f\n", name,
          obs .. "x" .. act, prec, "mbpo " .. th .. "T", m, 1e3 / m, flops / m / 1e6, lo, hi))
      end
      M.lone_note(name .. " " .. prec, lone)
      local r = {name = name, obs = obs, act = act, ms = best, gflops = flops / best / 1e6,
                 precision = prec}
      if #peer > 0 then
        local m = bench.median(peer)
        local lo, hi = spread(peer)
        io.write(string.format("%-7s %-6s %-5s %-14s %9.3f %10.1f %8.1f %8.3f - %-8.3f\n", name,
          obs .. "x" .. act, "fp32", "peer (best T)", m, 1e3 / m, flops / m / 1e6, lo, hi))
        io.write(string.format(
          "%-7s %s ratio peer/mbpo %.2fx (%s, peer best thread setting %d in its first round)\n",
          name, prec, m / best, info.peer or "torch", info.threads or 0))
        r.peer_ms, r.ratio = m, m / best
      end
      if name == "hopper" then summaries[#summaries + 1] = {"sac_update", prec, best, r.peer_ms} end
      results[#results + 1] = r
    end
  end
  if opts.act ~= false then bench_act(opts, shapes, precs, summaries) end
  core.set_threads(saved)
  bench.summaries(summaries, 11, 3, opts)
  return results
end

return M
