-- Uniform-random-policy check of the six tasks against specs/gym-tasks.md section 8.2:
-- mean return and mean episode length over N episodes (default 1000) must agree with the
-- spec's figures within 3 standard errors of the difference (the spec's mean is itself a
-- 1000-episode estimate: se = sqrt(sd_ours^2 / n + sd_spec^2 / 1000); the spec gives no sd
-- for lengths, so theirs is taken equal to ours). Slow (about a minute for HalfCheetah and
-- Ant), so not part of `make test` (tests/c/test_env.c checks the three fast tasks):
--   build/mbpo tests/env_random_check.lua [episodes] [seed] [Task ...]
-- Then the zero-action policy over 100 episodes against the same section's zero-action
-- column (only reset noise is random there, so it checks the dynamics more sharply).
-- Exit status 1 when a task is outside 3 standard errors.
local E = require "mbpo.env"
local G = require "mbpo.rng"

local zero = {  -- section 8.2, zero action: mean return, mean length
  InvertedPendulum = {24.8, 24.8}, Hopper = {148.9, 150}, Walker2d = {96.4, 111},
  HalfCheetah = {-0.2, 1000}, Ant = {994.4, 1000}, Humanoid = {203.7, 40.4},
}

local spec = {  -- section 8.2 (Ant and Humanoid: the TruncatedObs rows)
  InvertedPendulum = {6.1, 3.4, 6.1}, Hopper = {18.9, 19.4, 22.4},
  Walker2d = {2.7, 6.6, 21.2}, HalfCheetah = {-278, 77, 1000},
  Ant = {-55, 95, 163}, Humanoid = {116, 31, 23.8},
}

local n = tonumber(arg[1]) or 1000
local seed = tonumber(arg[2]) or 1
local tasks = {}
for i = 3, #arg do tasks[#tasks + 1] = arg[i] end
if #tasks == 0 then tasks = E.tasks() end

local function stats(xs)
  local s, s2 = 0, 0
  for _, x in ipairs(xs) do s = s + x; s2 = s2 + x * x end
  local m = s / #xs
  return m, math.sqrt(math.max(0, (s2 - s * m) / (#xs - 1)))
end

local bad = 0
print(string.format("%-17s %22s %15s %7s %16s %7s %7s", "task", "return ours (sd)", "spec (sd)",
  "z", "length ours|spec", "z", "secs"))
for _, name in ipairs(tasks) do
  local env = E.make(name, {seed = seed})
  local g = G.new(seed, 1)
  local u = {}
  local policy = function()
    for i = 1, env.act_dim do u[i] = g:uniform(-1, 1) end
    return u
  end
  local t0 = os.clock()
  local returns, lengths = E.evaluate(env, policy, n)
  local m, sd = stats(returns)
  local ml, sdl = stats(lengths)
  local w = spec[env.name]
  local z = (m - w[1]) / math.sqrt(sd * sd / n + w[2] * w[2] / 1000)
  local zl = sdl > 0 and (ml - w[3]) / math.sqrt(sdl * sdl / n + sdl * sdl / 1000) or (ml - w[3])
  local ok = math.abs(z) <= 3 and math.abs(zl) <= 3
  if not ok then bad = bad + 1 end
  print(string.format("%-17s %12.2f (%7.2f) %7.1f (%5.1f) %+7.2f %7.1f | %6.1f %+7.2f %7.1f %s",
    name, m, sd, w[1], w[2], z, ml, w[3], zl, os.clock() - t0, ok and "ok" or "OUTSIDE 3 SE"))
  io.flush()
end
print(string.format("\n%-17s %22s %8s %7s %16s %7s", "zero action", "return ours (sd)", "spec",
  "z", "length ours|spec", "z"))
for _, name in ipairs(tasks) do
  local env = E.make(name, {seed = seed})
  local u = {}
  for i = 1, env.act_dim do u[i] = 0 end
  local returns, lengths = E.evaluate(env, function() return u end, 100)
  local m, sd = stats(returns)
  local ml, sdl = stats(lengths)
  local w = zero[env.name]
  -- the spec's zero-action means are 100-episode estimates too; its sd is taken equal to ours
  local z = sd > 0 and (m - w[1]) / (sd * math.sqrt(2 / 100)) or 0
  local zl = sdl > 0 and (ml - w[2]) / (sdl * math.sqrt(2 / 100)) or (ml - w[2])
  local ok = math.abs(z) <= 3 and math.abs(zl) <= 3
  if not ok then bad = bad + 1 end
  print(string.format("%-17s %12.2f (%7.2f) %8.1f %+7.2f %7.1f | %6.1f %+7.2f %s", name, m, sd,
    w[1], z, ml, w[2], zl, ok and "ok" or "OUTSIDE 3 SE"))
  io.flush()
end
return bad == 0 and 0 or 1
