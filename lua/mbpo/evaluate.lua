-- mbpo.evaluate: deterministic evaluation episodes of an agent (tanh of the policy mean),
-- through mbpo.env.evaluate.
local Env = require "mbpo.env"

local M = {}

-- M.run(env, agent, episodes, max_steps) -> returns, lengths (Lua arrays)
function M.run(env, agent, episodes, max_steps)
  local opts = {deterministic = true}
  return Env.evaluate(env, function(obs) return agent:act(obs, opts) end, episodes,
    {max_steps = max_steps})
end

return M
