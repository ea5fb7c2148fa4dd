-- Seams of the config: `rollout.fn` (a rollout scheme; examples/mopo_rollout.lua) and `loop`
-- (a whole loop on the harness; examples/dyna_loop.lua). Each example trains through `mbpo
-- run` on the tiny config, is recorded in config.lua, and continues bit for bit after a
-- SIGKILL and --resume; a missing file or module is one line. The MOPO penalty is checked
-- against a hand computation on a fake ensemble.
local T = require "mbpo.tensor"
local th = require "mbpo.test"
local tmpdir, read, mbpo, csv = th.tmpdir, th.read, th.mbpo, th.csv_without_timing

local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"
local ARGS = "epochs=3 seed=5"

describe("rollout.fn", function()
  it("subtracts lambda x the elites' disagreement from each model reward", function()
    -- 2 rows, obs 1, act 1, 3 members of which 1 and 3 are the elites; outputs [r, d obs]
    local means = {{{0.5, 1.0}, {2.0, -1.0}}, {{9.0, 9.0}, {9.0, 9.0}}, {{1.5, 3.0}, {2.0, 0.5}}}
    local stored
    local o = {
      real = {sample_obs = function() return T.tensor{{0.1}, {0.2}} end},
      agent = {act = function(_, obs) return T.zeros(obs:size(1), 1) end},
      ensemble = {
        step = function(_, obs) return obs + 1, T.tensor{1.0, -2.0} end,
        predict = function() return T.tensor(means) end,
        elites = function() return {1, 3} end,
      },
      model_buffer = {add_batch = function(_, s, a, r) stored = r:to_table() end},
      termination = function(next_obs) return T.zeros(next_obs:size(1)) end,
      batch = 2, length = 1, rng = require("mbpo.rng").new(1),
    }
    local info = assert(dofile(root .. "/examples/mopo_rollout.lua")(o))
    eq(info.transitions, 2, "transitions")
    -- by hand: unbiased std of two values a, b is |a - b| / sqrt(2)
    local base = {1.0, -2.0}
    for i = 1, 2 do
      local s2 = 0
      for j = 1, 2 do s2 = s2 + ((means[1][i][j] - means[3][i][j]) / math.sqrt(2)) ^ 2 end
      near(stored[i], base[i] - 1.0 * math.sqrt(s2), 1e-6, "penalised reward of row " .. i)
    end
  end)
end)

-- an uninterrupted run with `seam`, then one killed at each fault and resumed: same CSV
local function trains_and_resumes(seam, faults)
  local base = tmpdir()
  local ref = base .. "/ref"
  local rc, out = mbpo(string.format("run %q %s %s --out %q", tiny, ARGS, seam, ref))
  eq(rc, 0, "uninterrupted run:\n" .. out)
  local want, rows = csv(ref .. "/progress.csv")
  eq(rows, 3, "epochs in progress.csv")
  local key, value = seam:match("^(.-)=(.*)$")
  check(read(ref .. "/config.lua"):find(key:match("[^%.]+$") .. ' = "' .. value .. '"', 1, true),
    "config.lua records %s", seam)
  -- the plain MBPO run differs: the seam was used
  rc, out = mbpo(string.format("run %q %s --out %q", tiny, ARGS, base .. "/plain"))
  eq(rc, 0, "plain run:\n" .. out)
  check(csv(base .. "/plain/progress.csv") ~= want, "%s changes training", seam)
  for i, fault in ipairs(faults) do
    local d = string.format("%s/k%d", base, i)
    rc, out = mbpo(string.format("run %q %s %s --out %q", tiny, ARGS, seam, d),
      "MBPO_FAULT=" .. fault)
    eq(rc, 137, "killed at " .. fault .. ":\n" .. out)
    rc, out = mbpo(string.format("run --resume %q", d))
    eq(rc, 0, "resume after " .. fault .. ":\n" .. out)
    eq(csv(d .. "/progress.csv"), want, "progress.csv after a kill at " .. fault)
  end
  os.execute(string.format("rm -rf %q", base))
end

describe("seams through mbpo run", function()
  it("trains with examples/mopo_rollout.lua and resumes it bit for bit", function()
    trains_and_resumes("rollout.fn=examples/mopo_rollout.lua", {"rollout:3", "sac:150"})
  end)
  it("trains with examples/dyna_loop.lua and resumes it bit for bit", function()
    trains_and_resumes("loop=examples/dyna_loop.lua", {"model:3", "save:agent:2"})
  end)
  it("checkpoints and restores what a loop declares on the run object", function()
    local base = tmpdir()
    th.write(base .. "/counting_loop.lua", [[
      local T = require "mbpo.tensor"
      local mbpo = require "mbpo.train"
      return {
        build = function(run)   -- an object of its own, a part of the checkpoint
          run.extra = require("mbpo.buffer").new{obs = 1, act = 1, capacity = 10}
          run.parts[#run.parts + 1] = {"extra", "extra", "extra buffer"}
        end,
        start = mbpo.start,
        epoch = function(run)   -- and a counter of its own
          run.st.seen = (run.st.seen or 0) + 1
          run.extra:add(T.tensor{run.st.seen}, T.zeros(1), 0, T.zeros(1), 0)
          mbpo.epoch(run)
        end,
      }]])
    local seam = "loop=" .. base .. "/counting_loop.lua"
    local rc, out = mbpo(string.format("run %q %s %s --out %q", tiny, ARGS, seam, base .. "/a"),
      "MBPO_FAULT=model:3")
    eq(rc, 137, "killed in epoch 2:\n" .. out)
    rc, out = mbpo(string.format("run --resume %q", base .. "/a"))
    eq(rc, 0, "resume:\n" .. out)
    local parts = assert(require("mbpo.checkpoint").load(base .. "/a"))
    eq(parts.loop.counters.seen, 3, "the loop's counter after 3 epochs")
    eq(parts.extra.size, 3, "rows of the loop's own buffer")
    os.execute(string.format("rm -rf %q", base))
  end)

  it("refuses a missing or unfit file or module in one line, leaving nothing", function()
    for _, case in ipairs({
      {"rollout.fn=examples/nosuch.lua", "config key 'rollout.fn' must be an existing Lua " ..
        "file (cannot open 'examples/nosuch.lua'), got examples/nosuch.lua"},
      {"loop=mbpo.nosuch", "config key 'loop' must be an existing Lua file or module (no " ..
        "file or module 'mbpo.nosuch'), got mbpo.nosuch"},
      {"rollout.fn=mbpo.train", "config key 'rollout.fn': mbpo.train returns no function"},
      {"loop=examples/mopo_rollout.lua", "config key 'loop': examples/mopo_rollout.lua must " ..
        "return a table with a function epoch(run)"},
    }) do
      local d = tmpdir() .. "/run"
      local rc, out = mbpo(string.format("run %q %s --out %q", tiny, case[1], d))
      eq(rc, 1, "exit code of " .. case[1])
      eq(out:sub(1, #case[2] + 6), "mbpo: " .. case[2], "message")
      eq(select(2, out:gsub("\n", "")), 1, "lines of the message of " .. case[1])
      check(not read(d .. "/config.lua"), "no run directory for %s", case[1])
    end
  end)
end)
