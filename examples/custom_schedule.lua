-- A custom rollout-length schedule: any Lua function of the epoch returning k.
-- Here a step schedule on Hopper: short rollouts while the model is young, then longer.
--   mbpo run examples/custom_schedule.lua [seed=N] [key=value ...]
local hopper = dofile((MBPO_ROOT or ".") .. "/scripts/hopper.lua")

hopper.rollout.schedule = function(epoch)
  if epoch < 10 then return 1 end
  if epoch < 40 then return 3 end
  return 8
end

return hopper
