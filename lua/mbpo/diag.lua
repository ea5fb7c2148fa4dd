-- mbpo.diag: `mbpo diag RUN_DIR`: do a run's critics estimate what they should? From the
-- run's last complete checkpoint:
--   - min(Q1, Q2) on the real buffer's (s, a) beside the discounted return those rows got
--     (Monte Carlo with the agent's gamma; an episode ends at a terminal row or where a row's
--     next observation is not the next row's observation: the step limit). The return is that
--     of the policies that collected the rows and leaves out the entropy bonus, so Q/return
--     near 1-2 is normal; tens means the critics have diverged from the data;
--   - the critic target y = r + gamma (1 - done) (min Q_target(s', a') - alpha log pi(a'|s')),
--     a' drawn from the policy, and its parts, on the newest real rows and the newest model rows
--     (a model whose rewards or terminals differ from the real ones shows here);
--   - how far the model's next states lie from the real ones: each row's largest
--     per-dimension |z| under the real next states' mean and standard deviation;
--   - the model (the mean of its elites' means) on the newest real rows: R^2 of each target
--     (reward, then next_obs - obs): a target near 0 or below is not learned, the signature of
--     a wrong target layout or standardiser. Most of these rows were trained on, so the
--     figures are optimistic; they are for finding what was not learned at all.
-- The networks run in fp32 through mbpo.nn from the checkpoint's weights (a bf16 agent's
-- products were bf16: values differ in the third digit). tools/qdiag.py is an independent
-- NumPy version of the same computation.
local T = require "mbpo.tensor"
local NN = require "mbpo.nn"
local Rng = require "mbpo.rng"

local M = {}

local CHUNK = 8192         -- rows per network call
M.real_rows, M.model_rows = 5000, 100000   -- the newest rows the target is computed on

-- the rows of a buffer's checkpoint part in the order they were added (a full ring buffer's
-- oldest row is at `next`)
function M.chronological(part)
  local n, cap, nxt = part.size, part.capacity, part.next
  if n == 0 then return nil end
  if n < cap or nxt == 0 then return part.data:narrow(1, 1, n) end
  local idx = {}
  for i = 1, n do idx[i] = (nxt + i - 1) % cap + 1 end
  return part.data:index_select(1, T.tensor(idx))
end

-- episode ends of chronological rows (obs, act, reward, next_obs, done columns; O, A wide):
-- ends[i] is true where row i ends an episode (terminal, or its next observation is not row
-- i + 1's observation); the last row counts as an end only when terminal (an unfinished
-- episode's returns are not known)
function M.episode_ends(rows, O, A)
  local n = rows:size(1)
  local done = rows:select(2, 2 * O + A + 2):to_table()
  local ends = {}
  for i = 1, n do ends[i] = done[i] > 0.5 end
  if n > 1 then
    local gap = (rows:narrow(1, 1, n - 1):narrow(2, O + A + 2, O) -
      rows:narrow(1, 2, n - 1):narrow(2, 1, O)):abs():max(2):to_table()
    for i = 1, n - 1 do ends[i] = ends[i] or gap[i] > 0 end
  end
  return ends
end

-- discounted returns of each row up to its episode's end; nil for the rows after the last end
function M.discounted(reward, ends, gamma)
  local G, g, open = {}, 0, true
  for i = #reward, 1, -1 do
    if ends[i] then g, open = reward[i], false else g = reward[i] + gamma * g end
    if not open then G[i] = g end
  end
  return G
end

-- a network of the checkpoint: sizes and one parameter slab (a [P] or [1 x P] tensor)
local function net_of(sizes, params)
  local net = NN.mlp{sizes = sizes, activation = "relu"}
  net:parameters():copy_(params:reshape(params:numel()))
  return net
end

-- f(x) over rows in chunks: the concatenated outputs
local function chunked(x, f)
  local out, n = {}, x:size(1)
  for r = 1, n, CHUNK do
    out[#out + 1] = f(x:narrow(1, r, math.min(CHUNK, n - r + 1)):contiguous())
  end
  return #out == 1 and out[1] or T.cat(out, 1)
end

-- the parameters of an MLP of these layer sizes
local function params_of(sizes)
  local n = 0
  for l = 1, #sizes - 1 do n = n + sizes[l] * sizes[l + 1] + sizes[l + 1] end
  return n
end

-- the agent's networks from its checkpoint part (checked against its config): q(s, a) and
-- q_target(s, a) -> [N] of min(Q1, Q2); sample(s, rng) -> a [N x A], log pi(a|s) [N]
function M.networks(agent)
  local function need(ok, what)
    if not ok then error("the checkpoint's agent " .. what .. " (another layout?)", 0) end
  end
  local c = agent.config
  need(type(c) == "table" and math.type(c.obs) == "integer" and math.type(c.act) == "integer"
    and type(c.hidden) == "table", "has no config with obs, act and hidden")
  local O, A, H = c.obs, c.act, {}
  for i, h in ipairs(c.hidden) do H[i] = h end
  local qs, ps = {O + A}, {O}
  for _, h in ipairs(H) do qs[#qs + 1] = h; ps[#ps + 1] = h end
  qs[#qs + 1], ps[#ps + 1] = 1, 2 * A
  for _, k in ipairs({"q", "q_target"}) do
    local t = agent[k]
    need(T.is_tensor(t) and t:dim() == 2 and t:size(1) == 2 and t:size(2) == params_of(qs),
      string.format("has no %s of 2 x %d parameters", k, params_of(qs)))
  end
  need(T.is_tensor(agent.pi) and agent.pi:numel() == params_of(ps),
    string.format("has no pi of %d parameters", params_of(ps)))
  need(type(agent.log_alpha) == "number", "has no log_alpha")
  local function pair(slab)
    local q1, q2 = net_of(qs, slab:narrow(1, 1, 1)), net_of(qs, slab:narrow(1, 2, 1))
    return function(s, a)
      return chunked(T.cat({s, a}, 2), function(x)
        return q1:forward(x):minimum(q2:forward(x)):reshape(x:size(1))
      end)
    end
  end
  local pi = net_of(ps, agent.pi)
  local half_log_2pi = 0.5 * math.log(2 * math.pi)
  local function sample(s, rng)
    local out = chunked(s, function(x) return pi:forward(x) end)
    local n = s:size(1)
    local mean, ls = out:narrow(2, 1, A), out:narrow(2, A + 1, A):clamp(-20, 2)
    local e = T.zeros(n, A):normal_(0, 1, rng)
    local u = mean + ls:exp() * e
    -- log N(u; mean, std) - log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u))
    local lp = e:square() * -0.5 - ls - half_log_2pi -
      ((u:neg() * 2):softplus() + u - math.log(2)) * -2
    return u:tanh(), lp:sum(2):reshape(n)
  end
  return {q = pair(agent.q), q_target = pair(agent.q_target), sample = sample, obs = O, act = A,
    alpha = math.exp(agent.log_alpha), target_entropy = c.target_entropy, gamma = c.gamma}
end

-- mean of a Lua list between i and j (nil entries skipped); mean, count
local function mean_of(xs, i, j)
  local s, n = 0, 0
  for k = i, j do
    if xs[k] then s, n = s + xs[k], n + 1 end
  end
  return n > 0 and s / n or 0 / 0, n
end

-- the p-quantile of a Lua list (sorted in place)
local function percentile(xs, p)
  table.sort(xs)
  return xs[math.max(1, math.ceil(p * #xs))]
end

-- a verdict on the critics from Q and return means over the same rows
function M.verdict(q, ret)
  if not (ret > 1) then
    return string.format("returns near or below 0 (%.3g): the ratio says nothing; compare Q " ..
      "%.3g with the return directly", ret, q)
  end
  local r = q / ret
  if r < 0.5 then
    return string.format("Q/return %.2f: the critics underestimate (usual early in training: " ..
      "they start near 0 and take many updates to reach the returns)", r)
  elseif r <= 3 then
    return string.format("Q/return %.2f: normal (1-2 is usual: the return leaves out the " ..
      "entropy bonus and the policy has improved since the rows were collected)", r)
  elseif r <= 10 then
    return string.format("Q/return %.1f: high; watch mean_q and critic_loss in progress.csv", r)
  end
  return string.format("Q/return %.0f: the critics overestimate %.0f-fold: they have diverged " ..
    "from the data (SAC's own overestimation, or a wrong target: see the README)", r, r)
end

-- the target's parts on rows (s, a, r, s', done) with the agent's networks
local function target_line(name, rows, nets, rng)
  local O, A = nets.obs, nets.act
  local s, a = rows:narrow(2, 1, O), rows:narrow(2, O + 1, A)
  local r, s2 = rows:select(2, O + A + 1), rows:narrow(2, O + A + 2, O)
  local d = rows:select(2, 2 * O + A + 2)
  local a2, lp = nets.sample(s2, rng)
  local tq = nets.q_target(s2, a2)
  local y = r + (d:neg() + 1) * (tq - lp * nets.alpha) * nets.gamma
  return string.format("  %-26s reward %.3g  terminal %.3f  log pi(a'|s') %.3g  " ..
    "Q_target(s', a') %.4g  y %.4g (sd %.3g)  Q(s, a) %.4g", name, r:mean(), d:mean(), lp:mean(),
    tq:mean(), y:mean(), y:std(), nets.q(s, a):mean())
end

-- the critics against the returns the real rows got: lines into out; the later rows' mean Q
-- and return
local function critic_lines(out, real, nets, explore)
  local O, A, n = nets.obs, nets.act, real:size(1)
  local ends = M.episode_ends(real, O, A)
  local G = M.discounted(real:select(2, O + A + 1):to_table(), ends, nets.gamma)
  local episodes = 0
  for i = 1, n do if ends[i] then episodes = episodes + 1 end end
  local Q = nets.q(real:narrow(2, 1, O), real:narrow(2, O + 1, A)):to_table()
  out[#out + 1] = string.format("critics against the returns the real rows got (%d rows, %d " ..
    "complete episodes; min(Q1, Q2) at (s, a), discounted return without the entropy bonus):",
    n, episodes)
  local later_q, later_g
  for _, p in ipairs({{"exploration rows", 1, explore}, {"later rows", explore + 1, n}}) do
    local _, i, j = table.unpack(p)
    if j >= i then
      local g, k = mean_of(G, i, j)
      local qsum = 0
      for r = i, j do if G[r] then qsum = qsum + Q[r] end end
      local q = k > 0 and qsum / k or 0 / 0
      out[#out + 1] = string.format("  %-26s Q %10.4g   return %10.4g   (%d rows with a known " ..
        "return)", string.format("%s %d-%d", p[1], i, j), q, g, k)
      if p[1] == "later rows" then later_q, later_g = q, g end
    end
  end
  return later_q, later_g
end

-- R^2 of each column of the prediction p against y ([N x D] Lua tables): {D values}
function M.r_squared(p, y)
  local n, r2 = #y, {}
  for j = 1, #y[1] do
    local s, s2, se = 0, 0, 0
    for i = 1, n do
      local v = y[i][j]
      s, s2, se = s + v, s2 + v * v, se + (p[i][j] - v) ^ 2
    end
    local var = s2 / n - (s / n) ^ 2
    r2[j] = var > 0 and 1 - se / n / var or 0 / 0
  end
  return r2
end

-- the model on the newest real rows: lines into out (nothing when the run's config cannot
-- build its ensemble, as for a custom loop's own objects)
local function model_lines(out, dir, cfg, real, O, A)
  local ck = require "mbpo.checkpoint"
  local part = ck.load_part(dir, "model")
  if not (cfg and part) then return end
  local okb, _, ens = pcall(require("mbpo.harness").build_learners, cfg, O, A)
  if not okb or not ck.restore("model", ens, part) then return end
  local n = math.min(real:size(1), M.real_rows)
  local rows = real:narrow(1, real:size(1) - n + 1, n)
  local mean = ens:predict(rows:narrow(2, 1, O + A):contiguous())
  local elites = ens:elites()
  local p = mean:select(1, elites[1])
  for k = 2, #elites do p = p + mean:select(1, elites[k]) end
  p = (p / #elites):to_table()
  local y = T.cat({rows:narrow(2, O + A + 1, 1), rows:narrow(2, O + A + 2, O) -
    rows:narrow(2, 1, O)}, 2):to_table()
  local r2 = M.r_squared(p, y)
  out[#out + 1] = string.format("model (mean of its %d elites) on the newest %d real rows, R^2 " ..
    "of each target (0: reward, then next_obs - obs by observation index; mostly rows it " ..
    "trained on):", #elites, n)
  local cells, low = {}, nil
  for j, v in ipairs(r2) do
    -- a target that never changed (InvertedPendulum's reward) has no R^2
    cells[#cells + 1] = v == v and string.format("%d:%.2f", j - 1, v) or
      string.format("%d:constant", j - 1)
    if v == v and (not low or v < r2[low]) then low = j end
    if #cells == 12 or j == #r2 then
      out[#out + 1] = "  " .. table.concat(cells, " ")
      cells = {}
    end
  end
  if low and r2[low] < 0.5 then
    out[#out + 1] = string.format("  target %d has R^2 %.2f: not learned (a wrong target " ..
      "layout or standardiser, or a dimension the model cannot see the cause of)", low - 1,
      r2[low])
  end
end

-- the report of a run directory: lines, or nil and a message
function M.report(dir)
  local ck = require "mbpo.checkpoint"
  local agent, err = ck.load_part(dir, "agent")
  if not agent then return nil, err end
  local real_part, rerr = ck.load_part(dir, "real_buffer")
  if not real_part then return nil, rerr end
  local loop = ck.load_part(dir, "loop")
  local model_part = ck.load_part(dir, "model_buffer")
  local st = loop and loop.counters or {}
  local okc, cfg = require("mbpo.config").load_sandboxed(dir .. "/config.lua")
  cfg = okc and type(cfg) == "table" and require("mbpo.run").resolve(cfg, {}, {}) or nil
  local nets = M.networks(agent)
  local O, A = nets.obs, nets.act
  local real = M.chronological(real_part)
  if not real then return nil, "the real buffer of " .. dir .. " is empty" end
  local n, rng = real:size(1), Rng.new(0)
  local out = {string.format("mbpo diag %s: checkpoint after epoch %s (env step %s); alpha " ..
    "%.4g, target entropy %.4g, gamma %.4g%s", dir, tostring(st.epoch or "?"),
    tostring(st.env_steps or "?"), nets.alpha, nets.target_entropy, nets.gamma,
    agent.config.precision == "bf16" and "; a bf16 agent, its networks run here in fp32" or "")}
  -- the exploration rows are the first ones while none was dropped
  local explore = cfg and st.env_steps == n and math.min(cfg.init_exploration_steps, n) or 0
  local later_q, later_g = critic_lines(out, real, nets, explore)
  out[#out + 1] = string.format("critic target y = r + gamma (1 - done) (min Q_target(s', a') " ..
    "- alpha log pi(a'|s')), a' ~ pi(s'):")
  local nr = math.min(n, M.real_rows)
  out[#out + 1] = target_line(string.format("real rows (newest %d)", nr),
    real:narrow(1, n - nr + 1, nr), nets, rng)
  local model = model_part and M.chronological(model_part)
  if model then
    local nm = math.min(model:size(1), M.model_rows)
    model = model:narrow(1, model:size(1) - nm + 1, nm)
    out[#out + 1] = target_line(string.format("model rows (newest %d)", nm), model, nets, rng)
    local s2 = real:narrow(2, O + A + 2, O)
    local mu, sd = s2:mean(1), s2:std(1) + 1e-6
    local function z(x) return ((x - mu) / sd):abs():max(2):to_table() end
    local zr, zm = z(s2), z(model:narrow(2, O + A + 2, O))
    out[#out + 1] = string.format("next states' largest |z| under the real next states' " ..
      "statistics: real rows median %.2f, p99 %.2f; model rows median %.2f, p99 %.2f",
      percentile(zr, 0.5), percentile(zr, 0.99), percentile(zm, 0.5), percentile(zm, 0.99))
  else
    out[#out + 1] = "  (no model rows in the checkpoint)"
  end
  model_lines(out, dir, cfg, real, O, A)
  if later_q then out[#out + 1] = "verdict: " .. M.verdict(later_q, later_g) end
  return out
end

-- mbpo diag RUN_DIR
function M.main(args)
  local cli = require "mbpo.cli"
  for i, a in ipairs(args) do
    if a:match("^%-") then return cli.usage("diag: unknown option '" .. a .. "'") end
    if i > 1 then return cli.usage("diag: unexpected argument '" .. a .. "'") end
  end
  if not args[1] then return cli.usage("diag: missing RUN_DIR") end
  -- a checkpoint of another layout (a forged or foreign file) fails inside: one line too
  local ok, lines, err = pcall(M.report, (args[1]:gsub("/+$", "")))
  if not ok then lines, err = nil, tostring(lines):gsub("^[^:]*%.lua:%d+: ", "") end
  if not lines then
    io.stderr:write("mbpo: cannot diagnose: ", tostring(err), "\n")
    return 1
  end
  io.write(table.concat(lines, "\n"), "\n")
  return 0
end

return M
