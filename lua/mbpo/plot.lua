-- mbpo.plot: learning curves (evaluation return against env steps) from runs'
-- progress.csv, drawn with gnuplot as PNG or SVG. Several runs: mean line and min-max band.
local log = require "mbpo.log"
local lfs = require "lfs"

local M = {}

-- the (steps, eval_return) series of one run directory
local function series(dir)
  local header, rows = log.read_csv(dir .. "/progress.csv")
  if not header then return nil, "no progress.csv in " .. dir .. " (" .. tostring(rows) .. ")" end
  local out = {}
  for _, r in ipairs(rows) do
    if type(r.env_steps) == "number" and type(r.eval_return) == "number" then
      out[#out + 1] = {r.env_steps, r.eval_return}
    end
  end
  return out
end

-- aggregate several series row by row (runs of one script share the step grid): for each
-- step present in every run, mean, min, max
local function aggregate(all)
  local n = math.huge
  for _, s in ipairs(all) do n = math.min(n, #s) end
  local rows = {}
  for i = 1, (n == math.huge and 0 or n) do
    local sum, lo, hi = 0, math.huge, -math.huge
    for _, s in ipairs(all) do
      local v = s[i][2]
      sum = sum + v
      lo = math.min(lo, v)
      hi = math.max(hi, v)
    end
    rows[i] = {all[1][i][1], sum / #all, lo, hi}
  end
  return rows
end

-- gnuplot never sees a user's string: it reads and writes files of our own temporary names
-- (os.tmpname: /tmp/lua_XXXXXX), and a title keeps only letters, digits, spaces and a few
-- punctuation marks, in single quotes (gnuplot expands `...` in strings, and quotes or a
-- newline would end the command; an apostrophe is doubled, gnuplot's escape inside single
-- quotes). The picture is then moved to the user's path from Lua.
local function safe_title(s)
  return (s:gsub("[^%w %.,:;_+=%-%(%)/%%#']", "?"):gsub("'", "''"))
end

-- the reference points worth drawing beside runs that reached env step maxx: those up to
-- maxx and the first one past it (where the curve heads), so far-off points do not squeeze
-- the runs into the left of the picture
function M.refs_in_range(refs, maxx)
  local out, past = {}, nil
  for _, r in ipairs(refs or {}) do
    if r[1] <= maxx then out[#out + 1] = r
    elseif not past or r[1] < past[1] then past = r end
  end
  if past then out[#out + 1] = past end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

-- moves our temporary file to the user's path: rename, or a copy across file systems
local function move(from, to)
  if os.rename(from, to) then return true end
  local src = io.open(from, "rb")
  if not src then return nil, "cannot read " .. from end
  local data = src:read("a")
  src:close()
  local dst, err = io.open(to, "wb")
  if not dst then os.remove(from); return nil, "cannot write " .. tostring(err) end
  local ok, werr = dst:write(data)
  local cok, cerr = dst:close()
  os.remove(from)
  if not (ok and cok) then return nil, "cannot write " .. to .. ": " .. tostring(werr or cerr) end
  return true
end

-- M.plot(dirs, out_file [, title [, opts]]) -> out_file or nil, message;
-- opts.refs: {{steps, return}, ...} reference points drawn as circles (M.refs_in_range)
-- opts.refs_title: their legend entry (default "paper (plot-read)")
-- opts.baseline: {value, title}: a dashed horizontal line (the random policy's return)
-- Several runs: the mean and min-max band over the steps every run has reached, and each run's
-- own thin line, so a run longer than the others still shows its tail.

-- writes rows of numbers to a new temporary file; returns its name
local function write_tmp(rows, fmt)
  local name = os.tmpname()
  assert(name:match("^[%w/_%.%-]+$"), "unsafe temporary name")
  local f = assert(io.open(name, "w"))
  for _, r in ipairs(rows) do f:write(string.format(fmt, table.unpack(r))) end
  f:close()
  return name
end

-- the gnuplot `plot` command over our temporary files
local function plot_command(files, nruns, refs_title, baseline)
  local blue = "lc rgb '#1f77b4'"
  local parts = {}
  if nruns > 1 then
    parts[#parts + 1] = string.format("'%s' using 1:3:4 with filledcurves %s title 'min-max'",
      files.data, blue)
    for i, s in ipairs(files.seeds) do
      parts[#parts + 1] = string.format("'%s' using 1:2 with lines lw 1 lc rgb '#9ecae1' %s", s,
        i == 1 and "title 'each run'" or "notitle")
    end
  end
  parts[#parts + 1] = string.format(
    "'%s' using 1:2 with linespoints lw 2 pt 7 ps 0.5 %s title '%s'",
    files.data, blue, nruns > 1 and "mean" or "eval return")
  if files.refs then
    parts[#parts + 1] = string.format("'%s' using 1:2 with points pt 6 ps 1.5 lw 2 " ..
      "lc rgb '#d62728' title '%s'", files.refs, safe_title(refs_title or "paper (plot-read)"))
  end
  if baseline then
    parts[#parts + 1] = string.format("%.6g with lines dt 2 lw 1.5 lc rgb '#7f7f7f' title '%s'",
      baseline[1], safe_title(baseline[2] or "baseline"))
  end
  return "plot " .. table.concat(parts, ", ")
end

-- runs gnuplot on a script; the picture lands in img
local function run_gnuplot(script, img)
  local gp = write_tmp({{script}}, "%s\n")
  local ok, _, code = os.execute("gnuplot " .. gp .. " 2>/dev/null")
  os.remove(gp)
  if not ok then
    return nil, string.format("gnuplot failed (exit %s); is gnuplot installed? (make deps)",
      tostring(code))
  end
  if (lfs.attributes(img, "size") or 0) == 0 then return nil, "gnuplot wrote no picture" end
  return true
end

function M.plot(dirs, out, title, opts)
  opts = opts or {}
  local baseline = opts.baseline
  if baseline and not (type(baseline[1]) == "number" and baseline[1] == baseline[1] and
      math.abs(baseline[1]) < math.huge) then
    return nil, "plot: baseline must be a finite number, got " .. tostring(baseline[1])
  end
  local all = {}
  for _, d in ipairs(dirs) do
    local s, err = series(d)
    if not s then return nil, err end
    all[#all + 1] = s
  end
  local rows = aggregate(all)
  if #rows == 0 then return nil, "no evaluated epochs yet in " .. table.concat(dirs, ", ") end
  out = out or (dirs[1] .. "/curve.png")
  local term = out:match("%.svg$") and "svg size 800,500 dynamic" or
    "pngcairo size 800,500 noenhanced"
  local files = {data = write_tmp(rows, "%d %.6g %.6g %.6g\n"), seeds = {}}
  if #dirs > 1 then
    for i, s in ipairs(all) do files.seeds[i] = write_tmp(s, "%d %.6g\n") end
  end
  local maxx = 0
  for _, s in ipairs(all) do
    for _, r in ipairs(s) do maxx = math.max(maxx, r[1]) end
  end
  local refs = M.refs_in_range(opts.refs, maxx)
  if #refs > 0 then files.refs = write_tmp(refs, "%d %.6g\n") end
  local img = os.tmpname()
  assert(img:match("^[%w/_%.%-]+$"), "unsafe temporary name")
  title = title or (#dirs == 1 and dirs[1]:match("[^/]+$") or
    string.format("%d runs (mean, min-max)", #dirs))
  local ok, err = run_gnuplot(table.concat({
    "set terminal " .. term,
    string.format("set output '%s'", img),
    string.format("set title '%s' noenhanced", safe_title(title)),
    "set xlabel 'environment steps'",
    "set ylabel 'evaluation return'",
    "set grid",
    "set autoscale xfix",
    "set offsets 0, graph 0.03, 0, 0",
    "set key left top Left reverse",
    "set style fill transparent solid 0.25 noborder",
    plot_command(files, #dirs, opts.refs_title, baseline),
  }, "\n"), img)
  os.remove(files.data)
  for _, s in ipairs(files.seeds) do os.remove(s) end
  if files.refs then os.remove(files.refs) end
  if not ok then os.remove(img); return nil, err end
  local mok, merr = move(img, out)
  if not mok then return nil, merr end
  return out
end

return M
