-- Train MBPO on your own robot: the two-link arm of examples/custom_mjcf/arm2d.xml with the
-- Lua task table of examples/custom_mjcf/task.lua (observation, reward, termination and
-- reset in Lua; no C). The config names the two files, so the run directory's config.lua
-- and --resume work as for the built-in tasks.
--   mbpo run examples/custom_mjcf_train.lua [seed=N] [key=value ...]
local dir = (MBPO_ROOT or ".") .. "/examples/custom_mjcf"

return {
  env = {mjcf = dir .. "/arm2d.xml", task = dir .. "/task.lua"},
  epochs = 10,
  epoch_length = 200,
  init_exploration_steps = 500,
  max_path_length = 100,
  model = {train_freq = 200},
  rollout = {batch = 20000, schedule = {1, 10, 1, 3}},
  sac = {updates_per_step = 10, target_entropy = -2.0},
  eval = {episodes = 3},
}
