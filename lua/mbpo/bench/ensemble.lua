-- mbpo bench ensemble: the dynamics ensemble's two hot kernels at the reference sizes
-- (7 members of 4 x 200 swish, Gaussian head with learned bounds), for Hopper (11 obs, 3 act)
-- and Ant (27 obs, 8 act) shapes:
--   train  one training step: 7 members x 256 rows, forward, loss, backward, Adam
--   step   one model step over 100 000 rows, each row through one random elite, sampled
-- beside the PyTorch CPU peer (its train and predict kernels, best of 1 and 2 threads), with
-- GFLOP/s from the same operation counts and the ratio peer time / our time.
-- On a shared machine other jobs slow either side at random, so ours and the peer run in
-- alternating rounds and each side keeps its best round; every round is printed.
-- Each precision this CPU runs (fp32; bf16 where native) is measured against the same (fp32)
-- peer; the Hopper figures end in lines
--   summary ens_train <precision> ours <ms> peer <ms> ratio <N.NN>x   (and ens_step)
-- Environment: MBPO_BENCH_ROUNDS (default 2).
local bench = require "mbpo.bench"
local core = require "mbpo.core"
local Ensemble = require "mbpo.ensemble"
local native = require "mbpo.bench.native"

local ROWS = 100000
local SHAPES = {{name = "Hopper", obs = 11, act = 3}, {name = "Ant", obs = 27, act = 8}}

-- ours: for each thread count the median of 5 C-timed loops after a warm-up; returns
-- {threads = seconds} for train and step, and the share of the multi-thread runs' parallel
-- sections that the caller ran alone (near 1: the other core was not ours)
local function measure_ours(ens, threads)
  local saved = core.threads()
  local train, step, p0, p1 = {}, {}, core.pool_stats(), nil
  local function median_of(f)
    f()
    local xs = {}
    for r = 1, 5 do xs[r] = f() end
    return bench.median(xs)
  end
  for _, th in ipairs(threads) do
    core.set_threads(th)
    train[th] = median_of(function() return native.ens_train_step(ens, 20) end)
    step[th] = median_of(function() return native.ens_step(ens, ROWS, 2) end)
    if th == 1 then p0 = core.pool_stats() end
  end
  p1 = core.pool_stats()
  core.set_threads(saved)
  return train, step, (require("mbpo.bench.sac").alone_share(p0, p1))
end

local function best_of(t)
  local best, th = math.huge, nil
  for k, v in pairs(t) do if v < best or (v == best and k < th) then best, th = v, k end end
  return best, th
end

local function ms(s) return string.format("%.2f", s * 1e3) end
local function gf(flops, s) return string.format("%.1f", flops / s / 1e9) end

-- rounds of ours and the peer on one shape and precision: the best of each, and the peer's
-- message when it gave no result
local function measure_shape(sh, prec, ens, threads, rounds)
  local best = {train = {math.huge}, step = {math.huge}, ptrain = nil, pstep = nil}
  for r = 1, rounds do
    local train, step, lone = measure_ours(ens, threads)
    local t, tth = best_of(train)
    local s, sth = best_of(step)
    local line = string.format("  %s %s round %d: ours train %s ms (%d thr), step %s ms (%d thr)"
      .. ", caller alone in %.0f%% of sections", sh.name, prec, r, ms(t), tth, ms(s), sth,
      lone * 100)
    if t < best.train[1] then best.train = {t, tth} end
    if s < best.step[1] then best.step = {s, sth} end
    local peer, msg = bench.peer("train,predict", sh.obs, sh.act, {1, 2}, "--iters 120")
    if not (peer and peer.train and peer.predict) then
      io.write(line, "\n")
      return best, msg or "peer gave no result"
    end
    line = line .. string.format("; peer train %.2f ms (%d thr), predict %.1f ms (%d thr)",
      peer.train.ms_per_step, peer.train.threads, peer.predict.ms, peer.predict.threads)
    if not best.ptrain or peer.train.ms_per_step < best.ptrain.ms_per_step then
      best.ptrain = peer.train
    end
    if not best.pstep or peer.predict.ms < best.pstep.ms then best.pstep = peer.predict end
    io.write(line, "\n")
    io.flush()
  end
  return best
end

-- the table of rows {shape, kernel, {ours s, threads}, flops, peer result, peer ms}; returns
-- the lowest ratio
local function print_table(rows)
  local worst = math.huge
  io.write("\n", string.format("%-7s %-15s %13s %9s %14s %9s %7s\n", "shape", "kernel",
    "ours ms/thr", "GFLOP/s", "peer ms/thr", "GFLOP/s", "ratio"))
  for _, r in ipairs(rows) do
    local name, kernel, ours, flops, p, pms = table.unpack(r)
    local ours_s = ms(ours[1]) .. "/" .. ours[2]
    if p then
      local ratio = pms / (ours[1] * 1e3)
      worst = math.min(worst, ratio)
      io.write(string.format("%-7s %-15s %13s %9s %14s %9s %6.2fx\n", name, kernel, ours_s,
        gf(flops, ours[1]), string.format("%.2f/%d", pms, p.threads), gf(flops, pms / 1e3), ratio))
    else
      io.write(string.format("%-7s %-15s %13s %9s %14s %9s %7s\n", name, kernel, ours_s,
        gf(flops, ours[1]), "-", "-", "-"))
      if r.note then io.write("  peer: ", r.note, "\n") end
    end
  end
  return worst
end

local function run(opts)
  local threads = opts.threads or {1, 2}
  local rounds = tonumber(os.getenv("MBPO_BENCH_ROUNDS") or "") or opts.rounds or 2
  io.write("OpenBLAS: ", native.blas(), "; ", core.ncpu(), " cpus; ", rounds, " rounds\n")
  local rows, summaries = {}, {}
  local precs = opts.precisions or require("mbpo.bench.sac").precisions({})
  for _, sh in ipairs(SHAPES) do
    for _, prec in ipairs(precs) do
      local ens = Ensemble.new{inputs = sh.obs + sh.act, outputs = sh.obs + 1, seed = 1,
                               precision = prec}
      local train_flops, fwd_flops = ens:flops(256)
      local best, peer_msg = measure_shape(sh, prec, ens, threads, rounds)
      rows[#rows + 1] = {sh.name, "train " .. prec, best.train, train_flops, best.ptrain,
                         best.ptrain and best.ptrain.ms_per_step}
      rows[#rows + 1] = {sh.name, "step100k " .. prec, best.step, fwd_flops * ROWS, best.pstep,
                         best.pstep and best.pstep.ms}
      if peer_msg then rows[#rows].note = peer_msg end
      if sh.name == "Hopper" then
        summaries[#summaries + 1] = {"ens_train", prec, best.train[1] * 1e3,
                                     best.ptrain and best.ptrain.ms_per_step}
        summaries[#summaries + 1] = {"ens_step", prec, best.step[1] * 1e3,
                                     best.pstep and best.pstep.ms}
      end
    end
  end
  local worst = print_table(rows)
  if worst < math.huge then
    io.write(string.format("lowest ratio %.2fx (accepted at 2x, target 3x)\n", worst))
  end
  io.write("peer train: one torch training step of the same model; peer step: its predict\n",
           "kernel, a forward of 100 000 rows split over the members plus the sample\n")
  require("mbpo.bench").summaries(summaries, 11, 3)
end

return {
  description = "dynamics ensemble: training step (7 x 256) and model step (100k rows) "
    .. "vs the PyTorch peer",
  run = run,
}
