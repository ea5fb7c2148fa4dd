-- mbpo bench env: env steps per second of each task through the Lua API (env:step with a
-- Lua-table action, a new obs tensor per step) against a raw MuJoCo loop in C on the same
-- model in the same run (mbpo.bench.native env_raw: ctrl written, frame_skip mj_step calls,
-- mj_rnePostConstraint where the task needs it). Both loops replay the same deterministic
-- episode (no reset noise, u_t[i] = 0.5 sin(0.1 t + i)) and restart it at the same step, so
-- MuJoCo does identical work; the difference is our env layer (action checks and mapping,
-- reward/termination/obs, the Lua call, the obs tensor, resets). Times are process CPU
-- seconds (os.clock, and the same clock in C), the best of several interleaved rounds: on a
-- shared machine wall time mostly measures the neighbours.
local E = require "mbpo.env"
local T = require "mbpo.tensor"
local native = require "mbpo.bench.native"

local M = {description = "env steps/s per task: Lua API vs raw MuJoCo loop in C (same model)"}

-- the sine episode of a task: its length L and the L actions as Lua tables
local function episode(env)
  local acts, t = {}, 0
  env:reset{noise_scale = 0}
  repeat
    local a = {}
    for i = 1, env.act_dim do a[i] = 0.5 * math.sin(0.1 * t + (i - 1)) end
    t = t + 1
    acts[t] = a
    local _, _, term, trunc = env:step(a)
  until term or trunc
  return t, acts
end

-- seconds for nsteps env steps through the Lua API, restarting every L steps
local function lua_loop(env, acts, L, nsteps, out)
  local opts = {noise_scale = 0}
  local t0 = os.clock()
  local t = L
  for _ = 1, nsteps do
    if t == L then env:reset(opts); t = 0 end
    t = t + 1
    env:step(acts[t], out)
  end
  return os.clock() - t0
end

function M.run(opts)
  opts = opts or {}
  local target = opts.seconds or 0.25    -- CPU time per timed round
  local rounds = opts.rounds or 7
  io.write(string.format("%-17s %5s %12s %12s %12s %9s %9s\n", "task", "ep", "raw steps/s",
    "lua steps/s", "lua+out", "overhead", "(+out)"))
  for _, name in ipairs(E.tasks()) do
    local env = E.make(name)
    local L, acts = episode(env)
    -- size the rounds from a short raw run
    local probe = math.max(L, 200)
    local s = native.env_raw(name, probe, L)
    local nsteps = math.max(L, math.floor(target / math.max(s, 1e-9) * probe))
    local out = T.zeros(env.obs_dim)
    local raw, lua, luaout = {}, {}, {}
    lua_loop(env, acts, L, math.min(nsteps, 2000))  -- warm-up
    for r = 1, rounds do  -- interleaved so machine noise hits all three alike
      raw[r] = native.env_raw(name, nsteps, L)
      lua[r] = lua_loop(env, acts, L, nsteps)
      luaout[r] = lua_loop(env, acts, L, nsteps, out)
    end
    local tr, tl, to = math.min(table.unpack(raw)), math.min(table.unpack(lua)),
                       math.min(table.unpack(luaout))
    io.write(string.format("%-17s %5d %12.0f %12.0f %12.0f %8.1f%% %8.1f%%\n", name, L,
      nsteps / tr, nsteps / tl, nsteps / to, 100 * (tl / tr - 1), 100 * (to / tr - 1)))
    io.flush()
    env:close()
  end
end

return M
