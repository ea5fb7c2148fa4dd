-- mbpo.tensor: the Lua API. Values are checked against plain Lua loops over to_table()
-- (an independent path: no tensor kernel involved), errors against their messages.
local T = require "mbpo.tensor"
local G = require "mbpo.rng"

-- helpers -----------------------------------------------------------------------------

-- every element of a 2-d tensor against f(i, j) within tol (relative past 1)
local function check2(t, f, tol, what)
  local v = t:to_table()
  eq(#v, t:size(1), (what or "") .. " rows")
  for i = 1, #v do
    eq(#v[i], t:size(2), (what or "") .. " columns")
    for j = 1, #v[i] do near(v[i][j], f(i, j), tol or 0, string.format("%s [%d][%d]", what or "",
      i, j)) end
  end
end

local function shape(t) return table.concat(t:size(), "x") end

local function randm(r, c, g) return T.rand(r, c, g):mul_(2):sub_(1) end

describe("tensor creation", function()
  it("makes constant tensors of any shape, sizes as integers or a table", function()
    local z = T.zeros(2, 3)
    eq(z:dim(), 2, "dim"); eq(z:numel(), 6, "numel"); eq(shape(z), "2x3", "shape")
    eq(z:sum(), 0, "zeros")
    eq(T.ones({4, 1, 2}):sum(), 8, "ones from a table of sizes")
    eq(T.full(2, 2, 2.5):sum(), 10, "full")
    eq(T.empty(3, 0):numel(), 0, "empty with a zero size")
    eq(T.zeros():dim(), 0, "0-d tensor")
    eq(T.zeros():numel(), 1, "0-d numel")
    eq(#T.zeros(7, 2), 7, "#t is size(1)")
  end)

  it("builds from nested tables and round-trips through to_table", function()
    local src = {{1, 2, 3}, {4, 5, 6}}
    local t = T.tensor(src)
    eq(shape(t), "2x3", "shape from nesting")
    local back = t:to_table()
    for i = 1, 2 do for j = 1, 3 do eq(back[i][j], src[i][j], "round trip") end end
    local cube = T.new{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
    eq(shape(cube), "2x2x2", "3-d from nesting")
    eq(cube:get(2, 1, 2), 6, "3-d element")
    eq(T.tensor(3.5):to_table(), 3.5, "a number gives a 0-d tensor")
    eq(T.tensor({}):numel(), 0, "empty table")
    local c = T.tensor(t)
    c:set(1, 1, 9)
    eq(t:get(1, 1), 1, "T.tensor(t) copies")
  end)

  it("counts with arange like numpy (half-open)", function()
    local a = T.arange(5):to_table()
    eq(#a, 5, "arange(5) length")
    for i = 1, 5 do eq(a[i], i - 1, "arange(5)") end
    local b = T.arange(1, 2, 0.25):to_table()
    eq(#b, 4, "arange(1, 2, 0.25) length")
    eq(b[4], 1.75, "last value")
    eq(T.arange(3, 1):numel(), 0, "empty range")
    raises(function() T.arange(0, 1, 0) end, "arange: step must be nonzero")
  end)

  it("draws from a given generator or the seeded default one", function()
    local a = T.randn(3, 4, G.new(7))
    local b = T.randn(3, 4, G.new(7))
    eq(a:eq(b):all(), true, "same generator seed, same values")
    T.manual_seed(11)
    local c = T.rand(100)
    T.manual_seed(11)
    local d = T.rand(100)
    eq(c:eq(d):all(), true, "manual_seed reproduces")
    check(c:min() >= 0 and c:max() < 1, "rand in [0, 1)")
    -- the default generator is an mbpo.Rng whose state can be saved and restored
    local g = T.default_generator()
    local s = g:state()
    local e = T.randn(5)
    g:set_state(s)
    eq(T.randn(5):eq(e):all(), true, "default generator state restores")
    local r = T.randint(-1, 1, {2000}, G.new(3))
    eq(r:ge(-1):all() and r:le(1):all(), true, "randint inclusive range")
    eq(r:eq(-1):any() and r:eq(1):any(), true, "randint reaches both ends")
    local n = T.randn(20000, G.new(5))
    near(n:mean(), 0, 0.03, "randn mean")
    near(n:std(), 1, 0.03, "randn std")
    local u = T.zeros(1000):uniform_(2, 3, G.new(1))
    check(u:min() >= 2 and u:max() < 3, "uniform_ range")
    local w = T.zeros(1000):normal_(5, 0.1, G.new(1))
    near(w:mean(), 5, 0.02, "normal_ mean")
  end)

  it("gets and sets elements with 1-based indices", function()
    local t = T.zeros(2, 3)
    eq(t:set(2, 3, 7), t, "set returns self")
    eq(t:get(2, 3), 7, "get after set")
    eq(t:sum(), 7, "one element changed")
    eq(T.full(1, 1, 4):item(), 4, "item")
    raises(function() t:get(3, 1) end, "get: index 3 out of range [1, 2] in dimension 1 of [2 x 3]")
    raises(function() t:get(1) end, "get: 1 indices for a 2-d tensor [2 x 3]")
    raises(function() t:set(0, 1, 1) end, "set: index 0 out of range [1, 2]")
    raises(function() t:item() end, "item: [2 x 3] tensor does not have one element")
  end)
end)

describe("tensor views", function()
  it("narrow, select and transpose share storage and write through", function()
    local t = T.arange(12):view(3, 4)
    local n = t:narrow(2, 2, 2)
    eq(shape(n), "3x2", "narrow shape")
    eq(n:is_contiguous(), false, "narrowed columns are not contiguous")
    n:fill_(-1)
    check2(t, function(i, j) return (j == 2 or j == 3) and -1 or (i - 1) * 4 + j - 1 end,
      0, "narrow write")
    local row = t:select(1, 3)
    eq(shape(row), "4", "select drops the dimension")
    row:add_(100)
    eq(t:get(3, 4), 111, "select write")
    local tt = t:t()
    eq(shape(tt), "4x3", "t()")
    tt:set(4, 1, 42)
    eq(t:get(1, 4), 42, "transpose write")
    eq(t:transpose(1, 2):get(2, 3), t:get(3, 2), "transpose(1, 2)")
    eq(t:stride(1), 4, "stride")
  end)

  it("view needs contiguity, reshape copies when needed", function()
    local t = T.arange(6)
    local v = t:view(2, -1)
    eq(shape(v), "2x3", "view with -1")
    v:set(2, 1, 50)
    eq(t:get(4), 50, "view writes through")
    local tt = v:t()
    raises(function() tt:view(6) end, "view: [3 x 2] tensor is not contiguous")
    local r = tt:reshape(6)
    eq(r:get(2), 50, "reshape of a transpose is a copy in its row-major order")
    r:set(1, -5)
    eq(t:get(1), 0, "that copy does not write through")
    local r2 = t:reshape(3, 2)
    r2:set(1, 1, 9)
    eq(t:get(1), 9, "reshape of a contiguous tensor is a view")
    eq(tt:contiguous():is_contiguous(), true, "contiguous copies")
    eq(t:contiguous(), t, "contiguous of contiguous is itself")
    raises(function() t:view(4, 2) end,
      "view: shape [4 x 2] (8 elements) does not fit [6] (6 elements)")
    eq(shape(t:view(2, 3):unsqueeze(2)), "2x1x3", "unsqueeze")
    eq(shape(T.zeros(1, 3, 1):squeeze()), "3", "squeeze")
    eq(shape(T.zeros(1, 3, 1):squeeze(1)), "3x1", "squeeze(1)")
  end)

  it("rejects bad view arguments with the values and ranges", function()
    local t = T.zeros(4, 5)
    raises(function() t:narrow(2, 4, 3) end,
      "narrow: elements 4 to 6 out of range [1, 5] in dimension 2 of [4 x 5]")
    raises(function() t:narrow(3, 1, 1) end, "narrow: dimension 3 out of range [1, 2] for [4 x 5]")
    raises(function() t:select(1, 5) end,
      "select: index 5 out of range [1, 4] in dimension 1 of [4 x 5]")
    raises(function() t:t():t():view(-2, 10) end, "view: negative size -2")
    raises(function() T.zeros(3):t() end, "t: expected a 2-d tensor, got [3]")
  end)

  it("clone and copy_ make independent copies, copy_ broadcasts", function()
    local a = T.tensor{{1, 2}, {3, 4}}
    local c = a:clone()
    c:fill_(0)
    eq(a:sum(), 10, "clone is independent")
    c:copy_(T.tensor{5, 6})
    check2(c, function(_, j) return 4 + j end, 0, "copy_ of a row")
    raises(function() c:copy_(T.zeros(3)) end, "copy: cannot copy [3] into [2 x 2]")
  end)
end)

describe("tensor elementwise math", function()
  local g = G.new(1)
  local x = randm(4, 5, g)
  local y = randm(4, 5, g)
  local row = randm(1, 5, g):view(5)
  local X, Y, R = x:to_table(), y:to_table(), row:to_table()

  it("adds, subtracts, multiplies, divides with tensors, rows and numbers", function()
    check2(x:add(y), function(i, j) return X[i][j] + Y[i][j] end, 1e-6, "add")
    check2(x:sub(row), function(i, j) return X[i][j] - R[j] end, 1e-6, "sub row [5]")
    check2(x:mul(row:view(1, 5)), function(i, j) return X[i][j] * R[j] end, 1e-6, "mul row [1 x 5]")
    check2(x:div(2), function(i, j) return X[i][j] / 2 end, 1e-6, "div number")
    check2(x:pow(2), function(i, j) return X[i][j] ^ 2 end, 1e-6, "pow")
    check2(x:abs():pow(y:abs()), function(i, j) return math.abs(X[i][j]) ^ math.abs(Y[i][j]) end,
      1e-5, "pow tensor")
    check2(x:add(T.zeros(4, 1):fill_(3)), function(i, j) return X[i][j] + 3 end,
      1e-6, "column [4 x 1]")
  end)

  it("has in-place variants that return self and chain", function()
    local z = x:clone()
    local r = z:mul_(0.5):add_(row)
    eq(r, z, "in-place returns self")
    check2(z, function(i, j) return X[i][j] * 0.5 + R[j] end, 1e-6, "mul_ then add_")
    raises(function() row:view(1, 5):add_(x) end,
      "add: cannot write the [4 x 5] result of [1 x 5] and [4 x 5] into [1 x 5]")
  end)

  it("supports the arithmetic operators with numbers on either side", function()
    check2(x + y, function(i, j) return X[i][j] + Y[i][j] end, 1e-6, "__add")
    check2(x - 1, function(i, j) return X[i][j] - 1 end, 1e-6, "__sub")
    check2(1 - x, function(i, j) return 1 - X[i][j] end, 1e-6, "number - tensor")
    check2(2 * x * y, function(i, j) return 2 * X[i][j] * Y[i][j] end, 1e-6, "__mul elementwise")
    check2(1 / (x:abs() + 1), function(i, j) return 1 / (math.abs(X[i][j]) + 1) end,
      1e-6, "number / tensor")
    check2(-x, function(i, j) return -X[i][j] end, 0, "__unm")
  end)

  it("computes the unary functions (softplus and sigmoid stable at the extremes)", function()
    local v = T.tensor{-100, -20, -1, 0, 0.5, 1, 20, 100}
    local vals = v:to_table()
    local function each(t, f, tol, what)
      local got = t:to_table()
      for i = 1, #vals do near(got[i], f(vals[i]), tol, what .. "(" .. vals[i] .. ")") end
    end
    local function tanh(a) return (math.exp(2 * a) - 1) / (math.exp(2 * a) + 1) end
    each(v:tanh(), tanh, 1e-6, "tanh")
    each(v:sigmoid(), function(a) return 1 / (1 + math.exp(-a)) end, 1e-6, "sigmoid")
    each(v:softplus(), function(a) return a > 30 and a or math.log(1 + math.exp(a)) end,
      1e-6, "softplus")
    each(v:relu(), function(a) return math.max(a, 0) end, 0, "relu")
    each(v:neg(), function(a) return -a end, 0, "neg")
    each(v:abs(), math.abs, 0, "abs")
    each(v:clamp(-1, 2), function(a) return math.min(math.max(a, -1), 2) end, 0, "clamp")
    each(v:clamp(nil, 0), function(a) return math.min(a, 0) end, 0, "clamp with an open bound")
    local p = v:abs():clamp(0, 20):add(0.1)
    local pv = p:to_table()
    local e, l, s = p:exp():to_table(), p:log():to_table(), p:sqrt():to_table()
    for i = 1, #pv do
      near(e[i], math.exp(pv[i]), 1e-6, "exp")
      near(l[i], math.log(pv[i]), 1e-6, "log")
      near(s[i], math.sqrt(pv[i]), 1e-6, "sqrt")
    end
    eq(T.tensor{1, 0}:div(0):isfinite():sum(), 0, "isfinite of inf and nan")
    eq(v:exp_():sum() > 0, true, "exp_ in place")
  end)

  it("compares into 0/1 tensors and selects with where", function()
    check2(x:lt(y), function(i, j) return X[i][j] < Y[i][j] and 1 or 0 end, 0, "lt")
    check2(x:ge(0), function(i, j) return X[i][j] >= 0 and 1 or 0 end, 0, "ge number")
    check2(x:ne(x), function() return 0 end, 0, "ne self")
    check2(x:eq(x), function() return 1 end, 0, "eq self")
    check2(x:minimum(y), function(i, j) return math.min(X[i][j], Y[i][j]) end, 0, "minimum")
    check2(x:maximum(row), function(i, j) return math.max(X[i][j], R[j]) end,
      0, "maximum with a row")
    check2(T.where(x:gt(0), x, y), function(i, j) return X[i][j] > 0 and X[i][j] or Y[i][j] end,
      0, "where")
    check2(T.where(x:gt(0), 1, row), function(i, j) return X[i][j] > 0 and 1 or R[j] end,
      0, "where number, row")
    check2(x:masked_fill(x:lt(0), 0), function(i, j) return math.max(X[i][j], 0) end,
      0, "masked_fill")
    local z = x:clone()
    z:gt_(0)
    check2(z, function(i, j) return X[i][j] > 0 and 1 or 0 end, 0, "gt_ in place")
  end)

  it("names the operation and both shapes on a mismatch, and the bad argument", function()
    raises(function() return x + T.zeros(3) end, "add: shapes not broadcastable, [4 x 5] and [3]")
    raises(function() x:mul(T.zeros(5, 4)) end,
      "mul: shapes not broadcastable, [4 x 5] and [5 x 4]")
    raises(function() x:add("a") end, "number or mbpo.Tensor expected, got string")
    raises(function() x:add() end, "number or mbpo.Tensor expected, got no value")
    raises(function() T.where(x:gt(0), x, T.zeros(3)) end, "where: shapes not broadcastable")
    raises(function() x:clamp(1, 0) end, "clamp: lower bound 1 above upper bound 0")
    raises(function() T.exp(nil) end, "mbpo.Tensor expected, got nil")
  end)
end)

describe("tensor reductions", function()
  local x = randm(6, 4, G.new(2))
  local X = x:to_table()

  it("reduces everything to a number", function()
    local s, mx, mn, amax = 0, -math.huge, math.huge, nil
    for i = 1, 6 do for j = 1, 4 do
      s = s + X[i][j]
      if X[i][j] > mx then mx, amax = X[i][j], (i - 1) * 4 + j end
      mn = math.min(mn, X[i][j])
    end end
    local m = s / 24
    local ss = 0
    for i = 1, 6 do for j = 1, 4 do ss = ss + (X[i][j] - m) ^ 2 end end
    near(x:sum(), s, 1e-12, "sum")
    near(x:mean(), m, 1e-12, "mean")
    eq(x:max(), mx, "max"); eq(x:min(), mn, "min")
    eq(x:argmax(), amax, "argmax is the 1-based row-major position")
    near(x:std(), math.sqrt(ss / 23), 1e-12, "std (unbiased)")
    near(x:var(), ss / 23, 1e-12, "var (unbiased)")
    near(x:t():sum(), s, 1e-12, "sum of a transposed view")
    eq(x:gt(-2):all(), true, "all"); eq(x:gt(2):any(), false, "any")
  end)

  it("reduces along a dimension, with keepdim", function()
    local cs = x:sum(1)
    eq(shape(cs), "4", "sum(1) drops the dimension")
    eq(shape(x:sum(1, true)), "1x4", "keepdim")
    local rm = x:mean(2)
    local vals, idx = x:max(2)
    local am = x:argmax(1)
    local sd = x:std(1)
    for j = 1, 4 do
      local s, best, bi = 0, -math.huge, 0
      for i = 1, 6 do
        s = s + X[i][j]
        if X[i][j] > best then best, bi = X[i][j], i end
      end
      near(cs:get(j), s, 1e-6, "column sum")
      eq(am:get(j), bi, "argmax(1) is 1-based")
      local ss = 0
      for i = 1, 6 do ss = ss + (X[i][j] - s / 6) ^ 2 end
      near(sd:get(j), math.sqrt(ss / 5), 1e-6, "std(1)")
    end
    for i = 1, 6 do
      local s, best, bi = 0, -math.huge, 0
      for j = 1, 4 do
        s = s + X[i][j]
        if X[i][j] > best then best, bi = X[i][j], j end
      end
      near(rm:get(i), s / 4, 1e-6, "row mean")
      eq(vals:get(i), best, "max(2) values")
      eq(idx:get(i), bi, "max(2) indices")
    end
    eq(x:min(-1):numel(), 6, "a negative dimension counts from the end")
    eq(x:gt(0):any(2):numel(), 6, "any along a dimension")
    raises(function() x:sum(3) end, "sum: dimension 3 out of range [1, 2] for [6 x 4]")
    raises(function() T.zeros(0):max() end, "max: empty tensor [0]")
  end)
end)

describe("tensor linear algebra", function()
  local g = G.new(3)

  -- naive product of two 2-d tensors through tables
  local function naive(a, b)
    local A, B = a:to_table(), b:to_table()
    return function(i, j)
      local s = 0
      for k = 1, #B do s = s + A[i][k] * B[k][j] end
      return s
    end
  end

  it("multiplies matrices, transposed and narrowed views included", function()
    local a, b = randm(7, 5, g), randm(5, 3, g)
    check2(a:matmul(b), naive(a, b), 1e-5, "matmul")
    local at = randm(5, 7, g):t()
    check2(at:matmul(b), naive(at, b), 1e-5, "transposed left")
    local bt = randm(3, 5, g):t()
    check2(a:matmul(bt), naive(a, bt), 1e-5, "transposed right")
    local an = randm(9, 8, g):narrow(1, 2, 7):narrow(2, 3, 5)
    check2(an:matmul(bt), naive(an, bt), 1e-5, "narrowed left")
    local strided = randm(14, 10, g):view(7, 2, 5, 2):select(4, 1):select(2, 2)
    check2(strided:matmul(b), naive(strided, b), 1e-5, "strided left (copied)")
    eq(shape(T.randn(2, 3):matmul(T.ones(3, 4))), "2x4", "the issue's example")
  end)

  it("accumulates with addmm_ and writes into preallocated outputs with mm", function()
    local a, b, c = randm(4, 6, g), randm(6, 5, g), randm(4, 5, g)
    local C = c:to_table()
    local p = naive(a, b)
    local c2 = c:addmm(a, b, 0.5, 2)
    check2(c2, function(i, j) return 0.5 * C[i][j] + 2 * p(i, j) end, 1e-5, "addmm")
    check2(c, function(i, j) return C[i][j] end, 0, "addmm leaves c alone")
    eq(c:addmm_(a, b), c, "addmm_ returns self")
    check2(c, function(i, j) return C[i][j] + p(i, j) end, 1e-5, "addmm_ defaults beta = alpha = 1")
    local out = T.zeros(5, 4):t()
    eq(T.mm(out, a, b), out, "mm returns out")
    check2(out, p, 1e-5, "mm into a transposed view")
    local ct = T.zeros(5, 4)
    ct:t():addmm_(a, b, 0, 1)
    check2(ct:t(), p, 1e-5, "addmm_ into a column-major view")
  end)

  it("reports shape mistakes with both shapes", function()
    local a, b = T.zeros(256, 14), T.zeros(11, 256)
    raises(function() a:matmul(b) end, "matmul: size mismatch, [256 x 14] @ [11 x 256]")
    raises(function() a:matmul(T.zeros(14)) end,
      "matmul: expected 2-d tensors, got [256 x 14] @ [14]")
    raises(function() T.mm(T.zeros(2, 2), a, a:t()) end,
      "matmul: result of [256 x 14] @ [14 x 256] cannot be written into [2 x 2]")
    raises(function() T.zeros(3, 3):addmm_(a, b) end,
      "addmm: size mismatch, [256 x 14] @ [11 x 256]")
  end)
end)

describe("tensor indexing", function()
  local x = T.arange(20):view(5, 4)

  it("selects and copies slices by index tensors or tables", function()
    local r = x:index_select(1, {5, 1, 5})
    check2(r, function(i, j) local rows = {5, 1, 5}; return (rows[i] - 1) * 4 + j - 1 end,
      0, "rows by table")
    local c = x:index_select(2, T.tensor{4, 2})
    check2(c, function(i, j) local cols = {4, 2}; return (i - 1) * 4 + cols[j] - 1 end,
      0, "columns by tensor")
    local z = T.zeros(5, 4)
    eq(z:index_copy_(1, {2, 4}, x:narrow(1, 1, 2)), z, "index_copy_ returns self")
    check2(z, function(i, j) return (i == 2 or i == 4) and (i == 2 and 0 or 4) + j - 1 or 0 end,
      0, "index_copy_")
    raises(function() x:index_select(1, {1, 6}) end, "index_select: index 6 out of range [1, 5]")
    raises(function() x:index_select(1, T.tensor{0}) end,
      "index_select: index 0 out of range [1, 5]")
    raises(function() x:index_select(1, T.tensor{1.5}) end,
      "index_select: index 1.5 is not an integer")
    raises(function() x:index_select(1, {"a"}) end,
      "index_select: index 1 of the table is not an integer (string)")
    raises(function() z:index_copy_(1, {1}, x) end,
      "index_copy_: source [5 x 4] does not fit 1 slices of [5 x 4]")
  end)

  it("gathers and scatters along a dimension", function()
    local idx = T.tensor{{2}, {1}, {4}, {3}, {2}}
    local gathered = x:gather(2, idx)
    check2(gathered, function(i) return (i - 1) * 4 + idx:get(i, 1) - 1 end, 0, "gather")
    local z = T.zeros(5, 4)
    z:scatter_(2, idx, gathered)
    eq(z:sum(), gathered:sum(), "scatter_ writes each value once")
    eq(z:get(3, 4), x:get(3, 4), "scatter_ position")
    z:scatter_(2, idx, -1)
    eq(z:eq(-1):sum(), 5, "scatter_ a number")
    raises(function() x:gather(2, T.tensor{{5}}) end, "gather: index 5 out of range [1, 4]")
    raises(function() x:gather(2, T.zeros(6, 1):fill_(1)) end,
      "gather: index [6 x 1] does not fit [5 x 4] along dimension 2")
  end)

  it("selects rows by a mask, concatenates and stacks", function()
    local m = x:masked_select(T.tensor{0, 1, 0, 1, 1})
    eq(shape(m), "3x4", "masked rows")
    eq(m:get(1, 1), 4, "first selected row")
    eq(x:masked_select(x:gt(17)):numel(), 2, "masked elements")
    raises(function() x:masked_select(T.zeros(4)) end, "masked_select: mask [4] must be a vector")
    local c = T.cat({x, x:narrow(1, 1, 2)}, 1)
    eq(shape(c), "7x4", "cat rows")
    eq(c:get(6, 2), 1, "cat values")
    eq(shape(T.cat({x, T.ones(5, 1)}, 2)), "5x5", "cat columns")
    local s = T.stack({x, x, x})
    eq(shape(s), "3x5x4", "stack")
    eq(shape(T.stack({x, x}, 3)), "5x4x2", "stack at the end")
    raises(function() T.cat({x, T.zeros(5, 3)}, 1) end,
      "cat: tensor 2 of shape [5 x 3] does not match [5 x 4]")
    raises(function() T.cat({x, 3}) end, "cat: element 2 of the list is a number, not a tensor")
    raises(function() T.stack({}) end, "stack: expected a nonempty list of tensors")
  end)
end)

describe("tensor printing and lifetime", function()
  it("prints shape and values, abbreviating large tensors", function()
    local s = tostring(T.tensor{{1, 2, 3}, {4, 5, 6}})
    check(s:find("1 2 3", 1, true) and s:find("4 5 6", 1, true), "values: %s", s)
    check(s:find("[mbpo.Tensor of size 2x3]", 1, true), "footer: %s", s)
    local f = tostring(T.tensor{0.5, -1.25})
    check(f:find("0.5000", 1, true) and f:find("-1.2500", 1, true), "fixed format: %s", f)
    local big = tostring(T.zeros(100, 100))
    check(big:find("...", 1, true), "abbreviated: %s", big)
    local lines = select(2, big:gsub("\n", ""))
    check(lines < 10, "abbreviated to %d lines", lines)
    local cube = tostring(T.zeros(2, 2, 2))
    check(cube:find("(2,.,.) =", 1, true), "slices: %s", cube)
    check(tostring(T.tensor(2)):find("no dimension", 1, true), "0-d")
  end)

  it("closes with <close> and rejects closed tensors", function()
    local t = T.zeros(3)
    do
      local c <close> = t
    end
    raises(function() t:sum() end, "tensor has been closed")
    eq(tostring(t), "mbpo.Tensor (closed)", "tostring of a closed tensor")
    local v = T.arange(4)
    local w = v:narrow(1, 2, 2)
    v:close()
    eq(w:sum(), 3, "a view keeps the storage alive")
  end)

  it("rejects bad sizes and tables", function()
    raises(function() T.zeros(-1) end, "zeros: negative size -1")
    raises(function() T.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, "zeros: 9 dimensions (at most 8)")
    raises(function() T.tensor{{1, 2}, {3}} end,
      "tensor: ragged nested table, [2] has 1 elements, expected 2")
    raises(function() T.tensor{{1, "a"}} end, "tensor: expected a number at [1][2], got string")
    raises(function() T.tensor("x") end, "table, number or mbpo.Tensor expected")
    raises(function() T.randn(2, "b") end, "number expected")
    local x = T.tensor{5, 6}
    raises(function() return x[1] end, "tensor[1]: a tensor is not indexed with []; use t:get")
    eq(x.no_such_method, nil, "an unknown name still reads nil (duck typing)")
    eq(x:get(2), 6, "get")
  end)

  it("exposes every method as a module function too", function()
    local x = T.tensor{1, 4}
    eq(T.sqrt(x):sum(), 3, "T.sqrt(x)")
    eq(T.is_tensor(x), true, "is_tensor")
    eq(T.is_tensor({}), false, "is_tensor of a table")
    check(type(T._VERSION) == "string", "_VERSION")
  end)
end)

describe("tensor shape bounds", function()
  it("refuses shapes whose sizes overflow, a zero dimension included, before allocating", function()
    local big = 2 ^ 40
    raises(function() T.zeros({0, big, big, big}) end, "tensor: shape [0 x 1099511627776 x")
    raises(function() T.zeros({2 ^ 31, 2 ^ 31}) end, "too large")
    raises(function() T.empty({big, 0, big, big}) end, "too large")
    local z = T.zeros(0, 4)
    raises(function() z:view(0, big, big, big) end, "view: shape [0 x 1099511627776")
    raises(function() z:reshape(big, big, 0, big) end, "too large")
    raises(function() T.zeros({0, 1.5}) end, "not an integer")
    raises(function() T.zeros({0, 0 / 0}) end, "not an integer")
    eq(T.zeros(0, 2 ^ 20, 2 ^ 20):numel(), 0, "a zero dimension with bounded others is fine")
  end)
  it("messages that Lua and C both reach name no 0-based position", function()
    raises(function() T.zeros(1, 3, 1):squeeze(2) end,
      "squeeze: the dimension to drop of [1 x 3 x 1] has size 3, not 1")
    raises(function() T.zeros(0, 2):max(1) end, "max: the reduced dimension of [0 x 2] is empty")
    local t = T.zeros(1, 1, 1, 1, 1, 1, 1, 1)
    local ok, err = pcall(function() t:unsqueeze(1) end)
    check(not ok and err:find("already has", 1, true) and not err:find("dimension 0", 1, true),
      "%s", tostring(err))
  end)
end)
