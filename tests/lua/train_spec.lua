-- End to end: `mbpo run` on a tiny config (smoke test of the run directory and CSV), exact
-- resume after SIGKILL and after Ctrl-C mid-epoch, and the error paths of the command line
-- (typos, wrong types, syntax errors, missing scripts, corrupt checkpoints) which must destroy
-- nothing.
local lfs = require "lfs"
local log = require "mbpo.log"
local th = require "mbpo.test"
local tmpdir, read, mbpo, csv_without_timing = th.tmpdir, th.read, th.mbpo,
  th.csv_without_timing

local exe = th.exe()
local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"

describe("mbpo run", function()
  it("runs a tiny config and leaves a complete run directory", function()
    local d = tmpdir() .. "/run"
    local rc, out = mbpo(string.format("run %q epochs=2 seed=1 --out %q", tiny, d))
    eq(rc, 0, "exit code; output:\n" .. out)
    for _, f in ipairs({"config.lua", "progress.csv", "log.txt", "checkpoint/COMPLETE",
      "checkpoint/agent.safetensors", "checkpoint/model.safetensors",
      "checkpoint/real_buffer.safetensors", "checkpoint/model_buffer.safetensors",
      "checkpoint/loop.safetensors"}) do
      check(lfs.attributes(d .. "/" .. f), "missing %s", f)
    end
    local header, rows = log.read_csv(d .. "/progress.csv")
    local train = require "mbpo.train"
    eq(table.concat(header, ","), table.concat(train.columns, ","), "csv columns")
    eq(#rows, 2, "rows")
    eq(rows[2].epoch, 2)
    eq(rows[2].env_steps, 100 + 2 * 60)
    eq(rows[2].real_size, 220)
    check(type(rows[2].eval_return) == "number", "eval return %s", tostring(rows[2].eval_return))
    check(rows[2].model_epochs >= 1, "model epochs")
    check(rows[2].rollout_length >= 1, "rollout length")
    check(rows[2].model_size > 0, "model buffer filled")
    -- the resolved config runs again as a script
    local cfg = dofile(d .. "/config.lua")
    eq(cfg.epochs, 2); eq(cfg.seed, 1); eq(cfg.model.hidden[1], 16)
    -- eval prints the saved policy's deterministic returns
    rc, out = mbpo(string.format("eval %q --episodes 3", d))
    eq(rc, 0, out)
    local n, mean = out:match("(%d+) episodes, return (%-?[%d%.]+)")
    eq(tonumber(n), 3, "episodes in: " .. out)
    check(tonumber(mean) > 0, "mean return in: %s", out)
    -- plot draws the curve (PNG and SVG)
    rc, out = mbpo(string.format("plot %q -o %q", d, d .. "/c.svg"))
    eq(rc, 0, out)
    local svg = read(d .. "/c.svg")
    check(svg and svg:find("<svg", 1, true), "no SVG written")
    rc, out = mbpo(string.format("plot %q %q -o %q", d, d, d .. "/two.png"))
    eq(rc, 0, out)
    local png = read(d .. "/two.png")
    check(png and png:sub(1, 4) == "\137PNG", "no PNG written")
    rc, out = mbpo(string.format("eval %q", d .. "/nope"))
    eq(rc, 1); check(out:find("cannot evaluate", 1, true), out)
  end)

  it("evaluates every eval.every epochs; resuming with more epochs grows the real " ..
    "buffer", function()
    local base = tmpdir()
    local a, b = base .. "/a", base .. "/b"
    local rc, out = mbpo(string.format("run %q epochs=3 eval.every=2 seed=3 --out %q", tiny, a))
    eq(rc, 0, out)
    local _, rows = log.read_csv(a .. "/progress.csv")
    eq(#rows, 3)
    eq(rows[1].eval_return, nil, "epoch 1 not evaluated")
    check(type(rows[2].eval_return) == "number", "epoch 2 evaluated")
    check(type(rows[3].eval_return) == "number", "the last epoch is evaluated")
    eq(rows[1].rollout_nonfinite, 0)
    for _, r in ipairs(rows) do  -- the caller's wait for the pool's workers, in the SAC phase
      check(type(r.time_sac_wait) == "number" and r.time_sac_wait >= 0 and
        r.time_sac_wait <= r.time_sac, "time_sac_wait " .. tostring(r.time_sac_wait))
      -- the process's CPU seconds over the epoch: something, and no more than all its
      -- threads (at most 8) could spend in the epoch's wall time
      check(type(r.time_cpu) == "number" and r.time_cpu > 0 and
        r.time_cpu <= 8 * r.time_epoch + 0.05, "time_cpu " .. tostring(r.time_cpu))
    end
    -- 1 epoch, then --resume with epochs=3: the same rows as 3 epochs straight, every real
    -- row kept (the buffer was sized for 1 epoch)
    rc, out = mbpo(string.format("run %q epochs=1 seed=3 --out %q", tiny, b))
    eq(rc, 0, out)
    rc, out = mbpo(string.format("run --resume %q epochs=3", b))
    eq(rc, 0, out)
    local c = base .. "/c"
    rc, out = mbpo(string.format("run %q epochs=3 seed=3 --out %q", tiny, c))
    eq(rc, 0, out)
    local _, rb = log.read_csv(b .. "/progress.csv")
    eq(#rb, 3)
    eq(rb[3].real_size, 100 + 3 * 60, "no real row dropped")
    eq(csv_without_timing(b .. "/progress.csv"), csv_without_timing(c .. "/progress.csv"))
    os.execute(string.format("rm -rf %q", base))
  end)

  it("resumes after SIGKILL to the same numbers as an uninterrupted run", function()
    local base = tmpdir()
    local a, b = base .. "/a", base .. "/b"
    -- about a second per epoch, so that the kill lands mid-run
    local slow =
      "epochs=5 sac.updates_per_step=40 sac.hidden=128,128 sac.batch=64 rollout.batch=5000"
    local rc, out = mbpo(string.format("run %q seed=7 %s --out %q", tiny, slow, a))
    eq(rc, 0, "uninterrupted run:\n" .. out)
    -- start the same run, kill it with SIGKILL as soon as its first checkpoint exists
    -- (polling for up to 5 minutes: CI machines can be slow)
    local cmd = string.format("cd %q && (%q run %q seed=7 %s --out %q >/dev/null 2>&1 & echo $!)",
      root, exe, tiny, slow, b)
    local p = io.popen(cmd)
    local pid = tonumber(p:read("l"))
    p:close()
    local killed = false
    local core = require "mbpo.core"
    local deadline = core.clock() + 300
    while core.clock() < deadline do
      local _, rows = log.read_csv(b .. "/progress.csv")
      if rows and #rows >= 1 and lfs.attributes(b .. "/checkpoint/COMPLETE") then
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
        killed = true
        break
      end
      os.execute("sleep 0.02")
    end
    check(killed, "the run never wrote its first checkpoint")
    os.execute("sleep 0.2")
    local _, rows = log.read_csv(b .. "/progress.csv")
    check(#rows < 5, "the run finished before it was killed (%d rows)", #rows)
    rc, out = mbpo(string.format("run --resume %q", b))
    eq(rc, 0, "resume:\n" .. out)
    local ta, na = csv_without_timing(a .. "/progress.csv")
    local tb, nb = csv_without_timing(b .. "/progress.csv")
    eq(na, 5, "rows of the uninterrupted run")
    eq(nb, 5, "rows of the resumed run")
    eq(tb, ta, "progress.csv of the resumed run")

    -- Ctrl-C mid-epoch: the run saves a checkpoint at its next safe point and exits 130;
    -- resuming from that mid-epoch checkpoint gives the same numbers again
    local c = base .. "/c"
    local p2 = io.popen(string.format(
      "cd %q && { %q run %q seed=7 %s --out %q >/dev/null 2>&1 & " ..
      "p=$!; i=0; while [ ! -f %q ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done; " ..
      "sleep 0.3; kill -INT $p; wait $p; echo \"rc=$?\"; }", root, exe, tiny, slow, c,
      c .. "/checkpoint/COMPLETE"))
    local sout = p2:read("a")
    p2:close()
    eq(tonumber(sout:match("rc=(%d+)")), 130, "exit code after SIGINT")
    local _, crows = log.read_csv(c .. "/progress.csv")
    check(#crows < 5, "the run finished before the interrupt (%d rows)", #crows)
    rc, out = mbpo(string.format("run --resume %q", c))
    eq(rc, 0, "resume after SIGINT:\n" .. out)
    eq((csv_without_timing(c .. "/progress.csv")), ta, "progress.csv after SIGINT and resume")
  end)

  it("rejects typos, wrong types, bad scripts and corrupt checkpoints, destroying " ..
    "nothing", function()
    local base = tmpdir()
    local rc, out = mbpo(string.format("run %q rollout.bach=5 --out %q", tiny, base .. "/x"))
    eq(rc, 1); check(out:find("unknown config key 'rollout.bach'", 1, true) and
      out:find("'rollout.batch'", 1, true), out)
    check(not lfs.attributes(base .. "/x"), "a run directory was created for a bad key")
    rc, out = mbpo(string.format("run %q seed=abc --out %q", tiny, base .. "/x"))
    eq(rc, 1); check(out:find("expects a number, got 'abc'", 1, true), out)
    local bad = base .. "/bad.lua"
    local f = io.open(bad, "w"); f:write("return {epochs = }\n"); f:close()
    rc, out = mbpo(string.format("run %q", bad))
    eq(rc, 1); check(out:find("bad.lua:1:", 1, true), out)
    rc, out = mbpo(string.format("run %q", base .. "/missing.lua"))
    eq(rc, 1); check(out:find("cannot open script", 1, true), out)
    -- a finished run; then damage its checkpoint and try to resume
    local d = base .. "/run"
    rc, out = mbpo(string.format("run %q epochs=1 --out %q", tiny, d))
    eq(rc, 0, out)
    local csv_before = read(d .. "/progress.csv")
    local ck = d .. "/checkpoint/agent.safetensors"
    local data = read(ck)
    f = io.open(ck, "wb"); f:write(data:sub(1, #data // 2)); f:close()
    rc, out = mbpo(string.format("run --resume %q epochs=2", d))
    eq(rc, 1)
    check(out:find("corrupt checkpoint", 1, true) or out:find("agent.safetensors", 1, true), out)
    eq(read(d .. "/progress.csv"), csv_before, "progress.csv changed by a failed resume")
    check(lfs.attributes(d .. "/checkpoint/COMPLETE"), "checkpoint removed by a failed resume")
    -- running into an existing run directory is refused
    rc, out = mbpo(string.format("run %q --out %q", tiny, d))
    eq(rc, 1); check(out:find("already holds a run", 1, true), out)
    eq(read(d .. "/progress.csv"), csv_before, "progress.csv changed")
  end)
end)
