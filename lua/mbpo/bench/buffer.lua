-- mbpo bench buffer: replay-buffer throughput and checkpoint speed.
-- Rows of the width the issue gives for the Humanoid model buffer (109 floats: obs 50,
-- act 7); MBPO_BENCH_ROWS sets the row count (default 1 000 000 rows = 436 MB; the
-- Humanoid model buffer is 12.5M rows, 5.4 GB). Figures are noisy on a shared machine.
local B = require "mbpo.buffer"
local G = require "mbpo.rng"
local T = require "mbpo.tensor"
local io_ = require "mbpo.io"
local core = require "mbpo.core"
local bench = require "mbpo.bench"

local function run()
  local obs, act = 50, 7                 -- 2 * 50 + 7 + 2 = 109 floats per row
  local rows = tonumber(os.getenv("MBPO_BENCH_ROWS")) or 1000000
  local buf = B.new{obs = obs, act = act, capacity = rows}
  local chunk = 100000
  local o, a, r = T.zeros(chunk, obs), T.zeros(chunk, act), T.zeros(chunk)
  local t0 = core.clock()
  for _ = 1, rows // chunk do buf:add_batch(o, a, r, o, r) end
  local dt = core.clock() - t0
  local mb = rows * 109 * 4 / 1e6
  io.write(string.format("add_batch      %9d rows x 109 floats: %7.1f Mrows/s  %7.0f MB/s\n",
                         rows, rows / dt / 1e6, mb / dt))

  local g = G.new(1)
  local batch = buf:batch(256)
  local s = bench.time(function() buf:sample(256, g, batch) end, 2000, 5)
  io.write(string.format("sample 256     into a reused batch:      %7.2f us per batch\n", s * 1e6))
  local model = B.new{obs = obs, act = act, capacity = rows}
  for _ = 1, rows // chunk do model:add_batch(o, a, r, o, r) end
  s = bench.time(function() B.sample_mixed(buf, model, 256, 0.05, g, batch) end, 2000, 5)
  io.write(string.format("sample_mixed   256 rows, real_ratio 0.05: %7.2f us per batch\n", s * 1e6))
  model = nil
  local starts = T.zeros(100000, obs)
  s = bench.time(function() buf:sample_obs(100000, g, starts) end, 3, 3)
  io.write(string.format("sample_obs     100000 start states:      %7.2f ms\n", s * 1e3))

  local path = os.tmpname()
  t0 = core.clock()
  assert(io_.save(path, buf:state()))
  local ts = core.clock() - t0
  t0 = core.clock()
  local st = assert(io_.load(path))
  local tl = core.clock() - t0
  t0 = core.clock()
  buf:load_state(st)
  local tr = core.clock() - t0
  os.remove(path)
  local fmt = "%-14s %7.0f MB %-19s %7.0f MB/s (%.2f s)\n"
  io.write(string.format(fmt, "io.save state", mb, "(with fsync):", mb / ts, ts))
  io.write(string.format(fmt, "io.load state", mb, "(from page cache):", mb / tl, tl))
  io.write(string.format(fmt, "load_state", mb, "(copy into slab):", mb / tr, tr))
end

return {description = "replay buffer add/sample and io.save/io.load of its state", run = run}
