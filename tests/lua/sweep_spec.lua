-- mbpo sweep: a local sweep of 2 scripts x 2 seeds with -j 2 completes; a sweep killed with
-- SIGKILL (the whole process group) and rerun finishes only the remaining cells, with the same
-- progress.csv as an uninterrupted sweep, and so does one whose cells were all killed in their
-- first epoch (started again in their directories); --status; bad grids give one line and
-- lose nothing.
local lfs = require "lfs"
local th = require "mbpo.test"
local tmpdir, sh, read, csv_without_timing = th.tmpdir, th.sh, th.read, th.csv_without_timing

local exe = th.exe()
local tiny = MBPO_ROOT .. "/tests/lua/data/tiny.lua"

local base = tmpdir()
-- a second script: the tiny config with shorter epochs
local tiny2 = base .. "/tiny2.lua"
do
  local f = assert(io.open(tiny2, "w"))
  f:write((read(tiny):gsub("epoch_length = 60", "epoch_length = 50")))
  f:close()
end
local EPOCHS = 16
local grid = string.format("%q %q seed=1-2 epochs=%d", tiny, tiny2, EPOCHS)
local function sweep_cmd(dir, extra)
  return string.format("cd %q && %q sweep %s --out %q %s", base, exe, grid, dir, extra or "-j 2")
end

local names = {"001-tiny-epochs=16-seed=1", "002-tiny-epochs=16-seed=2",
  "003-tiny2-epochs=16-seed=1", "004-tiny2-epochs=16-seed=2"}
local full = base .. "/full"

describe("mbpo sweep", function()
  it("runs 2 scripts x 2 seeds with -j 2, and --status reports every cell done", function()
    local rc, out = sh(sweep_cmd(full))
    eq(rc, 0, "exit code; output:\n" .. out)
    local s = dofile(full .. "/sweep.lua")
    eq(#s.cells, 4, "cells")
    for i, n in ipairs(names) do
      eq(s.cells[i].name, n, "cell name")
      check(s.cells[i].command:match("mbpo run .* seed=%d %-%-out "), "command %s",
        s.cells[i].command)
      check(lfs.attributes(full .. "/" .. n .. "/DONE"), "cell %s not done", n)
      local _, rows = csv_without_timing(full .. "/" .. n .. "/progress.csv")
      eq(rows, EPOCHS, "rows of " .. n)
    end
    -- the seeds differ, the scripts differ
    check(csv_without_timing(full .. "/" .. names[1] .. "/progress.csv") ~=
      csv_without_timing(full .. "/" .. names[2] .. "/progress.csv"),
      "seeds 1 and 2 gave the same run")
    local st
    rc, st = sh(string.format("%q sweep --status %q", exe, full))
    eq(rc, 0, st)
    check(st:match("4 cells: 4 done, 0 running, 0 pending, 0 failed"), "summary in:\n%s", st)
    check(st:match("001%-tiny%-epochs=16%-seed=1%s+epoch 16 "), "cell line in:\n%s", st)
    -- mbpo plot on the sweep: one figure per script and setting
    rc, out = sh(string.format("%q plot %q", exe, full))
    eq(rc, 0, out)
    for _, g in ipairs({"tiny-epochs=16", "tiny2-epochs=16"}) do
      local f = full .. "/curve-" .. g .. ".png"
      check(out:find(f, 1, true), "%s not in: %s", f, out)
      check((lfs.attributes(f, "size") or 0) > 1000, "no figure %s", f)
    end
    -- the same command again: nothing to do, nothing rerun
    local before = lfs.attributes(full .. "/" .. names[1] .. "/progress.csv", "modification")
    local mtime_ns = read(full .. "/" .. names[1] .. "/progress.csv")
    rc, out = sh(sweep_cmd(full))
    eq(rc, 0, out)
    eq(lfs.attributes(full .. "/" .. names[1] .. "/progress.csv", "modification"), before, "mtime")
    eq(read(full .. "/" .. names[1] .. "/progress.csv"), mtime_ns, "progress.csv rewritten")
  end)

  it("finishes only the remaining cells after SIGKILL of the whole sweep, bit for bit", function()
    local d = base .. "/killed"
    -- the sweep in its own process group; killed as soon as one cell is done and another runs
    local pidf = base .. "/killed.pid"
    local function q(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
    os.execute(string.format("setsid -f sh -c %s >/dev/null 2>&1 </dev/null",
      q("echo $$ >" .. pidf .. "; exec " .. sweep_cmd(d):gsub("^cd %S+ && ", ""))))
    local pid
    for _ = 1, 500 do
      pid = (read(pidf) or ""):match("^(%d+)")
      if pid then break end
      os.execute("sleep 0.01")
    end
    check(pid and pid:match("^%d+$"), "no pid")
    local killed, done_at_kill = false, {}
    for _ = 1, 3000 do
      local done, started = 0, 0
      for _, n in ipairs(names) do
        if lfs.attributes(d .. "/" .. n .. "/DONE") then done = done + 1
        elseif lfs.attributes(d .. "/" .. n .. "/checkpoint") then started = started + 1 end
      end
      if done >= 1 and started >= 1 then
        os.execute("kill -9 -" .. pid)
        killed = true
        break
      end
      os.execute("sleep 0.02")
    end
    check(killed, "the sweep never reached a state to kill")
    os.execute("sleep 0.3")
    local mt = {}
    for _, n in ipairs(names) do
      if lfs.attributes(d .. "/" .. n .. "/DONE") then
        done_at_kill[n] = true
        mt[n] = lfs.attributes(d .. "/" .. n .. "/progress.csv", "modification")
      end
    end
    local ndone = 0
    for _ in pairs(done_at_kill) do ndone = ndone + 1 end
    check(ndone >= 1 and ndone < 4, "%d cells done at the kill", ndone)
    local rc, st = sh(string.format("%q sweep --status %q", exe, d))
    check(st:match(ndone .. " done, 0 running, " .. (4 - ndone) .. " pending"),
      "status after kill:\n%s", st)
    -- rerun the same command: the remaining cells only
    local out
    rc, out = sh(sweep_cmd(d))
    eq(rc, 0, "rerun; output:\n" .. out)
    for _, n in ipairs(names) do
      check(lfs.attributes(d .. "/" .. n .. "/DONE"), "cell %s not done after the rerun", n)
      if done_at_kill[n] then
        eq(lfs.attributes(d .. "/" .. n .. "/progress.csv", "modification"), mt[n],
          n .. " was rerun")
        check(not out:find("done " .. n, 1, true), "%s reported done again", n)
      else
        check(out:find("done " .. n, 1, true), "%s not run by the rerun:\n%s", n, out)
      end
      eq(csv_without_timing(d .. "/" .. n .. "/progress.csv"),
        csv_without_timing(full .. "/" .. n .. "/progress.csv"), "progress.csv of " .. n)
    end
  end)

  it("starts cells killed in their first epoch again, keeping their logs, bit for bit",
    function()
    local d = base .. "/early"
    -- every cell killed (SIGKILL) at its 5th env step of SAC, before its first checkpoint
    local rc, out = sh("export MBPO_FAULT=sac:5; " .. sweep_cmd(d))
    check(rc ~= 0, "the killed sweep reported success:\n%s", out)
    for _, n in ipairs(names) do
      check(not lfs.attributes(d .. "/" .. n .. "/checkpoint") and
        lfs.attributes(d .. "/" .. n .. "/config.lua"), "cell %s not killed early", n)
    end
    rc, out = sh(sweep_cmd(d))
    eq(rc, 0, "rerun; output:\n" .. out)
    for _, n in ipairs(names) do
      local log = read(d .. "/" .. n .. "/log.txt")
      local first = log:find("run directory ", 1, true)
      local again = log:find("has no complete checkpoint", 1, true)
      check(first and again and first < again, "log of %s:\n%s", n, log)
      eq(csv_without_timing(d .. "/" .. n .. "/progress.csv"),
        csv_without_timing(full .. "/" .. n .. "/progress.csv"), "progress.csv of " .. n)
    end
  end)

  it("reports a failing cell as failed with its last error line; the others finish", function()
    local d = base .. "/failing"
    -- sac.lr=1e30 passes the config checks and diverges in the first SAC updates
    local rc, out = sh(string.format(
      "cd %q && %q sweep %q seed=1 sac.lr=1e30,0.0003 epochs=2 --out %q", base, exe, tiny, d))
    eq(rc, 1, "a sweep with a failed cell exits 1:\n" .. out)
    check(out:find("SAC update produced NaN/Inf", 1, true), "error line in: %s", out)
    local st
    rc, st = sh(string.format("%q sweep --status %q", exe, d))
    check(st:match("sac.lr=1e30%S*%s+epoch %-%s+eval_return %-%s+failed: " ..
      "mbpo: SAC update produced NaN/Inf"), "status:\n%s", st)
    check(st:match("sac.lr=0.0003%S*%s+epoch 2 .* done"), "status:\n%s", st)
    check(st:match("2 cells: 1 done, 0 running, 0 pending, 1 failed"), "summary:\n%s", st)
  end)

  it("refuses bad grids with one line, exit 1, and loses nothing of an existing sweep", function()
    local sweep_lua = read(full .. "/sweep.lua")
    local function bad(args, pattern, env)
      local rc, out = sh(string.format("cd %q && %s %q sweep %s", base, env or "", exe, args))
      check(rc ~= 0, "exit code 0 for %s", args)
      local lines = select(2, out:gsub("\n", ""))
      eq(lines, 1, "one line for " .. args .. ":\n" .. out)
      check(out:find(pattern, 1, true), "'%s' not in: %s", pattern, out)
    end
    local nd = string.format("--out %q", base .. "/new")
    bad(string.format("%q seed=1-2 epochz=3,4 %s", tiny, nd), "epochz")
    bad(string.format("%q seed=5-1 %s", tiny, nd), "seed=5-1")
    bad(string.format("%q seed=1-2 %s", base .. "/nope.lua", nd), "nope.lua")
    bad(string.format("%q seed=1-2 epochs=two %s", tiny, nd), "epochs")
    bad(string.format("%q seed=1-2 %s --slurm", tiny, nd), "sbatch", "PATH=/nonexistent")
    check(not lfs.attributes(base .. "/new"), "a refused sweep left a directory")
    -- another grid on the existing sweep
    bad(string.format("%q seed=1-3 epochs=%d --out %q", tiny, EPOCHS, full), "another sweep")
    eq(read(full .. "/sweep.lua"), sweep_lua, "sweep.lua changed")
    for _, n in ipairs(names) do
      check(lfs.attributes(full .. "/" .. n .. "/DONE"), "cell %s lost", n)
    end
  end)
end)
