-- mbpo.config: configs as nested Lua tables. Merges a script's table and command-line
-- key=value overrides over the defaults, checking every key and type (a typo is an error
-- naming the closest valid keys, never silently ignored), and writes the resolved config
-- back as a Lua file that can be run again.
local M = {}

-- Levenshtein distance (for "did you mean")
local function distance(a, b)
  local la, lb = #a, #b
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

local function is_array(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t and n > 0
end

-- every settable key of a defaults table, dotted ("rollout.batch"); arrays are leaves
function M.keys(defaults, prefix, out)
  out = out or {}
  for k, v in pairs(defaults) do
    local key = prefix and (prefix .. "." .. k) or tostring(k)
    if type(v) == "table" and not is_array(v) and next(v) ~= nil then
      M.keys(v, key, out)
    else
      out[#out + 1] = key
    end
  end
  table.sort(out)
  return out
end

-- the closest valid keys to a wrong one, as "'a', 'b'"
function M.closest(defaults, key)
  local keys, d = M.keys(defaults), {}
  for _, k in ipairs(keys) do d[k] = distance(key, k) end
  table.sort(keys, function(x, y)
    if d[x] ~= d[y] then return d[x] < d[y] end
    return x < y
  end)
  local pick = {}
  for i = 1, math.min(3, #keys) do pick[i] = "'" .. keys[i] .. "'" end
  return table.concat(pick, ", ")
end

-- parses a command-line string into the type of the default value
local function parse_value(key, text, default)
  local t = type(default)
  if t == "number" then
    local v = tonumber(text)
    if not v then
      return nil, string.format("config key '%s' expects a number, got '%s'", key, text)
    end
    if math.type(default) == "integer" and math.type(v) == "float" then
      if v ~= math.floor(v) or not math.tointeger(v) then
        return nil, string.format("config key '%s' expects an integer, got '%s'", key, text)
      end
      v = math.tointeger(v)
    end
    return v
  elseif t == "boolean" then
    local l = text:lower()
    if l == "true" or l == "1" or l == "yes" or l == "on" then return true end
    if l == "false" or l == "0" or l == "no" or l == "off" then return false end
    return nil, string.format("config key '%s' expects true or false, got '%s'", key, text)
  elseif t == "string" then
    return text
  elseif t == "table" then -- arrays of numbers or strings: "20,150,1,15" or "{20,150,1,15}"
    local inner = text:match("^%s*{(.*)}%s*$") or text
    local out = {}
    for item in inner:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      local want = default[1]
      if type(want) == "string" then out[#out + 1] = item
      else
        local v = tonumber(item)
        if not v then
          return nil, string.format("config key '%s' expects a list of numbers, got '%s'",
            key, text)
        end
        out[#out + 1] = v
      end
    end
    return out
  elseif t == "function" then
    -- a list of numbers replaces a schedule function with the thresholded linear schedule
    local v, err = parse_value(key, text, {0})
    if not v then return nil, err end
    return v
  end
  return nil, string.format("config key '%s' cannot be set from the command line", key)
end

-- deep copy (functions and userdata shared)
function M.copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = M.copy(v) end
  return c
end

-- checks the type of a script-given value against the default
local function check_type(key, v, default)
  local tv, td = type(v), type(default)
  if td == "nil" then return true end
  if td == tv then
    if td == "number" and math.type(default) == "integer" and math.type(v) == "float" then
      if v ~= math.floor(v) then
        return nil, string.format("config key '%s' expects an integer, got %s", key, tostring(v))
      end
    end
    return true
  end
  -- schedules: a function may stand where a list is expected and the reverse
  if (td == "function" and tv == "table") or (td == "table" and tv == "function") then
    return true
  end
  -- a custom task: env = {mjcf = "robot.xml", task = "task.lua"} instead of a task name
  if key == "env" and tv == "table" then
    if type(v.mjcf) ~= "string" or type(v.task) ~= "string" then
      return nil,
        "config key 'env' must be a task name or {mjcf = \"file.xml\", task = \"task.lua\"}"
    end
    return true
  end
  return nil, string.format("config key '%s' expects a %s, got a %s (%s)", key, td, tv, tostring(v))
end

-- merges `over` (nested table) into a copy of `base`, validating keys and types against
-- `defaults`; returns the merged table or nil, message
function M.merge(base, over, defaults, prefix, root)
  root = root or defaults
  local out = M.copy(base)
  for k, v in pairs(over) do
    local key = prefix and (prefix .. "." .. k) or tostring(k)
    local d = defaults[k]
    if d == nil then
      return nil, string.format("unknown config key '%s' (did you mean %s?)", key,
        M.closest(root, key))
    end
    if type(d) == "table" and not is_array(d) and next(d) ~= nil and type(v) == "table" then
      local sub, err = M.merge(out[k] or {}, v, d, key, root)
      if not sub then return nil, err end
      out[k] = sub
    else
      local ok, err = check_type(key, v, d)
      if not ok then return nil, err end
      out[k] = M.copy(v)
    end
  end
  return out
end

-- applies flat dotted overrides {["rollout.batch"] = "50000"} in place; nil, message on error
function M.apply_overrides(cfg, defaults, flat, order)
  for _, key in ipairs(order) do
    local text = flat[key]
    local node, dnode = cfg, defaults
    local parts = {}
    for p in key:gmatch("[^%.]+") do parts[#parts + 1] = p end
    for i = 1, #parts - 1 do
      local p = parts[i]
      if type(dnode[p]) ~= "table" or is_array(dnode[p]) then
        return nil, string.format("unknown config key '%s' (did you mean %s?)", key,
          M.closest(defaults, key))
      end
      node[p] = node[p] or {}
      node, dnode = node[p], dnode[p]
    end
    local last = parts[#parts]
    local d = dnode[last]
    if d == nil or (type(d) == "table" and not is_array(d) and next(d) ~= nil) then
      return nil, string.format("unknown config key '%s' (did you mean %s?)", key,
        M.closest(defaults, key))
    end
    local v, err = parse_value(key, text, node[last] ~= nil and node[last] or d)
    if v == nil then return nil, err end
    node[last] = v
  end
  return cfg
end

-- Lua source of a function defined in a file (for writing schedules into config.lua)
local function function_source(f)
  local info = debug.getinfo(f, "S")
  if not info or info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return nil end
  local fh = io.open(info.source:sub(2), "r")
  if not fh then return nil end
  local lines, n = {}, 0
  for line in fh:lines() do
    n = n + 1
    if n >= info.linedefined and n <= info.lastlinedefined then lines[#lines + 1] = line end
  end
  fh:close()
  if #lines == 0 then return nil end
  lines[1] = lines[1]:match("(function%s*%(.*)$") or lines[1]
  lines[#lines] = lines[#lines]:match("^(.*end)") or lines[#lines]
  return table.concat(lines, "\n")
end

-- nil when every function of cfg can be written into config.lua (its source is in a file and
-- it has no upvalues other than _ENV), else one line naming the key and saying how to write it
function M.unserialisable(cfg, prefix)
  local keys = {}
  for k in pairs(cfg) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v, key = cfg[k], prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(v) == "table" then
      local bad = M.unserialisable(v, key)
      if bad then return bad end
    elseif type(v) == "function" then
      local ups = {}
      for i = 1, math.huge do
        local name = debug.getupvalue(v, i)
        if not name then break end
        if name ~= "_ENV" then ups[#ups + 1] = name ~= "" and name or "?" end
      end
      local how = "write its values inside the function body (function(epoch, info) " ..
        "local budget = 0.05 ... end) or give a list {a, b, x, y}"
      if #ups > 0 then
        return string.format("config key '%s' is a function with upvalues (%s): config.lua " ..
          "cannot hold them, so the run could not be resumed or rerun; %s", key,
          table.concat(ups, ", "), how)
      end
      if not function_source(v) then
        return string.format("config key '%s' is a function whose source is not in a readable " ..
          "file (defined by load or in C), so config.lua cannot hold it; define it in the " ..
          "script, %s", key, how)
      end
    end
  end
  return nil
end

local function serialize(v, indent)
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "0/0" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "-math.huge" end
    return string.format("%.17g", v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "function" then
    local src = function_source(v)
    if src then return src end
    return "nil --[[ a function defined outside a file ]]"
  elseif t == "table" then
    if is_array(v) then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = serialize(x, indent) end
      return "{" .. table.concat(parts, ", ") .. "}"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local pad = string.rep("  ", indent + 1)
    local parts = {}
    for _, k in ipairs(keys) do
      local name = type(k) == "string" and k:match("^[%a_][%w_]*$") and k
        or ("[" .. serialize(k, 0) .. "]")
      parts[#parts + 1] = pad .. name .. " = " .. serialize(v[k], indent + 1)
    end
    if #parts == 0 then return "{}" end
    return "{\n" .. table.concat(parts, ",\n") .. ",\n" .. string.rep("  ", indent) .. "}"
  end
  return "nil"
end

-- the config as Lua source: "return { ... }"
function M.to_lua(cfg, header)
  return (header and ("-- " .. header:gsub("\n", "\n-- ") .. "\n") or "") ..
    "return " .. serialize(cfg, 0) .. "\n"
end

-- loads a run directory's config.lua as data: an environment with only pure functions
-- (math, string, table and the basic value functions); no io, os, require, load, debug.
-- Returns true, value or nil, one line.
function M.load_sandboxed(path)
  local f = io.open(path, "r")
  if not f then return nil, "cannot open " .. path end
  local src = f:read("a")
  f:close()
  local env = {math = M.copy(math), string = M.copy(string), table = M.copy(table),
    pairs = pairs, ipairs = ipairs, type = type, tostring = tostring, tonumber = tonumber,
    select = select, error = error, assert = assert, pcall = pcall, next = next,
    setmetatable = setmetatable, rawget = rawget,
    -- not the strings' metatable: through it a config could change the host's string library
    getmetatable = function(v) if type(v) ~= "string" then return getmetatable(v) end end,
    rawequal = rawequal, rawlen = rawlen, unpack = table.unpack}
  env.math.randomseed = nil
  local chunk, err = load(src, "@" .. path, "t", env)
  if not chunk then return nil, err end
  local ok, res = pcall(chunk)
  if not ok then
    return nil, path .. " is loaded as data (no io, os, require, load): " .. tostring(res)
  end
  return true, res
end

M.distance = distance
M.is_array = is_array
return M
