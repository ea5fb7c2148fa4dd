-- mbpo bench tensor: sgemm GFLOP/s through the Lua API (T.mm into a preallocated output, so
-- no allocation is timed) and through a direct OpenBLAS call from C, in the same run, with 1
-- and 2 threads, at 256^3 and at the network shapes of DESIGN.md section 8 (Hopper: obs 11,
-- act 3; SAC 256-wide with batch 256; the 7-member 200-wide ensemble with batch 256, and its
-- 100k-row rollout split in 7). Figures are medians over rounds (bench.time, one round at a
-- time, alternating with the direct call).
local T = require "mbpo.tensor"
local native = require "mbpo.bench.native"
local core = require "mbpo.core"
local bench = require "mbpo.bench"

-- {label, m, n, k, transa, transb}: C[m x n] = A[m x k] @ B[k x n]; a transposed operand is
-- stored the other way round and passed as a transposed view (sgemm's transpose flag)
local SHAPES = {
  {"square 256^3",                      256, 256, 256, false, false},
  {"sac q fwd [256x14]@[14x256]",       256, 256, 14, false, false},
  {"sac fwd [256x256]@[256x256]",       256, 256, 256, false, false},
  {"sac q out [256x256]@[256x1]",       256, 1, 256, false, false},
  {"sac pi fwd [256x11]@[11x256]",      256, 256, 11, false, false},
  {"sac pi out [256x256]@[256x6]",      256, 6, 256, false, false},
  {"sac dW [14x256]^T@[256x256]",       14, 256, 256, true, false},
  {"sac dW [256x256]^T@[256x256]",      256, 256, 256, true, false},
  {"sac dX [256x256]@[256x256]^T",      256, 256, 256, false, true},
  {"sac dX [256x1]@[1x256]^T",          256, 256, 1, false, true},
  {"ens fwd [256x14]@[14x200]",         256, 200, 14, false, false},
  {"ens fwd [256x200]@[200x200]",       256, 200, 200, false, false},
  {"ens out [256x200]@[200x24]",        256, 24, 200, false, false},
  {"ens dW [200x256]^T@[256x200]",      200, 200, 256, true, false},
  {"ens dX [256x200]@[200x200]^T",      256, 200, 200, false, true},
  {"rollout [14286x14]@[14x200]",       14286, 200, 14, false, false},
  {"rollout [14286x200]@[200x200]",     14286, 200, 200, false, false},
  {"rollout [14286x200]@[200x24]",      14286, 24, 200, false, false},
}

local ROUNDS = 7
local TARGET_FLOP = 3e9 -- per round: about 20-30 ms at this machine's sgemm speed

-- operand [r x c], stored transposed when asked
local function operand(r, c, trans)
  if trans then return T.rand(c, r):t() end
  return T.rand(r, c)
end

-- GFLOP/s through the Lua API and directly, for one shape: the rounds of the two paths
-- alternate, so a burst of load from other processes hits both alike; medians of the rounds
local function measure(s)
  local _, m, n, k, ta, tb = table.unpack(s)
  local flop = 2 * m * n * k
  local reps = math.max(1, math.floor(TARGET_FLOP / flop))
  local a, b, out = operand(m, k, ta), operand(k, n, tb), T.empty(m, n)
  local lua_t, direct_t = {}, {}
  for r = 1, ROUNDS do
    lua_t[r] = bench.time(function() T.mm(out, a, b) end, reps, 1)
    direct_t[r] = native.sgemm(m, n, k, ta, tb, reps, 1)
  end
  return flop / bench.median(lua_t) * 1e-9, flop / bench.median(direct_t) * 1e-9
end

local function run(opts)
  local saved = core.threads()
  local summary = {}
  io.write(string.format("%-8s %-34s %12s %12s %9s\n", "threads", "C = A @ B", "Lua GFLOP/s",
    "C GFLOP/s", "Lua/C"))
  for _, th in ipairs(opts.threads or {1, 2}) do
    core.set_threads(th)
    measure(SHAPES[1]) -- warm-up, discarded: OpenBLAS starts its threads, clocks settle
    for _, s in ipairs(SHAPES) do
      local lua_g, c_g = measure(s)
      io.write(string.format("%-8d %-34s %12.1f %12.1f %8.1f%%\n", th, s[1], lua_g, c_g,
        100 * lua_g / c_g))
      io.flush()
      if s[1] == "square 256^3" then summary[#summary + 1] = {th, lua_g, c_g} end
    end
  end
  core.set_threads(saved)
  for _, r in ipairs(summary) do
    local ratio = r[2] / r[3]
    io.write(string.format("256^3 with %d thread(s): Lua API at %.1f%% of the direct call " ..
      "(acceptance: within 10%%): %s\n", r[1], 100 * ratio, ratio >= 0.9 and "ok" or "SLOWER"))
  end
  io.write("(medians of ", ROUNDS, " rounds; noisy when other jobs share the cores)\n")
end

return {
  description = "sgemm GFLOP/s at 256^3 and the SAC/ensemble shapes, Lua API vs direct OpenBLAS",
  run = run,
}
