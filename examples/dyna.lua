-- A Dyna-style loop (rollouts of length 1) written from the primitives, to show how the
-- pieces fit without mbpo.train: real env -> buffer -> ensemble fit -> one-step model
-- rollouts -> SAC on mixed batches -> evaluation.
--   mbpo examples/dyna.lua [TASK] [EPOCHS]
local T = require "mbpo.tensor"
local G = require "mbpo.rng"
local Env = require "mbpo.env"
local SAC = require "mbpo.sac"
local Ensemble = require "mbpo.ensemble"
local Buffer = require "mbpo.buffer"

local task, epochs = arg[1] or "InvertedPendulum", tonumber(arg[2]) or 8
local steps_per_epoch, updates_per_step, rollout_batch = 250, 10, 20000

local env, eval_env = Env.make(task), Env.make(task)
local O, A = env.obs_dim, env.act_dim
local rng = G.new(1)
local agent = SAC.new{obs = O, act = A, target_entropy = -0.05, seed = 1}
local model = Ensemble.new{inputs = O + A, outputs = O + 1, seed = 2}
local real = Buffer.new{obs = O, act = A, capacity = 100000}
local fake = Buffer.new{obs = O, act = A, capacity = rollout_batch * 4}
local done_fn = Env.termination(task)

-- one real step with action a; returns the observation to continue from
local obs = env:reset{seed = 1}
local function real_step(a)
  local next_obs, r, terminated, truncated = env:step(a)
  real:add(obs, a, r, next_obs, terminated and 1 or 0)
  if terminated or truncated then return env:reset() end
  return next_obs
end

for _ = 1, 500 do obs = real_step(T.rand(A, rng):mul_(2):sub_(1)) end

local batch
for epoch = 1, epochs do
  for t = 0, steps_per_epoch - 1 do
    if t % 250 == 0 then
      -- fit the model on everything seen: inputs [obs, act], targets [reward, delta obs]
      local d = real:rows()
      local n = d.obs:size(1)
      model:fit(T.cat({d.obs, d.act}, 2), T.cat({d.reward:view(n, 1), d.next_obs - d.obs}, 2))
      -- one-step rollouts from real start states
      local s = real:sample_obs(rollout_batch, rng)
      local a = agent:act(s, {}, rng)
      local s2, r = model:step(s, a, rng)
      fake:add_batch(s, a, r, s2, done_fn(s2))
    end
    obs = real_step(agent:act(obs, {}, rng))
    for _ = 1, updates_per_step do
      batch = Buffer.sample_mixed(real, fake, 256, 0.05, rng, batch)
      agent:update(batch)
    end
  end
  -- evaluate the deterministic policy on one episode
  local o, total = eval_env:reset(), 0
  for _ = 1, 1000 do
    local o2, r, term, trunc = eval_env:step(agent:act(o, {deterministic = true}))
    total = total + r
    if term or trunc then break end
    o = o2
  end
  print(string.format("epoch %d  real steps %d  eval return %.1f", epoch, real:size(), total))
end
return true -- ran its own loop (also under `mbpo run`)
