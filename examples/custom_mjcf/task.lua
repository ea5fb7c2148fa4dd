-- The reaching task of the two-link arm in arm2d.xml, as the Lua task table that
-- mbpo.env.from_mjcf(path, task) takes. Every function receives a read-only view of the
-- simulation (valid only during the call): view:qpos(i), view:qvel(i), view:ctrl(i) give
-- numbers (1-based), view:xpos(body) gives x, y, z of a body frame (by name or 1-based
-- index, 1 = world), view:xipos(body) its centre of mass, view:cfrc_ext(body) its 6
-- contact-force numbers; without an index they return mbpo.Tensor copies. Positions are
-- read as Gym reads them: straight after the last mj_step, without another forward pass.
local T = require "mbpo.tensor"

local target = {0.10, 0.12}   -- where the fingertip should go (metres, in the plane)

local task = {
  frame_skip = 2,     -- two 0.01 s physics steps per env step: dt = 0.02 s
  max_steps = 100,    -- truncation (not termination) after 100 env steps
}

local function tip_error(view)
  local x, y = view:xpos("fingertip")
  return x - target[1], y - target[2]
end

-- obs [8]: both joint angles as cos/sin, joint velocities, fingertip minus target
function task.observation(view)
  local q1, q2 = view:qpos(1), view:qpos(2)
  local dx, dy = tip_error(view)
  return {math.cos(q1), math.sin(q1), math.cos(q2), math.sin(q2),
          view:qvel(1), view:qvel(2), dx, dy}
end

-- reward: minus the distance to the target, minus a small control cost. `action` is the
-- ctrl actually written (a table); `before` is a view of the state at the start of the step
function task.reward(view, action, before)
  local dx, dy = tip_error(view)
  local ctrl = 0
  for i = 1, #action do ctrl = ctrl + action[i] * action[i] end
  return -math.sqrt(dx * dx + dy * dy) - 0.01 * ctrl
end

-- this task never ends early (episodes are cut at max_steps)
function task.terminated(view)
  return false
end

-- reset: random joint angles around zero, at rest. Draws come from the env's own generator
-- (so they are reproducible and checkpointed); noise_scale = 0 gives the exact start pose
function task.reset(view, rng, noise_scale)
  local qpos = {view:qpos(1) + noise_scale * rng:uniform(-0.5, 0.5),
                view:qpos(2) + noise_scale * rng:uniform(-0.5, 0.5)}
  return qpos, {0, 0}
end

-- termination function for model rollouts (next_obs is an [N x 8] tensor): never done
function task.termination(next_obs)
  return T.zeros(next_obs:size(1))
end

return task
