-- MBPO on Walker2d with the paper's settings.
--   mbpo run scripts/walker2d.lua [seed=N] [key=value ...]
return {
  env = "Walker2d",
  epochs = 300,
  epoch_length = 1000,
  init_exploration_steps = 5000,
  model = {train_freq = 250},
  rollout = {batch = 100000, schedule = {20, 150, 1, 1}, retain_epochs = 1},
  sac = {updates_per_step = 20, target_entropy = -3, real_ratio = 0.05},
}
