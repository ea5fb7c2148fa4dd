-- MBPO on Hopper with the paper's settings (Janner et al. 2019, Appendix C; reference config).
--   mbpo run scripts/hopper.lua [seed=N] [epochs=N] [key=value ...]
return {
  env = "Hopper",
  epochs = 125,
  epoch_length = 1000,
  init_exploration_steps = 5000,
  model = {train_freq = 250},
  rollout = {
    batch = 100000,
    schedule = {20, 150, 1, 15},  -- k grows linearly from 1 at epoch 20 to 15 at epoch 150
    retain_epochs = 1,
  },
  sac = {updates_per_step = 20, target_entropy = -1, real_ratio = 0.05},
}
