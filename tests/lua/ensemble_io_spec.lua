-- mbpo.ensemble + mbpo.io: ens:state() saved as safetensors and loaded into a fresh ensemble
-- gives bit-identical predictions and an identical next training epoch.
-- (Pending: rename to ensemble_io_spec.lua once mbpo.io is merged. Written against the io
-- branch's API: io.save(path, tensors, metadata), io.load(path) -> tensors, metadata, with
-- tensors F32, integers I64, metadata values strings.)
local Ensemble = require "mbpo.ensemble"
local NN = require "mbpo.nn"
local G = require "mbpo.rng"
local mio = require "mbpo.io"

local Tensor = require "mbpo.tensor"
local T, L = Tensor.tensor, Tensor.to_table

local randmat = require("mbpo.test").randmat

local function same(a, b, what)
  a, b = L(a), L(b)
  local function walk(u, v, path)
    if type(u) == "table" then
      eq(#u, #v, what .. path .. " size")
      for i = 1, #u do walk(u[i], v[i], path .. "[" .. i .. "]") end
    else
      eq(u, v, what .. path)
    end
  end
  walk(a, b, "")
end

-- the state as a safetensors file: strings go to the metadata, the rest (tensors and
-- integer counters) to the tensors
local function save_state(path, st)
  local tensors, meta = {}, {}
  for k, v in pairs(st) do
    if type(v) == "string" then meta[k] = v else tensors[k] = v end
  end
  return mio.save(path, tensors, meta)
end

local function load_state(path)
  local tensors, meta = mio.load(path)
  if not tensors then return nil, meta end
  for k, v in pairs(meta) do tensors[k] = v end
  return tensors
end

describe("ensemble state through mbpo.io", function()
  it("continues bit for bit after a safetensors round trip", function()
    local opts = {inputs = 5, outputs = 4, members = 4, elites = 3, hidden = {12, 12}}
    opts.seed = 1
    local a = Ensemble.new(opts)
    local g = G.new(3)
    local xs, ys = randmat(g, 300, 5, 1), {}
    for i = 1, 300 do
      local r = xs[i]
      ys[i] = {r[1] * r[4] - r[5], math.sin(2 * r[1]), r[2] - r[3] * r[5], math.cos(r[3])}
    end
    local x, y = T(xs), T(ys)
    a:fit(x, y, {max_epochs = 2})
    local path = os.tmpname()
    assert(save_state(path, a:state()))
    opts.seed = 99
    local b = Ensemble.new(opts)
    b:load_state(assert(load_state(path)))
    os.remove(path)
    local probe = T(randmat(G.new(5), 20, 5, 2))
    local ma, la = a:predict(probe)
    local mb, lb = b:predict(probe)
    same(ma, mb, "means")
    same(la, lb, "log-variances")
    local ra, rb = a:fit(x, y, {max_epochs = 1}), b:fit(x, y, {max_epochs = 1})
    eq(ra.train_loss[1], rb.train_loss[1], "next epoch's loss")
    same(a:parameters(), b:parameters(), "weights after the next epoch")
    eq(a:state().rng, b:state().rng, "generators")
    local obs, act = T(randmat(g, 10, 3, 1)), T(randmat(g, 10, 2, 1))
    local na, rwa = a:step(obs, act, G.new(8))
    local nb, rwb = b:step(obs, act, G.new(8))
    same(na, nb, "model step next_obs")
    same(rwa, rwb, "model step reward")
  end)

  it("reports a damaged checkpoint instead of loading it", function()
    local path = os.tmpname()
    local f = io.open(path, "wb")
    f:write("not a safetensors file")
    f:close()
    local t, msg = load_state(path)
    os.remove(path)
    check(t == nil and type(msg) == "string", "damaged file loaded")
  end)
end)
