-- mbpo.json: the JSON codec behind mbpo.io.json_encode and mbpo.io.json_decode (lua/mbpo/io.lua
-- takes both functions from here; JSON is on no hot path: tests, tools).
--   json_encode(value) -> string          raises "io.json_encode: ..." on values JSON
--                                          cannot hold, naming where: " (in 'key') (at [i])"
--   json_decode(text) -> value | nil, "io.json_decode: malformed JSON near byte B of N"
-- Mapping: tables with keys 1..n (n >= 1) are arrays, other tables objects with string keys
-- written in sorted order, an empty table is {}; integers are written exactly; floats with
-- 15 significant digits when that reads back within one rounding, else 17; integral numbers
-- within +-2^53 decode as Lua integers, others as floats; null decodes as nil (a hole in an
-- array). The output is what cJSON's unformatted printer wrote, byte for byte (the codec
-- this replaces), and the reader accepts what its parser accepted.
local M = {}

local MAXDEPTH = 200     -- nesting limit of encode (also catches cycles)
local MAXNEST = 1000     -- nesting limit of decode
local ERRMAX = 512       -- messages stop growing "(in ...)" parts at this length

-- Encoding ----------------------------------------------------------------------------------

local ESC = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
  ['\r'] = '\\r', ['\t'] = '\\t'}

local function quote(s)
  return '"' .. s:gsub('[\0-\31"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- a finite float as cJSON printed it: %1.15g when that reads back within one rounding (a
-- relative DBL_EPSILON), else %1.17g
local function number(d)
  local s = string.format("%1.15g", d)
  local t = tonumber(s)
  if math.abs(t - d) <= math.max(math.abs(t), math.abs(d)) * 2.220446049250313e-16 then return s end
  return string.format("%1.17g", d)
end

-- err with " (where)" appended while it stays under ERRMAX bytes
local function at(err, where)
  if #err + #where + 4 < ERRMAX then return err .. " (" .. where .. ")" end
  return err
end

-- appends the JSON of v to out; returns nil, or the message of what cannot be written
local function encode(v, depth, out)
  local t = type(v)
  if t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "string" then
    if v:find("\0", 1, true) then return "string contains a NUL byte" end
    out[#out + 1] = quote(v)
  elseif math.type(v) == "integer" then
    out[#out + 1] = string.format("%d", v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return string.format("%g cannot be written as JSON", v)
    end
    out[#out + 1] = number(v)
  elseif t ~= "table" then
    return "cannot encode a " .. t
  elseif depth >= MAXDEPTH then
    return string.format("tables nested more than %d deep (a cycle?)", MAXDEPTH)
  else
    local n, keys, allstrings = rawlen(v), {}, true
    for k in next, v do
      keys[#keys + 1] = k
      if type(k) ~= "string" then allstrings = false end
    end
    if n > 0 and #keys == n then  -- an array: the keys are exactly 1..n
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        local err = encode(rawget(v, i), depth + 1, out)
        if err then return at(err, string.format("at [%d]", i)) end
      end
      out[#out + 1] = "]"
      return nil
    end
    if not allstrings then
      return "table keys must be all strings (an object) or 1..n (an array)"
    end
    for _, k in ipairs(keys) do
      if k:find("\0", 1, true) then return "key contains a NUL byte" end
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      out[#out + 1] = (i > 1 and "," or "") .. quote(k) .. ":"
      local err = encode(rawget(v, k), depth + 1, out)
      if err then return at(err, "in '" .. k:sub(1, 100) .. "'") end
    end
    out[#out + 1] = "}"
  end
  return nil
end

function M.json_encode(...)
  if select("#", ...) == 0 then
    error("bad argument #1 to 'mbpo.io.json_encode' (value expected)", 0)
  end
  local out = {}
  local err = encode((...), 0, out)
  if err then error("io.json_encode: " .. err, 0) end
  return table.concat(out)
end

-- Decoding ----------------------------------------------------------------------------------
-- A reader over text s: each function takes the position i of a value (1-based) and returns
-- the value and the position after it, or raises the position of the failure (an integer).

local WS = "^[\0- ]*"  -- what the parser skips between tokens: bytes up to the space

local function skip(s, i) return select(2, s:find(WS, i)) + 1 end

local function fail(i) error(i, 0) end

-- the code unit of \uXXXX with its u at i (cJSON read a malformed one as 0)
local function hex4(s, i)
  local h = s:sub(i + 1, i + 4)
  return h:find("^%x%x%x%x$") and tonumber(h, 16) or 0
end

local UNESC = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r',
  t = '\t'}

-- the string whose opening quote is at i, and the position after it. As cJSON: the closing
-- quote is found first (escapes skip a byte); a failure is reported at its escape, or just
-- after the opening quote for the string as a whole; the text stops at a \u0000.
local function str(s, i)
  local e = i + 1
  if s:sub(i, i) ~= '"' then fail(e) end
  repeat  -- e: the closing quote
    e = s:find('["\\]', e)
    if not e or (s:byte(e) == 92 and e == #s) then fail(i + 1) end
    local quote = s:byte(e) == 34
    if not quote then e = e + 2 end
  until quote
  local parts, j = {}, i + 1
  while j < e do
    local k = s:find("\\", j, true)
    if not k or k > e then k = e end
    parts[#parts + 1] = s:sub(j, k - 1)
    if k == e then break end
    local c = s:sub(k + 1, k + 1)
    j = k + 2
    if c == "u" then
      local u = e - k >= 6 and hex4(s, k + 1) or fail(k)
      j = k + 6
      if u >= 0xDC00 and u <= 0xDFFF then fail(k) end
      if u >= 0xD800 and u <= 0xDBFF then  -- a surrogate pair
        if e - k < 12 or s:sub(j, j + 1) ~= "\\u" then fail(k) end
        local lo = hex4(s, j + 1)
        if lo < 0xDC00 or lo > 0xDFFF then fail(k) end
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
        j = j + 6
      end
      parts[#parts + 1] = utf8.char(u)
    else
      parts[#parts + 1] = UNESC[c] or fail(k)
    end
  end
  return (table.concat(parts):match("^[^\0]*")), e + 1
end

local value

-- the elements of an array or the members of an object opening at i, closing with close
local function list(s, i, depth, close, member)
  if depth >= MAXNEST then fail(i) end
  local t, n = {}, 0
  i = skip(s, i + 1)
  if s:sub(i, i) == close then return t, i + 1 end
  while true do
    local k, v
    if member then
      k, i = str(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then fail(i) end
      i = skip(s, i + 1)
    else
      n = n + 1
      k = n
    end
    v, i = value(s, i, depth + 1)
    t[k] = v
    i = skip(s, i)
    local c = s:sub(i, i)
    if c == close then return t, i + 1 end
    if c ~= "," then fail(i) end
    i = skip(s, i + 1)
  end
end

function value(s, i, depth)
  local c = s:sub(i, i)
  if c == "{" then return list(s, i, depth, "}", true) end
  if c == "[" then return list(s, i, depth, "]", false) end
  if c == '"' then return str(s, i) end
  if c == "-" or c:find("^%d") then
    local text = s:match("^[-+%deE.]+", i)  -- what cJSON handed to strtod, which reads
    local d = tonumber(text)                 -- the longest number it begins with
    while not d and #text > 1 do
      text = text:sub(1, -2)
      d = tonumber(text)
    end
    if not d then fail(i) end
    d = d + 0.0
    if d == math.floor(d) and math.abs(d) <= 9007199254740992.0 then d = math.tointeger(d) end
    return d, i + #text
  end
  if s:find("^true", i) then return true, i + 4 end
  if s:find("^false", i) then return false, i + 5 end
  if s:find("^null", i) then return nil, i + 4 end
  fail(i)
end

function M.json_decode(...)
  local s = ...
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then
    error("bad argument #1 to 'mbpo.io.json_decode' (string expected, got " ..
          (select("#", ...) == 0 and "no value" or type(s)) .. ")", 0)
  end
  local ok, v, i = pcall(function()
    local start = s:sub(1, 3) == "\239\187\191" and 4 or 1  -- a UTF-8 byte order mark
    local x, j = value(s, skip(s, start), 0)
    j = select(2, s:find("^[ \t\n\r]*", j)) + 1  -- only whitespace may follow the value
    if j <= #s then fail(j) end
    return x, j
  end)
  if ok then return v end
  if type(v) ~= "number" then error(v, 0) end  -- not a failure of the text (memory)
  return nil, string.format("io.json_decode: malformed JSON near byte %d of %d",
                            math.max(math.min(v, #s) - 1, 0), #s)
end

return M
