-- mbpo.evaluate: deterministic evaluation episodes of a policy (tanh of the mean).
local M = {}

-- M.run(env, agent, episodes, max_steps) -> returns, lengths (Lua arrays)
function M.run(env, agent, episodes, max_steps)
  local returns, lengths = {}, {}
  for e = 1, episodes do
    local obs = env:reset()
    local total, n = 0.0, 0
    while true do
      local a = agent:act(obs, {deterministic = true})
      local next_obs, r, terminated, truncated = env:step(a)
      total = total + r
      n = n + 1
      if terminated or truncated or n >= max_steps then break end
      obs = next_obs
    end
    returns[e], lengths[e] = total, n
  end
  return returns, lengths
end

return M
