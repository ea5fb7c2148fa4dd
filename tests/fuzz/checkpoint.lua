-- Driver of fuzz_checkpoint: the first byte of the input picks a part of a checkpoint, the
-- rest is that part's file. It is put in a run directory with a manifest whose checksum
-- matches, loaded with mbpo.checkpoint.load, and the loaded tree is restored into objects of
-- the sizes of tests/lua/data/tiny.lua (a seed made from a real checkpoint restores). Every
-- failure must be nil, message (or one line raised at level 0 for the loop counters); any
-- other error is a bug.
local checkpoint = require "mbpo.checkpoint"
local io_ = require "mbpo.io"
local lfs = require "lfs"
local train = require "mbpo.train"

local parts = {"agent", "model", "real_buffer", "model_buffer", "loop"}
local base = (lfs.attributes("/dev/shm", "mode") == "directory" and "/dev/shm" or "/tmp") ..
  "/mbpo-fuzz-checkpoint-" .. require("mbpo.core").getpid()
lfs.mkdir(base)
local dir = base .. "/checkpoint"
lfs.mkdir(dir)

function FUZZ_CLEANUP() checkpoint.rmtree(base) end

local cfg = assert(require("mbpo.run").resolve(dofile(MBPO_ROOT .. "/tests/lua/data/tiny.lua"),
  {epochs = "1"}, {"epochs"}))
local env = train.make_env(cfg)
local m = cfg.model
local objects = {
  agent = require("mbpo.sac").new{obs = 4, act = 1, hidden = cfg.sac.hidden, seed = 11},
  model = require("mbpo.ensemble").new{inputs = 5, outputs = 5, members = m.members,
    elites = m.elites, hidden = m.hidden, activation = m.activation,
    weight_decay = m.weight_decay, lr = m.lr, seed = 13, bounds = "learned",
    bootstrap = m.bootstrap, snapshot = m.snapshot, batch = m.batch, patience = m.patience,
    holdout_ratio = m.holdout_ratio, holdout_cap = m.holdout_cap, prediction = "sample"},
  real_buffer = require("mbpo.buffer").new{obs = 4, act = 1, capacity = 160},
  model_buffer = require("mbpo.buffer").new{obs = 4, act = 1, capacity = 400},
}

local function one_line(msg, what)
  if type(msg) ~= "string" or msg:find("\n") then
    error(what .. ": the failure is not one line: " .. tostring(msg))
  end
end

return function(bytes)
  if #bytes < 1 then return end
  local name = parts[bytes:byte(1) % #parts + 1]
  for _, p in ipairs(parts) do os.remove(dir .. "/" .. p .. ".safetensors") end
  local path = dir .. "/" .. name .. ".safetensors"
  local f = assert(io.open(path, "wb"))
  f:write(bytes:sub(2))
  f:close()
  assert(io_.write_text(dir .. "/COMPLETE", name .. " " .. assert(io_.checksum(path)) .. "\n"))
  local loaded, err = checkpoint.load(base)
  if not loaded then one_line(err, "load"); return end
  local tree = loaded[name]
  if name == "loop" then
    local ok, e = pcall(train.check_counters, type(tree) == "table" and tree.counters, cfg, nil)
    if not ok then one_line(e, "counters") end
    if type(tree) == "table" then
      local okr, er = checkpoint.restore("env", env, tree.env)
      if not okr then one_line(er, "env") end
    end
    return
  end
  local ok, e = checkpoint.restore(name, objects[name], tree)
  if not ok then one_line(e, name) end
end
