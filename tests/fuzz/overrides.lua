-- Driver of fuzz_overrides: each line of the input is an argument of `mbpo run` that must
-- parse as key=value (as mbpo.run does); the overrides are applied to mbpo.train's defaults
-- and checked. Expected failures return nil, message; anything that raises is a bug. A config
-- that passes is written as config.lua and must load back in the sandbox to a config that
-- passes again with the same values.
local config = require "mbpo.config"
local schema = require "mbpo.schema"
local train = require "mbpo.train"

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= a and b ~= b then return true end -- NaN
    return a == b
  end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local path = os.tmpname()
function FUZZ_CLEANUP() os.remove(path) end

return function(bytes)
  local flat, order = {}, {}
  for line in bytes:gmatch("[^\n]+") do
    local k, v = line:match("^([%a_][%w_%.]*)=(.*)$")
    if not k then return end
    if flat[k] == nil then order[#order + 1] = k end
    flat[k] = v
  end
  local cfg, err = config.apply_overrides(config.copy(train.defaults), train.defaults, flat, order)
  if not cfg then
    assert(type(err) == "string" and not err:find("\n"), "error is not one line")
    return
  end
  local bad = schema.check(cfg)
  if bad then
    assert(type(bad) == "string" and not bad:find("\n"), "schema message is not one line")
    return
  end
  -- config.lua round trip in the sandbox
  local f = assert(io.open(path, "w"))
  f:write(config.to_lua(cfg, "fuzz"))
  f:close()
  local ok, back = config.load_sandboxed(path)
  if not ok then error("config.lua of a valid config does not load: " .. tostring(back)) end
  local again = assert(config.merge(train.defaults, back, train.defaults))
  local bad2 = schema.check(again)
  if bad2 then error("config.lua read back fails the schema: " .. bad2) end
  if not same(again, cfg) then error("config.lua read back differs") end
end
