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
