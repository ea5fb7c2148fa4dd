-- A/B timing of the ensemble's bf16 fast path (mbn_ensFastUse, MBPO_ENS_FAST) on a whole fit,
-- alternating rounds of the two paths in one process so that both see the same machine:
--   MBPO_THREADS=1 build/mbpo tools/ens_fit_ab.lua [PREC=bf16] [ROWS=40000] [EPOCHS=5] [ROUNDS=5]
-- A Hopper-shaped model (inputs 14, outputs 12, 7 members of 4 x 200) on random rows (targets
-- a fixed smooth function of the inputs); each round is a fresh ensemble's fit of EPOCHS epochs.
-- Prints each round's seconds, the medians per path and their ratio (old / new), and checks
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
  local info = ens:fit(x, y, {max_epochs = E, patience = E + 1})
  return info.seconds, table.concat(ens:holdout_mse(), " ")
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local was = native.ens_fast()
local times, mse = {[false] = {}, [true] = {}}, {}
round(true)  -- warm-up: primitives, workspaces
for r = 1, R do
  for _, fast in ipairs(r % 2 == 1 and {false, true} or {true, false}) do
    local s, m = round(fast)
    times[fast][r] = s
    mse[fast] = mse[fast] or m
    assert(mse[fast] == m, "a round's holdout MSEs differ from the first's")
    print(string.format("%s round %d %-4s %.3f s", prec, r, fast and "new" or "old", s))
  end
end
native.ens_fast(was)
assert(mse[true] == mse[false], "the two paths' holdout MSEs differ")
local a, b = median(times[false]), median(times[true])
print(string.format("%s %d rows %d epochs: old %.3f s new %.3f s (medians of %d) ratio %.3f",
                    prec, N, E, a, b, R, a / b))
