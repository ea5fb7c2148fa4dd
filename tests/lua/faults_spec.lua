-- Faults: a tiny run is killed (SIGKILL through MBPO_FAULT=POINT:N, see mbpo.checkpoint.fault)
-- at 20 moments (model training, rollouts, SAC updates, evaluation, between the files of a
-- checkpoint, before, between and after its renames, during the progress.csv rewrite of a
-- resume, two kills in a row), then resumed to the end: progress.csv must be identical,
-- outside the time_* columns, to the uninterrupted run. A write that fails (file size limit,
-- as a full disk) keeps the previous checkpoint and says so in one line.
local th = require "mbpo.test"
local tmpdir, sh, mbpo, csv = th.tmpdir, th.sh, th.mbpo, th.csv_without_timing

local exe = th.exe()
local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"
local ARGS = "epochs=3 seed=5"

describe("faults", function()
  local base = tmpdir()
  local ref = base .. "/ref"
  local rc, out = mbpo(string.format("run %q %s --out %q", tiny, ARGS, ref))
  assert(rc == 0, out)
  local want = csv(ref .. "/progress.csv")

  -- each case: the fault of the first run, then faults of successive resumes ("" = none)
  local cases = {
    {"model:3"}, {"model:4"}, {"rollout:3"}, {"rollout:5"}, {"sac:130"}, {"sac:200"},
    {"eval:2"}, {"eval:3"}, {"save:agent:2"}, {"save:loop:2"}, {"save:model:3"},
    {"save:model_buffer:2"}, {"save:real_buffer:2"}, {"save:before_rename:2"},
    {"save:between_renames:2"}, {"save:after_rename:2"},
    {"sac:150", "csv_rewrite:1"},                       -- during the rewrite of a resume
    {"sac:150", "save:between_renames:1"},              -- two kills in a row
    {"save:between_renames:2", "save:before_rename:1"}, -- two crashes inside checkpoints
    {"eval:2", "sac:50", "rollout:1"},                  -- three in a row
    -- before the first checkpoint was complete: nothing to resume, the run starts again
    {"model:1"}, {"sac:5"}, {"save:agent:1"}, {"sac:5", "model:1"},
  }
  for i, c in ipairs(cases) do
    it("resumes exactly after a kill at " .. table.concat(c, ", then "), function()
      local d = string.format("%s/c%d", base, i)
      local r, o = mbpo(string.format("run %q %s --out %q", tiny, ARGS, d), "MBPO_FAULT=" .. c[1])
      eq(r, 137, "killed at " .. c[1] .. ":\n" .. o)
      for j = 2, #c + 1 do
        r, o = mbpo(string.format("run --resume %q", d), c[j] and ("MBPO_FAULT=" .. c[j]) or "")
        if c[j] then eq(r, 137, "resume killed at " .. c[j] .. ":\n" .. o) end
      end
      eq(r, 0, "final resume:\n" .. o)
      eq(csv(d .. "/progress.csv"), want, "progress.csv after the kills")
      os.execute(string.format("rm -rf %q", d))
    end)
  end

  it("starts a run killed in its first epoch again, keeping its log and a lock", function()
    local d = base .. "/early"
    local r, o = mbpo(string.format("run %q %s --out %q", tiny, ARGS, d), "MBPO_FAULT=sac:5")
    eq(r, 137, o)
    local first = th.read(d .. "/log.txt")
    check(first and first:find("run directory " .. d, 1, true), "first log: %s", first)
    -- a copy whose lock this process holds, as a run still in its first epoch there would:
    -- refused, its config.lua untouched
    local held = base .. "/early_held"
    eq(sh(string.format("cp -a %q %q", d, held)), 0)
    assert(require("mbpo.checkpoint").lock(held))
    r, o = mbpo(string.format("run --resume %q epochs=4", held))
    eq(r, 1, o)
    check(o:find("is in use by another mbpo process", 1, true), o)
    check(not th.read(held .. "/config.lua"):find("resumed with", 1, true), "config.lua kept")
    r, o = mbpo(string.format("run --resume %q epochs=4", d))
    eq(r, 0, o)
    check(o:find("has no complete checkpoint (the run stopped in its first epoch", 1, true), o)
    local log = th.read(d .. "/log.txt")
    eq(log:sub(1, #first), first, "the first attempt's lines are kept")
    check(log:find("starts again from its config.lua", #first, true), log)
    check(th.read(d .. "/config.lua"):find("resumed with epochs=4", 1, true), "config.lua")
    local _, rows = require("mbpo.log").read_csv(d .. "/progress.csv")
    eq(#rows, 4)
    eq(csv(d .. "/progress.csv"):match("^" .. ("[^\n]*\n"):rep(4)), want,
      "the first three epochs are the uninterrupted run's")
  end)

  it("resumes exactly after a kill in bf16 too", function()
    -- layers of 64 so that the SAC and model products really run in bf16
    local B16 = ARGS .. " precision=bf16 sac.hidden=64,64 model.hidden=64,64"
    local d0 = base .. "/bf16ref"
    local r, o = mbpo(string.format("run %q %s --out %q", tiny, B16, d0))
    if r ~= 0 and o:find("use precision=fp32", 1, true) then -- no native bf16 on this CPU
      check(not o:find("traceback", 1, true), "one line: %s", o)
      return
    end
    eq(r, 0, o)
    local want16 = csv(d0 .. "/progress.csv")
    local d1 = base .. "/fp32ref"
    r, o = mbpo(string.format("run %q %s --out %q", tiny, (B16:gsub("bf16", "fp32")), d1))
    eq(r, 0, o)
    check(csv(d1 .. "/progress.csv") ~= want16, "bf16 and fp32 runs give the same numbers")
    for _, fault in ipairs{"sac:130", "model:3"} do
      local d = base .. "/bf16_" .. fault:gsub(":", "_")
      r, o = mbpo(string.format("run %q %s --out %q", tiny, B16, d), "MBPO_FAULT=" .. fault)
      eq(r, 137, "killed at " .. fault .. ":\n" .. o)
      r, o = mbpo(string.format("run --resume %q", d))
      eq(r, 0, "resume:\n" .. o)
      eq(csv(d .. "/progress.csv"), want16, "bf16 progress.csv after a kill at " .. fault)
    end
  end)

  it("a CPU without native bf16 refuses precision=bf16 in one line", function()
    -- oneDNN limited to AVX2 / AVX-512 without BF16, as on such a CPU
    for _, isa in ipairs{"AVX2", "AVX512_CORE"} do
      local d = base .. "/isa_" .. isa
      local r, o = mbpo(string.format("run %q epochs=1 precision=bf16 --out %q", tiny, d),
        "ONEDNN_MAX_CPU_ISA=" .. isa)
      eq(r, 1, o)
      check(o:find("use precision=fp32", 1, true), "message: %s", o)
      check(not o:find("traceback", 1, true), "one line: %s", o)
    end
  end)

  it("a checkpoint write that fails keeps the previous checkpoint, in one line", function()
    local d = base .. "/full"
    local r, o = mbpo(string.format("run %q epochs=1 seed=5 --out %q", tiny, d))
    eq(r, 0, o)
    local before = io.open(d .. "/checkpoint/COMPLETE"):read("a")
    -- files may not grow past 8 KiB: the buffers' files cannot be written (EFBIG, as ENOSPC)
    r, o = sh(string.format("cd %q && trap '' XFSZ && ulimit -f 8 && %q run --resume %q epochs=2",
      root, exe, d))
    eq(r, 1, o)
    check(o:find("checkpoint not written (the previous one is kept)", 1, true), "message: %s", o)
    check(not o:find("traceback", 1, true), "no traceback: %s", o)
    eq(io.open(d .. "/checkpoint/COMPLETE"):read("a"), before, "previous checkpoint intact")
    r, o = mbpo(string.format("run --resume %q epochs=2", d))
    eq(r, 0, "resume after the failed write:\n" .. o)
  end)

  it("a flipped byte in a checkpoint file is caught by its checksum", function()
    local d = base .. "/flip"
    local r, o = mbpo(string.format("run %q epochs=1 seed=5 --out %q", tiny, d))
    eq(r, 0, o)
    local path = d .. "/checkpoint/loop.safetensors"
    local f = io.open(path, "r+b")
    local size = f:seek("end")
    f:seek("set", size - 3)
    local b = f:read(1)
    f:seek("set", size - 3)
    f:write(string.char(b:byte() ~ 1))
    f:close()
    r, o = mbpo(string.format("run --resume %q epochs=2", d))
    eq(r, 1, o)
    check(o:find("loop.safetensors does not match its checksum", 1, true), "message: %s", o)
  end)

  it("a second run of the same directory refuses while the first holds it", function()
    local d = base .. "/lock"
    local r, o = mbpo(string.format("run %q epochs=1 seed=5 --out %q", tiny, d))
    eq(r, 0, o)
    -- hold the lock from this process, as a running mbpo would
    local ck = require "mbpo.checkpoint"
    assert(ck.lock(d))
    r, o = mbpo(string.format("run --resume %q epochs=2", d))
    eq(r, 1, o)
    check(o:find("is in use by another mbpo process", 1, true), "message: %s", o)
  end)
end)
