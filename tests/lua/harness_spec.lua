-- mbpo.harness, what it adds around a loop, through `mbpo run` on the tiny config with small
-- loops written to a temp dir (no model training or agent update unless a case needs one):
-- state a loop declares on run.st (and run.obs) checkpointed and restored across a SIGKILL
-- and --resume; the NaN guard ending a run in one line that names the phase; stop_return
-- ending a run; the progress row carrying every column of harness.columns.
local th = require "mbpo.test"
local harness = require "mbpo.harness"
local checkpoint = require "mbpo.checkpoint"
local log = require "mbpo.log"
local tmpdir, read, write, mbpo, csv = th.tmpdir, th.read, th.write, th.mbpo,
  th.csv_without_timing

local tiny = MBPO_ROOT .. "/tests/lua/data/tiny.lua"

-- a loop of real env steps with zero actions after the usual exploration (no model, no
-- agent), each step a fault point "sac" so that MBPO_FAULT=sac:N kills it at its N-th env step
-- after the exploration; `extra` runs at each epoch end
local function stepping_loop(extra)
  return [[
    local T = require "mbpo.tensor"
    local train = require "mbpo.train"
    local checkpoint = require "mbpo.checkpoint"
    local extra = function(run) ]] .. (extra or "") .. [[ end
    return {start = train.start, epoch = function(run)
      local st = run.st
      for t = st.t, run.cfg.epoch_length - 1 do
        checkpoint.fault("sac")
        train.env_step(run, T.zeros(run.env.act_dim))
        run:step_done(t)
      end
      st.t = 0
      extra(run)
    end}]]
end

-- mbpo run of the tiny config with `args` in run directory d; exit code, output
local function run_tiny(d, args, envs)
  return mbpo(string.format("run %q %s --out %q", tiny, args, d), envs)
end

describe("harness", function()
  it("checkpoints and restores what a loop declares on run.st and the observation", function()
    local base = tmpdir()
    -- counters of every kind a checkpoint stores, and a sum that depends on run.obs
    local loop = base .. "/declaring_loop.lua"
    write(loop, stepping_loop([[
      local st = run.st
      st.epochs_seen = (st.epochs_seen or 0) + 1
      st.obs_sum = (st.obs_sum or 0.0) + run.obs:get(1)
      st.word = (st.word or "") .. "ab"
      st.flag = not st.flag
      st.nested = st.nested or {list = {}}
      st.nested.list[#st.nested.list + 1] = st.env_steps
      st.vec = (st.vec or T.zeros(2)) + 0.5]]))
    local args = "epochs=3 seed=2 loop=" .. loop
    local rc, out = run_tiny(base .. "/ref", args)
    eq(rc, 0, "uninterrupted run:\n" .. out)
    rc, out = run_tiny(base .. "/cut", args, "MBPO_FAULT=sac:150")  -- step 30 of epoch 3
    eq(rc, 137, "killed:\n" .. out)
    eq(assert(checkpoint.load(base .. "/cut")).loop.counters.epochs_seen, 2,
      "epochs in the checkpoint the kill left")
    rc, out = mbpo(string.format("run --resume %q", base .. "/cut"))
    eq(rc, 0, "resume:\n" .. out)
    local want = assert(checkpoint.load(base .. "/ref")).loop
    local got = assert(checkpoint.load(base .. "/cut")).loop
    eq(got.counters.epochs_seen, 3, "epochs counted across the resume")
    eq(got.counters.epochs_seen, want.counters.epochs_seen, "integer counter")
    eq(got.counters.obs_sum, want.counters.obs_sum, "float counter (from run.obs)")
    eq(got.counters.word, "ababab", "string counter")
    eq(got.counters.flag, want.counters.flag, "boolean counter")
    eq(table.concat(got.counters.nested.list, " "), "160 220 280", "nested list")
    eq(table.concat(got.counters.vec:to_table(), " "), "1.5 1.5", "tensor counter")
    eq(got.obs:get(1), want.obs:get(1), "observation")
    eq(csv(base .. "/cut/progress.csv"), csv(base .. "/ref/progress.csv"), "progress.csv")
    os.execute(string.format("rm -rf %q", base))
  end)

  it("stops a run whose phase produces NaN/Inf in one line naming the phase", function()
    local base = tmpdir()
    -- the real MBPO epoch on an agent / ensemble whose one method returns NaN from the
    -- second epoch on (after a checkpoint)
    local function proxy(field, method, result)
      return string.format([[
        local train = require "mbpo.train"
        return {start = train.start, epoch = train.epoch, build = function(run)
          local obj = run.%s
          run.%s = setmetatable({%s = function(_, ...)
            if run.st.epoch == 0 then return obj:%s(...) end
            return %s
          end}, {__index = function(_, k)
            local v = obj[k]
            if type(v) ~= "function" then return v end
            return function(_, ...) return v(obj, ...) end
          end})
        end}]], field, field, method, method, result)
    end
    for i, case in ipairs({
      {proxy("agent", "update_mixed", "1, 0 / 0, 0.5"), "SAC update produced NaN/Inf %(" ..
        "critic loss [-]?nan, actor loss 0.5%) at epoch 2 %(env step 161%)"},
      {proxy("model", "fit", "{elites = {1}, holdout_mse = {1 / 0}, train_loss = {0.1}}"),
        "model training produced NaN/Inf %(loss 0.1, holdout MSE inf%) at epoch 2 " ..
        "%(env step 160%)"},
    }) do
      local loop = string.format("%s/nan%d.lua", base, i)
      write(loop, case[1])
      local rc, out = run_tiny(base .. "/r" .. i, "epochs=2 loop=" .. loop)
      eq(rc, 1, "exit code of case " .. i .. ":\n" .. out)
      local last = out:match("([^\n]*)\n?$")
      check(last:match("^mbpo: " .. case[2] .. "; the last good checkpoint is kept$"),
        "last line of case %d: %s", i, last)
      check(not out:find("traceback", 1, true), "a traceback in case %d:\n%s", i, out)
    end
    -- the rollout phase, through a rollout scheme that fails at its third call (t = 0 of
    -- epoch 2: two rollouts an epoch)
    write(base .. "/failing.lua", [[
      local calls = 0
      return function(o)
        calls = calls + 1
        if calls < 3 then return require("mbpo.rollout").run(o) end
        return nil, "every row non-finite"
      end]])
    local rc, out = run_tiny(base .. "/r3", "epochs=2 rollout.fn=" .. base .. "/failing.lua")
    eq(rc, 1, "exit code of a failed rollout:\n" .. out)
    eq(out:match("([^\n]*)\n?$"), "mbpo: rollout: every row non-finite at epoch 2 " ..
      "(env step 160); the last good checkpoint is kept", "last line of a failed rollout")
    os.execute(string.format("rm -rf %q", base))
  end)

  it("ends a run at the first evaluation return that reaches stop_return", function()
    local base = tmpdir()
    local loop = base .. "/scoring_loop.lua"
    -- evaluation return 10 x the epoch
    write(loop, stepping_loop([[
      local score = 10.0 * (run.st.epoch + 1)
      run.eval = {returns = {score}, lengths = {1}}
      run.st.last_eval = score]]))
    local rc, out = run_tiny(base .. "/r", "epochs=6 stop_return=30 loop=" .. loop)
    eq(rc, 0, "exit code:\n" .. out)
    check(out:find("evaluation return 30.00 reached stop_return 30 at epoch 3", 1, true),
      "the stop line in:\n%s", out)
    local header, rows = log.read_csv(base .. "/r/progress.csv")
    check(header, "no progress.csv")
    eq(#rows, 3, "epochs run")
    eq(rows[3].eval_return, 30, "eval_return of the last row")
    eq(assert(checkpoint.load(base .. "/r")).loop.counters.epoch, 3, "checkpointed epoch")
    os.execute(string.format("rm -rf %q", base))
  end)

  it("writes every column of harness.columns in the progress row", function()
    local d = tmpdir()
    local rc, out = run_tiny(d .. "/r", "epochs=1")
    eq(rc, 0, "exit code:\n" .. out)
    local header, rows = log.read_csv(d .. "/r/progress.csv")
    check(header, "no progress.csv")
    eq(table.concat(header, ","), table.concat(harness.columns, ","), "header")
    eq(#rows, 1, "rows")
    for _, c in ipairs(harness.columns) do
      check(type(rows[1][c]) == "number", "column %s is %s", c, tostring(rows[1][c]))
    end
    check(read(d .. "/r/progress.csv"):find("\n1,160,", 1, true), "the row of epoch 1")
    os.execute(string.format("rm -rf %q", d))
  end)
end)
