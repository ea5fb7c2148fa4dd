-- mbpo.buffer: wrap-around, add_batch, resize keeping the newest rows, sampling into reused
-- batches, mixed batches of exact composition, state round trips through mbpo.io with
-- identical later samples, argument errors. Tensor values are made and read through
-- hand-packed safetensors files (string.pack), so these specs need only mbpo.io.
local B = require "mbpo.buffer"
local G = require "mbpo.rng"
local io_ = require "mbpo.io"

local tmp = os.tmpname()

-- a tensor of the given shape and row-major values, via a hand-written safetensors file
local function tensor_of(shape, values)
  local data = {}
  for i, v in ipairs(values) do data[i] = string.pack("<f", v) end
  data = table.concat(data)
  local header = string.format('{"x":{"dtype":"F32","shape":[%s],"data_offsets":[0,%d]}}',
                               table.concat(shape, ","), #data)
  local f = assert(io.open(tmp, "wb"))
  f:write(string.pack("<I8", #header), header, data)
  f:close()
  return assert(io_.load(tmp)).x
end

-- a tensor's values (row-major, flat), read back by hand from the file io.save writes
local function values_of(t)
  assert(io_.save(tmp, {x = t}))
  local f = assert(io.open(tmp, "rb"))
  local s = f:read("a")
  f:close()
  local n = string.unpack("<I8", s)
  local out = {}
  for k = 9 + n, #s, 4 do out[#out + 1] = string.unpack("<f", s, k) end
  return out
end

-- transition id for widths obs=2, act=1: obs {id, id+0.25}, act {-id}, reward id,
-- next_obs {id+0.5, id+0.75}, done id % 2
local function tr(id)
  return {id, id + 0.25}, {-id}, id, {id + 0.5, id + 0.75}, id % 2 == 1
end

-- the ids of a batch's rows, after checking that every field of each row is transition id
local function ids_of(batch)
  local o, a, r, no, d = values_of(batch.obs), values_of(batch.act), values_of(batch.reward),
                         values_of(batch.next_obs), values_of(batch.done)
  local ids = {}
  for i, id in ipairs(r) do
    check(o[2 * i - 1] == id and o[2 * i] == id + 0.25 and a[i] == -id and
          no[2 * i - 1] == id + 0.5 and no[2 * i] == id + 0.75 and d[i] == id % 2,
          "row %d is not one intact transition (reward %g)", i, id)
    ids[i] = id
  end
  return ids
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

local same_list = require("mbpo.test").same_list

describe("buffer", function()
  it("wraps around keeping the newest rows in order", function()
    local buf = B.new{obs = 2, act = 1, capacity = 5}
    eq(buf:size(), 0, "empty")
    eq(buf:capacity(), 5, "capacity")
    local o, a = buf:dims()
    eq(o * 10 + a, 21, "dims")
    for id = 1, 3 do buf:add(tr(id)) end
    same_list(ids_of(buf:rows()), {1, 2, 3}, "partly full")
    for id = 4, 12 do buf:add(tr(id)) end
    eq(#buf, 5, "size stays at capacity")
    same_list(ids_of(buf:rows()), range(8, 12), "after wrapping")
    same_list(ids_of(buf:rows(2, 3)), {9, 10, 11}, "rows(2, 3)")
    -- tensors work as well as tables for add
    local obs, act, r, nobs, d = tr(13)
    buf:add(tensor_of({2}, obs), tensor_of({1, 1}, act), r, tensor_of({2}, nobs), 1)
    same_list(ids_of(buf:rows()), range(9, 13), "tensor add")
  end)

  it("adds batches of rows exactly as single adds", function()
    for _, n in ipairs({0, 3, 7, 8, 19}) do
      local x, y = B.new{obs = 2, act = 1, capacity = 7}, B.new{obs = 2, act = 1, capacity = 7}
      for id = 100, 104 do x:add(tr(id)); y:add(tr(id)) end
      local o, a, r, no, d = {}, {}, {}, {}, {}
      for id = 1, n do
        local oo, aa, rr, nn, dd = tr(id)
        x:add(oo, aa, rr, nn, dd)
        o[#o + 1], o[#o + 2] = oo[1], oo[2]
        a[#a + 1], r[#r + 1] = aa[1], rr
        no[#no + 1], no[#no + 2] = nn[1], nn[2]
        d[#d + 1] = dd and 1 or 0
      end
      y:add_batch(tensor_of({n, 2}, o), tensor_of({n, 1}, a), tensor_of({n}, r),
                  tensor_of({n, 2}, no), tensor_of({n, 1}, d))
      eq(y:size(), x:size(), "size after batch of " .. n)
      same_list(ids_of(y:rows()), ids_of(x:rows()), "rows after batch of " .. n)
      same_list(values_of(y:state().data), values_of(x:state().data), "slab after " .. n)
    end
  end)

  it("resizes keeping the newest rows in order", function()
    local buf = B.new{obs = 2, act = 1, capacity = 6}
    for id = 1, 9 do buf:add(tr(id)) end          -- holds 4..9, wrapped
    buf:resize(4)
    eq(buf:capacity(), 4, "capacity")
    same_list(ids_of(buf:rows()), range(6, 9), "shrunk")
    buf:resize(10)
    same_list(ids_of(buf:rows()), range(6, 9), "grown")
    for id = 10, 15 do buf:add(tr(id)) end
    same_list(ids_of(buf:rows()), range(6, 15), "filled after growing")
    buf:add(tr(16))
    same_list(ids_of(buf:rows()), range(7, 16), "wraps after growing")
    raises(function() buf:resize(0) end, "capacity must be at least 1, got 0")
    same_list(ids_of(buf:rows()), range(7, 16), "unchanged after a failed resize")
  end)

  it("samples stored rows into a reused batch", function()
    local buf = B.new{obs = 2, act = 1, capacity = 20}
    for id = 1, 30 do buf:add(tr(id)) end          -- holds 11..30
    local g = G.new(3)
    local batch = buf:batch(64)
    local obs_t = batch.obs
    local got = buf:sample(64, g, batch)
    eq(got, batch, "the batch passed in is returned")
    eq(got.obs, obs_t, "its tensors are filled in place")
    local counts = {}
    for _, id in ipairs(ids_of(batch)) do
      check(id >= 11 and id <= 30, "sampled id %g not stored", id)
      counts[id] = (counts[id] or 0) + 1
    end
    -- the same generator state gives the same rows; a new batch is made when none is given
    local g2 = G.new(3)
    same_list(ids_of(buf:sample(64, g2)), ids_of(batch), "same seed, same rows")
    -- start states: obs of uniformly drawn rows
    local g3 = G.new(3)
    local starts = buf:sample_obs(64, g3)
    same_list(starts:size(), {64, 2}, "sample_obs shape")
    same_list(values_of(starts), values_of(batch.obs), "sample_obs draws like sample")
    local out = buf:sample_obs(64, G.new(3), starts)
    eq(out, starts, "sample_obs fills out")
    -- chi-square over the 20 rows, 20000 draws (19 dof; 99.9% quantile 43.82)
    local big = buf:batch(20000)
    buf:sample(20000, G.new(9), big)
    local c = {}
    for _, r in ipairs(values_of(big.reward)) do c[r] = (c[r] or 0) + 1 end
    local chi = 0
    for id = 11, 30 do chi = chi + ((c[id] or 0) - 1000) ^ 2 / 1000 end
    check(chi < 43.82, "chi-square %.2f over 19 dof (threshold 43.82)", chi)
  end)

  it("fills mixed batches with exact composition", function()
    local real = B.new{obs = 2, act = 1, capacity = 100}
    local model = B.new{obs = 2, act = 1, capacity = 1000}
    for id = 1, 100 do real:add(tr(id)) end
    local g = G.new(4)
    local batch, nreal = B.sample_mixed(real, model, 256, 0.05, g)
    eq(nreal, 256, "an empty model buffer gives all rows from real")
    for _, id in ipairs(ids_of(batch)) do check(id <= 100, "model row %g", id) end
    for id = 1001, 1500 do model:add(tr(id)) end
    for _, ratio in ipairs({0.05, 0, 1, 0.5, 0.3}) do
      local b, n = B.sample_mixed(real, model, 256, ratio, g, batch)
      eq(b, batch, "reused batch")
      eq(n, math.floor(256 * ratio), "nreal for ratio " .. ratio)
      for i, id in ipairs(ids_of(batch)) do
        if i <= n then check(id <= 100, "row %d should be real, got %g", i, id)
        else check(id > 1000, "row %d should be model, got %g", i, id) end
      end
    end
    raises(function() B.sample_mixed(real, model, 256, 1.5, g) end, "outside [0, 1]")
    raises(function() B.sample_mixed(real, B.new{obs = 3, act = 1, capacity = 2}, 8, 0.5, g) end,
           "widths differ")
  end)

  it("round trips its state through mbpo.io, sampling identically afterwards", function()
    for _, count in ipairs({0, 17, 95}) do
      local buf = B.new{obs = 2, act = 1, capacity = 40}
      for id = 1, count do buf:add(tr(id)) end
      local st = buf:state()
      eq(st.size, math.min(count, 40), "state size")
      eq(st.data:size(1), st.size, "data has size rows")
      assert(io_.save(tmp, st, {kind = "replay buffer"}))
      local loaded = assert(io_.load(tmp))
      local fresh = B.new{obs = 2, act = 1, capacity = 3}
      fresh:load_state(loaded)
      eq(fresh:capacity(), 40, "capacity restored")
      eq(fresh:size(), buf:size(), "size restored")
      same_list(values_of(fresh:state().data), values_of(buf:state().data), "slab restored")
      same_list(ids_of(fresh:rows()), ids_of(buf:rows()), "rows restored")
      if count > 0 then
        local g1, g2 = G.new(8), G.new(8)
        same_list(values_of(fresh:sample(50, g1).reward), values_of(buf:sample(50, g2).reward),
                  "later samples")
        eq(g1:state(), g2:state(), "generators advanced alike")
      end
      buf:add(tr(999)); fresh:add(tr(999))
      same_list(ids_of(fresh:rows()), ids_of(buf:rows()), "adds after restore")
    end
  end)

  it("rejects bad arguments with clear messages", function()
    local buf = B.new{obs = 2, act = 1, capacity = 4}
    raises(function() B.new{obs = 2, act = 1} end,
      "Buffer.new: capacity is required (an integer >= 1)")
    raises(function() B.new{obs = 2, act = 1, capacity = 10, cap = 3} end,
      "Buffer.new: unknown option 'cap' (nearest: obs, act, capacity)")
    raises(function() B.new{obs = 0, act = 1, capacity = 10} end,
      "Buffer.new: obs must be an integer in [1, 1048576], got 0")
    raises(function() buf:add({1}, {1}, 0, {1, 2}, 0) end, "obs must have 2 numbers, got 1")
    raises(function() buf:add({1, 2}, {"x"}, 0, {1, 2}, 0) end, "act[1] must be a number")
    raises(function() buf:add({1, 2}, 5, 0, {1, 2}, 0) end, "act must be a tensor or a table")
    raises(function() buf:sample(1, G.new(1)) end, "empty buffer")
    raises(function() buf:sample(1, nil) end, "mbpo.Rng expected")
    buf:add(tr(1))
    raises(function() buf:sample(-1, G.new(1)) end, "row count must be >= 0")
    raises(function() buf:sample(4, G.new(1), buf:batch(3)) end,
           "buf:sample: batch.obs must be a contiguous [4 x 2] tensor, got [3 x 2]")
    raises(function() buf:add_batch(tensor_of({2, 3}, {1, 2, 3, 4, 5, 6}), nil, nil, nil, nil) end,
           "obs must be a contiguous [N x 2] tensor, got [2 x 3]")
    raises(function() buf:rows(2, 5) end, "rows 2..6 outside 1..1")
    raises(function() buf:load_state({obs = 3, act = 1, size = 0, next = 0, capacity = 4}) end,
           "buf:load_state: obs is the integer 3 in the state, 2 in this buffer")
    raises(function() buf:load_state({obs = 2, act = 1, size = 2, next = 1, capacity = 4,
                                      data = buf:batch(2).obs}) end,
           "buf:load_state: data is F32 [2 x 2] in the state, F32 [N x 7] in this buffer")
    raises(function() buf:load_state({obs = 2, act = 1, size = 2, next = 2, capacity = 4,
                                      data = buf:state().data}) end,
           "buf:load_state: data has 1 rows, size is 2")
    raises(function()
      buf:load_state({obs = 2, act = 1, size = 1, next = 3, capacity = 4, data = buf:state().data})
    end, "inconsistent")
    getmetatable(buf).__close(buf)
    raises(function() buf:size() end, "buffer has been closed")
    eq(tostring(buf), "mbpo.Buffer (closed)", "tostring of a closed buffer")
    check(B._VERSION, "_VERSION")
  end)
end)


-- C memory of native objects is reported to the collector: loops that make big objects keep
-- the resident size bounded (without the reports, 100 ensembles of 14 MiB reached 1.4 GB)
describe("native memory and the collector", function()
  local function rss_mib()
    local f = assert(io.open("/proc/self/statm"))
    local _, res = f:read("n", "n")
    f:close()
    return res * 4096 / 2 ^ 20
  end
  it("keeps RSS bounded over loops creating ensembles, buffers, envs, tensors " ..
    "and agents", function()
    local Ensemble = require "mbpo.ensemble"
    local E = require "mbpo.env"
    local T = require "mbpo.tensor"
    collectgarbage()
    local r0 = rss_mib()
    for i = 1, 100 do local _ = Ensemble.new{inputs = 23, outputs = 18, seed = i} end
    local r1 = rss_mib()
    for _ = 1, 100 do local _ = B.new{obs = 17, act = 6, capacity = 100000} end
    local r2 = rss_mib()
    for _ = 1, 200 do local _ = E.make("Humanoid") end
    for _ = 1, 100 do local _ = T.zeros(1000, 4000) end
    local r3 = rss_mib()
    local SAC = require "mbpo.sac"
    for i = 1, 100 do local _ = SAC.new{obs = 17, act = 6, hidden = {512, 512}, seed = i} end
    local r4 = rss_mib()
    -- bound: 128 MiB between full collections, plus a few live objects and allocator slack
    check(r1 - r0 < 400, "100 ensembles (1.4 GB in all): RSS grew %.0f MiB (bound 400)", r1 - r0)
    check(r2 - r0 < 400, "and 100 buffers (1.7 GB): RSS grew %.0f MiB (bound 400)", r2 - r0)
    check(r3 - r0 < 500, "and 200 envs, 100 tensors (1.6 GB): RSS grew %.0f MiB (bound 500)",
          r3 - r0)
    check(r4 - r0 < 500, "and 100 agents (1.5 GB): RSS grew %.0f MiB (bound 500)", r4 - r0)
  end)
end)

os.remove(tmp)
