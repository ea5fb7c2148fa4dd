-- mbpo command line: dispatches argv to the commands. Called by src/main.c as
-- require("mbpo.cli").main(argv) and returns the process exit code.
local M = {}

local USAGE = "usage: mbpo COMMAND [ARGS]   (mbpo help for the commands)"

local HELP = [[
mbpo: model-based policy optimisation (MBPO) in C with an embedded Lua 5.4

usage:
  mbpo run SCRIPT.lua [key=value ...]   run a training script; key=value pairs override its
                                        config (dotted keys reach nested tables)
  mbpo SCRIPT.lua [args]                run any Lua file with the mbpo modules available;
                                        the arguments are in the global table `arg`
  mbpo test [FILE_spec.lua ...]         run the Lua specs (default: tests/lua/*_spec.lua)
  mbpo bench [KERNEL ...]               benchmarks (kernels: %s)
  mbpo version                          print the version
  mbpo help [COMMAND]                   this text

environment:
  MBPO_THREADS=N   OpenBLAS threads (default 1; results are bit-identical for a fixed N)
  MBPO_HOME=DIR    where lua/mbpo lives, when not next to the binary
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

-- parses key=value overrides into a flat table {["a.b"] = "v"}
local function parse_overrides(list)
  local over, order = {}, {}
  for _, a in ipairs(list) do
    local k, v = a:match("^([%a_][%w_%.]*)=(.*)$")
    if not k then return nil, "bad override '" .. a .. "' (expected key=value)" end
    over[k] = v
    order[#order + 1] = k
  end
  return over, order
end

local commands = {}

function commands.version()
  local core = require "mbpo.core"
  print("mbpo " .. core._VERSION .. " (" .. _VERSION .. ", MuJoCo 2.2.2, OpenBLAS)")
  return 0
end

function commands.help(args)
  io.write(string.format(HELP, bench_kernels()))
  return 0
end

-- mbpo run SCRIPT.lua [key=value ...]: the script gets the overrides as ... (and as
-- the global MBPO_OVERRIDES); if mbpo.train is available and the script returns a config
-- table, train runs it
function commands.run(args)
  local script = args[1]
  if not script then return usage("run: missing SCRIPT.lua") end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  local ok, mod = pcall(require, "mbpo.run")
  if ok then return mod.main(script, rest) end
  local over, order = parse_overrides(rest)
  if not over then return usage("run: " .. order) end
  local chunk, err = loadfile(script)
  if not chunk then
    io.stderr:write("mbpo: ", (err:gsub("^cannot open (%S+)", "cannot open script %1")), "\n")
    return 1
  end
  _G.arg = {[0] = script, table.unpack(rest)}
  local okr, res = xpcall(chunk, MBPO_MSGHANDLER, over)
  if not okr then
    io.stderr:write("mbpo: ", tostring(res), "\n")
    return 1
  end
  return 0
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
M.parse_overrides = parse_overrides
M.usage = usage
return M
