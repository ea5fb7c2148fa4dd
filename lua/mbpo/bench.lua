-- mbpo.bench: `mbpo bench [KERNEL ...]` runs lua/mbpo/bench/<kernel>.lua modules, each a
-- table {description = "...", run = function(opts) ... end}. Shared helpers: timing with
-- medians, and the PyTorch CPU peer (../shared/peers/torch_mbpo_kernels.py) run in the same
-- process tree so ratios come from one run.
local lfs = require "lfs"
local core = require "mbpo.core"

local M = {}

local function bench_dir()
  return (MBPO_ROOT or ".") .. "/lua/mbpo/bench"
end

-- names of the available benchmark modules
function M.kernels()
  local names = {}
  local dir = bench_dir()
  if lfs.attributes(dir, "mode") == "directory" then
    for f in lfs.dir(dir) do
      local n = f:match("^(.-)%.lua$")
      if n then names[#names + 1] = n end
    end
  end
  table.sort(names)
  return names
end

-- median of a list of numbers
function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return 0.5 * (s[n // 2] + s[n // 2 + 1])
end

-- time(f, reps, rounds): median over `rounds` of the mean seconds per call over `reps` calls
function M.time(f, reps, rounds)
  rounds = rounds or 5
  f() -- warm-up
  local per = {}
  for r = 1, rounds do
    local t0 = core.clock()
    for _ = 1, reps do f() end
    per[r] = (core.clock() - t0) / reps
  end
  return M.median(per), per
end

-- where the peer lives: $MBPO_PEER or <root>/../shared/peers/torch_mbpo_kernels.py
function M.peer_path()
  local p = os.getenv("MBPO_PEER") or
    ((MBPO_ROOT or ".") .. "/../shared/peers/torch_mbpo_kernels.py")
  if lfs.attributes(p, "mode") == "file" then return p end
  return nil
end

-- one JSON object per line of the peer's output -> table ({} when the line is not JSON)
local function parse_json_line(line)
  return require("mbpo.json").json_decode(line) or {}
end

-- runs the peer; returns {kernel = result} for each thread count and the best per kernel
-- (lowest time), or nil and a message saying how to install it
function M.peer(kernels, obs, act, threads_list, extra)
  local path = M.peer_path()
  if not path then return nil, "peer script not found (set MBPO_PEER)" end
  local probe = io.popen("/usr/bin/python3 -c 'import torch' 2>&1")
  local out = probe:read("a")
  probe:close()
  if out:find("Error") then
    return nil, "PyTorch peer unavailable: install it with `make peer-deps` (Debian python3-torch)"
  end
  local best, all = {}, {}
  for _, th in ipairs(threads_list or {1, 2}) do
    local cmd = string.format(
      "/usr/bin/python3 %s --obs %d --act %d --threads %d --kernels %s %s 2>&1",
      path, obs, act, th, kernels, extra or "")
    local p = io.popen(cmd)
    for line in p:lines() do
      if line:match("^{") then
        local r = parse_json_line(line)
        all[#all + 1] = r
        local key = r.kernel
        local cost = r.ms_per_update or r.ms_per_step or r.ms
        local b = best[key]
        if not b or cost < (b.ms_per_update or b.ms_per_step or b.ms) then best[key] = r end
      end
    end
    p:close()
  end
  return best, all
end

-- The modern peer: tests/peers/torch2_kernels.py (PyTorch 2.x in the venv `make peer-deps`
-- makes: $PEER_VENV or /opt/mbpo-peers/venv), same kernels and JSON as the Debian peer, in
-- fp32 or bf16 autocast, eager or torch.compile. M.peer2(obs, act, precision) runs it at 1
-- and 2 threads in both modes and returns the best time per kernel, {kernel = {ms=, mode=,
-- threads=}}, or nil and a message; results are kept for the rest of the process, so every
-- benchmark that asks for the same shapes shares one run.
local peer2_cache = {}
function M.peer2_python()
  local venv = os.getenv("PEER_VENV") or "/opt/mbpo-peers/venv"
  local py = venv .. "/bin/python"
  if lfs.attributes(py, "mode") then return py end
  return nil
end

function M.peer2(obs, act, precision)
  local key = obs .. "x" .. act .. ":" .. precision
  if peer2_cache[key] ~= nil then return peer2_cache[key] or nil, "modern peer unavailable" end
  local py, script = M.peer2_python(), (MBPO_ROOT or ".") .. "/tests/peers/torch2_kernels.py"
  if not py then
    peer2_cache[key] = false
    return nil, "modern peer unavailable: install it with `make peer-deps` (PyTorch 2.x venv)"
  end
  local best = {}
  for _, mode in ipairs({"eager", "compile"}) do
    for _, th in ipairs({1, 2}) do
      local p = io.popen(string.format("%q %q --obs %d --act %d --threads %d " ..
        "--kernels sac,train,predict,act --precision %s --mode %s 2>/dev/null", py, script, obs,
        act, th, precision, mode))
      for line in p:lines() do
        if line:match("^{") then
          local r = parse_json_line(line)
          local ms = r.ms_per_update or r.ms_per_step or r.ms
          if r.kernel and ms and (not best[r.kernel] or ms < best[r.kernel].ms) then
            best[r.kernel] = {ms = ms, mode = r.mode or mode, threads = th, peer = r.peer}
          end
        end
      end
      p:close()
    end
  end
  if next(best) == nil then
    peer2_cache[key] = false
    return nil, "modern peer printed no result (" .. script .. ")"
  end
  peer2_cache[key] = best
  return best
end

-- the modern peer's kernel behind each summary kernel (Hopper shapes)
local peer2_kernel = {sac_update = "sac", sac_act = "act", ens_train = "train",
  ens_step = "predict"}

-- prints the machine-readable lines of a benchmark: for each {kernel, precision, ours ms,
-- Debian peer ms}, `summary ...` against the Debian peer and, where the modern peer runs,
-- `summary2 ...` against its best (eager or compiled, 1 or 2 threads) at the same precision;
-- opts.peer == false (the caller's bench options) or MBPO_BENCH_NO_PEER2=1 skips the modern peer
function M.summaries(list, obs, act, opts)
  local peer2 = os.getenv("MBPO_BENCH_NO_PEER2") ~= "1" and not (opts and opts.peer == false)
  for _, s in ipairs(list) do
    local kernel, prec, ours, peer = s[1], s[2], s[3], s[4]
    io.write(string.format("summary %s %s ours %.3f peer %s ratio %s\n", kernel, prec, ours,
      peer and string.format("%.3f", peer) or "nan",
      peer and string.format("%.2fx", peer / ours) or "nan"))
    if peer2 and peer2_kernel[kernel] then
      local best, err = M.peer2(obs or 11, act or 3, prec)
      local b = best and best[peer2_kernel[kernel]]
      if b then
        io.write(string.format("summary2 %s %s ours %.3f peer %.3f ratio %.2fx (%s, %s, %dT)\n",
          kernel, prec, ours, b.ms, b.ms / ours, b.peer or "torch 2", b.mode, b.threads))
      elseif err then
        io.write("summary2 ", kernel, " ", prec, ": ", err, "\n")
      end
    end
  end
end

-- What the whole machine and this process (with its waited-for children: the peers) have
-- run so far, from /proc (Linux): {busy = non-idle ticks of all CPUs, total = all ticks of all
-- CPUs, cpus = how many, ours = this process's and its children's ticks}; nil where /proc
-- cannot be read. Ticks are USER_HZ in both files.
function M.machine_sample(stat_text, self_text)
  local read_text = require("mbpo.io").read_text
  stat_text = stat_text or read_text("/proc/stat")
  self_text = self_text or read_text("/proc/self/stat")
  if not stat_text or not self_text then return nil end
  local f = {}
  for n in (stat_text:match("^cpu%s+([^\n]+)") or ""):gmatch("%d+") do f[#f + 1] = tonumber(n) end
  local cpus = 0
  for _ in stat_text:gmatch("\ncpu%d+%s") do cpus = cpus + 1 end
  -- after the command name (which may hold spaces and parentheses), field 3 onwards
  local rest, g = self_text:match("^.*%)%s+(.*)$"), {}
  for w in (rest or ""):gmatch("%S+") do g[#g + 1] = w end
  if #f < 4 or cpus == 0 or #g < 15 then return nil end
  -- user nice system idle iowait irq softirq steal: all but idle and iowait are busy (steal:
  -- the hypervisor ran someone else on this CPU)
  local total, busy = 0, 0
  for i = 1, math.min(#f, 8) do
    total = total + f[i]
    if i ~= 4 and i ~= 5 then busy = busy + f[i] end
  end
  -- utime stime cutime cstime are fields 14-17, here 12-15
  local ours = 0
  for i = 12, 15 do ours = ours + (tonumber(g[i]) or 0) end
  return {busy = busy, total = total, cpus = cpus, ours = ours}
end

-- Between two samples: how many cores other processes kept busy on average, and one line
-- saying so when it is more than a tenth of a core (the benchmark's figures then come from a
-- shared machine: quote them with care, or pause the other jobs and run again); nil, nil
-- when either sample is missing or no time passed.
function M.others_note(label, a, b)
  if not a or not b or b.total <= a.total then return nil end
  local others = math.max(0, (b.busy - a.busy) - (b.ours - a.ours))
  local cores = others / (b.total - a.total) * a.cpus
  if cores <= 0.1 then return cores end
  return cores, string.format("%s: other processes kept %.2f of the machine's %d cores busy " ..
    "on average while it ran: not a quiet machine, so its times are slower than a quiet " ..
    "machine's; pause other jobs (training runs: SIGTERM) and run it again to quote them\n",
    label, cores, a.cpus)
end

function M.main(args)
  local names = args
  if #names == 0 then names = M.kernels() end
  if #names == 0 then
    io.stderr:write("mbpo bench: no benchmarks found in ", bench_dir(), "\n")
    return 1
  end
  local known = {}
  for _, n in ipairs(M.kernels()) do known[n] = true end
  -- `epoch TASK`: a task name right after epoch is its argument
  local list, task = {}, nil
  for i, n in ipairs(names) do
    if not known[n] and names[i - 1] == "epoch" then
      local ok, tasks = pcall(function() return require("mbpo.env").tasks() end)
      local found
      for _, t in ipairs(ok and tasks or {}) do
        if t:lower() == n:lower() then found = t end
      end
      if not found then
        io.stderr:write("mbpo bench: unknown task '", n, "' for epoch (available: ",
          table.concat(ok and tasks or {}, ", "), ")\n")
        return 2
      end
      task = found
    elseif not known[n] then
      io.stderr:write("mbpo bench: unknown kernel '", n, "' (available: ",
        table.concat(M.kernels(), ", "), ")\n")
      return 2
    else
      list[#list + 1] = n
    end
  end
  -- the elementwise kernels' instruction-set path (MBPO_ISA=avx2 forces AVX2)
  io.write("kernels: ", core.isa and core.isa() or "avx2", " path, ", core.threads(), " threads\n")
  for _, n in ipairs(list) do
    local b = require("mbpo.bench." .. n)
    io.write("== bench ", n, ": ", b.description or "", "\n")
    local s0 = M.machine_sample()
    b.run(n == "epoch" and {task = task} or {})
    local _, note = M.others_note("bench " .. n, s0, M.machine_sample())
    if note then io.write(note) end
    io.flush()
  end
  return 0
end

return M
