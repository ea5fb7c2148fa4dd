-- mbpo.rng: seeding, state round trips, ranges and argument errors
local G = require "mbpo.rng"

describe("rng", function()
  it("is reproducible from a seed and restores its state exactly", function()
    local a, b = G.new(11), G.new(11)
    for _ = 1, 10 do eq(a:uniform(), b:uniform(), "same seed") end
    local s = a:state()
    local xs = {}
    for i = 1, 20 do xs[i] = a:normal() end
    a:set_state(s)
    for i = 1, 20 do eq(a:normal(), xs[i], "after set_state") end
    local c = G.new(99)
    c:set_state(s)
    for i = 1, 5 do eq(c:normal(), xs[i], "state moved to another generator") end
  end)

  it("gives independent streams from one seed", function()
    local a, b = G.new(5, 0), G.new(5, 1)
    local same = 0
    for _ = 1, 100 do if a:uniform() == b:uniform() then same = same + 1 end end
    eq(same, 0, "identical draws across streams")
  end)

  it("draws integers inclusive of both ends", function()
    local g = G.new(1)
    local seen = {}
    for _ = 1, 2000 do
      local k = g:integer(-2, 2)
      check(k >= -2 and k <= 2, "out of range %d", k)
      seen[k] = true
    end
    for k = -2, 2 do check(seen[k], "never drew %d", k) end
  end)

  it("makes permutations", function()
    local p = G.new(3):permutation(50)
    local seen = {}
    for _, v in ipairs(p) do seen[v] = (seen[v] or 0) + 1 end
    for i = 1, 50 do eq(seen[i], 1, "count of " .. i) end
  end)

  it("rejects bad input with clear messages", function()
    local g = G.new(1)
    raises(function() g:set_state("xyz") end, "expected 64 hex digits")
    raises(function() g:set_state(string.rep("0", 64)) end, "all-zero state")
    raises(function() g:integer(5, 1) end, "empty range [5, 1]")
    raises(function() G.new("abc") end, "number expected")
    raises(function() g.uniform(nil) end, "mbpo.Rng expected")
  end)
end)
