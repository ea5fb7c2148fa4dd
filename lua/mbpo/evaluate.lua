-- mbpo.evaluate: evaluation episodes of a policy on an env, and the deterministic evaluation
-- of an agent (tanh of the policy mean) that training and `mbpo eval` report.
local M = {}

-- the largest episode count (also mbpo eval --episodes)
M.MAX_EPISODES = 1000000
local KEYS = {seed = true, noise_scale = true, max_steps = true}

-- M.episodes(env, policy, n [, opts]) -> returns, lengths (Lua arrays): n episodes of
-- action = policy(obs) (a tensor or a Lua array), each until terminated, truncated
-- (env.max_steps) or opts.max_steps steps. opts.seed reseeds the env's generator once, before
-- the first episode; opts.noise_scale scales the noise of every reset (default 1).
function M.episodes(env, policy, n, opts)
  local count = type(n) == "number" and math.tointeger(n)
  if not count or count < 0 or count > M.MAX_EPISODES then
    error(string.format("evaluate.episodes: n_episodes must be an integer in [0, %d], got %s",
      M.MAX_EPISODES, tostring(n)), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not KEYS[k] then
      error(string.format("evaluate.episodes: unknown option '%s' (seed, noise_scale, "
        .. "max_steps)", tostring(k)), 2)
    end
  end
  local cap = opts.max_steps or math.maxinteger
  if math.type(cap) ~= "integer" or cap < 0 then
    error("evaluate.episodes: max_steps must be an integer >= 0, got " .. tostring(cap), 2)
  end
  local returns, lengths = {}, {}
  for ep = 1, count do
    local obs = env:reset{noise_scale = opts.noise_scale, seed = ep == 1 and opts.seed or nil}
    local ret, len, r, term, trunc = 0.0, 0
    repeat
      obs, r, term, trunc = env:step(policy(obs))
      ret, len = ret + r, len + 1
    until term or trunc or len >= cap
    returns[ep], lengths[ep] = ret, len
  end
  return returns, lengths
end

-- M.run(env, agent, episodes, max_steps) -> returns, lengths (Lua arrays)
function M.run(env, agent, episodes, max_steps)
  local opts = {deterministic = true}
  return M.episodes(env, function(obs) return agent:act(obs, opts) end, episodes,
    {max_steps = max_steps})
end

return M
