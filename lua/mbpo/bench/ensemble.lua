-- mbpo bench ensemble: the dynamics ensemble's two hot kernels at the reference sizes
-- (7 members of 4 x 200 swish, Gaussian head with learned bounds), for Hopper (11 obs, 3 act)
-- and Ant (27 obs, 8 act) shapes:
--   train  one training step: 7 members x 256 rows, forward, loss, backward, Adam
--   step   one model step over 100 000 rows, each row through one random elite, sampled
-- beside the PyTorch CPU peer (its train and predict kernels, best of 1 and 2 threads) run in
-- the same benchmark, with GFLOP/s from the same operation counts and the ratio peer / ours.
local bench = require "mbpo.bench"
local core = require "mbpo.core"
local Ensemble = require "mbpo.ensemble"

local ROWS = 100000
local SHAPES = {{name = "Hopper", obs = 11, act = 3}, {name = "Ant", obs = 27, act = 8}}

-- the fastest median over thread counts: returns seconds, threads, {threads = seconds}
local function best_over_threads(threads, measure)
  local best, best_th, all = math.huge, nil, {}
  for _, th in ipairs(threads) do
    core.set_threads(th)
    local s = measure()
    all[th] = s
    if s < best then best, best_th = s, th end
  end
  return best, best_th, all
end

local function row(cells)
  io.write(string.format("%-7s %-20s %-14s %9s %9s %14s %9s %7s\n", table.unpack(cells)))
end

local function ms(s) return string.format("%.2f", s * 1e3) end
local function gf(flops, s) return string.format("%.1f", flops / s / 1e9) end

local function run(opts)
  local threads = opts.threads or {1, 2}
  local saved = core.threads()
  io.write("OpenBLAS: ", Ensemble._blas(), "; ", core.ncpu(), " cpus\n")
  io.write("(figures on a shared machine are noisy; ours and the peer run back to back)\n\n")
  row({"shape", "kernel", "ours ms/thr", "ours", "GFLOP/s", "peer ms/thr", "GFLOP/s", "ratio"})
  local ratios = {}
  for _, sh in ipairs(SHAPES) do
    local ens = Ensemble.new{inputs = sh.obs + sh.act, outputs = sh.obs + 1, seed = 1}
    local train_flops, fwd_flops = ens:flops(256)
    local step_flops = fwd_flops * ROWS
    -- ours: per thread count, the median of 5 rounds of C-timed loops (after a warm-up)
    local function median_of(f)
      f()
      local xs = {}
      for r = 1, 5 do xs[r] = f() end
      return bench.median(xs)
    end
    local t_train, th_train, all_train = best_over_threads(threads, function()
      return median_of(function() return ens:_bench_train_step(20) end)
    end)
    local t_step, th_step, all_step = best_over_threads(threads, function()
      return median_of(function() return ens:_bench_step(ROWS, 2) end)
    end)
    core.set_threads(saved)
    local peer, msg = bench.peer("train,predict", sh.obs, sh.act, {1, 2})
    local function line(kernel, t, th, all, flops, p, pms)
      local detail = {}
      for _, n in ipairs(threads) do detail[#detail + 1] = string.format("%d:%s", n, ms(all[n])) end
      if p then
        local ratio = pms / (t * 1e3)
        ratios[#ratios + 1] = {sh.name .. " " .. kernel, ratio}
        row({sh.name, kernel, ms(t) .. "/" .. th, "", gf(flops, t),
             string.format("%.2f/%d", pms, p.threads), gf(flops, pms / 1e3),
             string.format("%.2fx", ratio)})
      else
        row({sh.name, kernel, ms(t) .. "/" .. th, "", gf(flops, t), "-", "-", "-"})
      end
      io.write(string.format("%-7s   ours by threads (ms): %s\n", "", table.concat(detail, "  ")))
    end
    line("train 7x256", t_train, th_train, all_train, train_flops, peer and peer.train,
         peer and peer.train and peer.train.ms_per_step)
    line("step 100k rows", t_step, th_step, all_step, step_flops, peer and peer.predict,
         peer and peer.predict and peer.predict.ms)
    if not peer then io.write("  peer: ", msg, "\n") end
    ens = nil
    collectgarbage()
  end
  if #ratios > 0 then
    local worst = math.huge
    for _, r in ipairs(ratios) do worst = math.min(worst, r[2]) end
    io.write(string.format("\nlowest ratio %.2fx (accepted at 2x, target 3x)\n", worst))
  end
  io.write("peer train = one torch training step of the same model; peer step = torch forward\n",
           "of 100 000 rows split over the members plus the sample (its predict kernel)\n")
end

return {
  description = "dynamics ensemble: training step (7 x 256) and model step (100k rows) vs the PyTorch peer",
  run = run,
}
