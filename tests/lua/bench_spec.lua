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
end)
