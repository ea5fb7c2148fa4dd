-- mbpo.video: headless videos of a policy (mbpo video, and video.every in training).
-- Deterministic episodes of an agent on an env of its own, each step drawn by mbpo.render
-- (EGL, no display) and piped into ffmpeg (H.264 mp4), the episode, step and return written
-- on the frames. Nothing here draws from a generator of a run: the env is a fresh one,
-- seeded by the caller, and the policy acts deterministically (tanh of its mean).
--   local video = require "mbpo.video"
--   local info, err = video.record{env = env, agent = agent, path = "out.mp4",
--     episodes = 1, width = 480, height = 480, fps = nil, camera = nil, seed = 0,
--     max_steps = 1000}
--   -> {frames =, returns = {..}, lengths = {..}, fps =} | nil, message
-- Frames of 160 rows or more carry the task, episode, step and return in the top-left corner.
local Render = require "mbpo.render"

local M = {_VERSION = require("mbpo.core")._VERSION}

M.default_size = {480, 480}

-- "WxH" -> width, height (each even, in [16, 4096]) | nil, message
function M.parse_size(s)
  local w, h = tostring(s):match("^(%d+)[xX](%d+)$")
  w, h = math.tointeger(tonumber(w)), math.tointeger(tonumber(h))
  if not w or not h then
    return nil, "--size must be WIDTHxHEIGHT (for example 480x480), got '" .. tostring(s) .. "'"
  end
  if w < 16 or h < 16 or w > 4096 or h > 4096 or w % 2 ~= 0 or h % 2 ~= 0 then
    return nil, string.format("--size %dx%d: width and height must be even and within [16, 4096]",
      w, h)
  end
  return w, h
end

-- the env's real-time frame rate: one frame per env step, 1/dt per second (at most 1000)
function M.default_fps(env)
  return math.max(1, math.min(1000, math.floor(1 / env.dt + 0.5)))
end

-- records opts.episodes episodes into opts.path (written to a temporary name in the same
-- directory and renamed once ffmpeg has finished, so a failed video leaves no partial file)
function M.record(opts)
  local env, agent = opts.env, opts.agent
  local w, h = opts.width or M.default_size[1], opts.height or M.default_size[2]
  local episodes = opts.episodes or 1
  local fps = opts.fps or M.default_fps(env)
  local max_steps = opts.max_steps or env.max_steps
  local r, rerr = Render.new(env, {width = w, height = h, camera = opts.camera})
  if not r then return nil, rerr end
  local tmp = opts.path .. ".part"
  local v, verr = Render.open(tmp, w, h, fps)
  if not v then r:close(); return nil, verr end
  local act = {deterministic = true}
  -- the text would hide most of a frame under 160 rows: none there
  local labels = h >= 160 and env.name .. "\nepisode\nstep\nreturn" or nil
  local function frame(ep, step, ret)
    r:render(labels, labels and string.format("\n%d / %d\n%d\n%.2f", ep, episodes, step, ret))
    v:write(r)
  end
  local returns, lengths = {}, {}
  local ok, err = pcall(function()
    -- seeded as mbpo eval seeds its env: one reset with the seed, then a reset per episode
    if opts.seed then env:reset{seed = opts.seed} end
    for ep = 1, episodes do
      local obs = env:reset()
      local ret, len = 0, 0
      frame(ep, 0, ret)
      while true do
        local rew, terminated, truncated
        obs, rew, terminated, truncated = env:step(agent:act(obs, act))
        ret, len = ret + rew, len + 1
        frame(ep, len, ret)
        if terminated or truncated or len >= max_steps then break end
      end
      returns[ep], lengths[ep] = ret, len
    end
  end)
  local frames = v.frames
  local cok, cerr = v:close()
  r:close()
  if not ok or not cok then
    os.remove(tmp)
    -- the C error of a frame carries the Lua position of the call: the user needs only
    -- the message (ffmpeg's own last line)
    return nil, ok and cerr or (tostring(err):gsub("^[^\n]-%.lua:%d+: ", ""))
  end
  local rok, renerr = os.rename(tmp, opts.path)
  if not rok then os.remove(tmp); return nil, "video: " .. tostring(renerr) end
  return {frames = frames, returns = returns, lengths = lengths, fps = fps}
end

-- Training (video.every) -------------------------------------------------------------------

-- the config's video settings as record options
local function cfg_opts(cfg)
  local c = cfg.video
  return {episodes = c.episodes, width = c.width, height = c.height,
    camera = c.camera ~= "" and c.camera or nil, max_steps = cfg.max_path_length}
end

-- checks before a run with video.every > 0 that a frame can be drawn and encoded (GL, the
-- camera, ffmpeg): true | nil, message
function M.check(cfg)
  local env = require("mbpo.train").make_env(cfg)
  local o = cfg_opts(cfg)
  local r, err = Render.new(env, {width = o.width, height = o.height, camera = o.camera})
  if not r then env:close(); return nil, err end
  env:reset{seed = 0}
  r:render()
  local tmp = os.tmpname()
  local v, verr = Render.open(tmp, o.width, o.height, 25)
  local ok, cerr = false, verr
  if v then
    v:write(r)
    ok, cerr = v:close()
  end
  os.remove(tmp)
  r:close()
  env:close()
  if not ok then return nil, cerr end
  return true
end

-- writes DIR/videos/epoch-<E>.mp4 of the agent after epoch E on a fresh env seeded
-- seed + 300000 (every epoch's video starts from the same states): info | nil, message
function M.epoch(cfg, agent, dir, epoch)
  local lfs = require "lfs"
  local vdir = dir .. "/videos"
  if not lfs.attributes(vdir, "mode") then
    local ok, err = lfs.mkdir(vdir)
    if not ok then return nil, "cannot create " .. vdir .. ": " .. tostring(err) end
  end
  local env = require("mbpo.train").make_env(cfg)
  local o = cfg_opts(cfg)
  o.env, o.agent, o.seed = env, agent, cfg.seed + 300000
  o.path = string.format("%s/epoch-%d.mp4", vdir, epoch)
  local info, err = M.record(o)
  env:close()
  if not info then return nil, err end
  info.path = o.path
  return info
end

-- mbpo video RUN_DIR [...] -------------------------------------------------------------------

M.usage = "mbpo video RUN_DIR [-o FILE.mp4] [--episodes N] [--size WxH] [--fps F] [--camera NAME]"

local function fail(msg)
  io.stderr:write("mbpo: ", msg, "\n")
  return 1
end

local function usage(msg)
  io.stderr:write("mbpo: video: ", msg, "\nusage: ", M.usage, "\n")
  return 2
end

-- the command: deterministic episodes of the run's saved policy (the same starts as mbpo
-- eval's first episodes) into RUN_DIR/videos/eval.mp4 or -o FILE
function M.main(args)
  local dir, out, episodes, w, h, fps, camera
  local i = 1
  while i <= #args do
    local a, val, n = args[i], args[i + 1], 2  -- n: arguments taken
    if a == "-o" or a == "--out" then
      if not val or val == "" then return usage(a .. " needs a file name") end
      out = val
    elseif a == "--episodes" then
      episodes = math.tointeger(tonumber(val or ""))
      if not episodes or episodes < 1 or episodes > 1000 then
        return usage("--episodes needs an integer in [1, 1000], got " .. tostring(val))
      end
    elseif a == "--size" then
      local err
      w, err = M.parse_size(val)
      if not w then return usage(err) end
      h = err
    elseif a == "--fps" then
      fps = math.tointeger(tonumber(val or ""))
      if not fps or fps < 1 or fps > 1000 then
        return usage("--fps needs an integer in [1, 1000], got " .. tostring(val))
      end
    elseif a == "--camera" then
      if not val or val == "" then return usage("--camera needs a name") end
      camera = val
    elseif a:match("^%-") then return usage("unknown option '" .. a .. "'")
    elseif not dir then dir, n = a, 1
    else return usage("unexpected argument '" .. a .. "'") end
    i = i + n
  end
  if not dir then return usage("missing RUN_DIR") end
  dir = dir:gsub("(.)/+$", "%1")
  -- the run's config and its last complete checkpoint, as mbpo eval loads them
  local okc, res = require("mbpo.config").load_sandboxed(dir .. "/config.lua")
  if not okc then return fail("cannot make a video: " .. tostring(res)) end
  if type(res) ~= "table" then
    return fail("cannot make a video: " .. dir .. "/config.lua returns no table")
  end
  local cfg, cerr = require("mbpo.run").resolve(res, {}, {})
  if not cfg then return fail(cerr) end
  local ck = require "mbpo.checkpoint"
  local where, ferr = ck.find(dir)
  if not where then return fail("cannot make a video: " .. ferr) end
  local state, lerr = ck.load_tree(where .. "/agent.safetensors")
  if not state then return fail("cannot make a video: " .. lerr) end
  local okenv, env = pcall(require("mbpo.train").make_env, cfg)
  if not okenv then return fail("cannot make a video: " .. tostring(env)) end
  local agent = require("mbpo.sac").new{obs = env.obs_dim, act = env.act_dim,
    hidden = cfg.sac.hidden}
  agent:load_state(state)
  if not out then
    local lfs = require "lfs"
    local vdir = dir .. "/videos"
    if not lfs.attributes(vdir, "mode") then
      local ok, err = lfs.mkdir(vdir)
      if not ok then return fail("cannot create " .. vdir .. ": " .. tostring(err)) end
    end
    out = vdir .. "/eval.mp4"
  end
  local parent = out:match("^(.*)/[^/]*$")
  if parent and parent ~= "" and require("lfs").attributes(parent, "mode") ~= "directory" then
    return fail("cannot write " .. out .. ": the directory " .. parent .. " does not exist")
  end
  local t0 = require("mbpo.core").clock()
  local info, err = M.record{env = env, agent = agent, path = out, episodes = episodes or 1,
    width = w, height = h, fps = fps, camera = camera, seed = cfg.seed + 200000,
    max_steps = cfg.max_path_length}
  env:close()
  if not info then return fail(err) end
  local rets = {}
  for k, r in ipairs(info.returns) do rets[k] = string.format("%.2f", r) end
  print(string.format("wrote %s: %d frames at %d fps (%dx%d), %d episode%s, return %s, %.1fs",
    out, info.frames, info.fps, w or M.default_size[1], h or M.default_size[2],
    #info.returns, #info.returns == 1 and "" or "s", table.concat(rets, ", "),
    require("mbpo.core").clock() - t0))
  return 0
end

return M
