-- A rollout length that adapts to the measured model error (the idea of the paper's
-- section 4.3: trust the model for as many steps as its error allows). The schedule gets
-- the epoch and a table of measurements from the last model training: the elites' mean
-- holdout MSE (holdout_mse) and the training loss (loss). With a per-step error eps, the
-- error of a k-step rollout grows roughly like k * eps; we keep k * eps under a budget.
--   mbpo run examples/adaptive_schedule.lua [seed=N] [key=value ...]
-- The function is written into the run's config.lua (from this file's source), so it uses
-- no upvalues: its constants live inside its body.
local hopper = dofile((MBPO_ROOT or ".") .. "/scripts/hopper.lua")

hopper.rollout.schedule = function(epoch, info)
  local budget, kmax = 0.05, 15 -- error budget of a rollout, longest rollout
  local eps = info and info.holdout_mse
  if not eps or eps ~= eps or eps <= 0 then return 1 end
  return math.max(1, math.min(kmax, math.floor(budget / eps)))
end

return hopper
