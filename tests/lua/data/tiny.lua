-- A tiny MBPO config for the end-to-end tests: seconds per epoch, every phase exercised
-- (exploration, model training with early stopping, rollouts k >= 1, mixed batches, eval,
-- checkpoints).
return {
  env = "InvertedPendulum",
  epochs = 4,
  epoch_length = 60,
  init_exploration_steps = 100,
  max_path_length = 100,
  model = {train_freq = 30, hidden = {16, 16}, weight_decay = {2.5e-5, 5e-5, 1e-4},
    members = 3, elites = 2, max_epochs = 4},
  rollout = {batch = 200, schedule = {1, 3, 1, 2}},
  sac = {hidden = {16, 16}, updates_per_step = 2, batch = 32, target_entropy = -0.05},
  eval = {episodes = 2},
  log = {plot = false},
}
