-- mbpo.rollout with a fake model, agent and buffers: both termination variants, rows with
-- NaN/Inf predictions dropped and counted, the masked variant storing a row only until it
-- terminates. Rows carry their id in column 2 so each stored transition can be named.
local T = require "mbpo.tensor"
local rollout = require "mbpo.rollout"

-- start rows: column 1 = 0, 1, 2, 3; column 2 = id 1..4
local function start()
  local o = T.zeros(4, 2)
  for i = 1, 4 do o:set(i, 1, i - 1); o:set(i, 2, i) end
  return o
end

-- fake pieces: next = obs + (1, 0), reward = id; nan_ids make column 1 NaN at step 1;
-- termination: column 1 >= 3. Records the rows of each step and every stored transition.
local function setup(nan_ids, all_nan)
  local rec = {sizes = {}, stored = {}}
  local step = 0
  local o = {
    real = {sample_obs = function(_, n) assert(n == 4); return start() end},
    agent = {act = function(_, obs) return T.zeros(obs:size(1), 1) end},
    ensemble = {step = function(_, obs)
      step = step + 1
      local n = obs:size(1)
      rec.sizes[#rec.sizes + 1] = n
      local nx, r = obs:clone(), T.zeros(n)
      for i = 1, n do
        local id = math.tointeger(obs:get(i, 2))
        nx:set(i, 1, obs:get(i, 1) + 1)
        r:set(i, id)
        if all_nan or (step == 1 and nan_ids[id]) then nx:set(i, 1, 0 / 0) end
      end
      return nx, r
    end},
    termination = function(nx) return nx:select(2, 1):ge(3) end,
    model_buffer = {add_batch = function(_, obs, act, r, nx, done)
      for i = 1, obs:size(1) do
        rec.stored[#rec.stored + 1] = string.format("%d:%g->%g r%g d%g",
          math.tointeger(obs:get(i, 2)), obs:get(i, 1), nx:get(i, 1), r:get(i), done:get(i))
      end
    end},
    batch = 4, length = 3, rng = nil,
  }
  return o, rec
end

describe("rollout", function()
  it("drops terminated rows, and rows predicted NaN, counting them", function()
    local o, rec = setup({[3] = true})
    local info = assert(rollout.run(o))
    eq(info.nonfinite, 1)
    eq(info.steps, 3)
    eq(info.transitions, 6)
    eq(table.concat(rec.sizes, ","), "4,2,1")
    eq(table.concat(rec.stored, " | "), "1:0->1 r1 d0 | 2:1->2 r2 d0 | 4:3->4 r4 d1 | " ..
      "1:1->2 r1 d0 | 2:2->3 r2 d1 | 1:2->3 r1 d1")
  end)

  it("masked variant: every row stepped, stored only until it terminates", function()
    local o, rec = setup({[3] = true})
    o.keep_terminated = true
    local info = assert(rollout.run(o))
    eq(info.nonfinite, 1)
    eq(info.transitions, 6)
    eq(table.concat(rec.sizes, ","), "4,3,3", "terminated rows are still stepped")
    eq(table.concat(rec.stored, " | "), "1:0->1 r1 d0 | 2:1->2 r2 d0 | 4:3->4 r4 d1 | " ..
      "1:1->2 r1 d0 | 2:2->3 r2 d1 | 1:2->3 r1 d1")
  end)

  it("default path without NaN is unchanged and stores every live row", function()
    local o, rec = setup({})
    local info = assert(rollout.run(o))
    eq(info.nonfinite, 0)
    eq(table.concat(rec.sizes, ","), "4,2,1")
    eq(info.transitions, 7)
    eq(#rec.stored, 7)
  end)

  it("fails only when every row of a step is non-finite", function()
    local o = setup({}, true)
    local info, err = rollout.run(o)
    eq(info, nil)
    assert(err:find("all 4 rows of step 1", 1, true), err)
  end)
end)
