-- mbpo.schedule: the thresholded linear schedule against values worked out by hand from the
-- spec's formula k = floor(min(max(x + (e - a) / (b - a) * (y - x), x), y)), the paper's
-- schedules at the epochs where they change, and the error paths of resolve.
local S = require "mbpo.schedule"

describe("schedule.linear", function()
  it("matches the paper's schedules at hand-computed epochs", function()
    -- Hopper [20, 150, 1, 15]: 1 until epoch 29 (1 + 9/130*14 = 1.97), 2 from epoch 30
    -- (1 + 10/130*14 = 2.077), 8 at 85 (1 + 65/130*14 = 8), 15 from 150 on
    local hop = S.linear({20, 150, 1, 15})
    local want = {[1] = 1, [20] = 1, [29] = 1, [30] = 2, [85] = 8, [149] = 14, [150] = 15,
      [400] = 15}
    for e, k in pairs(want) do eq(hop(e), k, "Hopper epoch " .. e) end
    -- Ant [20, 100, 1, 25]: 3 at epoch 27 (1 + 7/80*24 = 3.1), 25 at 100
    local ant = S.linear(20, 100, 1, 25)
    eq(ant(27), 3, "Ant 27"); eq(ant(26), 2, "Ant 26 (2.8)"); eq(ant(100), 25, "Ant 100")
    -- constant schedules [20, 150, 1, 1] stay at 1
    local hc = S.linear({20, 150, 1, 1})
    for e = 1, 400, 37 do eq(hc(e), 1, "HalfCheetah " .. e) end
  end)

  it("clamps in the spec's order (max with x, then min with y)", function()
    -- with x > y, min(max(v, 5), 1) = 1 for every v: the reference never decreases k
    local down = S.linear(0, 10, 5, 1)
    for e = -5, 20 do eq(down(e), 1, "epoch " .. e) end
  end)

  it("rejects bad arguments with the argument's position", function()
    raises(function() S.linear(1, 2, "x", 4) end, "argument 3 must be a number")
    raises(function() S.linear({5, 5, 1, 2}) end, "a and b must differ")
  end)
end)

describe("schedule.resolve", function()
  it("turns numbers, lists and functions into functions", function()
    eq(S.resolve(3)(17), 3)
    eq(S.resolve({4})(1), 4)
    eq(S.resolve({20, 150, 1, 15})(85), 8)
    local f = function(e) return e % 3 end
    eq(S.resolve(f), f)
  end)

  it("rejects other shapes naming the value", function()
    raises(function() S.resolve({1, 2}) end, "rollout schedule must be")
    raises(function() S.resolve("fast") end, "got fast")
  end)
end)
