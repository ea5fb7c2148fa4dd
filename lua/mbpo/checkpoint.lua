-- mbpo.checkpoint: complete, atomic checkpoints of a run. A checkpoint is a directory of
-- safetensors files, one per part (agent, model, buffers, loop state), written into a
-- temporary directory that is renamed into place; the previous checkpoint is removed only
-- after the new one is complete, so a crash at any moment leaves one intact.
--
-- Each part is a tree of Lua values (what state() methods return): tensors are stored as
-- F32 tensors, mbpo.Array values as F64, U64 or I64 arrays, integers as I64, other numbers,
-- strings and booleans in the metadata with a type tag, nested tables by dotted names.
local io_ = require "mbpo.io"
local lfs = require "lfs"
local T = require "mbpo.tensor"

local M = {}
local tensor_mt, array_mt = getmetatable(T.zeros(1)), getmetatable(io_.array("U64", {1}))

-- flattens a state tree into (tensors, metadata) for mbpo.io
local function flatten(tree, prefix, tensors, meta)
  for k, v in pairs(tree) do
    local key
    if math.type(k) == "integer" then key = "#" .. k
    elseif type(k) == "string" and k ~= "" and not k:find("[%.#]") then key = k
    else
      error(string.format("checkpoint: unsupported state key %s%s", type(k) == "string" and
        string.format("%q", k) or tostring(k), prefix and " in " .. prefix or ""))
    end
    local name = prefix and (prefix .. "." .. key) or key
    local tv = type(v)
    if tv == "table" then
      meta["t:" .. name] = "table"
      flatten(v, name, tensors, meta)
    elseif tv == "userdata" and (getmetatable(v) == tensor_mt or getmetatable(v) == array_mt) then
      tensors[name] = v
    elseif math.type(v) == "integer" then
      tensors[name] = v
    elseif tv == "number" then
      meta["n:" .. name] = v ~= v and "nan" or (v == math.huge and "inf") or
        (v == -math.huge and "-inf") or string.format("%.17g", v)
    elseif tv == "string" then
      meta["s:" .. name] = v
    elseif tv == "boolean" then
      meta["b:" .. name] = tostring(v)
    else
      error("checkpoint: cannot store a " .. tv .. " at " .. name)
    end
  end
end

-- sets tree[path...] = v creating tables along the dotted path; false when the path runs
-- through a value that is not a table (names of a damaged or forged file that conflict)
local function put(tree, name, v)
  local node = tree
  local parts = {}
  for p in name:gmatch("[^%.]+") do parts[#parts + 1] = p end
  for i = 1, #parts do
    local p = parts[i]
    local key = p:sub(1, 1) == "#" and math.tointeger(tonumber(p:sub(2))) or p
    if i == #parts then
      if v ~= nil then node[key] = v elseif node[key] == nil then node[key] = {} end
    else
      node[key] = node[key] or {}
      node = node[key]
      if type(node) ~= "table" then return false end
    end
  end
  return true
end

-- the state tree of a file's tensors and metadata, or nil, message
local function unflatten(tensors, meta)
  local tree = {}
  local function set(name, v)
    if not put(tree, name, v) then error({bad = name}) end
  end
  local ok, e = pcall(function()
    for name in pairs(meta) do
      if name:sub(1, 2) == "t:" then set(name:sub(3), nil) end
    end
    for name, v in pairs(tensors) do set(name, v) end
    for key, s in pairs(meta) do
      local tag, name = key:match("^(%a):(.+)$")
      if tag == "n" then
        -- "%.17g" writes integral floats without a point ("3", "-0"): read them as floats
        local v = s == "nan" and 0 / 0 or s == "inf" and math.huge or s == "-inf" and -math.huge
          or tonumber(s:find("^%-?%d+$") and s .. ".0" or s)
        set(name, v)
      elseif tag == "s" then set(name, s)
      elseif tag == "b" then set(name, s == "true") end
    end
  end)
  if ok then return tree end
  if type(e) == "table" then return nil, "conflicting state names at '" .. e.bad .. "'" end
  error(e, 0)
end

-- writes one state tree to a safetensors file; true or nil, message
function M.save_tree(path, tree)
  local tensors, meta = {}, {}
  flatten(tree, nil, tensors, meta)
  return io_.save(path, tensors, meta)
end

-- reads a state tree; tree or nil, message
function M.load_tree(path)
  local tensors, meta = io_.load(path)
  local tree, err = tensors, meta
  if tensors then tree, err = unflatten(tensors, meta or {}) end
  if tree then return tree end
  if tensors then err = path .. ": " .. err end
  -- names and types from the file may hold control characters: one line, shown escaped
  return nil, (tostring(err):gsub("%c", function(c) return string.format("\\x%02x", c:byte()) end))
end

local function rmtree(path)
  if not lfs.attributes(path) then return end
  if lfs.attributes(path, "mode") == "directory" then
    for f in lfs.dir(path) do
      if f ~= "." and f ~= ".." then rmtree(path .. "/" .. f) end
    end
    lfs.rmdir(path)
  else
    os.remove(path)
  end
end
M.rmtree = rmtree

-- The manifest COMPLETE, written last (atomically, fsynced): one line per part, "name
-- checksum" (io.checksum of its file). A directory without it is incomplete; a part whose
-- bytes do not match its checksum is damaged.
local function write_manifest(dir, names)
  local lines = {}
  for _, name in ipairs(names) do
    local sum, err = io_.checksum(dir .. "/" .. name .. ".safetensors")
    if not sum then return nil, err end
    lines[#lines + 1] = name .. " " .. sum
  end
  return io_.write_text(dir .. "/COMPLETE", table.concat(lines, "\n") .. "\n")
end

local function complete(dir) return lfs.attributes(dir .. "/COMPLETE", "mode") == "file" end

-- After a crash inside save: a complete checkpoint.tmp with no checkpoint beside it is the
-- newest complete state (it was written in full before anything was moved): put it in place.
local function settle(run_dir)
  local final, tmp = run_dir .. "/checkpoint", run_dir .. "/checkpoint.tmp"
  if not complete(final) and complete(tmp) then
    rmtree(final)
    local ok, err = os.rename(tmp, final)
    if not ok then return nil, "checkpoint: cannot move " .. tmp .. " into place: " .. err end
  end
  return true
end

-- M.save(run_dir, parts): parts = {name = state tree}; writes run_dir/checkpoint atomically;
-- true or nil, message. Order: every part into checkpoint.tmp (each file fsynced), the
-- manifest last; then checkpoint -> checkpoint.old, checkpoint.tmp -> checkpoint, and only
-- then checkpoint.old is removed. At every moment one complete checkpoint exists (find()
-- knows each intermediate state), and a failed write (a full disk) keeps the previous one.
function M.save(run_dir, parts)
  local final = run_dir .. "/checkpoint"
  local tmp = run_dir .. "/checkpoint.tmp"
  local old = run_dir .. "/checkpoint.old"
  local ok, err = settle(run_dir)
  if not ok then return nil, err end
  rmtree(tmp)
  ok, err = lfs.mkdir(tmp)
  if not ok then return nil, "cannot create " .. tmp .. ": " .. tostring(err) end
  local names = {}
  for name in pairs(parts) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    M.fault("save:" .. name)
    ok, err = M.save_tree(tmp .. "/" .. name .. ".safetensors", parts[name])
    if not ok then
      rmtree(tmp)
      return nil, "checkpoint not written (the previous one is kept): " .. tostring(err)
    end
  end
  ok, err = write_manifest(tmp, names)
  if not ok then
    rmtree(tmp)
    return nil, "checkpoint not written (the previous one is kept): " .. tostring(err)
  end
  M.fault("save:before_rename")
  if complete(final) then
    rmtree(old) -- an older complete copy: the current checkpoint is complete
    ok, err = os.rename(final, old)
    if not ok then return nil, "checkpoint: cannot move the previous checkpoint: " .. err end
  else
    rmtree(final)
  end
  M.fault("save:between_renames")
  ok, err = os.rename(tmp, final)
  if not ok then return nil, "checkpoint: cannot rename into place: " .. err end
  M.fault("save:after_rename")
  rmtree(old)
  return true
end

-- the directory of the last complete checkpoint of a run, or nil, message: checkpoint;
-- else a complete checkpoint.tmp (a crash after it was written, before or between the
-- renames: it is newer than checkpoint.old); else checkpoint.old
function M.find(run_dir)
  for _, name in ipairs({"checkpoint", "checkpoint.tmp", "checkpoint.old"}) do
    local d = run_dir .. "/" .. name
    if complete(d) then return d end
  end
  if not lfs.attributes(run_dir, "mode") then return nil, "no such run directory: " .. run_dir end
  return nil, "no complete checkpoint in " .. run_dir
end

-- M.load(run_dir) -> parts {name = tree} or nil, message; each part's checksum is checked
function M.load(run_dir)
  local dir, err = M.find(run_dir)
  if not dir then return nil, err end
  local f = io.open(dir .. "/COMPLETE", "r")
  if not f then return nil, "cannot read " .. dir .. "/COMPLETE" end
  local parts = {}
  for line in f:lines() do
    local name, sum = line:match("^(%S+)%s*(%x*)$")
    if line ~= "" and not name then
      f:close()
      return nil, "corrupt checkpoint " .. dir .. ": bad manifest line '" .. line .. "'"
    end
    if name then
      local path = dir .. "/" .. name .. ".safetensors"
      if sum ~= "" then -- manifests before checksums list names only
        local got, cerr = io_.checksum(path)
        if not got then f:close(); return nil, "corrupt checkpoint " .. dir .. ": " .. cerr end
        if got ~= sum then
          f:close()
          return nil, string.format("corrupt checkpoint %s: %s.safetensors does not match its " ..
            "checksum (%s, manifest %s)", dir, name, got, sum)
        end
      end
      local tree, e = M.load_tree(path)
      if not tree then
        f:close(); return nil, "corrupt checkpoint " .. dir .. ": " .. tostring(e)
      end
      parts[name] = tree
    end
  end
  f:close()
  return parts, dir
end

-- M.load_part(run_dir, name) -> tree, or nil, message: one part of the last complete
-- checkpoint (e.g. "agent" for `mbpo eval`), its checksum checked, the others not read
function M.load_part(run_dir, name)
  local dir, err = M.find(run_dir)
  if not dir then return nil, err end
  local f = io.open(dir .. "/COMPLETE", "r")
  if not f then return nil, "cannot read " .. dir .. "/COMPLETE" end
  local manifest = f:read("a")
  f:close()
  local sum
  for line in manifest:gmatch("[^\n]+") do
    local n, s = line:match("^(%S+)%s*(%x*)$")
    if n == name then sum = s end
  end
  if not sum then return nil, "corrupt checkpoint " .. dir .. ": no part '" .. name .. "'" end
  local path = dir .. "/" .. name .. ".safetensors"
  if sum ~= "" then
    local got, cerr = io_.checksum(path)
    if not got then return nil, "corrupt checkpoint " .. dir .. ": " .. cerr end
    if got ~= sum then
      return nil, string.format("corrupt checkpoint %s: %s.safetensors does not match its " ..
        "checksum (%s, manifest %s)", dir, name, got, sum)
    end
  end
  local tree, e = M.load_tree(path)
  if not tree then return nil, "corrupt checkpoint " .. dir .. ": " .. tostring(e) end
  return tree
end

-- M.restore(name, obj, tree) -> true, or nil, one line: every load_state raises when a state
-- does not fit (naming the block and both shapes); at the file boundary that becomes
-- nil, message naming the part
function M.restore(name, obj, tree)
  if tree == nil then return nil, string.format("the checkpoint's %s is missing", name) end
  local ok, err = pcall(obj.load_state, obj, tree)
  if ok then return true end
  local why = tostring(err):gsub("^[^:]*%.lua:%d+: ", "")
  -- values from the file (a forged layout) may hold control characters: one line, escaped
  why = why:gsub("%c", function(c) return string.format("\\x%02x", c:byte()) end)
  return nil, string.format("the checkpoint's %s does not fit this run: %s", name, why)
end

-- Fault injection for the tests: MBPO_FAULT=NAME:N kills the process (SIGKILL) the Nth
-- time it passes the point NAME (a point passed n times at once, M.fault(NAME, n), counts n).
-- Costs one table lookup when unset.
local fault_name, fault_left = nil, nil
do
  local spec = os.getenv("MBPO_FAULT")
  if spec then
    fault_name, fault_left = spec:match("^(.-):(%d+)$")
    fault_left = tonumber(fault_left)
  end
end
function M.fault(name, n)
  if fault_name == name then
    fault_left = fault_left - (n or 1)
    if fault_left <= 0 then
      io.stderr:flush()
      os.execute("kill -9 " .. require("mbpo.core").getpid())
    end
  end
end

-- M.lock(run_dir) -> true or nil, message: an exclusive lock on run_dir/.lock held until the
-- process exits, so a second run or resume of the same directory refuses
local held = {}
function M.lock(run_dir)
  if held[run_dir] then return true end
  local f, err = io.open(run_dir .. "/.lock", "a")
  if not f then return nil, "cannot lock " .. run_dir .. ": " .. tostring(err) end
  local ok = lfs.lock(f, "w")
  if not ok then
    f:close()
    return nil, "run directory " .. run_dir .. " is in use by another mbpo process"
  end
  held[run_dir] = f
  return true
end

return M
