-- mbpo.bench.sac's check on the second core: a multi-thread round in which the pool's caller
-- ran most sections alone is named (on a shared VM such a round runs near one-thread speed).
local sacbench = require "mbpo.bench.sac"
local core = require "mbpo.core"
local SAC = require "mbpo.sac"

-- what f writes through io.write, as one string
local function captured(f)
  local out, saved = {}, io.write
  io.write = function(...) for _, v in ipairs{...} do out[#out + 1] = tostring(v) end end
  local ok, err = pcall(f)
  io.write = saved
  assert(ok, err)
  return table.concat(out)
end

describe("bench sac", function()
  it("alone_share is the share of sections the caller ran alone between two snapshots", function()
    local share, wait = sacbench.alone_share({sections = 10, alone = 2, wait = 0.5},
      {sections = 30, alone = 7, wait = 0.75})
    eq(share, 0.25)
    eq(wait, 0.25)
    eq(sacbench.alone_share({sections = 5, alone = 1, wait = 0},
      {sections = 5, alone = 1, wait = 0}), 0)
  end)

  it("counts the four sections of each SAC update at 2 threads, none at 1", function()
    local saved = core.threads()
    local agent = SAC.new{obs = 3, act = 2, hidden = {16}, seed = 1}
    local batch = sacbench.random_batch(3, 2, 32)
    for _, th in ipairs{1, 2} do
      core.set_threads(th)
      local a = core.pool_stats()
      for _ = 1, 5 do agent:update(batch, {}) end
      local b = core.pool_stats()
      eq(b.sections - a.sections, th == 1 and 0 or 20)
      local s = sacbench.alone_share(a, b)
      check(s >= 0 and s <= 1, "share " .. s)
    end
    core.set_threads(saved)
    agent:close()
  end)

  it("lone_note names the multi-thread rounds run mostly alone or waiting, only those", function()
    local function v(alone, wait) return {alone = alone, wait = wait} end
    local text = captured(function()
      sacbench.lone_note("hopper bf16", {[1] = {v(1, 0), v(1, 0.5)},
        [2] = {v(0.1, 0.05), v(0.9, 0), v(0.2, 0.25)}})
    end)
    check(text:find("hopper bf16: the other core was not fully ours in 2T round 2 (90% of " ..
      "sections alone), 2T round 3 (25% of the time waiting):", 1, true), text)
    check(not text:find("1T") and not text:find("round 1"), text)
    eq(captured(function() sacbench.lone_note("x", {[1] = {v(1, 1)}, [2] = {v(0.5, 0.19)}}) end),
      "")
  end)

  it("summaries asks the modern peer only when the options allow a peer", function()
    local bench = require "mbpo.bench"
    local saved, calls = bench.peer2, 0
    bench.peer2 = function()
      calls = calls + 1
      return {sac = {ms = 2, mode = "eager", threads = 1}}
    end
    local list = {{"sac_update", "fp32", 1.0, 3.0}}
    local ok, err = pcall(function()
      local off = captured(function() bench.summaries(list, 11, 3, {peer = false}) end)
      eq(calls, 0)
      eq(off, "summary sac_update fp32 ours 1.000 peer 3.000 ratio 3.00x\n")
      if os.getenv("MBPO_BENCH_NO_PEER2") ~= "1" then
        local on = captured(function() bench.summaries(list, 11, 3, {}) end)
        eq(calls, 1)
        check(on:find("summary2 sac_update fp32 ours 1.000 peer 2.000 ratio 2.00x", 1, true), on)
      end
    end)
    bench.peer2 = saved
    assert(ok, err)
  end)
end)

describe("bench machine load", function()
  local bench = require "mbpo.bench"
  local stat = "cpu  100 50 30 800 20 0 5 15 0 0\ncpu0 50 25 15 400 10 0 2 8 0 0\n" ..
    "cpu1 50 25 15 400 10 0 3 7 0 0\nintr 1 2 3\n"
  -- a command name with a space and a parenthesis in it; utime 7, stime 3, cutime 40, cstime 10
  local self = "123 (a) b) S 1 1 1 0 -1 0 0 0 0 0 7 3 40 10 20 0 1 0 5 0 0"

  it("machine_sample reads the machine's busy ticks and ours with our children's", function()
    local s = bench.machine_sample(stat, self)
    eq(s.cpus, 2)
    eq(s.total, 1020)
    eq(s.busy, 200) -- user + nice + system + irq + softirq + steal
    eq(s.ours, 60)
    eq(bench.machine_sample("intr 1\n", self), nil)
    eq(bench.machine_sample(stat, "123 (x"), nil)
  end)

  it("machine_sample on this machine counts the CPU time this process spends", function()
    local a = bench.machine_sample()
    if not a then return check(io.open("/proc/stat") == nil, "/proc/stat readable") end
    check(a.cpus >= 1 and a.total > 0 and a.busy <= a.total, "sample")
    local t0, x = os.clock(), 0
    while os.clock() - t0 < 0.1 do x = x + 1 end
    local b = bench.machine_sample()
    check(b.ours - a.ours >= 5, "ours grew by " .. (b.ours - a.ours) .. " ticks in 0.1 s")
    check(b.busy - a.busy >= b.ours - a.ours - 2, "the machine's busy ticks include ours")
  end)

  it("others_note names the cores other processes used, only above a tenth of one", function()
    local a = {busy = 100, total = 1000, cpus = 2, ours = 50}
    -- 1000 ticks on 2 cpus pass; we used 400, the machine 1300: others 900 = 1.8 cores
    local cores, note = bench.others_note("bench sac", a, {busy = 1400, total = 2000, cpus = 2,
      ours = 450})
    check(math.abs(cores - 1.8) < 1e-12, cores)
    check(note:find("bench sac: other processes kept 1.80 of the machine's 2 cores busy", 1,
      true), note)
    cores, note = bench.others_note("x", a, {busy = 540, total = 2000, cpus = 2, ours = 450})
    check(math.abs(cores - 0.08) < 1e-12 and note == nil, cores)
    eq(bench.others_note("x", nil, a), nil)
    eq(bench.others_note("x", a, a), nil)
  end)
end)
