-- mbpo.env: the six MuJoCo tasks MBPO is measured on, and custom MJCF models whose task rules
-- are written in Lua. The envs, E.make, E.termination and E.tasks are the C module's
-- (mbpo.env.native, src/lua/l_env.c); this file adds E.from_mjcf and its task runner.
--   local E = require "mbpo.env"
--   local env = E.make("Hopper" [, {seed =, max_steps =}])   -- also "Hopper-v2", "hopper"
--   local obs = env:reset{seed =, noise_scale =}               -- mbpo.Tensor [obs_dim]
--   local obs, r, terminated, truncated = env:step(action [, obs_out])
--   env.obs_dim  env.act_dim  env.dt  env.timestep  env.frame_skip  env.max_steps  env.name
--   env.steps  env.nq  env.nv  env.nbody  env.custom       env:seed(s)  env:ctrl_range()
--   env:get_state() -> qpos, qvel, steps     env:set_state(qpos, qvel) -> obs
--   env:state() -> table (exact, for checkpoints)   env:load_state(t)   env:close()
--   env:termination(next_obs [, opts]) -> done     env:termination_fn([opts]) -> f
--   E.termination(name [, {two_sided = true}]) -> f, f(next_obs [N x obs_dim]) -> [N] 0/1
--   E.tasks() -> names    E.fields, E.task_fields: the options of E.make and of a task table
-- Actions are the policy's u in [-1, 1] (an mbpo.Tensor or a Lua array); the env maps them
-- to each actuator's ctrlrange.
--
-- E.from_mjcf(path, task [, {seed =}]) -> env, or nil + message when the model does not load.
-- The env is an mbpo.Env like the others: its physics runs in C, and its reset, step,
-- set_state and termination call its task runner below (with the env marked busy, so a task
-- callback cannot close it). task: a table of functions
--   observation(view) -> obs (mbpo.Tensor or table of numbers; its length fixes obs_dim)
--   reward(view, action, before) -> number; action = the ctrl values written (a table),
--     before = a view of the state at the start of the step
--   terminated(view) -> boolean
--   reset(view, rng, noise_scale) -> qpos, qvel (optional; either may be nil: qpos0/0 plus
--     uniform noise of half-width task.reset_noise, default 0.005, times noise_scale)
--   termination(next_obs) -> done (optional; the model-rollout termination function)
-- and optional settings frame_skip (1), max_steps (1000), reset_noise (0.005), seed (0).
-- A view has qpos([i]), qvel([i]), ctrl([i]), xpos([body [, k]]), xipos(..), cfrc_ext(..),
-- body_mass(..), com(), time() and the fields nq, nv, nu, nbody (indices 1-based; bodies by
-- name or index, 1 = world); it is only valid during the callback it is passed to.
local N = require "mbpo.env.native"
local G = require "mbpo.rng"
local T = require "mbpo.tensor"

local M = {make = N.make, termination = N.termination, tasks = N.tasks, fields = N.fields,
           task_fields = N.task_fields, _VERSION = N._VERSION}

-- Errors read as the C method's own would: the position of the code that called the method,
-- then the message. Level 1 here is fail's caller (error's 2); the runner's messages get
-- no position (0): l_env.c's forward adds the position of the env method's caller.
local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level > 0 and level + 1 or 0)
end

-- N.f(...) with its error message without a position (forward adds one)
local function native(f, ...)
  local ok, r = pcall(f, ...)
  if not ok then error(r, 0) end
  return r
end

-- Views ------------------------------------------------------------------------------------

local View, methods = {}, {}
-- the arrays: a vector (the env's field of its length) or per body (the values per body)
local ARRAYS = {qpos = "nq", qvel = "nv", ctrl = "act_dim", xpos = 3, xipos = 3, cfrc_ext = 6,
                body_mass = 1}
-- the fields of a view: the env's fields of those names
local COUNTS = {nq = "nq", nv = "nv", nu = "act_dim", nbody = "nbody"}

local function newview(env, before)
  return setmetatable({_env = env, _before = before, _valid = false}, View)
end

-- the env of a view that is valid now (the method's name for a wrong self)
local function live(v, name)
  if getmetatable(v) ~= View then
    fail(3, "bad argument #1 to '%s' (mbpo.EnvView expected, got %s)", name, type(v))
  end
  if not v._valid then
    fail(3, "mbpo.EnvView: a view is only valid inside the task callback it was passed to")
  end
  return v._env
end

-- x as an integer in [1, n]; what (and note) name it in the messages
local function index(x, n, what, note)
  local i = math.tointeger(x)
  if not i then fail(3, "%s must be an integer, got %s", what, tostring(x)) end
  if i < 1 or i > n then fail(3, "%s %d out of range [1, %d]%s", what, i, n, note or "") end
  return i
end

-- v:NAME() -> tensor [n] / [nbody x w]; v:NAME(i) -> number; v:NAME(body) -> w numbers;
-- v:NAME(body, k) -> number
for name, w in pairs(ARRAYS) do
  methods[name] = function(v, i, k)
    local env, before = live(v, name), v._before
    if type(w) == "string" then
      if i == nil then return T.tensor(N.sim(env, before, name):totable()) end
      return N.sim(env, before, name, index(i, env[w], "view:" .. name .. ": index"))
    end
    local nbody = env.nbody
    if i == nil then return T.tensor(N.sim(env, before, name):totable()):view(nbody, w) end
    local b = type(i) == "string" and (N.body(env, i) or fail(2, "view: no body named '%s'", i))
    b = b or index(i, nbody, "view: body index", " (1 is the world)")
    if k == nil then return N.sim(env, before, name, (b - 1) * w + 1, w) end
    return N.sim(env, before, name, (b - 1) * w + index(k, w, "view: component"))
  end
end

-- v:com() -> x, y, z of the whole-body centre of mass (from xipos and the body masses)
function methods.com(v)
  local x, m = N.sim(live(v, "com"), v._before, "xipos"), N.sim(v._env, v._before, "body_mass")
  local c, mass = {0.0, 0.0, 0.0}, 0.0
  for b = 1, #m do
    for k = 1, 3 do c[k] = c[k] + m[b] * x[3 * (b - 1) + k] end
    mass = mass + m[b]
  end
  if mass > 0 then return c[1] / mass, c[2] / mass, c[3] / mass end
  return 0.0, 0.0, 0.0
end

function methods.time(v) return N.sim(live(v, "time"), v._before, "time") end

-- methods first, then the fields nq, nv, nu, nbody
function View.__index(v, k)
  if methods[k] then return methods[k] end
  local env = live(v)
  return COUNTS[k] and env[COUNTS[k]]
end

function View.__tostring(v)
  return string.format("mbpo.EnvView (%s%s)", v._before and "before the step" or "current",
                       v._valid and "" or ", expired")
end

-- The task runner of a custom env ----------------------------------------------------------

local Runner = {}
Runner.__index = Runner

-- the end of Runner:call: the views expire, an error is rewritten
local function finish(R, name, ok, ...)
  R.view._valid, R.before._valid = false, false
  if not ok then
    local e = ...
    local msg = (type(e) == "string" or type(e) == "number") and tostring(e)
    fail(0, "task.%s: %s", name, msg or "(error object is not a string)")
  end
  return ...
end

-- task[name](...) with the views valid; an error becomes "task.NAME: message"
function Runner:call(name, ...)
  self.view._valid, self.before._valid = true, true
  return finish(self, name, pcall(self.task[name], ...))
end

-- obs = task.observation(view) as a new tensor [obs_dim] (the first one fixes obs_dim)
function Runner:observe(env)
  return native(N.observation, env, (self:call("observation", self.view)))
end

-- env:reset: the task's reset rule sees qpos0 and draws from the env's generator
function Runner:reset(env, noise_scale)
  local qpos, qvel, g
  if self.task.reset ~= nil then
    g = G.new(0):set_state(env:state().rng)   -- a copy of the env's generator
    qpos, qvel = self:call("reset", self.view, g, noise_scale)
  end
  native(N.reset_to, env, qpos, qvel, noise_scale, g)
  return self:observe(env)
end

-- env:step, once the physics stepped: the task's rules on views of the result (l_env.c then
-- ends the step with the verdict)
function Runner:step(env, _, obs_out)
  local obs = self:observe(env)
  local r = self:call("reward", self.view, N.sim(env, false, "ctrl"):totable(), self.before)
  local reward = tonumber(r)
  if not reward then fail(0, "task.reward must return a number, got %s", type(r)) end
  local term = self:call("terminated", self.view)
  if term ~= nil and type(term) ~= "boolean" then
    fail(0, "task.terminated must return a boolean, got %s", type(term))
  end
  if obs_out then obs = obs_out:copy_(obs) end
  return obs, reward * 1.0, term == true
end

-- env:termination and env:termination_fn (forward passes their errors on as they are: those
-- of task.termination, or this one, placed at the caller of the env's method)
function Runner:termination(env, next_obs)
  if self.task.termination == nil then
    fail(3, "env:termination: custom task '%s' has no task.termination function", env.name)
  end
  return (self.task.termination(next_obs))
end

function Runner:termination_fn(env)
  if self.task.termination == nil then
    return nil, string.format("custom task '%s' has no task.termination function", env.name)
  end
  return self.task.termination
end

-- E.from_mjcf ------------------------------------------------------------------------------

local FUNCTIONS = {"observation", "reward", "terminated", "reset", "termination"}

function M.from_mjcf(path, task, opts)
  if type(path) ~= "string" and type(path) ~= "number" then
    fail(2, "bad argument #1 to 'from_mjcf' (string expected, got %s)", type(path))
  end
  if type(task) ~= "table" then
    fail(2, "from_mjcf: task must be a table of functions (observation, reward, terminated), " ..
         "got %s", type(task))
  end
  -- checked completely before the model is loaded (the first three are required)
  for i, name in ipairs(FUNCTIONS) do
    local f = task[name]
    if type(f) ~= "function" and (i <= 3 or f ~= nil) then
      fail(2, "from_mjcf: task.%s must be a function%s, got %s", name, i <= 3 and "" or " or nil",
           type(f))
    end
  end
  local ok, env, msg = pcall(N.load, path, task, opts, function(e)
    return setmetatable({task = task, view = newview(e, false), before = newview(e, true)}, Runner)
  end)
  if not ok then error(env, 2) end
  return env, msg
end

return M
