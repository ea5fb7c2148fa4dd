-- resolved config of `mbpo run scripts/hopper.lua seed=3 precision=bf16 epochs=45 --out runs/hopper_bf16/seed3`
-- run again with: mbpo run runs/hopper_bf16/seed3/config.lua
-- resumed with epochs=45
-- resumed with epochs=45
-- resumed with epochs=45
-- resumed with epochs=45
return {
  env = "Hopper",
  epoch_length = 1000,
  epochs = 45,
  eval = {
    episodes = 5,
    every = 1,
  },
  init_exploration_steps = 5000,
  log = {
    plot = true,
    quiet = false,
  },
  loop = "mbpo.train",
  max_path_length = 1000,
  model = {
    activation = "swish",
    batch = 256,
    bootstrap = "replace",
    bounds = "learned",
    elites = 5,
    hidden = {200, 200, 200, 200},
    holdout_cap = 5000,
    holdout_ratio = 0.20000000000000001,
    lr = 0.001,
    max_epochs = 0,
    max_seconds = 0,
    members = 7,
    patience = 5,
    snapshot = "member",
    train_freq = 250,
    weight_decay = {2.5000000000000001e-05, 5.0000000000000002e-05, 7.4999999999999993e-05, 7.4999999999999993e-05, 0.0001},
  },
  precision = "bf16",
  rollout = {
    batch = 100000,
    fn = "mbpo.rollout",
    keep_terminated = false,
    prediction = "sample",
    retain_epochs = 1,
    schedule = {20, 150, 1, 15},
    two_sided = false,
  },
  sac = {
    auto_alpha = true,
    batch = 256,
    gamma = 0.98999999999999999,
    hidden = {256, 256},
    init_alpha = 1,
    lr = 0.00029999999999999997,
    real_ratio = 0.050000000000000003,
    target_entropy = -1,
    tau = 0.0050000000000000001,
    train_action = "sample",
    updates_per_step = 20,
  },
  seed = 3,
  stop_return = math.huge,
  threads = 0,
  video = {
    camera = "",
    episodes = 1,
    every = 0,
    height = 480,
    width = 480,
  },
}
