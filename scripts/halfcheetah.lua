-- MBPO on HalfCheetah with the paper's settings.
--   mbpo run scripts/halfcheetah.lua [seed=N] [key=value ...]
return {
  env = "HalfCheetah",
  epochs = 400,
  epoch_length = 1000,
  init_exploration_steps = 5000,
  model = {train_freq = 250},
  rollout = {batch = 100000, schedule = {20, 150, 1, 1}, retain_epochs = 1},
  sac = {updates_per_step = 40, target_entropy = -3, real_ratio = 0.05},
}
