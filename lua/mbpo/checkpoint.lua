-- mbpo.checkpoint: complete, atomic checkpoints of a run. A checkpoint is a directory of
-- safetensors files, one per part (agent, model, buffers, loop state), written into a
-- temporary directory that is renamed into place; the previous checkpoint is removed only
-- after the new one is complete, so a crash at any moment leaves one intact.
--
-- Each part is a tree of Lua values (what state() methods return): tensors are stored as
-- F32 tensors, integers as I64, other numbers, strings and booleans in the metadata with
-- a type tag, nested tables by dotted names.
local io_ = require "mbpo.io"
local lfs = require "lfs"
local T = require "mbpo.tensor"

local M = {}

-- flattens a state tree into (tensors, metadata) for mbpo.io
local function flatten(tree, prefix, tensors, meta)
  for k, v in pairs(tree) do
    local key
    if math.type(k) == "integer" then key = "#" .. k
    elseif type(k) == "string" and not k:find("[%.#]") then key = k
    else error("checkpoint: unsupported state key " .. tostring(k)) end
    local name = prefix and (prefix .. "." .. key) or key
    local tv = type(v)
    if tv == "table" then
      meta["t:" .. name] = "table"
      flatten(v, name, tensors, meta)
    elseif tv == "userdata" and getmetatable(v) == getmetatable(T.zeros(1)) then
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

-- sets tree[path...] = v creating tables along the dotted path
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
    end
  end
end

local function unflatten(tensors, meta)
  local tree = {}
  for name, kind in pairs(meta) do
    if name:sub(1, 2) == "t:" then put(tree, name:sub(3), nil) end
  end
  for name, v in pairs(tensors) do put(tree, name, v) end
  for key, s in pairs(meta) do
    local tag, name = key:match("^(%a):(.+)$")
    if tag == "n" then
      local v = s == "nan" and 0 / 0 or s == "inf" and math.huge or s == "-inf" and -math.huge
        or tonumber(s)
      put(tree, name, v)
    elseif tag == "s" then put(tree, name, s)
    elseif tag == "b" then put(tree, name, s == "true") end
  end
  return tree
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
  if not tensors then return nil, meta end
  return unflatten(tensors, meta or {})
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

-- M.save(run_dir, parts): parts = {name = state tree}; writes run_dir/checkpoint atomically
-- (through checkpoint.tmp and checkpoint.old); true or nil, message
function M.save(run_dir, parts)
  local final = run_dir .. "/checkpoint"
  local tmp = run_dir .. "/checkpoint.tmp"
  local old = run_dir .. "/checkpoint.old"
  rmtree(tmp)
  local ok, err = lfs.mkdir(tmp)
  if not ok then return nil, "cannot create " .. tmp .. ": " .. tostring(err) end
  local names = {}
  for name in pairs(parts) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    ok, err = M.save_tree(tmp .. "/" .. name .. ".safetensors", parts[name])
    if not ok then
      rmtree(tmp)
      return nil, "checkpoint: " .. tostring(err)
    end
  end
  -- a marker written last: a directory without it is incomplete
  local f = io.open(tmp .. "/COMPLETE", "w")
  if not f then rmtree(tmp); return nil, "cannot write " .. tmp .. "/COMPLETE" end
  f:write(table.concat(names, "\n"), "\n")
  f:close()
  rmtree(old)
  if lfs.attributes(final) then
    ok, err = os.rename(final, old)
    if not ok then return nil, "checkpoint: cannot move the previous checkpoint: " .. err end
  end
  ok, err = os.rename(tmp, final)
  if not ok then return nil, "checkpoint: cannot rename into place: " .. err end
  rmtree(old)
  return true
end

-- the directory of the last complete checkpoint of a run (checkpoint, else checkpoint.old
-- left by a crash between the two renames), or nil, message
function M.find(run_dir)
  for _, name in ipairs({"checkpoint", "checkpoint.old"}) do
    local d = run_dir .. "/" .. name
    if lfs.attributes(d .. "/COMPLETE", "mode") == "file" then return d end
  end
  if not lfs.attributes(run_dir, "mode") then return nil, "no such run directory: " .. run_dir end
  return nil, "no complete checkpoint in " .. run_dir
end

-- M.load(run_dir) -> parts {name = tree} or nil, message
function M.load(run_dir)
  local dir, err = M.find(run_dir)
  if not dir then return nil, err end
  local f = io.open(dir .. "/COMPLETE", "r")
  local parts = {}
  for name in f:lines() do
    if name ~= "" then
      local tree, e = M.load_tree(dir .. "/" .. name .. ".safetensors")
      if not tree then f:close(); return nil, "corrupt checkpoint " .. dir .. ": " .. tostring(e) end
      parts[name] = tree
    end
  end
  f:close()
  return parts, dir
end

return M
