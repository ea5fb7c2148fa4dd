-- mbpo.nested: the reading of nested tables behind T.tensor(table) and SAC's table inputs.
-- flatten is checked directly (values in row-major order, the shape, each message without a
-- position), then through the bindings: the same messages placed at the line that called
-- T.tensor or the SAC method, and the values bit for bit those of T.tensor.
local nested = require "mbpo.nested"
local T = require "mbpo.tensor"
local SAC = require "mbpo.sac"
local same_list = require("mbpo.test").same_list

-- flatten's message for t, which must raise
local function message(t, who, maxdim)
  local ok, err = pcall(nested.flatten, t, who or "w", maxdim or 8)
  eq(ok, false, "raises")
  return err
end

describe("nested", function()
  it("flattens nested tables in row-major order and gives their shape", function()
    local v, s = nested.flatten({{1, 2, 3}, {4, 5, 6}}, "w", 8)
    same_list(v, {1, 2, 3, 4, 5, 6}, "values")
    same_list(s, {2, 3}, "shape")
    v, s = nested.flatten({{{1}, {2}}, {{3}, {4}}}, "w", 8)
    same_list(v, {1, 2, 3, 4}, "3-d values")
    same_list(s, {2, 2, 1}, "3-d shape")
    v, s = nested.flatten({}, "w", 8)
    eq(#v, 0, "no values")
    same_list(s, {0}, "an empty table is [0]")
    v, s = nested.flatten({{}, {}}, "w", 8)
    same_list(s, {2, 0}, "empty rows: [2 x 0]")
    v = nested.flatten({1.5, 2 ^ 60, -0.0}, "w", 8)
    eq(v[2], 2 ^ 60, "values are passed as they are")
    eq(math.type(nested.flatten({7}, "w", 8)[1]), "integer", "integers stay integers")
    local list = {3, 1, 2}
    eq(nested.flatten(list, "w", 8), list, "a list of numbers is its own values")
  end)

  it("says what is wrong and where, beginning with who, without a position", function()
    eq(message({{1, 2}, {3}}), "w: ragged nested table, [2] has 1 elements, expected 2")
    eq(message({{1, "a"}}, "tensor"), "tensor: expected a number at [1][2], got string")
    eq(message({{{1}}, {2}}), "w: expected a table at [2][1], got number")
    eq(message({{}, {1}}), "w: ragged nested table, [2] has 1 elements, expected 0")
    eq(message({1, {2}}), "w: expected a number at [2], got table")
    eq(message({{{1, 2}, {3, 4}}, {{5, 6}, {7}}}),
       "w: ragged nested table, [2][2] has 1 elements, expected 2")
    eq(message({{{1}}}, "w", 2), "w: nested table deeper than 2")
    eq(message({1, nil, 3}), "w: expected a number at [2], got nil")
  end)

  it("is what T.tensor and SAC read tables with, messages at their caller", function()
    local here = debug.getinfo(1, "S").short_src
    local function at(f, want)
      local ok, err = pcall(f)
      eq(ok, false, want)
      eq(err, string.format("%s:%d: %s", here, debug.getinfo(f, "S").linedefined, want))
    end
    at(function() return T.tensor{{1, 2}, {3}} end,
       "tensor: ragged nested table, [2] has 1 elements, expected 2")
    at(function() return T.new{{1, true}} end, "tensor: expected a number at [1][2], got boolean")
    local agent = SAC.new{obs = 3, act = 1}
    at(function() return agent:act({{1, 2, 3}, {1, 2}}) end,
       "sac:act: obs: ragged nested table, [2] has 2 elements, expected 3")
    local x = T.tensor{{0.1, 2}, {-3, 1e-3}}
    same_list(x:size(), {2, 2}, "shape")
    eq(x:get(1, 1), string.unpack("<f", string.pack("<f", 0.1)), "float32 of the number")
    eq(x:get(2, 2), string.unpack("<f", string.pack("<f", 1e-3)), "row-major order")
    same_list(T.tensor{{}, {}}:size(), {2, 0}, "an empty shape")
  end)
end)
