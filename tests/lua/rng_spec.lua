-- mbpo.rng: seeding, state round trips, ranges and argument errors
local io_ = require "mbpo.io"
local G = require "mbpo.rng"

describe("rng", function()
  it("is reproducible from a seed and restores its state exactly", function()
    local a, b = G.new(11), G.new(11)
    for _ = 1, 10 do eq(a:uniform(), b:uniform(), "same seed") end
    local s = a:state()
    eq(tostring(s), "mbpo.Array U64 [4]", "the state: four generator words")
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
    raises(function() g:set_state("xyz") end,
      "rng:load_state: rng is 'xyz' in the state, U64 [4] in this generator")
    raises(function() g:set_state(io_.array("U64", {1, 2, 3})) end,
      "rng is U64 [3] in the state, U64 [4] in this generator")
    raises(function() g:set_state(io_.array("U64", {0, 0, 0, 0})) end, "rng is all zero")
    -- a state of an older build (64 hex digits): one line naming the format difference
    raises(function() g:set_state(string.rep("0", 63) .. "1") end,
      "rng is hex text: the state was written by an older mbpo, which stored generator " ..
      "words as hex strings (this one stores U64 numbers)")
    raises(function() g:integer(5, 1) end, "empty range [5, 1]")
    raises(function() G.new("abc") end, "number expected")
    raises(function() g.uniform(nil) end, "mbpo.Rng expected")
  end)
end)
