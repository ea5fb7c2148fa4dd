-- mbpo.nn: the MLP's forward against a plain Lua computation, backward against finite
-- differences of it (Lua numbers are doubles), Adam, views, state round trips, errors.
local NN = require "mbpo.nn"
local G = require "mbpo.rng"

-- tensors from Lua arrays and back (test helpers of mbpo.nn)
local Tensor = require "mbpo.tensor"
local T, L = Tensor.tensor, Tensor.to_table

local th = require "mbpo.test"
local randmat, same_list = th.randmat, th.same_list

-- forward of x (Lua matrix) through parameters p (flat Lua array, mbMlp layout: per layer
-- W [in x out] row-major, then b [out]) in double precision
local function ref_forward(p, sizes, act, x)
  local a, off = x, 0
  for l = 1, #sizes - 1 do
    local ni, no = sizes[l], sizes[l + 1]
    local boff = off + ni * no
    local out = {}
    for i = 1, #a do
      out[i] = {}
      for j = 1, no do
        local s = p[boff + j]
        for k = 1, ni do s = s + a[i][k] * p[off + (k - 1) * no + j] end
        if l < #sizes - 1 then
          if act == "relu" then s = math.max(s, 0) else s = s / (1 + math.exp(-s)) end
        end
        out[i][j] = s
      end
    end
    a, off = out, boff + no
  end
  return a
end

local function dot(a, b)
  local s = 0
  for i = 1, #a do for j = 1, #a[i] do s = s + a[i][j] * b[i][j] end end
  return s
end

describe("nn.mlp", function()
  for _, act in ipairs({"relu", "swish"}) do
    it("computes forward and backward like the reference (" .. act .. ")", function()
      local sizes = {3, 7, 5, 2}
      local net = NN.mlp{sizes = sizes, activation = act, seed = 4}
      local g = G.new(9)
      local x, r = randmat(g, 4, 3, 1.5), randmat(g, 4, 2, 1)
      local p = L(net:parameters())
      eq(#p, 3 * 7 + 7 + 7 * 5 + 5 + 5 * 2 + 2, "parameter count")
      local y = L(net:forward(T(x)))
      local want = ref_forward(p, sizes, act, x)
      for i = 1, 4 do for j = 1, 2 do near(y[i][j], want[i][j], 1e-5, "forward") end end
      -- loss = sum(y * r): dy = r; central differences of the reference in double
      net:zero_grad()
      local dx = L(net:backward(T(r)))
      local grad = L(net:gradients())
      local h, worst = 1e-6, 0
      for i = 1, #p do
        local s = p[i]
        p[i] = s + h; local lp = dot(ref_forward(p, sizes, act, x), r)
        p[i] = s - h; local lm = dot(ref_forward(p, sizes, act, x), r)
        p[i] = s
        local fd = (lp - lm) / (2 * h)
        worst = math.max(worst, math.abs(fd - grad[i]) / math.max(1, math.abs(fd)))
      end
      for i = 1, 4 do
        for k = 1, 3 do
          local s = x[i][k]
          x[i][k] = s + h; local lp = dot(ref_forward(p, sizes, act, x), r)
          x[i][k] = s - h; local lm = dot(ref_forward(p, sizes, act, x), r)
          x[i][k] = s
          local fd = (lp - lm) / (2 * h)
          worst = math.max(worst, math.abs(fd - dx[i][k]) / math.max(1, math.abs(fd)))
        end
      end
      check(worst < 1e-4, "gradient error %g", worst)
      -- gradients accumulate until zeroed
      net:backward(T(r))
      local twice = L(net:gradients())
      for i = 1, #p, 7 do near(twice[i], 2 * grad[i], 1e-5, "accumulated") end
      net:zero_grad()
      for _, v in ipairs(L(net:gradients())) do eq(v, 0, "zeroed") end
    end)
  end

  it("takes Adam steps: the first moves every parameter by lr against its gradient", function()
    local net = NN.mlp{sizes = {2, 3, 1}, seed = 2}
    local x = T{{0.5, -1}, {1, 2}}
    net:forward(x)
    net:zero_grad()
    net:backward(T{{1}, {-0.5}})
    local p0, g = L(net:parameters()), L(net:gradients())
    local view = net:parameters()     -- a view: sees the update
    net:adam_step{lr = 0.01}
    local p1 = L(view)
    for i = 1, #p0 do
      local want = g[i] == 0 and p0[i] or p0[i] - 0.01 * (g[i] > 0 and 1 or -1)
      near(p1[i], want, 1e-6, "first Adam step of parameter " .. i)
    end
    eq(net:state().adam_t, 1, "step count")
  end)

  it("learns a linear map", function()
    local net = NN.mlp{sizes = {2, 16, 1}, activation = "swish", seed = 3, init = "truncnormal"}
    local g = G.new(5)
    local xs, ys = randmat(g, 64, 2, 1), {}
    for i = 1, 64 do ys[i] = {xs[i][1] - 2 * xs[i][2]} end
    local x = T(xs)
    local function loss()
      local y = L(net:forward(x))
      local l, dy = 0, {}
      for i = 1, 64 do
        local d = y[i][1] - ys[i][1]
        l = l + d * d / 64
        dy[i] = {2 * d / 64}
      end
      return l, dy
    end
    local l0 = loss()
    for _ = 1, 300 do
      local _, dy = loss()
      net:zero_grad()
      net:backward(T(dy))
      net:adam_step{lr = 0.01}
    end
    local l1 = loss()
    check(l1 < 0.02 * l0, "loss %g -> %g", l0, l1)
  end)

  it("round-trips its state: a fresh network continues identically", function()
    local a = NN.mlp{sizes = {3, 5, 2}, seed = 1}
    local b = NN.mlp{sizes = {3, 5, 2}, seed = 2}
    local x, dy = T{{1, 2, 3}, {-1, 0, 1}}, T{{1, -1}, {0.5, 2}}
    for _ = 1, 3 do a:forward(x); a:zero_grad(); a:backward(dy); a:adam_step{lr = 0.1} end
    b:load_state(a:state())
    for _, n in ipairs({a, b}) do n:forward(x); n:zero_grad(); n:backward(dy); n:adam_step() end
    local pa, pb = L(a:parameters()), L(b:parameters())
    for i = 1, #pa do eq(pb[i], pa[i], "parameter " .. i) end
    local sa = a:state()
    eq(sa.activation, "relu", "activation")
    eq(#sa.sizes, 3, "sizes")
  end)

  it("has a standalone Adam over any tensor that matches the network's", function()
    local a = NN.mlp{sizes = {2, 3, 1}, seed = 6}
    local b = NN.mlp{sizes = {2, 3, 1}, seed = 6}
    local opt = NN.adam(b:parameters(), {lr = 0.05})
    local x, dy = T{{0.5, -1}, {1, 2}}, T{{1}, {-0.5}}
    for _ = 1, 3 do
      for _, n in ipairs({a, b}) do n:forward(x); n:zero_grad(); n:backward(dy) end
      a:adam_step{lr = 0.05}
      opt:step(b:gradients())
    end
    same_list(L(a:parameters()), L(b:parameters()), "Adam over the parameter view")
    eq(opt:state().adam_t, 3, "step count")
    -- state round trip: a second optimiser continues identically
    local p1 = T{1, 2, 3}
    local o1 = NN.adam(p1, {lr = 0.1, weight_decay = 0.5})
    o1:step(T{0.1, -0.2, 0.3})
    local p2 = T(L(p1))   -- the parameters are the caller's tensor: copy them over
    local o2 = NN.adam(p2)
    o2:load_state(o1:state())
    o1:step(T{1, 1, 1}); o2:step(T{1, 1, 1})
    eq(o2:state().adam_t, 2, "loaded step count")
    same_list(L(p2), L(p1), "continued identically")
    near(o2:state().weight_decay, 0.5, 1e-7, "loaded settings")
    raises(function() o1:step(T{1, 2}) end,
      "gradient must be a contiguous tensor of 3 elements, got [2]")
  end)

  it("rejects bad input with clear messages", function()
    raises(function() NN.mlp{sizes = {3}} end, "1 sizes")
    raises(function() NN.mlp{sizes = {3, 0}} end,
      "NN.mlp: sizes[2] must be an integer in [1, 1048576], got 0")
    raises(function() NN.mlp{sizes = {3, 2, 1, 1, 1, 1, 1, 1, 1, 1}} end,
      "NN.mlp: sizes must be a list of 1 to 9 integers, got 10 values")
    raises(function() NN.mlp{sizes = {3, 2}, activation = "tanh"} end,
      "NN.mlp: activation must be one of relu, swish, got 'tanh'")
    raises(function() NN.mlp{} end, "NN.mlp: sizes is required")
    raises(function() NN.mlp{sizes = {3, 2}, sed = 1} end, "NN.mlp: unknown option 'sed'")
    raises(function() NN.adam(Tensor.zeros(3), {beta1 = 1}) end,
      "NN.adam: beta1 must be a number in [0, 1), got 1")
    local net = NN.mlp{sizes = {3, 4, 2}}
    eq(tostring(net), "mbpo.Mlp [3 -> 4 -> 2] relu", "tostring")
    eq(tostring(NN.mlp{sizes = {2, 5, 5, 1}, activation = "swish"}),
      "mbpo.Mlp [2 -> 5 -> 5 -> 1] swish", "tostring")
    raises(function() net:backward(T{{1, 2}}) end, "call forward first")
    raises(function() net:forward(T{{1, 2, 3, 4}}) end,
      "mlp:forward: x must be a contiguous [N x 3] tensor, got [1 x 4]")
    raises(function() net:forward(nil) end, "x must be a tensor, got nil")
    net:forward(T{{1, 2, 3}})
    raises(function() net:backward(T{{1, 2}, {3, 4}}) end, "dy must be a contiguous [1 x 2] tensor")
    local other = NN.mlp{sizes = {3, 5, 2}}
    raises(function() net:load_state(other:state()) end,
      "mlp:load_state: sizes is I64 [3] in the state, I64 [3] in this network")
    local st = net:state()
    st.params = Tensor.zeros(5)
    raises(function() net:load_state(st) end,
      "mlp:load_state: params is F32 [5] in the state, F32 [26] in this network")
    st = net:state()
    st.adam_t = nil
    raises(function() net:load_state(st) end,
      "mlp:load_state: the state has no adam_t (an integer in this network)")
  end)
end)
