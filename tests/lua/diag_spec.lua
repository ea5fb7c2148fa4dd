-- mbpo.diag (`mbpo diag RUN_DIR`): the buffer's row order, episode ends and discounted
-- returns against closed forms, the critics and the policy's log-probability against a naive
-- loop over the checkpoint's weights, and the command's output and errors.
local D = require "mbpo.diag"
local T = require "mbpo.tensor"
local Rng = require "mbpo.rng"
local th = require "mbpo.test"

local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"

-- a ReLU MLP by loops over the flat slab (per layer W [in x out] row-major, then b)
local function naive_mlp(p, sizes, x)
  local off, h = 0, x
  for l = 1, #sizes - 1 do
    local nin, nout, y = sizes[l], sizes[l + 1], {}
    for j = 1, nout do
      local s = p[off + nin * nout + j]
      for i = 1, nin do s = s + h[i] * p[off + (i - 1) * nout + j] end
      y[j] = (l < #sizes - 1) and math.max(s, 0) or s
    end
    off, h = off + nin * nout + nout, y
  end
  return h
end

local function close(a, b, tol, what)
  check(math.abs(a - b) <= tol * math.max(1, math.abs(b)), "%s: %.9g against %.9g", what, a, b)
end

describe("diag", function()
  it("puts a full ring buffer's rows in the order they were added", function()
    local data = T.tensor({{1}, {2}, {3}, {4}})
    local function col(t)
      local c = {}
      for i, r in ipairs(t:to_table()) do c[i] = math.tointeger(r[1]) end
      return c
    end
    eq(table.concat(col(D.chronological{data = data, size = 4, capacity = 4, next = 1}), ","),
      "2,3,4,1")
    eq(table.concat(col(D.chronological{data = data, size = 3, capacity = 4, next = 3}), ","),
      "1,2,3")
    eq(table.concat(col(D.chronological{data = data, size = 4, capacity = 4, next = 0}), ","),
      "1,2,3,4")
    eq(D.chronological{data = data, size = 0, capacity = 4, next = 0}, nil)
  end)

  it("ends episodes at terminals and at breaks in the observations; returns in closed form",
    function()
    -- O = 1, A = 1: obs, act, reward, next_obs, done. Episode 1: 3 steps ending terminal;
    -- episode 2: 2 steps cut at a step limit (next_obs 9 is not the next row's obs 0);
    -- episode 3: unfinished
    local rows = T.tensor({
      {0, 0, 1, 1, 0}, {1, 0, 1, 2, 0}, {2, 0, 1, 3, 1},
      {0, 0, 1, 1, 0}, {1, 0, 1, 9, 0},
      {0, 0, 1, 1, 0}, {1, 0, 1, 2, 0}})
    local ends = D.episode_ends(rows, 1, 1)
    local flags = {}
    for i = 1, 7 do flags[i] = ends[i] and "E" or "." end
    eq(table.concat(flags), "..E.E..")
    local g = 0.5
    local G = D.discounted({1, 1, 1, 1, 1, 1, 1}, ends, g)
    -- a constant reward 1 with k steps left: (1 - g^k) / (1 - g)
    local want = {3, 2, 1, 2, 1}
    for i, k in ipairs(want) do close(G[i], (1 - g ^ k) / (1 - g), 1e-12, "G[" .. i .. "]") end
    eq(G[6], nil)
    eq(G[7], nil)
  end)

  it("runs the checkpoint's critics and policy as a naive loop over its weights does",
    function()
    local d = th.tmpdir() .. "/run"
    local rc, out = th.mbpo(string.format("run %q epochs=1 seed=3 --out %q", tiny, d))
    eq(rc, 0, out)
    local ck = require "mbpo.checkpoint"
    local agent = assert(ck.load_part(d, "agent"))
    local nets = D.networks(agent)
    local O, A = nets.obs, nets.act
    local sizes_q, sizes_pi = {O + A}, {O}
    for _, h in ipairs(agent.config.hidden) do
      sizes_q[#sizes_q + 1] = h; sizes_pi[#sizes_pi + 1] = h
    end
    sizes_q[#sizes_q + 1], sizes_pi[#sizes_pi + 1] = 1, 2 * A
    local rows = D.chronological(assert(ck.load_part(d, "real_buffer"))):narrow(1, 1, 5)
    local s, a = rows:narrow(2, 1, O):contiguous(), rows:narrow(2, O + 1, A):contiguous()
    local q, qt = nets.q(s, a):to_table(), nets.q_target(s, a):to_table()
    local qp, tp = agent.q:to_table(), agent.q_target:to_table()
    local pp = agent.pi:reshape(agent.pi:numel()):to_table()
    local act, lp = nets.sample(s, Rng.new(1))
    act, lp = act:to_table(), lp:to_table()
    for r, row in ipairs(rows:to_table()) do
      local x = {table.unpack(row, 1, O + A)}
      close(q[r], math.min(naive_mlp(qp[1], sizes_q, x)[1], naive_mlp(qp[2], sizes_q, x)[1]),
        1e-5, "min(Q1, Q2) row " .. r)
      close(qt[r], math.min(naive_mlp(tp[1], sizes_q, x)[1], naive_mlp(tp[2], sizes_q, x)[1]),
        1e-5, "min of the target critics row " .. r)
      -- log pi(a|s) of the sampled action: a Gaussian in u = atanh(a), less log(1 - a^2)
      local o = naive_mlp(pp, sizes_pi, {table.unpack(row, 1, O)})
      local want = 0
      for j = 1, A do
        local aj = act[r][j]
        local u = 0.5 * math.log((1 + aj) / (1 - aj))
        local ls = math.min(math.max(o[A + j], -20), 2)
        local z = (u - o[j]) / math.exp(ls)
        want = want - 0.5 * z * z - ls - 0.5 * math.log(2 * math.pi) - math.log(1 - aj * aj)
      end
      close(lp[r], want, 1e-3, "log pi row " .. r)
    end
  end)

  it("prints the report of a run and refuses what it cannot read in one line", function()
    local d = th.tmpdir() .. "/run"
    local rc, out = th.mbpo(string.format("run %q epochs=2 seed=4 --out %q", tiny, d))
    eq(rc, 0, out)
    rc, out = th.mbpo(string.format("diag %q", d))
    eq(rc, 0, out)
    check(out:find("mbpo diag " .. d .. ": checkpoint after epoch 2 (env step 220)", 1, true), out)
    check(out:find("exploration rows 1-100 ", 1, true) and out:find("later rows 101-220", 1, true),
      out)
    check(out:find("real rows (newest 220)", 1, true) and
      out:find("model rows (newest ", 1, true), out)
    check(out:find("\nverdict: Q/return ", 1, true), out)
    -- InvertedPendulum: reward (always 1) and the 4 observation deltas
    check(out:find("R^2 of each target", 1, true) and
      out:find("\n  0:constant 1:%-?%d%.%d%d 2:%-?%d%.%d%d 3:%-?%d%.%d%d 4:%-?%d%.%d%d\n"), out)
    rc, out = th.mbpo(string.format("diag %q", d .. "/missing"))
    eq(rc, 1, out)
    check(out:find("^mbpo: cannot diagnose: no such run directory: ") and
      select(2, out:gsub("\n", "")) == 1, out)
    rc, out = th.mbpo("diag")
    eq(rc, 2, out)
    -- an agent part without its config (another layout): one line, no traceback
    local ck = require "mbpo.checkpoint"
    local agent = assert(ck.load_part(d, "agent"))
    agent.config = nil
    assert(ck.save(d, {agent = agent, real_buffer = assert(ck.load_part(d, "real_buffer"))}))
    rc, out = th.mbpo(string.format("diag %q", d))
    eq(rc, 1, out)
    check(out:find("^mbpo: cannot diagnose: the checkpoint's agent has no config with obs, " ..
      "act and hidden") and select(2, out:gsub("\n", "")) == 1, out)
  end)

  it("computes R^2 per target as 1 - MSE / variance", function()
    local y = {{1, 5}, {2, 5}, {3, 5}, {4, 5}}
    local same = D.r_squared(y, y)
    close(same[1], 1, 1e-12, "a perfect prediction")
    check(same[2] ~= same[2], "a constant target has no R^2 (NaN)")
    local y1 = {{1}, {2}, {3}, {4}}
    close(D.r_squared({{2.5}, {2.5}, {2.5}, {2.5}}, y1)[1], 0, 1e-12, "the mean")
    -- off by 1 everywhere: MSE 1 against the variance 1.25
    close(D.r_squared({{2}, {3}, {4}, {5}}, y1)[1], 1 - 1 / 1.25, 1e-12, "shifted")
  end)

  it("reads Q/return as under, normal, high or diverged", function()
    check(D.verdict(1, 100):find("underestimate", 1, true), "under")
    check(D.verdict(130, 100):find("Q/return 1.30: normal", 1, true), "normal")
    check(D.verdict(500, 100):find("high", 1, true), "high")
    check(D.verdict(7500, 100):find("overestimate 75-fold", 1, true), "diverged")
    check(D.verdict(5, -20):find("says nothing", 1, true), "negative returns")
  end)
end)
