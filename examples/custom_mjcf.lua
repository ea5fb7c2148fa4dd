-- Example: bring your own robot. Loads examples/custom_mjcf/arm2d.xml with the Lua task
-- table of examples/custom_mjcf/task.lua (observation, reward, termination and reset written
-- in Lua, no C), then runs episodes of a uniform-random policy through mbpo.evaluate
-- and prints their returns.
--   mbpo examples/custom_mjcf.lua [episodes]
-- To train MBPO on it: mbpo run examples/custom_mjcf_train.lua
local E = require "mbpo.env"
local G = require "mbpo.rng"
local evaluate = require "mbpo.evaluate"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local dir = here .. "/custom_mjcf"
local episodes = tonumber(arg and arg[1]) or 10

local task = dofile(dir .. "/task.lua")
local env = assert(E.from_mjcf(dir .. "/arm2d.xml", task, {seed = 1}))
print(tostring(env) .. string.format(", max_steps %d", env.max_steps))

-- the random policy: u uniform in [-1, 1]^act_dim from its own generator
local g = G.new(7)
local function random_policy(obs)
  local u = {}
  for i = 1, env.act_dim do u[i] = g:uniform(-1, 1) end
  return u
end

local returns, lengths = evaluate.episodes(env, random_policy, episodes, {seed = 1})
local sum = 0
for i = 1, #returns do
  print(string.format("episode %2d: return %9.3f over %d steps", i, returns[i], lengths[i]))
  sum = sum + returns[i]
end
print(string.format("random policy: mean return %.3f over %d episodes", sum / #returns, #returns))
