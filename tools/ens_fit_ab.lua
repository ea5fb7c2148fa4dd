-- A/B timing of the ensemble's bf16 fast path (mbn_ensFastUse, MBPO_ENS_FAST) on a whole fit,
-- alternating rounds of the two paths in one process so that both see the same machine:
--   MBPO_THREADS=1 build/mbpo tools/ens_fit_ab.lua [PREC=bf16] [ROWS=40000] [EPOCHS=5] [ROUNDS=5]
-- A Hopper-shaped model (inputs 14, outputs 12, 7 members of 4 x 200) on random rows (targets
-- a fixed smooth function of the inputs); each round is a fresh ensemble's fit of EPOCHS epochs.
-- Prints each round's seconds (wall, and the process's CPU time, which leaves out the time
-- other processes held the core), the medians per path and their ratio (old / new), the median of
-- the per-round ratios (each round's pair ran back to back), and checks
-- that both paths ended with the same holdout MSEs.
local Ensemble = require "mbpo.ensemble"
local T = require "mbpo.tensor"
local G = require "mbpo.rng"
local native = require "mbpo.bench.native"

local prec = arg[1] or "bf16"
local N, E, R = tonumber(arg[2] or 40000), tonumber(arg[3] or 5), tonumber(arg[4] or 5)
local g = G.new(5)
local x = T.randn({N, 14}, g)
local w = T.randn({14, 12}, g) * 0.3
local y = (x:matmul(w)):tanh() + T.randn({N, 12}, g) * 0.05

local function round(fast)
  native.ens_fast(fast)
  local ens = Ensemble.new{inputs = 14, outputs = 12, seed = 1, precision = prec}
  local c0 = os.clock()
  local info = ens:fit(x, y, {max_epochs = E, patience = E + 1})
  return info.seconds, os.clock() - c0, table.concat(ens:holdout_mse(), " ")
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local was = native.ens_fast()
local times, cpu, mse = {[false] = {}, [true] = {}}, {[false] = {}, [true] = {}}, {}
round(true)  -- warm-up: primitives, workspaces
for r = 1, R do
  for _, fast in ipairs(r % 2 == 1 and {false, true} or {true, false}) do
    local s, c, m = round(fast)
    times[fast][r], cpu[fast][r] = s, c
    mse[fast] = mse[fast] or m
    assert(mse[fast] == m, "a round's holdout MSEs differ from the first's")
    print(string.format("%s round %d %-4s %.3f s (cpu %.3f s)", prec, r, fast and "new" or "old",
                        s, c))
  end
end
native.ens_fast(was)
assert(mse[true] == mse[false], "the two paths' holdout MSEs differ")
for _, k in ipairs{{"wall", times}, {"cpu", cpu}} do
  local tt = k[2]
  local a, b = median(tt[false]), median(tt[true])
  local pair = {}
  for r = 1, R do pair[r] = tt[false][r] / tt[true][r] end
  print(string.format("%s %d rows %d epochs, %s: old %.3f s new %.3f s (medians of %d) " ..
                      "ratio %.3f; median of the rounds' ratios %.3f", prec, N, E, k[1], a, b,
                      R, a / b, median(pair)))
end
