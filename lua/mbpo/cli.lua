-- mbpo command line: dispatches argv to the commands. Called by src/main.c as
-- require("mbpo.cli").main(argv) and returns the process exit code.
local M = {}

local USAGE = "usage: mbpo COMMAND [ARGS]   (mbpo help for the commands)"

local HELP = [[
mbpo: model-based policy optimisation (MBPO) in C with an embedded Lua 5.4

usage:
  mbpo run SCRIPT.lua [key=value ...] [--out DIR]
                                        train: the script returns a config table; key=value
                                        pairs override it (dotted keys reach nested tables;
                                        unknown keys and wrong types are errors)
  mbpo run --resume DIR [key=value ...] continue a run from its last complete checkpoint
  mbpo eval RUN_DIR [--episodes N]      deterministic returns of a run's saved policy
  mbpo video RUN_DIR [-o FILE.mp4] [--episodes N] [--size WxH] [--fps F] [--camera NAME]
            [--model K]                 headless mp4 of the saved policy (default
                                        RUN_DIR/videos/eval.mp4, 480x480, real time; camera
                                        'track', 'free' or one of the model's); --model K:
                                        beside it the learned model's K-step open-loop
                                        prediction, and a CSV of its per-step error
  mbpo plot RUN_DIR [RUN_DIR ...] [-o FILE]
                                        learning curve (PNG or SVG by extension); several
                                        runs: mean and min-max band
  mbpo diag RUN_DIR                     the critics of the last checkpoint against the
                                        returns the real rows got, the critic target's parts
                                        on real and model rows, the model's next states
  mbpo report DIR [-o FILE]             results page (markdown + a curve per task) from
                                        DIR/<task>/seed<N>/{config.lua,progress.csv} and
                                        DIR/<task>/notes.md (optional, hand-written)
  mbpo sweep SCRIPT.lua [...] seed=1-5 [key=v1,v2 ...] --out DIR [-j N] [--slurm] [--sbatch OPTS]
                                        a grid of runs, N at a time or as a Slurm job array;
                                        rerun to continue; mbpo sweep --status DIR to follow
  mbpo SCRIPT.lua [args]                run any Lua file with the mbpo modules available;
                                        the arguments are in the global table `arg`
  mbpo test [FILE_spec.lua ...]         run the Lua specs (default: tests/lua/*_spec.lua)
  mbpo bench [KERNEL ...]               benchmarks (kernels: %s)
  mbpo version                          print the version
  mbpo help [COMMAND]                   this text
  mbpo help config [--markdown]         every setting: key, type, default, range, doc

environment:
  MBPO_THREADS=N   OpenBLAS and worker threads (default: online processors, at most 8;
                   results are bit-identical for a fixed N)
  MBPO_HOME=DIR    where lua/mbpo lives, when not next to the binary
  MBPO_FFMPEG=PROG the encoder of mbpo video (default ffmpeg on PATH)
  MBPO_NO_GL=1     rendering fails as if no OpenGL (EGL) were installed (for tests)
]]

-- usage error: message + usage line on stderr, exit code 2
local function usage(msg)
  io.stderr:write("mbpo: ", msg, "\n", USAGE, "\n")
  return 2
end

local function bench_kernels()
  local ok, b = pcall(require, "mbpo.bench")
  if not ok then return "none" end
  return table.concat(b.kernels(), ", ")
end

-- runs a chunk as the script of `mbpo FILE.lua`: syntax errors give one line, exit 1
local function run_file(path, args)
  local chunk, err = loadfile(path)
  if not chunk then
    io.stderr:write("mbpo: ", (err:gsub("^cannot open (%S+)", "cannot open script %1")), "\n")
    return 1
  end
  local argt = {[0] = path}
  for i, a in ipairs(args) do argt[i] = a end
  _G.arg = argt
  local ok, res = xpcall(chunk, MBPO_MSGHANDLER, table.unpack(args))
  if not ok then
    io.stderr:write("mbpo: ", tostring(res), "\n")
    return 1
  end
  return math.type(res) == "integer" and res or 0
end

local commands = {}

function commands.version()
  local core = require "mbpo.core"
  print("mbpo " .. core._VERSION .. " (" .. _VERSION .. ", MuJoCo 2.2.2, OpenBLAS)")
  return 0
end

function commands.help(args)
  if args[1] == "config" then -- every setting: mbpo help config [--markdown]
    if args[2] and args[2] ~= "--markdown" then
      return usage("help: unknown option '" .. args[2] .. "'")
    end
    io.write(require("mbpo.schema").help(args[2] == "--markdown"))
    return 0
  end
  io.write(string.format(HELP, bench_kernels()))
  return 0
end

-- mbpo run SCRIPT.lua [key=value ...] [--out DIR] | mbpo run --resume DIR (see mbpo.run)
function commands.run(args)
  return require("mbpo.run").main(args)
end

-- mbpo eval RUN_DIR [--episodes N]: deterministic returns of the saved policy
function commands.eval(args)
  local dir, episodes = nil, 10
  local i = 1
  while i <= #args do
    if args[i] == "--episodes" then
      episodes = math.tointeger(tonumber(args[i + 1] or ""))
      local max = require("mbpo.evaluate").MAX_EPISODES
      if not episodes or episodes < 1 or episodes > max then
        return usage(string.format("eval: --episodes needs an integer in [1, %d], got %s", max,
                                   tostring(args[i + 1])))
      end
      i = i + 2
    elseif args[i]:match("^%-%-") then return usage("eval: unknown option '" .. args[i] .. "'")
    elseif not dir then dir = args[i]; i = i + 1
    else return usage("eval: unexpected argument '" .. args[i] .. "'") end
  end
  if not dir then return usage("eval: missing RUN_DIR") end
  dir = dir:gsub("/+$", "")
  local okc, res = require("mbpo.config").load_sandboxed(dir .. "/config.lua")
  if not okc then io.stderr:write("mbpo: cannot evaluate: ", res, "\n"); return 1 end
  if type(res) ~= "table" then
    io.stderr:write("mbpo: cannot evaluate: ", dir, "/config.lua returns no table\n"); return 1
  end
  local run = require "mbpo.run"
  local cfg, cerr = run.resolve(res, {}, {})
  if not cfg then io.stderr:write("mbpo: ", cerr, "\n"); return 1 end
  local ck = require "mbpo.checkpoint"
  local agent_state, lerr = ck.load_part(dir, "agent")
  if not agent_state then io.stderr:write("mbpo: cannot evaluate: ", lerr, "\n"); return 1 end
  local SAC = require "mbpo.sac"
  local env = require("mbpo.train").make_env(cfg)
  local agent = SAC.new{obs = env.obs_dim, act = env.act_dim, hidden = cfg.sac.hidden}
  local okr, rerr = ck.restore("agent", agent, agent_state)
  if not okr then io.stderr:write("mbpo: cannot evaluate: ", rerr, "\n"); return 1 end
  env:reset{seed = cfg.seed + 200000}
  local returns, lengths = require("mbpo.evaluate").run(env, agent, episodes, cfg.max_path_length)
  local s, s2, lo, hi = 0, 0, math.huge, -math.huge
  for _, r in ipairs(returns) do
    s = s + r; s2 = s2 + r * r; lo = math.min(lo, r); hi = math.max(hi, r)
  end
  local mean = s / #returns
  local std = #returns > 1 and
    math.sqrt(math.max(0, (s2 - #returns * mean * mean) / (#returns - 1))) or 0
  local ls = 0
  for _, l in ipairs(lengths) do ls = ls + l end
  print(string.format("%s: %d episodes, return %.2f +- %.2f (min %.2f, max %.2f), mean length %.1f",
    dir, #returns, mean, std, lo, hi, ls / #lengths))
  return 0
end

-- mbpo video RUN_DIR [-o FILE.mp4] [--episodes N] [--size WxH] [--fps F] [--camera NAME]
--   [--model K] (mbpo.video)
function commands.video(args)
  return require("mbpo.video").main(args)
end

-- mbpo plot RUN_DIR [RUN_DIR ...] [-o FILE]
function commands.plot(args)
  local dirs, out = {}, nil
  local i = 1
  while i <= #args do
    if args[i] == "-o" then
      out = args[i + 1]
      if not out then return usage("plot: -o needs a file name") end
      i = i + 2
    else dirs[#dirs + 1] = args[i]:gsub("/+$", ""); i = i + 1 end
  end
  if #dirs == 0 then return usage("plot: missing RUN_DIR") end
  if #dirs == 1 and io.open(dirs[1] .. "/sweep.lua") then -- a sweep: one figure per group
    local files, serr = require("mbpo.sweep").plot(dirs[1], out and out:match("%.(%a+)$"))
    if not files then io.stderr:write("mbpo: plot: ", serr, "\n"); return 1 end
    for _, f in ipairs(files) do print("wrote " .. f) end
    return 0
  end
  local file, err = require("mbpo.plot").plot(dirs,
    out or (#dirs == 1 and dirs[1] .. "/curve.png" or "curve.png"))
  if not file then io.stderr:write("mbpo: plot: ", err, "\n"); return 1 end
  print("wrote " .. file)
  return 0
end

-- mbpo diag RUN_DIR: do the critics estimate what they should (mbpo.diag)
function commands.diag(args)
  return require("mbpo.diag").main(args)
end

-- mbpo report DIR [-o FILE] [--no-plots]: the results page of published runs (mbpo.report)
function commands.report(args)
  return require("mbpo.report").main(args)
end

function commands.sweep(args)
  return require("mbpo.sweep").main(args)
end

function commands.test(args)
  return require("mbpo.test").main(args)
end

function commands.bench(args)
  return require("mbpo.bench").main(args)
end

function M.main(argv)
  local cmd = argv[1]
  local args = {}
  for i = 2, #argv do args[#args + 1] = argv[i] end
  if cmd == nil then return usage("no command given") end
  if cmd == "--help" or cmd == "-h" then cmd = "help" end
  if cmd == "--version" then cmd = "version" end
  local f = commands[cmd]
  if f then return f(args) end
  if cmd:match("%.lua$") then return run_file(cmd, args) end
  return usage("unknown command '" .. cmd .. "'")
end

M.commands = commands
M.usage = usage
return M
