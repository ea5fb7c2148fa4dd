-- The catalogue of bad inputs (tests/lua/data/catalogue.lua) run through the built binary:
-- each case must exit with its code, print exactly one line of error text (a usage error may
-- add the usage line) that matches its pattern, with no "stack traceback" (unless the error
-- is raised inside the user's own script), and leave every file of the run directory and of
-- its scratch directory byte for byte as they were (nothing created, nothing changed).
local lfs = require "lfs"
local io_ = require "mbpo.io"
local checkpoint = require "mbpo.checkpoint"
local th = require "mbpo.test"
local tmpdir, sh, read, write = th.tmpdir, th.sh, th.read, th.write

local exe = th.exe()
local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"
local cases = dofile(root .. "/tests/lua/data/catalogue.lua")

-- single-quoted for sh: nothing inside is expanded (backquotes, $(), quotes, newlines)
local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- every file (path -> bytes) and directory (path -> "<dir>") under dir
local function snapshot(dir, out, prefix)
  out = out or {}
  prefix = prefix or ""
  if not lfs.attributes(dir) then return out end
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then
      local p = dir .. "/" .. name
      local mode = lfs.symlinkattributes(p, "mode")
      if mode == "directory" then
        out[prefix .. name] = "<dir>"
        snapshot(p, out, prefix .. name .. "/")
      else
        out[prefix .. name] = read(p) or ("<" .. tostring(mode) .. ">")
      end
    end
  end
  return out
end

-- the first difference between two snapshots, or nil
local function diff(a, b)
  local names = {}
  for k in pairs(a) do names[#names + 1] = k end
  for k in pairs(b) do if a[k] == nil then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    if a[k] == nil then return "created " .. k end
    if b[k] == nil then return "removed " .. k end
    if a[k] ~= b[k] then return "changed " .. k end
  end
end

-- the manifest of run's checkpoint rewritten to match its files
local function remanifest(run)
  local dir = run .. "/checkpoint"
  local lines = {}
  for line in io.lines(dir .. "/COMPLETE") do
    local n = line:match("^(%S+)")
    if n then
      lines[#lines + 1] = n .. " " .. assert(io_.checksum(dir .. "/" .. n .. ".safetensors"))
    end
  end
  assert(io_.write_text(dir .. "/COMPLETE", table.concat(lines, "\n") .. "\n"))
end

-- rewrites one part of a checkpoint through f(tree) -> tree, with a manifest that matches, so
-- that only the loader's own checks can refuse it
local function rewrite_part(run, name, f)
  local path = run .. "/checkpoint/" .. name .. ".safetensors"
  assert(checkpoint.save_tree(path, f(assert(checkpoint.load_tree(path)))))
  remanifest(run)
end

-- puts one part file of another run into run, manifest updated
local function transplant(run, other, name)
  write(run .. "/checkpoint/" .. name .. ".safetensors",
    read(other .. "/checkpoint/" .. name .. ".safetensors"))
  remanifest(run)
end

-- an array of 64-bit words or doubles as builds before F64 and U64 stored it: 16 hex digits a
-- value (IEEE-754 bits for doubles)
local function oldhex(a)
  local t = {}
  for i = 1, #a do
    t[i] = string.format("%016x", a:dtype() == "F64" and
      string.unpack("<i8", string.pack("<d", a[i])) or a[i])
  end
  return table.concat(t)
end

local other_task -- a run of the tiny config on Hopper (made in describe)

-- the setups a case may name: each changes the copy of the run (or the scratch directory)
-- before the command; the snapshots are taken after it
local setups = {
  old_format = function(run) -- the agent as an older build wrote it: no layout, rng as hex text
    rewrite_part(run, "agent", function(t) t.layout = nil; t.rng = oldhex(t.rng); return t end)
  end,
  old_env = function(run) -- the env's doubles and words as hex text
    rewrite_part(run, "loop", function(t)
      for k, v in pairs(t.env) do if type(v) == "userdata" then t.env[k] = oldhex(v) end end
      return t
    end)
  end,
  other_task = function(run)
    checkpoint.rmtree(run .. "/checkpoint")
    assert(sh(string.format("cp -a %s %s", shq(other_task .. "/checkpoint"),
      shq(run .. "/checkpoint"))) == 0)
  end,
  other_task_env = function(run) transplant(run, other_task, "loop") end,
  other_checkpoint = function(run, tmp, other)
    checkpoint.rmtree(run .. "/checkpoint")
    assert(sh(string.format("cp -a %s %s", shq(other .. "/checkpoint"),
      shq(run .. "/checkpoint"))) == 0)
  end,
  other_agent = function(run, tmp, other) transplant(run, other, "agent") end,
  other_model = function(run, tmp, other) transplant(run, other, "model") end,
  flip_agent = function(run)
    local p = run .. "/checkpoint/agent.safetensors"
    local s = read(p)
    local i = #s - 10
    write(p, s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1))
  end,
  truncate_agent = function(run)
    local p = run .. "/checkpoint/agent.safetensors"
    local s = read(p)
    write(p, s:sub(1, #s // 2))
    remanifest(run)
  end,
  agent_without_pi = function(run)
    rewrite_part(run, "agent", function(t) t.pi = nil; return t end)
  end,
  conflicting_names = function(run) -- a tensor 'pi' and a number 'pi.x' below it
    local T = require "mbpo.tensor"
    assert(io_.save(run .. "/checkpoint/agent.safetensors", {pi = T.zeros(3)}, {["n:pi.x"] = "1"}))
    remanifest(run)
  end,
  newline_dtype = function(run) -- a dtype with a newline and an escape sequence in it
    local json = '{"pi":{"dtype":"F\\n32\\u001b[2J","shape":[1],"data_offsets":[0,4]}}'
    write(run .. "/checkpoint/agent.safetensors", string.pack("<I8", #json) .. json .. "\0\0\0\0")
    remanifest(run)
  end,
  agent_bad_rng = function(run)
    rewrite_part(run, "agent", function(t) t.rng = "not hex"; return t end)
  end,
  model_bad_layout = function(run)
    rewrite_part(run, "model", function(t) t.layout = "something else"; return t end)
  end,
  buffer_bad = function(run)
    rewrite_part(run, "real_buffer", function(t) t.size = "many"; return t end)
  end,
  loop_epoch = function(run)
    rewrite_part(run, "loop", function(t) t.counters.epoch = 99; return t end)
  end,
  loop_steps = function(run)
    rewrite_part(run, "loop", function(t)
      t.counters.env_steps = t.counters.env_steps + 7; return t
    end)
  end,
  loop_no_rng = function(run)
    rewrite_part(run, "loop", function(t) t.rng = nil; return t end)
  end,
  -- a checkpoint removed after two epochs (progress.csv records them: the run's second row
  -- is its first with the epoch number changed)
  no_checkpoint = function(run)
    checkpoint.rmtree(run .. "/checkpoint")
    local f = assert(io.open(run .. "/progress.csv"))
    local text = f:read("a")
    f:close()
    write(run .. "/progress.csv", text .. text:match("\n1(,[^\n]*\n)$"):gsub("^", "2"))
  end,
  no_manifest = function(run) os.remove(run .. "/checkpoint/COMPLETE") end,
  bad_manifest = function(run) write(run .. "/checkpoint/COMPLETE", "agent 12 34 56\n") end,
  missing_part = function(run) os.remove(run .. "/checkpoint/model.safetensors") end,
  no_config = function(run) os.remove(run .. "/config.lua") end,
  user_dir = function(run, tmp)
    assert(lfs.mkdir(tmp .. "/user"))
    write(tmp .. "/user/config.lua", "-- my own script, not a run directory\nreturn {}\n")
    write(tmp .. "/user/notes.txt", "precious\n")
  end,
  a_file = function(run, tmp) write(tmp .. "/file", "a file, not a directory\n") end,
  empty_dir = function(run, tmp) assert(lfs.mkdir(tmp .. "/empty")) end,
  evil_sweep = function(run, tmp)
    write(run .. "/sweep.lua", "os.execute('touch " .. tmp .. "/pwned')\nreturn {cells = {}}\n")
  end,
}

describe("catalogue", function()
  local base = tmpdir()
  local ref, other = base .. "/ref", base .. "/other"
  -- the run every case copies, and a run of another agent and model size
  local rc, out = sh(string.format("cd %s && %s run %s epochs=1 --out %s", shq(root), shq(exe),
    shq(tiny), shq(ref)))
  assert(rc == 0, out)
  rc, out = sh(string.format("cd %s && %s run %s epochs=1 sac.hidden=8,8 model.hidden=8,8 " ..
    "--out %s", shq(root), shq(exe), shq(tiny), shq(other)))
  assert(rc == 0, out)
  other_task = base .. "/hopper"
  rc, out = sh(string.format("cd %s && %s run %s epochs=1 env=Hopper --out %s", shq(root),
    shq(exe), shq(tiny), shq(other_task)))
  assert(rc == 0, out)

  it("has at least 80 cases, each with a command, an exit code and a pattern", function()
    check(#cases >= 80, "%d cases", #cases)
    local seen = {}
    for i, c in ipairs(cases) do
      check(type(c.name) == "string" and not seen[c.name], "case %d: name %s", i, tostring(c.name))
      seen[c.name] = true
      check(type(c.args) == "table" and math.type(c.rc) == "integer" and type(c.msg) == "string",
        "case %s", c.name)
      check(c.setup == nil or setups[c.setup], "case %s: unknown setup %s",
        c.name, tostring(c.setup))
    end
  end)

  for i, c in ipairs(cases) do
    it(string.format("%d %s", i, c.name), function()
      local tmp = string.format("%s/t%d", base, i)
      local run = string.format("%s/r%d", base, i)
      assert(lfs.mkdir(tmp))
      assert(sh(string.format("cp -a %s %s", shq(ref), shq(run))) == 0)
      local function subst(s)
        return (s:gsub("%$(%u+)", {RUN = run, TMP = tmp, TINY = tiny, OTHER = other,
          SCRIPT = tmp .. "/script.lua", ROOT = root}))
      end
      if c.script then write(tmp .. "/script.lua", subst(c.script)) end
      if c.config then write(run .. "/config.lua", subst(c.config)) end
      if c.setup then setups[c.setup](run, tmp, other) end
      local before_run, before_tmp = snapshot(run), snapshot(tmp)
      local argv = {}
      for j, a in ipairs(c.args) do argv[j] = shq(subst(a)) end
      local code, text = sh(string.format("cd %s && %s %s </dev/null", shq(root), shq(exe),
        table.concat(argv, " ")))
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if not line:match("^usage: mbpo") then lines[#lines + 1] = line end
      end
      eq(code, c.rc, "exit code of `mbpo " .. table.concat(c.args, " ") .. "`:\n" .. text)
      if c.user_code then -- an error inside the user's script: its traceback is welcome
        check(lines[1] and lines[1]:find(c.msg), "message does not match '%s':\n%s", c.msg, text)
      else
        eq(#lines, 1, "lines of error text:\n" .. text)
        check(not text:find("stack traceback", 1, true), "a traceback:\n%s", text)
        check((lines[1] or ""):find(c.msg), "message does not match '%s':\n%s", c.msg, text)
      end
      local d = diff(before_run, snapshot(run))
      check(not d, "run directory: %s", tostring(d))
      d = diff(before_tmp, snapshot(tmp))
      check(not d, "scratch directory: %s", tostring(d))
      checkpoint.rmtree(run)
      checkpoint.rmtree(tmp)
    end)
  end

  -- what a resume accepts: its overrides are kept in config.lua for the next plain resume
  it("keeps the overrides a resume accepts in config.lua, schedule functions included", function()
    local run = base .. "/accepted"
    write(base .. "/sched.lua", "local c = dofile(" .. string.format("%q", tiny) .. ")\n" ..
      "c.rollout.schedule = function(epoch, info)\n  local kmax = 2\n" ..
      "  return math.min(kmax, epoch)\nend\nreturn c\n")
    local code, text = sh(string.format("cd %s && %s run %s epochs=1 log.quiet=true --out %s",
      shq(root), shq(exe), shq(base .. "/sched.lua"), shq(run)))
    eq(code, 0, text)
    code, text = sh(string.format("%s run --resume %s epochs=2 eval.episodes=1",
      shq(exe), shq(run)))
    eq(code, 0, text)
    local cfg_text = read(run .. "/config.lua")
    check(cfg_text:find("\n%-%- resumed with epochs=2 eval.episodes=1\n"), "header:\n%s", cfg_text)
    check(cfg_text:find("\n  epochs = 2,\n", 1, true), "epochs kept:\n%s", cfg_text)
    check(cfg_text:find("episodes = 1,", 1, true), "eval.episodes kept:\n%s", cfg_text)
    check(cfg_text:find("local kmax = 2", 1, true), "the schedule function kept:\n%s", cfg_text)
    -- a plain resume continues with them: the run is complete at 2 epochs
    code, text = sh(string.format("%s run --resume %s", shq(exe), shq(run)))
    eq(code, 0, text)
    local _, rows = require("mbpo.log").read_csv(run .. "/progress.csv")
    eq(#rows, 2, "epochs of the run")
    eq(rows[2].rollout_length, 2, "the schedule function after the resume")
    -- a config.lua of an older build (model.learned_bounds, rollout.mean_prediction) resumes,
    -- and is written back under the new names
    local new_text = read(run .. "/config.lua")
    local old_text, n1 = new_text:gsub('\n    bounds = "learned",\n',
      "\n    learned_bounds = true,\n")
    local n2
    old_text, n2 = old_text:gsub('\n    prediction = "sample",\n',
      "\n    mean_prediction = false,\n")
    eq(n1 + n2, 2, "the old names written in:\n" .. old_text)
    write(run .. "/config.lua", old_text)
    code, text = sh(string.format("%s run --resume %s epochs=3 eval.episodes=1", shq(exe),
      shq(run)))
    eq(code, 0, text)
    _, rows = require("mbpo.log").read_csv(run .. "/progress.csv")
    eq(#rows, 3, "epochs of the run resumed from an old-name config.lua")
    cfg_text = read(run .. "/config.lua")
    check(cfg_text:find('\n    bounds = "learned",\n', 1, true) and
      cfg_text:find('\n    prediction = "sample",\n', 1, true) and
      not cfg_text:find("learned_bounds", 1, true) and
      not cfg_text:find("mean_prediction", 1, true),
      "config.lua rewritten under the new names:\n%s", cfg_text)
    -- and the refused override changed nothing
    local before = snapshot(run)
    code, text = sh(string.format("%s run --resume %s epochs=4 rollout.batch=7", shq(exe),
      shq(run)))
    eq(code, 1, text)
    check(text:find("cannot resume with rollout.batch=7", 1, true), text)
    check(not diff(before, snapshot(run)), "run directory changed by a refused resume")
  end)

  it("cleans up", function()
    checkpoint.rmtree(base)
    check(not lfs.attributes(base), "left " .. base)
  end)
end)
