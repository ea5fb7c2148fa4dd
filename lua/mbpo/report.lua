-- mbpo.report: `mbpo report DIR [-o FILE] [--no-plots]`, the results page made from published
-- runs. DIR holds one folder per task, each with one folder per seed holding the run's
-- config.lua and progress.csv (DIR/<task>/seed<N>/). The page lists per task the evaluation
-- return at fixed env-step marks (mean and min-max over seeds, and the mean of each seed's
-- last 5 evaluations up to the mark) beside the paper's values,
-- the random-policy return, the time per run and per epoch, the precision and the command of
-- each run; a curve per task (DIR/<task>/curve.png) with the reference points marked.
-- The page is a pure function of the committed files (no dates, no machine names), so running
-- the command again on the same files reproduces it byte for byte.
local log = require "mbpo.log"
local lfs = require "lfs"

local M = {}

-- Reference points {env steps, mean, std over 5 trials}: the paper's Figure 2 as the authors
-- released it (pickles of mean and std per epoch, linked from the jannerm/mbpo README; read from
-- the copy in facebookresearch/svg at commit c05887ea, data/mbpo/<task>_mbpo.pkl), linearly
-- interpolated at the marks. Their x axis starts at 6k (5000 exploration steps and one epoch),
-- so it counts env steps as ours do. Humanoid's file ends at 250k.
local FIG2 = "paper Figure 2, authors' released curves (mean ± std of 5 trials)"
M.references = {
  inverted_pendulum = {label = "1000 within 3k-15k (paper Figure 2, plot-read)",
    points = {{3000, 1000}, {15000, 1000}}, marks = {1000, 1500, 2000, 2500, 3000, 5000}},
  hopper = {label = FIG2, points = {{10000, 328, 167}, {15000, 458, 214}, {25000, 587, 214},
    {30000, 697, 174}, {50000, 1700, 799}, {75000, 3033, 642}, {100000, 3315, 334},
    {125000, 3280, 455}}},
  walker2d = {label = FIG2, points = {{10000, 214, 97}, {15000, 352, 116}, {25000, 433, 153},
    {30000, 480, 183}, {50000, 836, 476}, {75000, 1953, 1254}, {100000, 3476, 1048},
    {150000, 4070, 676}, {200000, 4107, 832}, {300000, 4864, 488}}},
  halfcheetah = {label = FIG2, points = {{10000, 1769, 387}, {15000, 3214, 480},
    {25000, 5042, 935}, {30000, 5842, 992}, {50000, 7948, 591}, {75000, 9177, 404},
    {100000, 9563, 688}, {150000, 10216, 993}, {200000, 10681, 1348}, {300000, 12585, 811},
    {400000, 13083, 936}}},
  ant = {label = FIG2, points = {{10000, 337, 125}, {15000, 622, 63}, {25000, 718, 25},
    {30000, 747, 26}, {50000, 782, 229}, {75000, 1139, 673}, {100000, 1456, 878},
    {150000, 2958, 1360}, {200000, 4239, 1346}, {300000, 5287, 695}}},
  humanoid = {label = FIG2, points = {{10000, 220, 63}, {15000, 308, 71}, {25000, 366, 87},
    {30000, 381, 94}, {50000, 398, 73}, {75000, 420, 72}, {100000, 644, 159},
    {150000, 1800, 900}, {200000, 3690, 1311}}},
}

-- Random-policy mean returns measured on MuJoCo 2.2.2 (../shared/specs/gym-tasks.md 8.2;
-- Ant and Humanoid: MBPO's truncated observations)
M.random_return = {inverted_pendulum = 6.1, hopper = 18.9, walker2d = 2.7,
  halfcheetah = -278, ant = -55, humanoid = 116}

-- A folder <task>_bf16 holds runs of the same task at precision=bf16 (parity runs): it gets
-- its task's references and random return
for _, t in ipairs({"inverted_pendulum", "hopper", "walker2d", "halfcheetah", "ant", "humanoid"}) do
  M.references[t .. "_bf16"] = M.references[t]
  M.random_return[t .. "_bf16"] = M.random_return[t]
end

M.task_names = {inverted_pendulum = "InvertedPendulum", hopper = "Hopper",
  inverted_pendulum_bf16 = "InvertedPendulum (bf16)", hopper_bf16 = "Hopper (bf16)",
  walker2d_bf16 = "Walker2d (bf16)", halfcheetah_bf16 = "HalfCheetah (bf16)",
  ant_bf16 = "Ant (bf16)", humanoid_bf16 = "Humanoid (bf16)",
  walker2d = "Walker2d", halfcheetah = "HalfCheetah", ant = "Ant", humanoid = "Humanoid"}
-- the paper's task order; each task's bf16 runs follow its fp32 runs
M.task_order = {}
for _, t in ipairs{"inverted_pendulum", "hopper", "walker2d", "halfcheetah", "ant", "humanoid"} do
  M.task_order[#M.task_order + 1] = t
  M.task_order[#M.task_order + 1] = t .. "_bf16"
end

-- env-step marks of the table
M.marks = {5000, 10000, 15000, 25000, 30000, 50000, 75000, 100000, 125000, 150000, 200000, 300000,
  400000}

local function sorted_dirs(path)
  local out = {}
  if not lfs.attributes(path, "mode") then return out end
  for name in lfs.dir(path) do
    if name:sub(1, 1) ~= "." and lfs.attributes(path .. "/" .. name, "mode") == "directory" then
      out[#out + 1] = name
    end
  end
  table.sort(out, function(a, b)
    local na, nb = tonumber(a:match("%d+$")), tonumber(b:match("%d+$"))
    if na and nb and na ~= nb then return na < nb end
    return a < b
  end)
  return out
end

-- the first line of a resolved config.lua names the command that made it
local function read_run(dir)
  local header, rows = log.read_csv(dir .. "/progress.csv")
  if not header then return nil, "no progress.csv in " .. dir end
  local run = {dir = dir, rows = rows, command = "?", precision = "fp32"}
  local f = io.open(dir .. "/config.lua", "r")
  if not f then return nil, "no config.lua in " .. dir end
  local text = f:read("a")
  f:close()
  run.command = text:match("^%-%- resolved config of `([^`]*)`") or "?"
  run.precision = text:match('\n%s*precision%s*=%s*"(%w+)"') or "fp32"
  -- a run ended by its stop rule keeps its final return at later marks
  local stop = tonumber(text:match("\n%s*stop_return%s*=%s*([%d%.e+]+)"))
  local last = rows[#rows]
  run.stopped = stop and last and type(last.eval_return) == "number" and last.eval_return >= stop
  run.epoch_length = tonumber(text:match("\n%s*epoch_length%s*=%s*(%d+)"))
  return run
end

-- eval return of a run at env step s (the epoch that ends there), or nil; a run that stopped
-- because it reached stop_return counts with its final return at later marks
local function at(run, s)
  for _, r in ipairs(run.rows) do
    if r.env_steps == s and type(r.eval_return) == "number" then return r.eval_return end
  end
  local last = run.rows[#run.rows]
  if run.stopped and s > last.env_steps then return last.eval_return end
  return nil
end

-- M.window evaluations: a run's mean over its last M.window evaluations up to env step s (fewer
-- near its start), or nil where at(run, s) is; a run stopped by its stop rule goes on at its
-- final return, one evaluation per epoch_length steps
M.window = 5
local function window_at(run, s)
  if at(run, s) == nil then return nil end
  local vals = {}
  for _, r in ipairs(run.rows) do
    if r.env_steps <= s and type(r.eval_return) == "number" then vals[#vals + 1] = r.eval_return end
  end
  local last = run.rows[#run.rows]
  if run.stopped and s > last.env_steps and run.epoch_length then
    for _ = 1, (s - last.env_steps) // run.epoch_length do vals[#vals + 1] = last.eval_return end
  end
  local sum, first = 0, math.max(1, #vals - M.window + 1)
  for i = first, #vals do sum = sum + vals[i] end
  return sum / (#vals - first + 1)
end

local function last_steps(run)
  local r = run.rows[#run.rows]
  return r and r.env_steps or 0
end

local function fmt(v)
  if v == nil then return "" end
  if math.abs(v) >= 100 then return string.format("%.0f", v) end
  return string.format("%.1f", v)
end

local function median(xs)
  if #xs == 0 then return nil end
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function ref_at(task, s)
  for _, p in ipairs((M.references[task] or {}).points or {}) do
    if p[1] == s then return p[3] and string.format("%d ± %d", p[2], p[3]) or fmt(p[2]) end
  end
  return ""
end

-- first env step at which a run's eval return reached v
local function first_reaching(run, v)
  for _, r in ipairs(run.rows) do
    if type(r.eval_return) == "number" and r.eval_return >= v then return r.env_steps end
  end
  return nil
end

-- per run: reach, time (CPU hours where a run of the task records time_cpu), command
local function run_table(runs, out)
  local cpu = false
  for _, r in ipairs(runs) do
    for _, row in ipairs(r.rows) do cpu = cpu or type(row.time_cpu) == "number" end
  end
  out[#out + 1] = "| run | last env step | last eval | first >= 1000 at | hours | " ..
    (cpu and "CPU hours | " or "") .. "median s/epoch | command |"
  out[#out + 1] = "|---|---:|---:|---:|---:|" .. (cpu and "---:|" or "") .. "---:|---|"
  for _, r in ipairs(runs) do
    local total, per, cpu_total, cpu_rows = 0, {}, 0, 0
    for _, row in ipairs(r.rows) do
      if type(row.time_epoch) == "number" then
        total = total + row.time_epoch; per[#per + 1] = row.time_epoch
      end
      if type(row.time_cpu) == "number" then
        cpu_total, cpu_rows = cpu_total + row.time_cpu, cpu_rows + 1
      end
    end
    -- CPU hours only when every epoch recorded them (a run begun by an older build has not)
    local cpu_cell = ""
    if cpu then
      cpu_cell = (cpu_rows == #r.rows and #r.rows > 0) and
        string.format(" %.2f |", cpu_total / 3600) or " - |"
    end
    local last = r.rows[#r.rows] or {}
    local reach = first_reaching(r, 1000)
    out[#out + 1] = string.format("| %s | %d | %s | %s | %.2f |%s %s | `%s` |", r.name,
      last_steps(r), fmt(last.eval_return), reach and tostring(reach) or "-", total / 3600,
      cpu_cell, fmt(median(per)), r.command)
  end
end

-- the section of one task
local function task_section(task, runs, out)
  local name = M.task_names[task] or task
  out[#out + 1] = "## " .. name .. "\n"
  local ref = M.references[task]
  local rnd = M.random_return[task]
  out[#out + 1] = string.format("%d seed%s; precision %s; random-policy return %s; reference %s.\n",
    #runs, #runs == 1 and "" or "s", runs[1].precision, rnd and fmt(rnd) or "?",
    ref and ref.label or "none")
  if lfs.attributes(runs.dir .. "/curve.png") then
    out[#out + 1] = string.format("![%s](%s/curve.png)\n", name, task)
  end
  -- the table: the marks some run reached (or that every run passed by stopping)
  local maxs = 0
  for _, r in ipairs(runs) do maxs = math.max(maxs, last_steps(r)) end
  out[#out + 1] = string.format("| env steps | mean | min | max | seeds | mean of last %d | " ..
    "reference |", M.window)
  out[#out + 1] = "|---:|---:|---:|---:|---:|---:|---:|"
  for _, s in ipairs(ref and ref.marks or M.marks) do
    local vals, wsum = {}, 0
    for _, r in ipairs(runs) do
      vals[#vals + 1] = at(r, s)
      wsum = wsum + (window_at(r, s) or 0)
    end
    if #vals > 0 and (s <= maxs or #vals == #runs) then
      local sum, lo, hi = 0, math.huge, -math.huge
      for _, v in ipairs(vals) do sum = sum + v; lo = math.min(lo, v); hi = math.max(hi, v) end
      out[#out + 1] = string.format("| %d | %s | %s | %s | %d | %s | %s |", s, fmt(sum / #vals),
        fmt(lo), fmt(hi), #vals, fmt(wsum / #vals), ref_at(task, s))
    end
  end
  out[#out + 1] = ""
  run_table(runs, out)
  out[#out + 1] = ""
  -- what was looked into on this task, written by hand beside its runs
  local f = io.open(runs.dir .. "/notes.md", "r")
  if f then
    local text = f:read("a"):gsub("%s+$", "")
    f:close()
    if text ~= "" then out[#out + 1] = text .. "\n" end
  end
end

-- the page's opening: how it is made and what its figures are
local function preamble()
  return {
    "# Results",
    "",
    "Learning curves of `mbpo` with the paper's scripts (`scripts/<task>.lua`, settings " ..
      "unchanged),",
    "one run per seed. Evaluation return: mean of 5 deterministic episodes after each epoch.",
    "Made by `mbpo report results -o results/README.md` from the `config.lua` and " ..
      "`progress.csv` of",
    "each run in `results/<task>/seed<N>/` and a task's `results/<task>/notes.md` (what was",
    "looked into, written by hand); do not edit this page by hand. Hours are wall clock on a",
    "shared 2-core machine (MBPO_THREADS=1, niced, other jobs running, unless a task's notes",
    "say otherwise), so they overstate the time of a quiet machine; the returns do not depend",
    "on load or threads (CPU hours, where a run records them in progress.csv's `time_cpu`,",
    "hardly do). A run that stopped at its `stop_return` (InvertedPendulum: 1000) counts with",
    "its final return at later marks. \"Mean of last " .. M.window .. "\": each run's mean " ..
      "over its last " .. M.window,
    "evaluations up to the mark (fewer near its start), averaged over the runs, since one",
    "epoch's return is noisy (an episode that falls early costs thousands).",
    "",
    "Reference values: the paper's Figure 2 curves as the authors released them (mean and std",
    "over 5 trials per epoch, one deterministic evaluation episode each; the pickles linked from",
    "the jannerm/mbpo README, read from the copy in facebookresearch/svg at commit c05887ea,",
    "`data/mbpo/<task>_mbpo.pkl`), interpolated at the marks. Ant and Humanoid are the",
    "truncated-observation tasks, as ours. Both axes count env steps with the random exploration",
    "steps (`init_exploration_steps`: 5000, pendulum 500): the released curves start at 6k, the",
    "end of the first epoch after exploration. The released curves look smoothed (no",
    "epoch-to-epoch noise), ours are not. InvertedPendulum is not in the released files: its",
    "reference is read off the paper's plot.",
    "",
  }
end

-- M.page(dir) -> markdown text, the per-task runs
function M.page(dir)
  local tasks, seen = {}, {}
  for _, t in ipairs(M.task_order) do
    if lfs.attributes(dir .. "/" .. t, "mode") == "directory" then
      tasks[#tasks + 1] = t; seen[t] = true
    end
  end
  for _, t in ipairs(sorted_dirs(dir)) do
    if not seen[t] then tasks[#tasks + 1] = t end
  end
  local out = preamble()
  local all = {}
  for _, t in ipairs(tasks) do
    local runs = {dir = dir .. "/" .. t}
    for _, s in ipairs(sorted_dirs(dir .. "/" .. t)) do
      local r, err = read_run(dir .. "/" .. t .. "/" .. s)
      if not r then return nil, err end
      r.name = t .. "/" .. s
      runs[#runs + 1] = r
    end
    if #runs > 0 then
      task_section(t, runs, out)
      all[t] = runs
    end
  end
  if next(all) == nil then
    return nil, "no runs under " .. dir .. " (expected DIR/<task>/seed<N>/progress.csv)"
  end
  return table.concat(out, "\n"), all, tasks
end

-- M.main(args): mbpo report DIR [-o FILE] [--no-plots]
function M.main(args)
  local cli = require "mbpo.cli"
  local dir, outf, plots = nil, nil, true
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-o" then
      outf = args[i + 1]
      if not outf then return cli.usage("report: -o needs a file name") end
      i = i + 2
    elseif a == "--no-plots" then plots = false; i = i + 1
    elseif a:match("^%-") then return cli.usage("report: unknown option '" .. a .. "'")
    elseif not dir then dir = a:gsub("/+$", ""); i = i + 1
    else return cli.usage("report: unexpected argument '" .. a .. "'") end
  end
  if not dir then return cli.usage("report: missing DIR") end
  if lfs.attributes(dir, "mode") ~= "directory" then
    io.stderr:write("mbpo: report: no directory " .. dir .. "\n")
    return 1
  end
  local text, runs, tasks = M.page(dir)
  if not text then io.stderr:write("mbpo: report: ", runs, "\n"); return 1 end
  if plots then
    local plot = require "mbpo.plot"
    for _, t in ipairs(tasks) do
      if runs[t] then
        local dirs = {}  -- runs with an evaluated epoch (one just begun has none to draw)
        for _, r in ipairs(runs[t]) do
          if first_reaching(r, -math.huge) then dirs[#dirs + 1] = r.dir end
        end
        local ok, err = #dirs == 0 or plot.plot(dirs, dir .. "/" .. t .. "/curve.png",
          string.format("%s: %s", M.task_names[t] or t,
            #dirs == 1 and "1 seed" or #dirs .. " seeds (mean, min-max)"),
          {refs = (M.references[t] or {}).points,
            refs_title = "paper Figure 2 (authors' curves)",
            baseline = M.random_return[t] and {M.random_return[t], "random policy"}})
        if not ok then io.stderr:write("mbpo: report: plot ", t, ": ", err, "\n"); return 1 end
      end
    end
    text = M.page(dir) -- the curves now exist: the page links them
  end
  if outf then
    local ok, err = require("mbpo.io").write_text(outf, text)
    if not ok then
      io.stderr:write("mbpo: report: cannot write ", outf, ": ", tostring(err), "\n")
      return 1
    end
    print("wrote " .. outf)
  else
    io.write(text)
  end
  return 0
end

return M
