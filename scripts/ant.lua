-- MBPO on Ant (MBPO's truncated 27-dim observation) with the paper's settings.
--   mbpo run scripts/ant.lua [seed=N] [key=value ...]
return {
  env = "Ant",
  epochs = 300,
  epoch_length = 1000,
  init_exploration_steps = 5000,
  model = {train_freq = 250},
  rollout = {batch = 100000, schedule = {20, 100, 1, 25}, retain_epochs = 1},
  sac = {updates_per_step = 20, target_entropy = -4, real_ratio = 0.05},
}
