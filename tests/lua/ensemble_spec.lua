-- mbpo.ensemble: configuration, the loss and its gradient through the binding (finite
-- differences via load_state), predict, step (elites only, determinism, mean mode), fit's
-- report, state round trips (bit-identical predictions and next epoch), and error messages.
-- The numerics are checked in depth by tests/c/test_ensemble.c; this spec checks the Lua face.
local io_ = require "mbpo.io"
local Ensemble = require "mbpo.ensemble"
local NN = require "mbpo.nn"
local G = require "mbpo.rng"

local Tensor = require "mbpo.tensor"
local T, L = Tensor.tensor, Tensor.to_table

local randmat = require("mbpo.test").randmat

-- a small ensemble: obs 3, act 2 -> [reward, delta obs] (4 outputs)
local function small(seed, extra)
  local opts = {inputs = 5, outputs = 4, members = 4, elites = 3, hidden = {12, 12}, seed = seed}
  for k, v in pairs(extra or {}) do opts[k] = v end
  return Ensemble.new(opts)
end

-- a regression data set for the small ensemble: targets are smooth functions of the inputs
local function dataset(g, n)
  local x, y = randmat(g, n, 5, 1), {}
  for i = 1, n do
    local a = x[i]
    y[i] = {a[1] * a[4] - a[5], math.sin(2 * a[1]) + 0.1 * a[4], a[2] - a[3] * a[5], math.cos(a[3])}
  end
  return T(x), T(y)
end

-- equal shapes and equal values, bit for bit (tensors or Lua arrays)
local function same(a, b, what)
  if type(a) ~= "table" then a = L(a) end
  if type(b) ~= "table" then b = L(b) end
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

describe("ensemble", function()
  it("has the reference defaults", function()
    local ens = Ensemble.new{inputs = 14, outputs = 12, seed = 1}
    local i = ens:info()
    eq(i.members, 7, "members"); eq(i.elites, 5, "elites")
    eq(#i.hidden, 4, "hidden layers")
    for k = 1, 4 do eq(i.hidden[k], 200, "width") end
    local wd = {2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4}
    for k = 1, 5 do near(i.weight_decay[k], wd[k], 1e-6, "decay") end
    near(i.lr, 1e-3, 1e-6, "lr")
    eq(i.activation, "swish", "activation"); eq(i.bounds, "learned", "bounds")
    eq(i.bootstrap, "replace", "bootstrap"); eq(i.snapshot, "member", "snapshot")
    eq(i.prediction, "sample", "prediction"); eq(i.batch, 256, "batch")
    eq(i.patience, 5, "patience")
    near(i.holdout_ratio, 0.2, 1e-7, "holdout ratio"); eq(i.holdout_cap, 5000, "cap")
    -- one member: 14*200+200 + 3*(200*200+200) + 200*24+24; plus the two bound vectors
    eq(i.member_params, 3000 + 120600 + 4824, "member parameters")
    eq(i.params, 7 * 128424 + 24, "slab")
    local mx, mn = ens:bounds()
    for _, v in ipairs(L(mx)) do near(v, 0.5, 1e-7, "max logvar") end
    for _, v in ipairs(L(mn)) do near(v, -10, 1e-7, "min logvar") end
    same(ens:elites(), {1, 2, 3, 4, 5}, "initial elites")
    local train, fwd = ens:flops()
    eq(fwd, 2 * (14 * 200 + 3 * 200 * 200 + 200 * 24), "forward flops")
    eq(train, (2 * fwd + 2 * (3 * 200 * 200 + 200 * 24)) * 256 * 7, "train flops")
    check(tostring(ens):find("members=7", 1, true), "tostring")
  end)

  it("gives the same initial weights for the same seed, others for another", function()
    same(small(3):parameters(), small(3):parameters(), "same seed")
    local a, b = L(small(3):parameters()), L(small(4):parameters())
    check(a[1] ~= b[1], "different seeds gave equal weights")
  end)

  it("reports the loss gradient (finite differences via load_state)", function()
    local ens = small(5)
    local g = G.new(1)
    local xs, ys = {}, {}
    for m = 1, 4 do xs[m], ys[m] = randmat(g, 6, 5, 1), randmat(g, 6, 4, 1) end
    local x, y = T(xs), T(ys)
    local loss, grad = ens:loss_grad(x, y)
    grad = L(grad)
    local st = ens:state()
    local p = L(st.params)
    local n = #p
    -- a weight of member 1, a bias of member 3, the last weight of member 4, both bounds
    local info = ens:info()
    local picks = {1, 2 * info.member_params + 5 * 12 + 3, 4 * info.member_params - 9, n - 4, n}
    local h = 1e-2  -- float32 loss: a wide step, a quadratic-size error
    for _, k in ipairs(picks) do
      local s = p[k]
      p[k] = s + h; st.params = T(p); ens:load_state(st); local lp = ens:loss_grad(x, y)
      p[k] = s - h; st.params = T(p); ens:load_state(st); local lm = ens:loss_grad(x, y)
      p[k] = s
      near(grad[k], (lp - lm) / (2 * h), 2e-3, "gradient of parameter " .. k)
    end
    st.params = T(p); ens:load_state(st)
    near(ens:loss_grad(x, y), loss, 1e-6, "loss restored")
    -- a training step lowers the loss on its own minibatch
    for _ = 1, 20 do ens:train_step(x, y) end
    check(ens:loss_grad(x, y) < loss, "loss did not decrease")
  end)

  it("predicts every member and steps one elite per row", function()
    local ens = small(6)
    local g = G.new(2)
    local obs, act = T(randmat(g, 50, 3, 1)), T(randmat(g, 50, 2, 1))
    local mean, logvar = ens:predict(T(randmat(g, 10, 5, 1)))
    same(mean:size(), {4, 10, 4}, "mean shape")
    same(logvar:size(), {4, 10, 4}, "logvar shape")
    for _, m in ipairs(L(logvar)) do
      for _, row in ipairs(m) do
        for _, v in ipairs(row) do check(v > -10 and v < 0.6, "logvar %g", v) end
      end
    end
    local r1, r2 = G.new(7), G.new(7)
    local n1, rw1, mem = ens:step(obs, act, r1, {member = true})
    same(n1:size(), {50, 3}, "next_obs shape")
    same(rw1:size(), {50}, "reward shape")
    local elite = {}
    for _, m in ipairs(ens:elites()) do elite[m] = true end
    for _, m in ipairs(L(mem)) do check(elite[m], "row used member %d, not an elite", m) end
    -- the same with 2 threads: results do not depend on the thread count
    local core = require "mbpo.core"
    local saved = core.threads()
    core.set_threads(2)
    local ok, n2, rw2 = pcall(ens.step, ens, obs, act, r2)
    core.set_threads(saved)
    assert(ok, n2)
    same(n1, n2, "same generator state, same next_obs")
    same(rw1, rw2, "same rewards")
    eq(r1:state(), r2:state(), "generators advanced alike")
    -- into given tensors
    local out_n, out_r = T(randmat(g, 50, 3, 1)), T(randmat(g, 50, 1, 1)[1])
    out_r = T(L(rw1))
    local a, b = ens:step(obs, act, G.new(7), {next_obs = out_n, reward = out_r})
    check(rawequal(a, out_n) and rawequal(b, out_r), "outputs not the given tensors")
    same(out_n, n1, "written into the given tensor")
    -- with given outputs a step allocates nothing on the Lua side (C workspaces are reused)
    local opts, rg = {next_obs = out_n, reward = out_r}, G.new(3)
    ens:step(obs, act, rg, opts)
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 50 do ens:step(obs, act, rg, opts) end
    local grew = collectgarbage("count") - before
    collectgarbage("restart")
    check(grew < 0.5, "50 steps allocated %.1f KB", grew)
    -- mean mode: the elites' average mean, no noise
    local nm, rm, mm = ens:step(obs, act, G.new(1), {prediction = "mean", member = true})
    local inputs = {}
    local o, a2 = L(obs), L(act)
    for i = 1, 50 do inputs[i] = {o[i][1], o[i][2], o[i][3], a2[i][1], a2[i][2]} end
    local pm = L((ens:predict(T(inputs))))
    local nml, rml = L(nm), L(rm)
    for i = 1, 50, 7 do
      local want = {0, 0, 0, 0}
      for _, m in ipairs(ens:elites()) do
        for j = 1, 4 do want[j] = want[j] + pm[m][i][j] / 3 end
      end
      near(rml[i], want[1], 1e-5, "mean reward")
      for j = 1, 3 do near(nml[i][j], o[i][j] + want[j + 1], 1e-5, "mean next_obs") end
      eq(L(mm)[i], 0, "member in mean mode")
    end
  end)

  it("fits as the reference and reports what happened", function()
    local ens = small(7)
    local x, y = dataset(G.new(3), 400)
    local r = ens:fit(x, y, {max_epochs = 3})
    eq(r.epochs, 3, "epochs"); eq(r.stopped, "max_epochs", "stopped")
    eq(r.train_rows, 320, "train rows"); eq(r.holdout_rows, 80, "holdout rows")
    eq(#r.train_loss, 3, "loss per epoch"); eq(#r.holdout_curve, 3, "curve")
    eq(#r.holdout_curve[1], 4, "curve per member")
    check(r.train_loss[3] < r.train_loss[1], "loss %g -> %g", r.train_loss[1], r.train_loss[3])
    check(r.seconds >= 0, "seconds")
    -- elites: the members with the lowest holdout MSE, best first
    local mse, elite = r.holdout_mse, {}
    for k, m in ipairs(r.elites) do
      elite[m] = true
      if k > 1 then check(mse[r.elites[k - 1]] <= mse[m], "elite order") end
    end
    for m = 1, 4 do
      if not elite[m] then
        for _, e in ipairs(r.elites) do check(mse[e] <= mse[m], "member %d beats an elite", m) end
      end
    end
    same(ens:elites(), r.elites, "elites()")
    local hm = ens:holdout_mse()
    for m = 1, 4 do eq(hm[m], mse[m], "holdout_mse()") end
    -- until the patience rule stops it
    local r2 = ens:fit(x, y, {patience = 1, holdout_cap = 50})
    eq(r2.stopped, "patience", "stopped by patience")
    eq(r2.holdout_rows, 50, "capped holdout")
    eq(ens:info().fits, 2, "fit count")
  end)

  it("round-trips its state: bit-identical predictions and next epoch", function()
    local a = small(8)
    local x, y = dataset(G.new(4), 300)
    a:fit(x, y, {max_epochs = 2})
    local b = small(99, {})
    b:load_state(a:state())
    local probe = T(randmat(G.new(5), 20, 5, 2))
    local ma, la = a:predict(probe)
    local mb, lb = b:predict(probe)
    same(ma, mb, "means")
    same(la, lb, "log-variances")
    local ra, rb = a:fit(x, y, {max_epochs = 1}), b:fit(x, y, {max_epochs = 1})
    eq(ra.train_loss[1], rb.train_loss[1], "next epoch's loss")
    same(a:parameters(), b:parameters(), "weights after the next epoch")
    same(a:state().adam_v, b:state().adam_v, "Adam moments")
    eq(a:state().rng, b:state().rng, "generator")
    local sa = a:state()
    eq(sa.format, "mbpo.ensemble/1", "format")
    eq(type(sa.adam_t), "number", "adam_t")
    check(sa.adam_t > 0 and math.type(sa.adam_t) == "integer", "adam_t %s", tostring(sa.adam_t))
    eq(tostring(sa.rng), "mbpo.Array U64 [4]", "rng words")
  end)

  it("reaches the section 6 variants through options", function()
    local x, y = dataset(G.new(6), 200)
    for _, opts in ipairs({{bounds = "fixed"}, {bootstrap = "none"}, {bootstrap = "permutation"},
                           {snapshot = "ensemble"}, {prediction = "mean"}, {holdout_cap = 0},
                           {activation = "relu"}}) do
      local ens = small(2, opts)
      local r = ens:fit(x, y, {max_epochs = 2})
      check(r.train_loss[2] < r.train_loss[1], "did not learn with %s", next(opts))
      for k, v in pairs(opts) do
        if k ~= "holdout_cap" then eq(ens:info()[k], v, k) else eq(ens:info()[k], 0, k) end
      end
    end
    local fixed = small(2, {bounds = "fixed", max_logvar = 1, min_logvar = -5})
    fixed:fit(x, y, {max_epochs = 2})
    local mx, mn = fixed:bounds()
    eq(L(mx)[1], 1, "fixed max"); eq(L(mn)[4], -5, "fixed min")
  end)

  it("runs in bf16 within a stated bound of fp32, deterministically at 1 and 2 threads", function()
    local core = require "mbpo.core"
    local function norm(t) return math.sqrt(t:clone():mul_(t):sum()) end
    local opts = {hidden = {64, 64, 64}}
    local f = small(8, opts)
    opts.precision = "bf16"
    local ok, h = pcall(small, 8, opts)
    if not ok then -- a CPU without native bf16 refuses in one line
      check(tostring(h):find("use precision=fp32", 1, true), "message: %s", tostring(h))
      return
    end
    eq(h:info().precision, "bf16"); eq(f:info().precision, "fp32")
    -- the same weights (hidden layers of 64 and 96 rows per member: the products run in bf16)
    h:load_state(f:state())
    local g = G.new(3)
    local xs, ys = {}, {}
    for m = 1, 4 do xs[m], ys[m] = randmat(g, 96, 5, 1), randmat(g, 96, 4, 1) end
    local x, y = T(xs), T(ys)
    local lf, gf = f:loss_grad(x, y)
    local lh, gh = h:loss_grad(x, y)
    -- bound (stated): loss within 1e-2 relative, gradient within 3e-2 in relative 2-norm
    near(lh, lf, 1e-2 * math.abs(lf), "bf16 loss")
    local d = norm(gh:sub(gf)) / norm(gf)
    check(d < 3e-2 and d > 0, "bf16 gradient differs from fp32 by %g", d)
    -- a model step: the same draws, next states within 2e-2 relative (2-norm)
    local obs, act = T(randmat(g, 300, 3, 1)), T(randmat(g, 300, 2, 1))
    local nf, rf = f:step(obs, act, G.new(4))
    local nh, rh = h:step(obs, act, G.new(4))
    local dn = norm(nh:sub(nf)) / norm(nf)
    check(dn < 2e-2 and dn > 0, "bf16 step differs from fp32 by %g", dn)
    -- training steps at 1 and 2 threads give the same bits
    local saved = core.threads()
    local st = h:state()
    local h2 = small(8, opts)
    h2:load_state(st)
    core.set_threads(1)
    for _ = 1, 3 do h:train_step(x, y) end
    core.set_threads(2)
    for _ = 1, 3 do h2:train_step(x, y) end
    core.set_threads(saved)
    same(h2:state().params, h:state().params, "bf16 params at 1 and 2 threads")
  end)

  it("rejects bad input with clear messages", function()
    raises(function() Ensemble.new{inputs = 5} end,
      "Ensemble.new: outputs is required (an integer in [1, 65536])")
    local function new(extra)
      local o = {inputs = 5, outputs = 4}
      for k, v in pairs(extra) do o[k] = v end
      return Ensemble.new(o)
    end
    raises(function() new{member = 3} end,
      "Ensemble.new: unknown option 'member' (nearest: members, seed, elites)")
    raises(function() new{elites = 9} end,
      "Ensemble.new: elites must be an integer in [1, members = 7], got 9")
    raises(function() Ensemble.new{inputs = 5, outputs = 4, bootstrap = "yes"} end,
      "Ensemble.new: bootstrap must be one of replace, permutation, none, got 'yes'")
    raises(function() new{hidden = {8}, weight_decay = {1e-4}} end,
      "Ensemble.new: weight_decay must be a list of 2 numbers, got 1 values")
    raises(function() Ensemble.new{inputs = 5, outputs = 4, hidden = {8, 0}} end,
      "Ensemble.new: hidden[2] must be an integer in [1, 65536], got 0")
    raises(function() Ensemble.new{inputs = 5, outputs = 4, lr = "fast"} end,
      "Ensemble.new: lr must be a number > 0, got 'fast'")
    local ens = small(1)
    local g = G.new(1)
    local x, y = dataset(g, 20)
    raises(function() ens:fit(x, T(randmat(g, 19, 4, 1))) end,
      "ens:fit: targets must be a contiguous [20 x 4] tensor, got [19 x 4]")
    raises(function() ens:fit(x, y, {epochs = 3}) end,
      "ens:fit: unknown option 'epochs' (nearest: max_epochs, batch, max_seconds)")
    raises(function() ens:fit(T(randmat(g, 4, 5, 1)), T(randmat(g, 4, 4, 1))) end,
      "training would never stop")
    raises(function() ens:predict(T(randmat(g, 3, 4, 1))) end,
      "ens:predict: inputs must be a contiguous [N x 5] tensor, got [3 x 4]")
    raises(function() ens:step(T(randmat(g, 3, 3, 1)), T(randmat(g, 2, 2, 1)), g) end,
      "ens:step: act must be a contiguous [3 x 2] tensor, got [2 x 2]")
    raises(function() ens:step(T(randmat(g, 3, 3, 1)), T(randmat(g, 3, 2, 1)), nil) end,
      "mbpo.Rng expected")
    local o3, a3 = T(randmat(g, 3, 3, 1)), T(randmat(g, 3, 2, 1))
    raises(function() ens:step(o3, a3, g, {prediction = "mode"}) end,
      "ens:step: prediction must be one of sample, mean, got 'mode'")
    raises(function() ens:train_step(T{randmat(g, 2, 5, 1)}, T{randmat(g, 2, 4, 1)}) end,
      "inputs must be a contiguous [4 x N x 5] tensor, got [1 x 2 x 5]")
    local st = ens:state()
    raises(function() small(1, {hidden = {12, 13}}):load_state(st) end,
      "ens:load_state: layout is 'inputs=5 outputs=4 members=4 elites=3 hidden=12,12 " ..
      "activation=swish' in the state, 'inputs=5 outputs=4 members=4 elites=3 hidden=12,13 " ..
      "activation=swish' in this ensemble")
    st.rng = "xyz"
    raises(function() ens:load_state(st) end, "rng is 'xyz' in the state, U64 [4] in this ensemble")
    st = ens:state()
    st.params = T{1, 2, 3}
    raises(function() ens:load_state(st) end, "params is F32 [3] in the state, F32 [")
    st = ens:state()
    st.elites = io_.array("I64", {1, 2, 7})
    raises(function() ens:load_state(st) end, "ens:load_state: elites[3] = 7 is not in 1..4")
    st = ens:state()
    st.input_std = T{1, 1, 0, 1, 1}
    raises(function() ens:load_state(st) end, "input_std[3] = 0 is not a positive number")
    local closed
    do
      local c <close> = small(1)
      closed = c
    end
    raises(function() closed:predict(x) end, "ensemble has been closed")
    check(tostring(closed):find("closed", 1, true), "tostring of a closed ensemble")
  end)
end)
