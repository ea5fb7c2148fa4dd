-- Field tables (include/mbpo/fields.h, src/lua/l_fields.c): one home per setting. The C
-- defaults, the constructors' reader, the Lua defaults, mbpo help config and the README's
-- settings table all come from the tables; these checks hold them to it.
local SAC = require "mbpo.sac"
local Ens = require "mbpo.ensemble"
local Buffer = require "mbpo.buffer"
local Env = require "mbpo.env"
local schema = require "mbpo.schema"
local train = require "mbpo.train"
local th = require "mbpo.test"

local tables = {{"SAC.new", SAC.fields}, {"Ensemble.new", Ens.fields},
  {"Buffer.new", Buffer.fields}, {"E.make", Env.fields}}

-- a valid options table for each constructor, and the constructor
local base = {
  ["SAC.new"] = {function(t) return SAC.new(t) end, {obs = 3, act = 1, hidden = {8}}},
  ["Ensemble.new"] = {function(t) return Ens.new(t) end, {inputs = 4, outputs = 4, hidden = {8}}},
  ["Buffer.new"] = {function(t) return Buffer.new(t) end, {obs = 2, act = 1, capacity = 4}},
  ["E.make"] = {function(t) return Env.make("InvertedPendulum", t) end, {}},
}
local function with(name, k, v)
  local t = {}
  for key, x in pairs(base[name][2]) do t[key] = x end
  t[k] = v
  return function() return base[name][1](t) end
end
local function one_line(f, want)
  local ok, err = pcall(f)
  check(not ok, "accepted: %s", want)
  err = tostring(err):gsub("^[^:]*%.lua:%d+: ", "")
  check(not err:find("\n"), "more than one line: %s", err)
  check(err:find(want, 1, true), "'%s' not in: %s", want, err)
end

describe("fields", function()
  it("an unknown key to each constructor is one line naming the nearest key", function()
    for _, t in ipairs(tables) do
      local name, f1 = t[1], t[2][1].name
      local typo = f1:sub(1, -2) .. f1:sub(-1) .. "x"      -- "obs" -> "obsx"
      one_line(with(name, typo, 1), name .. ": unknown option '" .. typo .. "' (nearest: " .. f1)
    end
    local ens = Ens.new{inputs = 2, outputs = 2, hidden = {4}}
    local T = require "mbpo.tensor"
    local x, y = T.zeros(8, 2), T.zeros(8, 2)
    one_line(function() ens:fit(x, y, {max_epoch = 1}) end,
      "ens:fit: unknown option 'max_epoch' (nearest: max_epochs")
  end)

  it("a wrong type or a value out of range is one line naming the key, range and value", function()
    for _, t in ipairs(tables) do
      for _, f in ipairs(t[2]) do
        local wrong = f.type:find("^list") and "x" or {}
        one_line(with(t[1], f.name, wrong), t[1] .. ": " .. f.name .. " must be ")
        if f.min and f.min > -math.huge and not f.type:find("^list") then
          local v = f.open_min and f.min or f.min - 1
          one_line(with(t[1], f.name, v), string.format("%s: %s must be %s, got %s", t[1], f.name,
            f.range, tostring(v)))
        end
        if f.values then
          one_line(with(t[1], f.name, "nope"), t[1] .. ": " .. f.name .. " must be one of " ..
            table.concat(f.values, ", ") .. ", got 'nope'")
        end
      end
    end
    one_line(with("SAC.new", "hidden", {8, 0}),
      "SAC.new: hidden[2] must be an integer in [1, 65536], got 0")
    one_line(with("SAC.new", "auto_alpha", "yes"),
      "SAC.new: auto_alpha must be true or false, got 'yes'")
    one_line(with("SAC.new", "batch", 2.5),
      "SAC.new: batch must be an integer in [1, 16777216], got 2.5")
    one_line(with("Ensemble.new", "weight_decay", {0, 0, 0}),
      "Ensemble.new: weight_decay must be a list of 2 numbers, got 3 values")
    one_line(function() SAC.new{act = 1} end, "SAC.new: obs is required")
  end)

  it("the C defaults are the table's: a default-built object reports them", function()
    local a = SAC.new{obs = 3, act = 2}:config()
    for _, f in ipairs(SAC.fields) do
      if f.default ~= nil and a[f.name] ~= nil then
        if type(f.default) == "table" then
          eq(#a[f.name], #f.default, f.name)
          for i, v in ipairs(f.default) do eq(a[f.name][i], v, f.name) end
        elseif type(f.default) == "number" then
          near(a[f.name], f.default, 1e-7 * math.abs(f.default), f.name)
        else eq(a[f.name], f.default, f.name) end
      end
    end
    near(a.actor_lr, SAC.fields.lr.default, 1e-10, "lr sets the three rates")
    local info = Ens.new{inputs = 4, outputs = 4}:info()
    for _, f in ipairs(Ens.fields) do
      if not f.required then
        if type(f.default) == "table" then
          for i, v in ipairs(f.default) do near(info[f.name][i], v, 1e-7 * v, f.name) end
        elseif type(f.default) == "number" then
          near(info[f.name], f.default, 1e-6 * math.abs(f.default), f.name)
        else eq(info[f.name], f.default, f.name) end
      end
    end
    -- weight decay for another depth: the table's list, the fourth value for deeper layers
    local wd = Ens.new{inputs = 4, outputs = 4, hidden = {8, 8, 8, 8, 8, 8}}:info().weight_decay
    local d = Ens.fields.weight_decay.default
    eq(#wd, 7)
    for i, v in ipairs({d[1], d[2], d[3], d[4], d[4], d[4], d[5]}) do near(wd[i], v, 1e-7 * v) end
  end)

  it("the run config's defaults of core keys are the C tables' (one source)", function()
    local d = train.defaults
    eq(d.sac.target_entropy, SAC.fields.target_entropy.default)
    eq(d.sac.lr, SAC.fields.lr.default)
    for i, v in ipairs(Ens.fields.weight_decay.default) do eq(d.model.weight_decay[i], v) end
    local n = 0
    for _, r in ipairs(schema.settings) do
      if r.core then
        n = n + 1
        local node = d
        for part in r[1]:gmatch("[^%.]+") do node = node[part] end
        if type(node) == "table" then
          for i, v in ipairs(r.core.default) do eq(node[i], v, r[1]) end
        else eq(node, r.core.default, r[1]) end
        eq(r[1]:match("([^%.]+)$"), r.core.name, "config key and field name")
      end
    end
    check(n >= 20, "only %d core-backed keys", n)
  end)

  it("the README's settings table is mbpo help config --markdown", function()
    local f = assert(io.open(MBPO_ROOT .. "/README.md"))
    local readme = f:read("a")
    f:close()
    local block = readme:match(
      "<!%-%- settings: generated by mbpo help config %-%-markdown %-%->\n" ..
      "(.-)<!%-%- /settings %-%->")
    check(block, "no settings block in README.md")
    local rc, out = th.mbpo("help config --markdown")
    eq(rc, 0)
    check(block == out, "README.md's settings table differs from `mbpo help config --markdown`: " ..
      "regenerate it")
    eq(out, schema.help(true))
  end)
end)
