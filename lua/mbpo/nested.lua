-- mbpo.nested: the reading of nested Lua tables of numbers for the bindings. T.tensor(table)
-- and the tables that sac:update and sac:act take in place of tensors are read here (the C
-- function mbL_tabletensor, src/lua/l_tensor.c, calls flatten and builds the tensor):
--   flatten(t, who, maxdim) -> values, shape
--       values: t's numbers in row-major order; shape: the lengths of the first elements,
--       down to a non-table (an empty table ends it), at most maxdim of them. Every row must
--       have its dimension's length and hold numbers at the last dimension, tables above it.
-- A mistake raises one line beginning "who: ", without a position (the binding adds that of
-- its caller):
--   "tensor: ragged nested table, [2] has 1 elements, expected 2"
--   "tensor: expected a number at [1][2], got string"
local M = {}

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- the 1-based position path[1..n] as "[2][1]"
local function where(path, n)
  local parts = {}
  for d = 1, n do parts[d] = "[" .. path[d] .. "]" end
  return table.concat(parts)
end

-- writes the numbers of x, the table at dimension dim (1-based) of position path, into
-- values after its n-th; returns the new count
local function fill(values, n, x, dim, shape, path, who)
  local len, ndim = rawlen(x), #shape
  if len ~= shape[dim] then
    fail("%s: ragged nested table, %s has %d elements, expected %d", who,
         dim > 1 and where(path, dim - 1) or "the outer table", len, shape[dim])
  end
  for i = 1, len do
    path[dim] = i
    local e = rawget(x, i)
    if dim == ndim and type(e) == "number" then
      n = n + 1
      values[n] = e
    elseif dim < ndim and type(e) == "table" then n = fill(values, n, e, dim + 1, shape, path, who)
    else
      fail("%s: expected a %s at %s, got %s", who, dim == ndim and "number" or "table",
           where(path, dim), type(e))
    end
  end
  return n
end

function M.flatten(t, who, maxdim)
  local shape, v = {}, t
  while type(v) == "table" do
    if #shape == maxdim then fail("%s: nested table deeper than %d", who, maxdim) end
    shape[#shape + 1] = rawlen(v)
    if shape[#shape] == 0 then break end
    v = rawget(v, 1)
  end
  if #shape == 1 then  -- a list of numbers holds its own values
    for i = 1, shape[1] do
      if type(rawget(t, i)) ~= "number" then fill({}, 0, t, 1, shape, {}, who) end
    end
    return t, shape
  end
  local values = {}
  fill(values, 0, t, 1, shape, {}, who)
  return values, shape
end

return M
