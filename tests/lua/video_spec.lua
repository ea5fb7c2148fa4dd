-- mbpo video and video.every, end to end: a tiny run, then an mp4 of its saved policy checked
-- with ffprobe (frame count, size) and by decoding frames back to raw RGB with ffmpeg (frames
-- differ, a frame is not one colour); a custom MJCF task with its own cameras; video.every
-- leaves progress.csv as it is; the bad inputs give one line and a non-zero exit. The
-- mbpo.render binding directly: pixels of a frame, the overlay, the env left untouched.
local lfs = require "lfs"
local log = require "mbpo.log"
local th = require "mbpo.test"
local tmpdir, mbpo, csv_without_timing = th.tmpdir, th.mbpo, th.csv_without_timing

local root = MBPO_ROOT
local tiny = root .. "/tests/lua/data/tiny.lua"
local arm = root .. "/examples/custom_mjcf_train.lua"

-- pixel variance (over all bytes of a frame) above which a frame is not a single colour; a
-- uniform frame has 0, a rendered task well over 100 (the floor, the bodies, the overlay)
local VARIANCE_FLOOR = 20

-- ffprobe: decoded frame count, width, height of the first video stream
local function probe(path)
  local _, out = th.sh(string.format("ffprobe -v error -count_frames -select_streams v:0 " ..
    "-show_entries stream=nb_read_frames,width,height,codec_name -of csv=p=0 %q", path))
  local codec, w, h, n = out:match("(%w+),(%d+),(%d+),(%d+)")
  return tonumber(n), tonumber(w), tonumber(h), codec
end

-- all frames decoded to raw RGB: a list of strings of w*h*3 bytes
local function decode(path, w, h)
  local p = io.popen(string.format("ffmpeg -v error -i %q -f rawvideo -pix_fmt rgb24 -", path))
  local data = p:read("a")
  p:close()
  local size, frames = w * h * 3, {}
  for i = 1, #data - size + 1, size do frames[#frames + 1] = data:sub(i, i + size - 1) end
  return frames
end

-- variance of the bytes of a frame (every 7th byte: a sample large enough at these sizes)
local function variance(frame)
  local s, s2, n = 0, 0, 0
  for i = 1, #frame, 7 do
    local b = frame:byte(i)
    s, s2, n = s + b, s2 + b * b, n + 1
  end
  local m = s / n
  return s2 / n - m * m
end

-- mean absolute difference of two frames over the rows from row0 (1-based) to the bottom
local function diff(a, b, w, row0)
  local d, n = 0, 0
  for i = (row0 - 1) * w * 3 + 1, #a, 5 do
    d, n = d + math.abs(a:byte(i) - b:byte(i)), n + 1
  end
  return d / n
end

local function lines(s)
  local n = 0
  for l in s:gmatch("[^\n]+") do if l ~= "" then n = n + 1 end end
  return n
end

local base = tmpdir()
local plain, with_video = base .. "/plain", base .. "/video"
local eval_length, eval_return   -- of the first episode of plain's saved policy (mbpo eval)

describe("mbpo video", function()
  it("records an mp4 of a run's saved policy: frames, size, content", function()
    local rc, out = mbpo(string.format("run %q epochs=2 seed=4 --out %q", tiny, plain))
    eq(rc, 0, out)
    -- the expected length: mbpo eval runs the same first episode (seed + 200000)
    rc, out = mbpo(string.format("eval %q --episodes 1", plain))
    eq(rc, 0, out)
    local len = tonumber(out:match("mean length ([%d%.]+)"))
    check(len and len >= 2, "episode length in: %s", out)
    eval_length, eval_return = len, tonumber(out:match("return (%-?[%d%.]+)"))
    rc, out = mbpo(string.format("video %q --size 96x64 --fps 20", plain))
    eq(rc, 0, out)
    local mp4 = plain .. "/videos/eval.mp4"
    check(out:find("wrote " .. mp4, 1, true), "output: %s", out)
    local n, w, h, codec = probe(mp4)
    eq(codec, "h264", "codec")
    eq(w, 96, "width"); eq(h, 64, "height")
    eq(n, len + 1, "frames: the reset state and one per step")
    local frames = decode(mp4, 96, 64)
    eq(#frames, n, "decoded frames")
    -- below the overlay (top 40 % of the picture) the scene itself moves
    local d = diff(frames[1], frames[#frames], 96, 40)
    check(d > 0.5, "first and last frame below the overlay differ by only %.3f", d)
    for _, k in ipairs({1, #frames}) do
      local v = variance(frames[k])
      check(v > VARIANCE_FLOOR, "frame %d variance %.1f <= %g", k, v, VARIANCE_FLOOR)
    end
    -- no partial file is left next to it
    check(not lfs.attributes(mp4 .. ".part"), "temporary file left")
  end)

  it("records a custom MJCF task through the model's own cameras", function()
    local d = base .. "/arm"
    local rc, out = mbpo(string.format("run %q epochs=1 epoch_length=40 " ..
      "init_exploration_steps=40 max_path_length=40 model.train_freq=40 rollout.batch=50 " ..
      "sac.updates_per_step=1 log.plot=false --out %q", arm, d))
    eq(rc, 0, out)
    local mp4 = base .. "/arm side.mp4"  -- a space in the name: one argument to ffmpeg
    rc, out = mbpo(string.format("video %q --camera side --size 128x128 -o %q", d, mp4))
    eq(rc, 0, out)
    local n, w, h = probe(mp4)
    eq(n, 41, "frames of a 40-step episode"); eq(w, 128); eq(h, 128)
    local frames = decode(mp4, 128, 128)
    check(variance(frames[#frames]) > VARIANCE_FLOOR, "a single-colour frame")
    -- (no overlay under 160 rows: the whole frame is the scene)
    local moved = diff(frames[1], frames[#frames], 128, 1)
    check(moved > 0.05, "the arm did not move (%.4f)", moved)
    -- the default camera of a model with cameras is its first ("top"): a different picture
    rc, out = mbpo(string.format("video %q --size 128x128 -o %q", d, base .. "/arm-top.mp4"))
    eq(rc, 0, out)
    local top = decode(base .. "/arm-top.mp4", 128, 128)
    check(diff(top[1], frames[1], 128, 1) > 1, "top and side views look the same")
    -- an unknown camera names the model's own
    rc, out = mbpo(string.format("video %q --camera nope", d))
    eq(rc, 1, out)
    check(out:find("unknown camera 'nope'", 1, true) and out:find("'top', 'side'", 1, true),
      "message: %s", out)
    eq(lines(out), 1, "one line: " .. out)
  end)

  it("--model K: the real episode beside the model's open-loop prediction, and a CSV", function()
    check(eval_length, "the first test did not run")
    local mp4 = base .. "/model.mp4"
    local rc, out = mbpo(string.format("video %q --model 3 --size 64x48 -o %q", plain, mp4))
    eq(rc, 0, out)
    local n, w, h = probe(mp4)
    eq(w, 128, "two panels side by side"); eq(h, 48)
    eq(n, eval_length + 1, "frames")
    -- the CSV: one row per step, the horizon restarting every 3 steps, the real rewards
    -- adding up to mbpo eval's return of the same episode
    local header, rows = log.read_csv(base .. "/model.csv")
    eq(table.concat(header, ","), "episode,step,horizon,obs_mse,reward,predicted_reward")
    eq(#rows, eval_length, "rows")
    local sum = 0
    for i, r in ipairs(rows) do
      eq(r.step, i); eq(r.horizon, (i - 1) % 3 + 1, "horizon of step " .. i)
      check(r.obs_mse >= 0 and r.obs_mse < math.huge, "obs_mse %s", tostring(r.obs_mse))
      sum = sum + r.reward
    end
    near(sum, eval_return, 0.006, "sum of the real rewards")
    -- at the start both panels draw the same state (no overlay under 160 rows)
    local first = decode(mp4, 128, 48)[1]
    local left, right = {}, {}
    for y = 0, 47 do
      left[#left + 1] = first:sub(y * 384 + 1, y * 384 + 192)
      right[#right + 1] = first:sub(y * 384 + 193, y * 384 + 384)
    end
    local d = diff(table.concat(left), table.concat(right), 64, 1)
    check(d < 3, "the panels of the first frame differ by %.2f", d)
    -- a custom task's observation has no known map to its state
    rc, out = mbpo(string.format("video %q --model 3", base .. "/arm"))
    eq(rc, 1, out)
    check(out:find("no known map", 1, true), out); eq(lines(out), 1, out)
  end)

  it("video.every=1 writes videos/epoch-<E>.mp4 and leaves progress.csv as it is", function()
    local rc, out = mbpo(string.format("run %q epochs=2 seed=4 video.every=1 video.width=32 " ..
      "video.height=32 --out %q", tiny, with_video))
    eq(rc, 0, out)
    for e = 1, 2 do
      local n, w = probe(string.format("%s/videos/epoch-%d.mp4", with_video, e))
      check(n and n >= 2, "epoch %d video frames %s", e, tostring(n))
      eq(w, 32, "width")
    end
    local a, na = csv_without_timing(plain .. "/progress.csv")
    local b, nb = csv_without_timing(with_video .. "/progress.csv")
    eq(na, 2); eq(nb, 2)
    eq(b, a, "progress.csv with video.every=1")
  end)

  it("bad input: one clear line and a non-zero exit each", function()
    local nock = base .. "/nock"
    assert(lfs.mkdir(nock))
    local f = assert(io.open(nock .. "/config.lua", "w"))
    f:write(assert(io.open(plain .. "/config.lua")):read("a"))
    f:close()
    local cases = {
      {string.format("video %q", nock), nil, 1, "no complete checkpoint"},
      {string.format("video %q", base .. "/missing"), nil, 1, "cannot open"},
      {string.format("video %q", plain), "MBPO_NO_GL=1", 1, "no OpenGL for rendering"},
      {string.format("video %q", plain), "MBPO_FFMPEG=/nonexistent", 1, "not installed"},
      {string.format("video %q", plain), "PATH=/nonexistent", 1, "'ffmpeg' is not installed"},
      {string.format("video %q --camera nope", plain), nil, 1, "unknown camera 'nope'"},
      {string.format("video %q --size 480", plain), nil, 2, "--size must be WIDTHxHEIGHT"},
      {string.format("video %q --size 481x480", plain), nil, 2, "must be even"},
      {string.format("video %q --size 8x8", plain), nil, 2, "within [16, 4096]"},
      {string.format("video %q -o %q", plain, base .. "/no/dir.mp4"), nil, 1, "does not exist"},
      {string.format("run %q epochs=1 video.every=1 --out %q", tiny, base .. "/nogl"),
        "MBPO_NO_GL=1", 1, "video.every: no OpenGL"},
      {string.format("run %q epochs=1 video.every=1 video.camera=nope --out %q", tiny,
        base .. "/nocam"), nil, 1, "unknown camera 'nope'"},
    }
    for _, c in ipairs(cases) do
      local rc, out = mbpo(c[1], c[2])
      eq(rc, c[3], (c[2] or "") .. " mbpo " .. c[1] .. ": " .. out)
      check(out:find(c[4], 1, true), "%s: expected '%s' in: %s", c[1], c[4], out)
      check(not out:find("traceback", 1, true), "traceback in: %s", out)
      -- usage errors add the usage line
      eq(lines(out), c[3] == 2 and 2 or 1, "lines of: " .. out)
    end
    -- nothing was written by the failed calls
    check(not lfs.attributes(plain .. "/videos/eval.mp4.part"), "partial file left")
  end)
end)

describe("mbpo.render", function()
  local E, R = require "mbpo.env", require "mbpo.render"

  it("draws frames without changing the simulation", function()
    local a, b = E.make("Hopper", {seed = 3}), E.make("Hopper", {seed = 3})
    a:reset{seed = 3}; b:reset{seed = 3}
    local r = assert(R.new(a, {width = 96, height = 96}))
    eq(r.width, 96); eq(r.height, 96)
    local act = {0.3, -0.2, 0.5}
    local first
    for t = 1, 20 do
      r:render("step", tostring(t))
      if t == 1 then first = r:pixels() end
      local oa, ra = a:step(act)
      local ob, rb = b:step(act)
      oa, ob = oa:to_table(), ob:to_table()
      eq(#oa, 11, "obs size")
      for i = 1, #oa do eq(oa[i], ob[i], "obs " .. i .. " at step " .. t) end
      eq(ra, rb, "reward at step " .. t)
    end
    local last = r:pixels()
    eq(#last, 96 * 96 * 3, "bytes of a frame")
    check(variance(last) > VARIANCE_FLOOR, "a single-colour frame")
    check(last ~= first, "frames do not change")
    -- the overlay is drawn where asked: the top-left corner differs with and without it
    r:render(); local plain_frame = r:pixels()
    r:render("return", "123.4"); local text = r:pixels()
    check(diff(plain_frame, text, 96, 1) > 0, "no overlay drawn")
    check(text:sub(-96 * 3 * 16) == plain_frame:sub(-96 * 3 * 16),
      "overlay reached the bottom rows")
    r:close()
    raises(function() r:render() end, "closed")
    a:close()
  end)

  it("maps each built-in task's observation back to its state (mbpo video --model)", function()
    local video = require "mbpo.video"
    for _, name in ipairs(E.tasks()) do
      local env = E.make(name, {seed = 2})
      local obs = env:reset{seed = 2}
      for t = 1, 5 do
        local a = {}
        for j = 1, env.act_dim do a[j] = 0.5 * math.sin(t + j) end
        obs = env:step(a)
      end
      local qpos, qvel = env:get_state()
      qpos, qvel = qpos:to_table(), qvel:to_table()
      local mq, mv = video.obs_state(env, obs:to_table(), qpos)
      check(mq, "%s: no map", name)
      eq(#mq, #qpos, name .. " nq"); eq(#mv, #qvel, name .. " nv")
      for i = 1, #qpos do near(mq[i], qpos[i], 1e-6, name .. " qpos " .. i) end
      local clip = name == "Hopper" or name == "Walker2d"  -- their obs clip qvel to [-10, 10]
      for i = 1, #qvel do
        local want = clip and math.max(-10, math.min(10, qvel[i])) or qvel[i]
        near(mv[i], want, 1e-5, name .. " qvel " .. i)
      end
      env:close()
    end
  end)

  it("reports a closed env, a bad size, an unknown camera", function()
    local env = E.make("InvertedPendulum")
    env:reset{seed = 1}
    local r = assert(R.new(env, {width = 32, height = 32}))
    raises(function() R.new(env, {width = 8}) end, "width must be an integer in [16, 4096]")
    raises(function() R.new(env, {widht = 64}) end,
      "render.new: unknown option 'widht' (nearest: width")
    local none, err = R.new(env, {camera = "nope"})
    eq(none, nil); check(err:find("unknown camera 'nope'", 1, true), err)
    raises(function() R.open("x.mp4", 33, 32, 25) end, "must be even")
    env:close()
    raises(function() r:render() end, "closed")
    r:close()
    raises(function() r:pixels() end, "renderer has been closed")
  end)
end)
