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

-- ends a recording: closes the encoder v, then on success renames each {tmp, final} of moves
-- into place; on failure (ok false: err raised while recording; or the encoder failed)
-- removes the temporary files. true | nil, message
local function settle(ok, err, v, moves)
  local cok, cerr = v:close()
  if not ok or not cok then
    for _, m in ipairs(moves) do os.remove(m[1]) end
    -- the C error of a frame carries the Lua position of the call: the user needs only
    -- the message (ffmpeg's own last line)
    return nil, ok and cerr or (tostring(err):gsub("^[^\n]-%.lua:%d+: ", ""))
  end
  for _, m in ipairs(moves) do
    local rok, rerr = os.rename(m[1], m[2])
    if not rok then return nil, "video: " .. tostring(rerr) end
  end
  return true
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
  r:close()
  local sok, serr = settle(ok, err, v, {{tmp, opts.path}})
  if not sok then return nil, serr end
  return {frames = frames, returns = returns, lengths = lengths, fps = fps}
end

-- Model versus reality -----------------------------------------------------------------------

-- where a built-in task's observation sits in the state: obs = (qpos[skip+1..nq], qvel), the
-- first skip coordinates (x, and y for Ant and Humanoid) left out; nil for other layouts
local function obs_layout(env)
  if env.custom then return nil end
  local skip = env.nq + env.nv - env.obs_dim
  if skip < 0 or skip > env.nq then return nil end
  return skip
end

-- qpos, qvel (Lua arrays) of an observation (a Lua array) of a built-in task, the left-out
-- coordinates taken from real_qpos; nil for a task whose observation is not (qpos, qvel)
function M.obs_state(env, obs, real_qpos)
  local skip = obs_layout(env)
  if not skip then return nil end
  local qpos, qvel = {}, {}
  for i = 1, skip do qpos[i] = real_qpos[i] end
  for i = skip + 1, env.nq do qpos[i] = obs[i - skip] end
  for i = 1, env.nv do qvel[i] = obs[env.nq - skip + i] end
  return qpos, qvel
end

-- two frames of equal size side by side: rows of a then b
local function side_by_side(a, b, w, h)
  local row, out = w * 3, {}
  for y = 0, h - 1 do
    out[2 * y + 1] = a:sub(y * row + 1, (y + 1) * row)
    out[2 * y + 2] = b:sub(y * row + 1, (y + 1) * row)
  end
  return table.concat(out)
end

-- one episode of M.record_model: the real env and the model's open-loop prediction side by
-- side, a CSV row per step; returns the episode's return and length
local function model_episode(c, ep)
  local env, od, ad, k = c.env, c.env.obs_dim, c.env.act_dim, c.k
  local rng = require("mbpo.rng").new(0, 0)  -- the elite mean draws nothing; step wants one
  local det, mean, text = {deterministic = true}, {prediction = "mean"}, c.h >= 160
  local obs = env:reset()
  local qpos, qvel = env:get_state()
  c.twin:set_state(qpos, qvel)
  local pred, horizon, ret, len, mse = obs:clone(), 0, 0, 0, 0
  local function frame()
    c.ra:render(text and env.name .. " (real)\nstep\nreturn" or nil,
      text and string.format("\n%d\n%.2f", len, ret) or nil)
    c.rb:render(text and string.format("model, %d-step open loop\nhorizon\nobs mse", k) or nil,
      text and string.format("\n%d\n%.4g", horizon, mse) or nil)
    c.v:write(side_by_side(c.ra:pixels(), c.rb:pixels(), c.w, c.h))
  end
  frame()
  while true do
    local a = c.agent:act(obs, det)
    local next_obs, rew, terminated, truncated = env:step(a)
    local p, prew = c.ens:step(pred:view(1, od), a:view(1, ad), rng, mean)
    p = p:view(od)
    ret, len, horizon = ret + rew, len + 1, horizon + 1
    local pt, rt = p:to_table(), next_obs:to_table()
    mse = 0
    for i = 1, od do mse = mse + (pt[i] - rt[i]) ^ 2 end
    mse = mse / od
    c.sum_err = c.sum_err + mse
    c.csv:write(string.format("%d,%d,%d,%.9g,%.9g,%.9g\n", ep, len, horizon, mse, rew,
      prew:get(1)))
    -- the twin shows the prediction (where it is finite)
    qpos = env:get_state()
    if mse == mse and mse < math.huge then
      c.twin:set_state(M.obs_state(env, pt, qpos:to_table()))
    end
    frame()
    obs, pred = next_obs, p
    if horizon >= k then pred, horizon = next_obs:clone(), 0 end
    if terminated or truncated or len >= c.max_steps then break end
  end
  return ret, len
end

-- M.record_model{env =, twin =, agent =, ensemble =, k =, path =, csv =, episodes =, width =,
--   height =, fps =, camera =, seed =, max_steps =} -> info | nil, message
-- The real episode (left) and the model's open-loop prediction (right, on twin, a second env
-- of the same task): every k steps the prediction restarts from the real observation, then
-- the ensemble's elite mean is stepped on its own predictions with the actions the policy
-- took in the real episode. Frames are 2*width x height. csv: one row per step with the
-- horizon (steps since the restart), the mean squared error of the predicted observation,
-- and the real and predicted rewards.
function M.record_model(o)
  local env, twin, ens = o.env, o.twin, o.ensemble
  local skip = obs_layout(env)
  if not skip then
    return nil, "--model: the observation of '" .. env.name .. "' has no known map to the " ..
      "simulation state (built-in tasks only)"
  end
  local w, h = o.width or M.default_size[1], o.height or M.default_size[2]
  local episodes, k = o.episodes or 1, o.k
  local fps = o.fps or M.default_fps(env)
  local max_steps = o.max_steps or env.max_steps
  local ra, aerr = Render.new(env, {width = w, height = h, camera = o.camera})
  if not ra then return nil, aerr end
  local rb = assert(Render.new(twin, {width = w, height = h, camera = o.camera}))
  local csv, cerr = io.open(o.csv .. ".part", "w")
  if not csv then ra:close(); rb:close(); return nil, "cannot write " .. o.csv .. ": " .. cerr end
  csv:write("episode,step,horizon,obs_mse,reward,predicted_reward\n")
  local tmp = o.path .. ".part"
  local v, verr = Render.open(tmp, 2 * w, h, fps)
  if not v then csv:close(); ra:close(); rb:close(); return nil, verr end
  local ctx = {env = env, twin = twin, ens = ens, agent = o.agent, ra = ra, rb = rb, v = v,
    csv = csv, k = k, w = w, h = h, max_steps = max_steps, sum_err = 0}
  local returns, lengths = {}, {}
  local ok, err = pcall(function()
    if o.seed then env:reset{seed = o.seed} end
    twin:reset{seed = 0}
    for ep = 1, episodes do returns[ep], lengths[ep] = model_episode(ctx, ep) end
  end)
  local frames = v.frames
  csv:close()
  ra:close(); rb:close()
  local sok, serr = settle(ok, err, v, {{tmp, o.path}, {o.csv .. ".part", o.csv}})
  if not sok then return nil, serr end
  local steps = 0
  for _, l in ipairs(lengths) do steps = steps + l end
  return {frames = frames, returns = returns, lengths = lengths, fps = fps,
    mean_mse = ctx.sum_err / math.max(1, steps)}
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

M.usage = "mbpo video RUN_DIR [-o FILE.mp4] [--episodes N] [--size WxH] [--fps F] " ..
  "[--camera NAME] [--model K]"

local function fail(msg)
  io.stderr:write("mbpo: ", msg, "\n")
  return 1
end

local function usage(msg)
  io.stderr:write("mbpo: video: ", msg, "\nusage: ", M.usage, "\n")
  return 2
end

-- the run's dynamics ensemble from the checkpoint directory where, built as mbpo.train
-- builds it: ensemble | nil, message
local function load_model(cfg, where, env)
  local ck = require "mbpo.checkpoint"
  local state, err = ck.load_tree(where .. "/model.safetensors")
  if not state then return nil, err end
  local m = cfg.model
  local ok, ens = pcall(require("mbpo.ensemble").new, {inputs = env.obs_dim + env.act_dim,
    outputs = env.obs_dim + 1, members = m.members, elites = m.elites, hidden = m.hidden,
    activation = m.activation, weight_decay = m.weight_decay, lr = m.lr,
    bounds = m.bounds, bootstrap = m.bootstrap,
    snapshot = m.snapshot, batch = m.batch, patience = m.patience,
    holdout_ratio = m.holdout_ratio, holdout_cap = m.holdout_cap, prediction = "mean"})
  if not ok then return nil, tostring(ens) end
  local lok, lerr = pcall(ens.load_state, ens, state)
  if not lok then return nil, "the model does not fit the config: " .. tostring(lerr) end
  return ens
end

-- the command's arguments: {dir =, out =, episodes =, w =, h =, fps =, camera =, k =} or
-- nil, exit code (after the usage message)
local function parse_args(args)
  local o = {}
  local function int(name, val, lo, hi, what)
    local n = math.tointeger(tonumber(val or ""))
    if not n or n < lo or n > hi then
      return nil, usage(string.format("%s needs %s in [%d, %d], got %s", name, what, lo, hi,
        tostring(val)))
    end
    return n
  end
  local i, code = 1, nil
  while i <= #args do
    local a, val, n = args[i], args[i + 1], 2  -- n: arguments taken
    if a == "-o" or a == "--out" then
      if not val or val == "" then return nil, usage(a .. " needs a file name") end
      o.out = val
    elseif a == "--episodes" then
      o.episodes, code = int(a, val, 1, 1000, "an integer")
    elseif a == "--size" then
      local w, h = M.parse_size(val)
      if not w then return nil, usage(h) end
      o.w, o.h = w, h
    elseif a == "--fps" then
      o.fps, code = int(a, val, 1, 1000, "an integer")
    elseif a == "--model" then
      o.k, code = int(a, val, 1, 1000, "a prediction horizon K")
    elseif a == "--camera" then
      if not val or val == "" then return nil, usage("--camera needs a name") end
      o.camera = val
    elseif a:match("^%-") then return nil, usage("unknown option '" .. a .. "'")
    elseif not o.dir then o.dir, n = a, 1
    else return nil, usage("unexpected argument '" .. a .. "'") end
    if code then return nil, code end
    i = i + n
  end
  if not o.dir then return nil, usage("missing RUN_DIR") end
  o.dir = o.dir:gsub("(.)/+$", "%1")
  return o
end

-- the run's config, last complete checkpoint, env and agent, as mbpo eval loads them:
-- cfg, where, env, agent | nil, message
local function load_run(dir)
  local okc, res = require("mbpo.config").load_sandboxed(dir .. "/config.lua")
  if not okc then return nil, "cannot make a video: " .. tostring(res) end
  if type(res) ~= "table" then
    return nil, "cannot make a video: " .. dir .. "/config.lua returns no table"
  end
  local cfg, cerr = require("mbpo.run").resolve(res, {}, {})
  if not cfg then return nil, cerr end
  local ck = require "mbpo.checkpoint"
  local where, ferr = ck.find(dir)
  if not where then return nil, "cannot make a video: " .. ferr end
  local state, lerr = ck.load_tree(where .. "/agent.safetensors")
  if not state then return nil, "cannot make a video: " .. lerr end
  local okenv, env = pcall(require("mbpo.train").make_env, cfg)
  if not okenv then return nil, "cannot make a video: " .. tostring(env) end
  local agent = require("mbpo.sac").new{obs = env.obs_dim, act = env.act_dim,
    hidden = cfg.sac.hidden}
  local okr, rerr = ck.restore("agent", agent, state)
  if not okr then return nil, "cannot make a video: " .. rerr end
  return cfg, where, env, agent
end

-- the output file: -o, or RUN_DIR/videos/{eval,model-kK}.mp4: path | nil, message
local function out_path(dir, out, k)
  if not out then
    local lfs = require "lfs"
    local vdir = dir .. "/videos"
    if not lfs.attributes(vdir, "mode") then
      local ok, err = lfs.mkdir(vdir)
      if not ok then return nil, "cannot create " .. vdir .. ": " .. tostring(err) end
    end
    out = vdir .. (k and string.format("/model-k%d.mp4", k) or "/eval.mp4")
  end
  local parent = out:match("^(.*)/[^/]*$")
  if parent and parent ~= "" and require("lfs").attributes(parent, "mode") ~= "directory" then
    return nil, "cannot write " .. out .. ": the directory " .. parent .. " does not exist"
  end
  return out
end

-- the command: deterministic episodes of the run's saved policy (the same starts as mbpo
-- eval's first episodes) into RUN_DIR/videos/eval.mp4 or -o FILE
function M.main(args)
  local a, code = parse_args(args)
  if not a then return code end
  local dir, episodes, w, h, fps, camera, k = a.dir, a.episodes, a.w, a.h, a.fps, a.camera, a.k
  local cfg, where, env, agent = load_run(dir)
  if not cfg then return fail(where) end
  local out, oerr = out_path(dir, a.out, k)
  if not out then env:close(); return fail(oerr) end
  local t0 = require("mbpo.core").clock()
  local opts = {env = env, agent = agent, path = out, episodes = episodes or 1,
    width = w, height = h, fps = fps, camera = camera, seed = cfg.seed + 200000,
    max_steps = cfg.max_path_length}
  local info, err
  if k then
    local ens, merr = load_model(cfg, where, env)
    if not ens then env:close(); return fail("cannot make a video: " .. merr) end
    opts.twin, opts.ensemble, opts.k = require("mbpo.train").make_env(cfg), ens, k
    opts.csv = out:gsub("%.mp4$", "") .. ".csv"
    info, err = M.record_model(opts)
    opts.twin:close()
  else
    info, err = M.record(opts)
  end
  env:close()
  if not info then return fail(err) end
  local rets = {}
  for k, r in ipairs(info.returns) do rets[k] = string.format("%.2f", r) end
  print(string.format("wrote %s: %d frames at %d fps (%dx%d), %d episode%s, return %s, %.1fs",
    out, info.frames, info.fps, (k and 2 or 1) * (w or M.default_size[1]), h or M.default_size[2],
    #info.returns, #info.returns == 1 and "" or "s", table.concat(rets, ", "),
    require("mbpo.core").clock() - t0))
  if k then
    print(string.format("wrote %s: per-step prediction error (mean obs MSE %.4g, %d-step " ..
      "open-loop predictions)", opts.csv, info.mean_mse, k))
  end
  return 0
end

return M
