-- mbpo.schedule: rollout-length schedules. A schedule is any Lua function of the epoch
-- (and, if it wants, of a table of measurements: model holdout MSE, losses) returning the
-- rollout length k. The reference's thresholded linear schedule is provided here.
local M = {}

-- thresholded linear schedule [a, b, x, y]: at epoch e,
-- k = floor(min(max(x + (e - a) / (b - a) * (y - x), x), y))
function M.linear(a, b, x, y)
  if type(a) == "table" then a, b, x, y = a[1], a[2], a[3], a[4] end
  for i, v in ipairs({a, b, x, y}) do
    if type(v) ~= "number" then
      error(string.format("schedule.linear: argument %d must be a number, got %s", i, type(v)), 2)
    end
  end
  if b == a then error("schedule.linear: a and b must differ (got " .. a .. ")", 2) end
  return function(epoch)
    local k = x + (epoch - a) / (b - a) * (y - x)
    return math.floor(math.min(math.max(k, x), y))
  end
end

-- a constant rollout length
function M.constant(k)
  return function() return k end
end

-- turns a config value (function, or {a, b, x, y} list, or a number) into a function
function M.resolve(s)
  if type(s) == "function" then return s end
  if type(s) == "number" then return M.constant(s) end
  if type(s) == "table" and #s == 4 then return M.linear(s) end
  if type(s) == "table" and #s == 1 then return M.constant(s[1]) end
  error("rollout schedule must be a function, a number or {a, b, x, y}, got " .. tostring(s), 2)
end

return M
