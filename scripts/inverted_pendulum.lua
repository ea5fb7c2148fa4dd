-- MBPO on InvertedPendulum with the reference settings: epochs of 250 steps, 500 initial
-- exploration steps, 10 SAC updates per env step, rollouts of length 1.
-- This is the default job of `make run`: it is solved (return 1000) within a few thousand
-- env steps.
--   mbpo run scripts/inverted_pendulum.lua [seed=N] [key=value ...]
return {
  env = "InvertedPendulum",
  epochs = 20,                    -- the reference runs 80; it is solved long before
  stop_return = 1000,             -- stop once solved
  epoch_length = 250,
  init_exploration_steps = 500,
  model = {train_freq = 250},
  rollout = {batch = 100000, schedule = {1, 15, 1, 1}, retain_epochs = 1},
  sac = {updates_per_step = 10, target_entropy = -0.05, real_ratio = 0.05},
}
