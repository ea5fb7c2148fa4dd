-- mbpo.io: safetensors checkpoints for the Lua layer, and JSON. The reader, the writer and
-- mbpo.Array are the C module's (mbpo.io.native, src/lua/l_io.c, over src/core/io.c); this
-- file checks and sorts what io.save is given, and the JSON pair is lua/mbpo/json.lua.
--   local io = require "mbpo.io"
--   io.save(path, tensors [, metadata]) -> true | nil, message
--       tensors: {name = mbpo.Tensor (F32, any strides) | mbpo.Array (F64, U64, I64 of its
--                      shape) | integer (I64, shape []) | {integers...} (I64, shape [n])}
--       metadata: {string = string|number}; names are written sorted, so files are
--       reproducible. Writes PATH.tmp-<pid>, fsyncs, renames into place.
--   io.load(path) -> tensors, metadata | nil, message
--       F32 -> mbpo.Tensor of the stored shape; I64 of shape [] -> an integer; any other
--       (F64, U64, I64) -> mbpo.Array of the stored shape; metadata values are strings.
--   io.array(dtype, values) -> mbpo.Array ("F64", "U64" or "I64") of [#values]; a number
--       instead of the list gives an array of shape []
--   io.write_text(path, s) -> true | nil, message   (atomic, fsynced, like save)
--   io.checksum(path) -> 16 hex digits | nil, message   (of the file's bytes; see io.h)
--   io.json_encode(value) -> string      (raises on values JSON cannot hold)
--   io.json_decode(string) -> value | nil, message
-- Mistakes in the arguments of io.save raise one line "io.save: ..." (as the C functions'
-- own errors, without a position).
local N = require "mbpo.io.native"
local J = require "mbpo.json"
local T = require "mbpo.tensor"

local M = {load = N.load, array = N.array, write_text = N.write_text, checksum = N.checksum,
           json_encode = J.json_encode, json_decode = J.json_decode, _VERSION = N._VERSION}

-- M.read_text(path) -> the whole file as a string, or nil and the reason
function M.read_text(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s, rerr = f:read("a")
  f:close()
  if not s then return nil, path .. ": " .. tostring(rerr) end
  return s
end

local ARRAY = getmetatable(N.array("I64", 0))

-- Errors read as the C function's own did: the position of the code that called io.save,
-- then the message. level: 1 in io.save itself, 2 in a function io.save calls.
local function fail(level, fmt, ...)
  error("io.save: " .. string.format(fmt, ...), level + 2)
end

-- "bad argument #i to 'save' (table expected, got X)", as luaL_checktype words it (X: the
-- value's __name, or its type; "no value" past the last argument); a number is a string
local function checkarg(i, nargs, v, want)
  if type(v) == want or (want == "string" and type(v) == "number") then return end
  local mt = getmetatable(v)
  local got = type(mt) == "table" and type(mt.__name) == "string" and mt.__name
  got = got or (i > nargs and "no value") or type(v)
  error(string.format("bad argument #%d to 'save' (%s expected, got %s)", i, want, got), 3)
end

-- the string keys of t, sorted (what names them in the messages: "tensor names")
local function sortedkeys(t, what)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then fail(2, "%s must be strings, got %s", what, type(k)) end
    if k:find("\0", 1, true) then
      fail(2, "%s '%s' contains a NUL byte", what, k:match("^[^\0]*"))
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- the value of tensors[name] as N.save takes it: a tensor or an mbpo.Array (integers and
-- lists of integers become I64 arrays)
local function item(name, v)
  if T.is_tensor(v) or getmetatable(v) == ARRAY then return v end
  if type(v) == "number" then
    local i = math.tointeger(v)
    if not i then fail(2, "'%s' must be an integer, got %.14g", name, v) end
    return N.array("I64", i)
  end
  if type(v) ~= "table" then
    fail(2, "'%s' must be a tensor, an integer or an array of integers, got %s", name, type(v))
  end
  local ints = {}
  for i = 1, rawlen(v) do
    ints[i] = math.tointeger(rawget(v, i))
    if not ints[i] then
      fail(2, "'%s'[%d] must be an integer, got %s", name, i, type(rawget(v, i)))
    end
  end
  return N.array("I64", ints)
end

-- io.save(path, tensors [, metadata]) (see the top)
function M.save(...)
  local path, tensors, metadata = ...
  checkarg(1, select("#", ...), path, "string")
  checkarg(2, select("#", ...), tensors, "table")
  if metadata ~= nil then checkarg(3, select("#", ...), metadata, "table") end
  local names, items = sortedkeys(tensors, "tensor names"), {}
  for _, name in ipairs(names) do
    if name == "__metadata__" then
      fail(1, "the name '__metadata__' is reserved (pass metadata as argument 3)")
    end
  end
  for i, name in ipairs(names) do items[i] = item(name, tensors[name]) end
  local keys, values = sortedkeys(metadata or {}, "metadata keys"), {}
  for i, k in ipairs(keys) do
    local v = metadata[k]
    if type(v) ~= "string" and type(v) ~= "number" then
      fail(1, "metadata '%s' must be a string or a number, got %s", k, type(v))
    end
    values[i] = tostring(v)
    if values[i]:find("\0", 1, true) then fail(1, "metadata '%s' contains a NUL byte", k) end
  end
  return N.save(path, names, items, keys, values)
end

return M
