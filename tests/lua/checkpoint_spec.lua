-- mbpo.checkpoint: a state tree through a safetensors file and back, bit for bit; values it
-- cannot store; a checkpoint directory (parts, the COMPLETE manifest with checksums) and what
-- find/load make of damaged, incomplete and half-moved ones; the run directory lock against
-- a second process.
local lfs = require "lfs"
local ck = require "mbpo.checkpoint"
local io_ = require "mbpo.io"
local T = require "mbpo.tensor"
local test = require "mbpo.test"

local base = test.tmpdir()
local n = 0
local function newdir()
  n = n + 1
  local d = base .. "/d" .. n
  assert(lfs.mkdir(d))
  return d
end

-- a number as its exact bits and its subtype ("float 0x1.8p+1", "integer 3")
local function bits(v)
  if math.type(v) == "integer" then return "integer " .. v end
  if v ~= v then return "float nan" end -- the sign and payload of a nan are not kept
  return "float " .. string.format("%a", v)
end

-- raises naming the first place where a and b differ
local function same(a, b, where)
  where = where or "tree"
  local ta, tb = type(a), type(b)
  if T.is_tensor(b) then
    check(T.is_tensor(a), "%s: a tensor expected, got %s", where, ta)
    eq(table.concat(a:size(), "x"), table.concat(b:size(), "x"), where .. " size")
    local fa, fb = a:contiguous():view(a:numel()), b:contiguous():view(b:numel())
    for i = 1, b:numel() do eq(bits(fa:get(i)), bits(fb:get(i)), where .. "[" .. i .. "]") end
  elseif tb == "number" then
    eq(ta, "number", where .. " type")
    eq(bits(a), bits(b), where)
  elseif tb == "table" then
    eq(ta, "table", where .. " type")
    for k, v in pairs(b) do same(a[k], v, where .. "." .. tostring(k)) end
    for k in pairs(a) do check(b[k] ~= nil, "%s: unexpected key %s", where, tostring(k)) end
  else
    eq(a, b, where)
  end
end

local function tree()
  return {
    agent = {
      w = T.tensor{{1.5, -2, 0.1}, {3, 1e-30, -0.0}},
      wt = T.tensor{{1, 2, 3}, {4, 5, 6}}:t(), -- a non-contiguous view
      one = T.tensor{7},
      layers = {{b = T.zeros(2)}, {b = T.full({3}, -1)}},
    },
    ints = {0, 1, -1, 1 << 62, (1 << 62) + 1, -(1 << 62) - 3, math.maxinteger,
            math.mininteger},
    floats = {zero = 0.0, negzero = -0.0, third = 1 / 3, tenth = 0.1, three = 3.0,
              big = 2.0 ^ 53, huge = 1e308, tiny = 5e-324, subnormal = 2.2250738585072009e-308,
              normal = 2.2250738585072014e-308, inf = math.huge, ninf = -math.huge, nan = 0 / 0,
              neg = -1.5e-300},
    strings = {empty = "", nl = "a\nb\r\n", quotes = [["'`]], backslash = "\\x\\", tab = "\t",
               ctrl = "\1\27\127", bytes = "\255\254\128", utf8 = "é→ü", json = '{"a": [1]}',
               nan = "nan", num = "123", tagged = "n:x.y#z"},
    flags = {yes = true, no = false},
    keys = {[-3] = "minus", [0] = "zero", [1] = "one", [1000000] = "large", name = "str"},
    empty = {},
    nested = {a = {b = {c = {d = 4}}}},
    -- generator words and simulation doubles: stored as U64 and F64 arrays, compared by bits
    arrays = {words = io_.array("U64", {0x5d9189e203382fcc, -1, 0, math.mininteger}),
              doubles = io_.array("F64", {0.1, -0.0, 1e-310, math.huge, 0 / 0}),
              ints = io_.array("I64", {1, 2}), none = io_.array("F64", {})},
  }
end

describe("save_tree and load_tree", function()
  it("give back every value bit for bit", function()
    local d = newdir()
    local t = tree()
    assert(ck.save_tree(d .. "/t.safetensors", t))
    local back = assert(ck.load_tree(d .. "/t.safetensors"))
    same(back, t)
    -- spot checks that do not go through `same`
    eq(string.format("%a", back.floats.negzero), "-0x0p+0", "-0.0")
    eq(math.type(back.floats.three), "float", "3.0 stays a float")
    eq(back.ints[5], 4611686018427387905, "2^62 + 1")
    eq(back.strings.num, "123", "a string of digits stays a string")
    eq(back.agent.wt:get(1, 2), 4.0, "transposed view")
  end)

  it("restore: a load_state that raises becomes nil and one line naming the part", function()
    local G = require "mbpo.rng"
    local g, words = G.new(3), G.new(3):state()
    g:uniform()
    eq(ck.restore("rng explore", g, words), true, "a state that fits")
    eq(g:state(), words, "restored")
    local ok, msg = ck.restore("rng explore", g, io_.array("U64", {1, 2}))
    eq(ok, nil)
    eq(msg, "the checkpoint's rng explore does not fit this run: rng:load_state: rng is U64 [2] " ..
      "in the state, U64 [4] in this generator")
    ok, msg = ck.restore("rng explore", g, nil)
    eq(msg, "the checkpoint's rng explore is missing")
    ok, msg = ck.restore("agent", {load_state = function() error("bad\nline") end}, {})
    eq(msg, "the checkpoint's agent does not fit this run: bad\\x0aline", "one line, escaped")
    eq(g:state(), words, "a refused state leaves the object as it was")
  end)

  it("writes the same bytes for the same tree", function()
    local d = newdir()
    assert(ck.save_tree(d .. "/a.safetensors", tree()))
    assert(ck.save_tree(d .. "/b.safetensors", tree()))
    eq(test.read(d .. "/a.safetensors"), test.read(d .. "/b.safetensors"), "bytes")
  end)

  it("raises naming the key of a value or key it cannot store", function()
    local p = newdir() .. "/x.safetensors"
    raises(function() ck.save_tree(p, {a = {b = print}}) end, "cannot store a function at a.b")
    raises(function() ck.save_tree(p, {a = {[2] = {c = io.stdout}}}) end,
      "cannot store a userdata at a.#2.c")
    raises(function() ck.save_tree(p, {co = coroutine.create(print)}) end,
      "cannot store a thread at co")
    raises(function() ck.save_tree(p, {a = {[1.5] = 1}}) end, "unsupported state key 1.5 in a")
    raises(function() ck.save_tree(p, {a = {["x.y"] = 1}}) end,
      'unsupported state key "x.y" in a')
    raises(function() ck.save_tree(p, {["#1"] = 1}) end, 'unsupported state key "#1"')
    raises(function() ck.save_tree(p, {a = {[""] = 1}}) end, 'unsupported state key "" in a')
    raises(function() ck.save_tree(p, {a = {[true] = 1}}) end, "unsupported state key true in a")
    raises(function() ck.save_tree(p, {a = {b = "x\0y"}}) end, "'s:a.b' contains a NUL byte")
  end)

  it("returns nil, message for a missing or damaged file", function()
    local d = newdir()
    local t, err = ck.load_tree(d .. "/none.safetensors")
    eq(t, nil, "missing file")
    check(err:find("none.safetensors", 1, true), "message: %s", err)
    test.write(d .. "/bad.safetensors", "\255\0\0\0\0\0\0\0{not json")
    t, err = ck.load_tree(d .. "/bad.safetensors")
    eq(t, nil, "damaged file")
    check(err:find("bad.safetensors", 1, true), "message: %s", err)
  end)
end)

-- the parts of a checkpoint made at epoch e
local function parts(e)
  return {agent = {w = T.full({2, 3}, e), alpha = 0.2 * e}, loop = {epoch = e, name = "run"}}
end

-- flips one bit of the byte at offset from the end of a file
local function flip(path, from_end)
  local f = assert(io.open(path, "r+b"))
  local size = f:seek("end")
  f:seek("set", size - from_end)
  local b = f:read(1)
  f:seek("set", size - from_end)
  f:write(string.char(b:byte() ~ 1))
  f:close()
end

describe("save, find and load", function()
  it("write the parts and a manifest of their checksums, and load them back", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    local c = d .. "/checkpoint"
    local manifest = test.read(c .. "/COMPLETE")
    eq(manifest, string.format("agent %s\nloop %s\n", assert(io_.checksum(c ..
      "/agent.safetensors")), assert(io_.checksum(c .. "/loop.safetensors"))), "COMPLETE")
    check(manifest:match("^agent %x+\nloop %x+\n$"), "manifest: %s", manifest)
    same(assert(ck.load_tree(c .. "/agent.safetensors")), parts(1).agent, "agent file")
    eq(lfs.attributes(d .. "/checkpoint.tmp"), nil, "checkpoint.tmp left")
    eq(lfs.attributes(d .. "/checkpoint.old"), nil, "checkpoint.old left")
    local got, dir = ck.load(d)
    eq(dir, c, "directory")
    same(got, parts(1), "parts")
  end)

  it("replace the previous checkpoint and keep nothing of it", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    assert(ck.save(d, {loop = {epoch = 2}}))
    local got = assert(ck.load(d))
    same(got, {loop = {epoch = 2}}, "parts")
    eq(lfs.attributes(d .. "/checkpoint/agent.safetensors"), nil, "old part")
    eq(lfs.attributes(d .. "/checkpoint.old"), nil, "checkpoint.old")
  end)

  it("report a part whose bytes do not match the manifest as corrupt, naming it", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    flip(d .. "/checkpoint/loop.safetensors", 3)
    local got, err = ck.load(d)
    eq(got, nil, "load")
    check(err:find("corrupt checkpoint " .. d .. "/checkpoint: loop.safetensors does not " ..
      "match its checksum", 1, true), "message: %s", err)
  end)

  it("report a missing part as corrupt, naming it", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    assert(os.remove(d .. "/checkpoint/agent.safetensors"))
    local got, err = ck.load(d)
    eq(got, nil, "load")
    check(err:find("corrupt checkpoint", 1, true) and err:find("agent.safetensors", 1, true),
      "message: %s", err)
  end)

  it("report a bad manifest line and load a manifest of names only", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    test.write(d .. "/checkpoint/COMPLETE", "agent 12zz\n")
    local got, err = ck.load(d)
    eq(got, nil, "load")
    check(err:find("bad manifest line 'agent 12zz'", 1, true), "message: %s", err)
    -- a manifest from before checksums: names only, nothing to compare
    test.write(d .. "/checkpoint/COMPLETE", "agent\nloop\n")
    flip(d .. "/checkpoint/agent.safetensors", 1) -- the last byte of F32 data
    got = assert(ck.load(d))
    eq(got.loop.epoch, 1, "loop")
    check(got.agent.w:get(2, 3) ~= 1, "the flipped value is read as it is")
  end)

  it("take a directory without COMPLETE as incomplete", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    assert(os.remove(d .. "/checkpoint/COMPLETE"))
    local dir, err = ck.find(d)
    eq(dir, nil, "find")
    eq(err, "no complete checkpoint in " .. d, "message")
    local got, lerr = ck.load(d)
    eq(got, nil, "load")
    eq(lerr, err, "load's message")
    dir, err = ck.find(d .. "/none")
    eq(dir, nil, "find in a missing directory")
    eq(err, "no such run directory: " .. d .. "/none", "message")
  end)

  -- checkpoint (epoch 2), checkpoint.tmp (epoch 3) and checkpoint.old (epoch 1), each
  -- complete, as a save interrupted before or between its renames leaves them
  local function three(d)
    for e, name in ipairs({"checkpoint.old", "checkpoint", "checkpoint.tmp"}) do
      local scratch = newdir()
      assert(ck.save(scratch, parts(e)))
      assert(os.rename(scratch .. "/checkpoint", d .. "/" .. name))
    end
    eq(assert(ck.load(d)).loop.epoch, 2, "set up")
  end

  it("find checkpoint, else a complete checkpoint.tmp, else checkpoint.old", function()
    local d = newdir()
    three(d)
    eq(ck.find(d), d .. "/checkpoint", "all three complete")
    -- between the renames: no checkpoint; checkpoint.tmp is the newest state
    assert(os.remove(d .. "/checkpoint/COMPLETE"))
    eq(ck.find(d), d .. "/checkpoint.tmp", "checkpoint incomplete")
    local got, dir = ck.load(d)
    eq(dir, d .. "/checkpoint.tmp", "load's directory")
    eq(got.loop.epoch, 3, "epoch of checkpoint.tmp")
    ck.rmtree(d .. "/checkpoint")
    eq(ck.find(d), d .. "/checkpoint.tmp", "checkpoint missing")
    -- a checkpoint.tmp still being written
    assert(os.remove(d .. "/checkpoint.tmp/COMPLETE"))
    eq(ck.find(d), d .. "/checkpoint.old", "checkpoint.tmp incomplete")
    eq(assert(ck.load(d)).loop.epoch, 1, "epoch of checkpoint.old")
  end)

  it("save puts a complete checkpoint.tmp in place first and clears the rest", function()
    local d = newdir()
    three(d)
    ck.rmtree(d .. "/checkpoint")
    assert(ck.save(d, parts(4)))
    eq(ck.find(d), d .. "/checkpoint", "find")
    eq(assert(ck.load(d)).loop.epoch, 4, "epoch")
    eq(lfs.attributes(d .. "/checkpoint.tmp"), nil, "checkpoint.tmp left")
    eq(lfs.attributes(d .. "/checkpoint.old"), nil, "checkpoint.old left")
  end)

  it("keep the previous checkpoint when a part cannot be written", function()
    local d = newdir()
    assert(ck.save(d, parts(1)))
    local p = parts(2)
    p["no/such"] = {x = 1} -- its file is in a directory that does not exist
    local ok, err = ck.save(d, p)
    eq(ok, nil, "save")
    check(err:find("checkpoint not written (the previous one is kept)", 1, true),
      "message: %s", err)
    eq(lfs.attributes(d .. "/checkpoint.tmp"), nil, "checkpoint.tmp left")
    eq(assert(ck.load(d)).loop.epoch, 1, "the previous checkpoint")
  end)
end)

describe("lock", function()
  -- a script for a second mbpo process: it takes the lock of dir, says "locked", and holds
  -- it until the file dir/release appears (at most 20 s); exit code 1 when refused
  local function holder(dir)
    local script = dir .. "/hold.lua"
    test.write(script, string.format([[
      local ck = require "mbpo.checkpoint"
      local ok, err = ck.lock(%q)
      io.write(ok and "locked\n" or ("refused: " .. err .. "\n"))
      io.stdout:flush()
      if not ok then return 1 end
      local t0 = require("mbpo.core").clock()
      while not io.open(%q) and require("mbpo.core").clock() - t0 < 20 do
        os.execute("sleep 0.02")
      end
      return 0
    ]], dir, dir .. "/release"))
    return script
  end

  it("refuses while another process holds the directory, and not after it exits", function()
    local d = newdir()
    -- started in the background: this process reads its first line while it runs
    local p = io.popen(string.format("%q %q 2>&1", test.exe(), holder(d)), "r")
    eq(p:read("l"), "locked", "the other process")
    local ok, err = ck.lock(d)
    test.write(d .. "/release", "")
    local rest = p:read("a")
    local _, _, rc = p:close()
    eq(ok, nil, "lock while held")
    eq(err, "run directory " .. d .. " is in use by another mbpo process", "message")
    eq(rc, 0, "the other process: " .. rest)
    assert(ck.lock(d))
    assert(ck.lock(d)) -- this process holds it already
  end)

  it("is refused to another process while this one holds it", function()
    local d = newdir()
    assert(ck.lock(d))
    local rc, out = test.mbpo(string.format("%q", holder(d)))
    eq(rc, 1, "exit code")
    eq(out, "refused: run directory " .. d .. " is in use by another mbpo process\n", "output")
  end)

  it("returns nil, message for a directory that does not exist", function()
    local ok, err = ck.lock(base .. "/none")
    eq(ok, nil, "lock")
    check(err:find("cannot lock " .. base .. "/none", 1, true), "message: %s", err)
  end)
end)

ck.rmtree(base)
