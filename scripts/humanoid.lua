-- MBPO on Humanoid (MBPO's truncated 45-dim observation) with the paper's settings:
-- a wider model (400 units), model training every 1000 steps, 5 retained epochs.
--   mbpo run scripts/humanoid.lua [seed=N] [key=value ...]
return {
  env = "Humanoid",
  epochs = 300,
  epoch_length = 1000,
  init_exploration_steps = 5000,
  model = {train_freq = 1000, hidden = {400, 400, 400, 400}},
  rollout = {batch = 100000, schedule = {20, 300, 1, 25}, retain_epochs = 5},
  sac = {updates_per_step = 20, target_entropy = -2, real_ratio = 0.05},
}
