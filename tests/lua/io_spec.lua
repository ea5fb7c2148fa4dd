-- mbpo.io: safetensors files checked byte by byte with string.pack/unpack (an independent
-- reader and writer), damaged files, atomic writes, JSON encode/decode.
local io_ = require "mbpo.io"
local T = require "mbpo.tensor"

local tmp = os.tmpname()   -- a fresh file name; variants get suffixes
local function path(s) return tmp .. (s or "") end

local function readall(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function writeall(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

-- a safetensors file from a header text and raw data, with the 8-byte length in front
local function st_bytes(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

-- packs values as little-endian F32 or I64
local function pack_values(dtype, values)
  local fmt = dtype == "F32" and "<f" or "<i8"
  local parts = {}
  for i, v in ipairs(values) do parts[i] = string.pack(fmt, v) end
  return table.concat(parts)
end

-- writes a file by hand: entries = {{name, dtype, shape, values}, ...} laid out in the
-- given order; the header lists them in reverse order (readers must go by offsets)
local function hand_file(p, entries, meta)
  local parts, data, at = {}, {}, 0
  for i = #entries, 1, -1 do
    local e = entries[i]
    local off = 0
    for j = 1, i - 1 do off = off + #pack_values(entries[j][2], entries[j][4]) end
    local bytes = #pack_values(e[2], e[4])
    parts[#parts + 1] = string.format(
      '%q : { "dtype" : "%s", "shape" : [%s], "data_offsets" : [%d, %d] }',
      e[1], e[2], table.concat(e[3], ", "), off, off + bytes)
  end
  for _, e in ipairs(entries) do data[#data + 1] = pack_values(e[2], e[4]); at = at + 1 end
  if meta then parts[#parts + 1] = '"__metadata__": ' .. io_.json_encode(meta) end
  writeall(p, st_bytes("{ " .. table.concat(parts, ",\n ") .. " }", table.concat(data)))
end

-- reads a file by hand: {name = {dtype=, shape=, begin=, stop=, values=}}, metadata, header
local function hand_read(p)
  local s = readall(p)
  local n = string.unpack("<I8", s)
  local header = s:sub(9, 8 + n)
  local h = assert(io_.json_decode(header))
  local meta = h.__metadata__
  h.__metadata__ = nil
  local data = s:sub(9 + n)
  for _, e in pairs(h) do
    local fmt, size = e.dtype == "F32" and "<f" or "<i8", e.dtype == "F32" and 4 or 8
    e.begin, e.stop = e.data_offsets[1], e.data_offsets[2]
    e.values = {}
    for k = e.begin, e.stop - 1, size do
      e.values[#e.values + 1] = string.unpack(fmt, data, k + 1)
    end
  end
  return h, meta, header, #data
end

-- a tensor with the given shape and values (row-major), through a hand-written file
local function tensor_of(shape, values)
  hand_file(path(".mk"), {{"x", "F32", shape, values}})
  local t = assert(io_.load(path(".mk")))
  os.remove(path(".mk"))
  return t.x
end

-- a tensor's shape and values, read back by hand
local function values_of(t)
  assert(io_.save(path(".rd"), {x = t}))
  local h = hand_read(path(".rd"))
  os.remove(path(".rd"))
  return h.x.values, h.x.shape
end

local same_list = require("mbpo.test").same_list

describe("io", function()
  it("writes the published safetensors layout", function()
    local w = tensor_of({2, 3}, {1.5, -2, 3.25, 0, 1e-3, 7})
    local s = tensor_of({}, {42.5})
    assert(io_.save(path(), {weight = w, scalar = s, step = 12345678901234, counts = {3, -4, 5}},
                    {format = "pt", epoch = 7}))
    local h, meta, header, ndata = hand_read(path())
    eq(#header % 8, 0, "header length multiple of 8")
    check(header:match("^{.*} *$"), "header padded with spaces: %q", header)
    eq(meta.format, "pt", "metadata string")
    eq(meta.epoch, "7", "metadata numbers are written as strings")
    eq(h.weight.dtype, "F32", "dtype")
    same_list(h.weight.shape, {2, 3}, "shape")
    same_list(h.weight.values, {1.5, -2, 3.25, 0, string.unpack("<f", string.pack("<f", 1e-3)), 7},
              "weight values")
    eq(#h.scalar.shape, 0, "scalar shape []")
    eq(h.scalar.values[1], 42.5, "scalar value")
    eq(h.step.dtype, "I64", "integer dtype")
    eq(#h.step.shape, 0, "integer shape []")
    eq(h.step.values[1], 12345678901234, "integer value")
    same_list(h.counts.shape, {3}, "array shape")
    same_list(h.counts.values, {3, -4, 5}, "array values")
    -- tensors are packed without gaps in sorted name order, covering the data exactly
    local at = 0
    for _, name in ipairs({"counts", "scalar", "step", "weight"}) do
      eq(h[name].begin, at, name .. " begins where the previous ends")
      at = h[name].stop
    end
    eq(at, ndata, "tensors cover the data section")
    -- names appear in the header in that order too
    local pos = {}
    for _, name in ipairs({"counts", "scalar", "step", "weight"}) do
      pos[#pos + 1] = header:find('"' .. name .. '"', 1, true)
    end
    for i = 2, #pos do check(pos[i - 1] < pos[i], "header order") end
    -- the same content gives the same bytes (reproducible files)
    local first = readall(path())
    assert(io_.save(path(), {weight = w, scalar = s, step = 12345678901234, counts = {3, -4, 5}},
                    {epoch = 7, format = "pt"}))
    eq(readall(path()), first, "identical saves give identical files")
  end)

  it("writes and reads F64 and U64 arrays bit for bit (doubles and generator words)", function()
    local ds = {1.5, -0.0, 1 / 0, -1 / 0, 2 ^ -1074, 0.1, 1e308}
    local ws = {0, -1, math.mininteger, math.maxinteger, 0x5d9189e203382fcc}
    assert(io_.save(path(), {d = io_.array("F64", ds), w = io_.array("U64", ws),
                             nan = io_.array("F64", {0 / 0})}))
    local h = hand_read(path())
    eq(h.d.dtype, "F64", "doubles are stored as F64")
    eq(h.w.dtype, "U64", "words are stored as U64")
    same_list(h.d.shape, {#ds}, "F64 shape")
    for i, v in ipairs(ds) do  -- the bytes are the IEEE-754 doubles (read as int64 bits)
      eq(h.d.values[i], string.unpack("<i8", string.pack("<d", v)), "F64 bits " .. i)
    end
    same_list(h.w.values, ws, "U64 words (as int64 bits)")
    local t = assert(io_.load(path()))
    eq(tostring(t.d), "mbpo.Array F64 [7]", "loaded as an mbpo.Array")
    eq(t.d:dtype(), "F64", "dtype")
    eq(#t.w, #ws, "length")
    for i, v in ipairs(ds) do
      eq(string.pack("<d", t.d[i]), string.pack("<d", v), "double " .. i)
    end
    same_list(t.w:totable(), ws, "words")
    check(t.nan[1] ~= t.nan[1], "NaN survives")
    check(t.w == io_.array("U64", ws) and t.w ~= io_.array("U64", {1}), "== compares values")
    eq(t.d[0], nil, "outside 1..n: nil")
    raises(function() io_.array("U64", {1.5}) end, "io.array: value 1 must be an integer")
    raises(function() io_.array("F32", {1}) end, "invalid option 'F32'")
  end)

  it("loads files from another writer, going by the offsets", function()
    hand_file(path(), {{"b", "F32", {2, 2}, {1, 2, 3, 4}}, {"a", "I64", {}, {-9}},
                       {"c", "I64", {3}, {7, 8, 9}}, {"e", "F32", {0, 4}, {}},
                       {"d", "F32", {}, {0.5}}}, {note = "hand made"})
    local t, meta = assert(io_.load(path()))
    same_list(t.b:size(), {2, 2}, "b shape")
    same_list((values_of(t.b)), {1, 2, 3, 4}, "b values")
    eq(math.type(t.a), "integer", "I64 scalar is an integer")
    eq(t.a, -9, "a")
    same_list(t.c, {7, 8, 9}, "c")
    same_list(t.e:size(), {0, 4}, "empty tensor shape")
    eq(t.d:dim(), 0, "F32 scalar has no dimensions")
    same_list((values_of(t.d)), {0.5}, "d")
    eq(meta.note, "hand made", "metadata")
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    eq(n, 5, "entries")
    -- and a file without metadata gives an empty table
    hand_file(path(), {{"z", "F32", {1}, {1}}})
    local _, m2 = assert(io_.load(path()))
    eq(next(m2), nil, "no metadata")
  end)

  it("round trips its own files exactly", function()
    local vals = {}
    for i = 1, 60 do vals[i] = (i - 30) / 7 end
    local x = tensor_of({3, 4, 5}, vals)
    assert(io_.save(path(), {x = x, empty = {}, n = 0}))
    local t = assert(io_.load(path()))
    same_list(t.x:size(), {3, 4, 5}, "shape")
    same_list((values_of(t.x)), (values_of(x)), "values")
    eq(#t.empty, 0, "empty integer array")
    eq(t.n, 0, "zero")
    assert(io_.save(path(".2"), t))
    eq(readall(path(".2")), readall(path()), "save(load(f)) reproduces f")
    os.remove(path(".2"))
  end)

  it("read_text returns a file's bytes, or nil and the reason", function()
    local bytes = "a\0b\r\n" .. string.rep("x", 70000)
    assert(io_.write_text(path(".text"), bytes))
    eq(io_.read_text(path(".text")), bytes)
    local s, err = io_.read_text(path(".missing"))
    eq(s, nil)
    check(err:find(path(".missing"), 1, true) and err:find("No such file", 1, true), err)
    os.remove(path(".text"))
  end)

  it("writes atomically through a temporary file", function()
    assert(io_.save(path(), {v = 1}))
    assert(io_.save(path(), {v = 2}))
    eq(io_.load(path()).v, 2, "the second save replaced the first")
    local pid = require("mbpo.core").getpid()
    eq(io.open(path(".tmp-" .. pid)), nil, "no temporary file left")
    local ok, msg = io_.save("/nonexistent-dir/x.safetensors", {v = 1})
    eq(ok, nil, "save into a missing directory")
    check(msg:find("cannot create", 1, true), "message: %s", msg)
    eq(io.open("/nonexistent-dir/x.safetensors"), nil, "nothing written")
  end)

  it("returns nil, message for damaged files", function()
    local T1 = '"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    local data8 = string.pack("<ff", 1, 2)
    local function one(dtype, shape, offsets)  -- one tensor "t" over 8 bytes of data
      return st_bytes(string.format('{"t":{"dtype":%s,"shape":%s,"data_offsets":%s}}', dtype,
                                    shape, offsets), data8)
    end
    local cases = {
      {"", "too short"},                                              -- empty
      {"\1\0\0", "too short"},                                        -- truncated length
      {string.pack("<I8", 500) .. "{}", "runs past the end"},         -- header past the end
      {string.pack("<I8", 1 << 62) .. "{}", "too large"},             -- absurd length
      {string.pack("<I8", -1) .. "{}", "too large"},                  -- 2^64 - 1
      {st_bytes('{"t":{"dtype":', data8), "malformed JSON"},          -- bad JSON
      {st_bytes("[1,2,3]", ""), "not a JSON object"},                 -- not an object
      {st_bytes('{"t":{"dtype":"F32","shape":[2]}}', data8), "missing 'data_offsets'"},
      {st_bytes('{"t":{"shape":[2],"data_offsets":[0,8]}}', data8), "missing 'dtype'"},
      {st_bytes("{" .. T1 .. "}", data8:sub(1, 4)), "run past the data"},  -- truncated data
      {one('"F32"', '[2]', '[0,800]'), "run past the data"},
      {one('"F32"', '[0]', '[8,0]'), "end before"},
      {st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
                '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data8), "overlap"},
      {st_bytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data8), "leave a gap"},
      {one('"F16"', '[4]', '[0,8]'), "unsupported dtype 'F16'"},
      {one('"F32"', '[3]', '[0,8]'), "shape needs 12 bytes"},
      {one('"F32"', '[65536,65536,65536,65536,2]', '[0,8]'), "overflows"},
      {one('"F32"', '[-2]', '[0,8]'), "not a non-negative integer"},
      {st_bytes("{" .. T1 .. "," .. T1 .. "}", data8), "appears twice"},  -- duplicate
      {st_bytes("{" .. T1 .. "}", data8 .. "xxxx"), "data section has 12"},  -- extra data
      {st_bytes('{"__metadata__":{"k":5},' .. T1 .. "}", data8), "not a string"},
      {st_bytes("{" .. T1 .. "}garbage", data8), "bytes after the JSON"},
    }
    for i, c in ipairs(cases) do
      writeall(path(), c[1])
      local t, msg = io_.load(path())
      eq(t, nil, "case " .. i .. " (" .. c[2] .. ") accepted")
      check(type(msg) == "string" and msg:find(c[2], 1, true),
            "case %d: message %s lacks %q", i, tostring(msg), c[2])
      check(msg:find(path(), 1, true), "case %d: message names the file: %s", i, msg)
    end
    local t, msg = io_.load(path(".missing"))
    eq(t, nil, "missing file")
    check(msg:find("cannot open", 1, true), "missing: %s", msg)
  end)

  it("raises on arguments it cannot write", function()
    raises(function() io_.save(path(), {x = "text"}) end,
      "'x' must be a tensor, an integer or an array")
    raises(function() io_.save(path(), {x = 1.5}) end, "'x' must be an integer")
    raises(function() io_.save(path(), {x = {1, 2.5}}) end, "'x'[2] must be an integer")
    raises(function() io_.save(path(), {[1] = 3}) end, "tensor names must be strings")
    raises(function() io_.save(path(), {x = 1}, {k = {}}) end,
           "metadata 'k' must be a string or a number")
    raises(function() io_.save(path(), {__metadata__ = 1}) end, "reserved")
    raises(function() io_.save(path(), 5) end, "table expected")
    raises(function() io_.load() end, "string expected")
    local t = T.zeros(2)
    getmetatable(t).__close(t)
    raises(function() io_.save(path(), {x = t}) end, "'x' has been closed")
  end)

  it("places io.save's errors at its caller, in one line of the C functions' words", function()
    -- io.save checks its arguments in Lua (lua/mbpo/io.lua) and the writer is C: every
    -- message begins at the line that called io.save, whichever side found the mistake
    local here = debug.getinfo(1, "S").short_src
    local cases = {
      {function() io_.save(path(), {x = 1.5}) end, "io.save: 'x' must be an integer, got 1.5"},
      {function() io_.save(path(), {b = 1, ["a\0b"] = 2}) end,
       "io.save: tensor names 'a' contains a NUL byte"},
      {function() io_.save(path(), {x = 1}, {k = "a\0"}) end,
       "io.save: metadata 'k' contains a NUL byte"},
      {function() io_.save(nil, {}) end, "bad argument #1 to 'save' (string expected, got nil)"},
      {function() io_.save(path()) end, "bad argument #2 to 'save' (table expected, got no value)"},
      {function() io_.save(path(), T.zeros(1)) end,
       "bad argument #2 to 'save' (table expected, got mbpo.Tensor)"},
      {function() local t = T.zeros(1); t:close(); io_.save(path(), {y = t}) end,
       "io.save: tensor 'y' has been closed"},
    }
    for i, c in ipairs(cases) do
      local ok, msg = pcall(c[1])
      local line = debug.getinfo(c[1], "S").linedefined
      eq(ok, false, "case " .. i .. " raises")
      eq(msg, string.format("%s:%d: %s", here, line, c[2]), "case " .. i)
    end
  end)

  it("makes arrays of shape [] from a number; io.save writes an integer as one", function()
    local a = io_.array("I64", -7)
    eq(tostring(a), "mbpo.Array I64 []", "a number gives shape []")
    eq(a[1], -7, "its value")
    eq(#a, 1, "one element")
    assert(io_.save(path(), {n = 5, a = a, f = io_.array("F64", 0.5)}))
    local h = hand_read(path())
    eq(h.n.dtype, "I64", "the integer is I64")
    eq(#h.n.shape, 0, "of shape []")
    eq(h.a.values[1], -7, "the array's value")
    local t = assert(io_.load(path()))
    eq(t.n, 5, "I64 [] loads as an integer")
    eq(t.a, -7, "so does the array of shape []")
    eq(tostring(t.f), "mbpo.Array F64 []", "F64 [] stays an array")
    eq(t.f[1], 0.5, "its value")
  end)

  it("encodes and decodes JSON", function()
    local cfg = {name = "hopper", epochs = 100, lr = 3e-4, tiny = 0.1, big = 1 << 60,
                 hidden = {200, 200, 200}, flags = {fast = true, slow = false},
                 nested = {deeper = {list = {1, {x = "y"}, "z"}}}, text = 'quote " slash \\ nl \n'}
    local s = io_.json_encode(cfg)
    local a = s:find('"big"', 1, true)
    local b = s:find('"epochs"', 1, true)
    check(a and b and a < b, "object keys are sorted: %s", s)
    local back = assert(io_.json_decode(s))
    eq(back.name, "hopper", "string")
    eq(math.type(back.epochs), "integer", "integers stay integers")
    eq(back.epochs, 100, "epochs")
    eq(back.lr, 3e-4, "float round trip")
    eq(back.tiny, 0.1, "0.1 round trip")
    eq(back.big, 1 << 60, "large integers are written exactly")
    same_list(back.hidden, {200, 200, 200}, "array")
    eq(back.flags.fast, true, "true")
    eq(back.flags.slow, false, "false")
    eq(back.nested.deeper.list[2].x, "y", "nested")
    eq(back.text, cfg.text, "escapes")
    eq(io_.json_encode({}), "{}", "an empty table is an object")
    eq(io_.json_encode("x"), '"x"', "a bare string")
    local d = assert(io_.json_decode(' {"a": null, "b": [1, 2.5e3, -0.25]} \n'))
    eq(d.a, nil, "null is nil")
    eq(d.b[2], 2500, "exponent")
    eq(d.b[3], -0.25, "negative float")
  end)

  it("rejects what JSON cannot hold, and malformed text", function()
    raises(function() io_.json_encode({f = print}) end, "cannot encode a function (in 'f')")
    raises(function() io_.json_encode({1, 0 / 0}) end, "cannot be written as JSON (at [2])")
    raises(function() io_.json_encode({1, 2, x = 3}) end, "keys must be all strings")
    local cyc = {}
    cyc.self = cyc
    raises(function() io_.json_encode(cyc) end, "nested more than")
    for _, bad in ipairs({"{", "[1,]", '{"a" 1}', "tru", "1 2", "", '{"a":1}}'}) do
      local v, msg = io_.json_decode(bad)
      eq(v, nil, "decoded " .. bad)
      check(msg:find("malformed JSON", 1, true), "message for %q: %s", bad, tostring(msg))
    end
    eq(io_._VERSION ~= nil, true, "_VERSION")
  end)
end)

os.remove(tmp)
