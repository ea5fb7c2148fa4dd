-- mbpo.show: tostring of the native objects whose classes take their text from Lua, open and
-- closed, in the words the C functions wrote before (numbers as lua_pushfstring's %f).
local show = require "mbpo.show"
local SAC = require "mbpo.sac"
local Ens = require "mbpo.ensemble"
local Buffer = require "mbpo.buffer"
local Env = require "mbpo.env"
local NN = require "mbpo.nn"
local T = require "mbpo.tensor"

local function close(x) getmetatable(x).__close(x) end

describe("show", function()
  it("writes each class's text from its methods and fields", function()
    local agent = SAC.new{obs = 11, act = 3}
    eq(tostring(agent), "mbpo.Sac (obs 11, act 3, 0 updates, alpha 1.0)", "agent")
    local ens = Ens.new{inputs = 5, outputs = 4, members = 3, elites = 2, hidden = {8, 8}}
    eq(tostring(ens), "mbpo.Ensemble (" .. ens:info().layout .. ")", "ensemble")
    check(tostring(ens):find("members=3", 1, true), "the layout: %s", tostring(ens))
    local buf = Buffer.new{obs = 2, act = 1, capacity = 5}
    buf:add({1, 2}, {3}, 0.5, {4, 5}, false)
    eq(tostring(buf), "mbpo.Buffer obs=2 act=1 size=1 capacity=5", "buffer")
    local env = Env.make("Hopper")
    eq(tostring(env), "mbpo.Env Hopper (obs 11, act 3, dt 0.008)", "env")
    eq(show["mbpo.Env"]({name = "x", obs_dim = 1, act_dim = 2, dt = 1}),
       "mbpo.Env x (obs 1, act 2, dt 1.0)", "a whole number is written as a float")
    agent:close()
    close(ens)
    close(buf)
    env:close()
    eq(tostring(agent), "mbpo.Sac (closed)", "closed agent")
    eq(tostring(ens), "mbpo.Ensemble (closed)", "closed ensemble")
    eq(tostring(buf), "mbpo.Buffer (closed)", "closed buffer")
    eq(tostring(env), "mbpo.Env (closed)", "closed env")
  end)

  it("writes mbpo.nn's objects from their state", function()
    local net = NN.mlp{sizes = {3, 7, 2}, activation = "swish"}
    eq(tostring(net), "mbpo.Mlp [3 -> 7 -> 2] swish", "network")
    local opt = NN.adam(T.zeros(5, 2), {lr = 0.25})
    eq(tostring(opt), "mbpo.Adam (10 parameters, lr 0.25)", "optimiser")
    eq(tostring(NN.adam(T.zeros(3))), "mbpo.Adam (3 parameters, lr 0.0010000000474975)",
       "the float32 learning rate, 14 digits")
    close(net)
    close(opt)
    eq(tostring(net) .. " " .. tostring(opt), "mbpo.Mlp (closed) mbpo.Adam (closed)", "closed")
  end)

  it("has a function for every class that takes its text from here", function()
    for _, name in ipairs({"mbpo.Sac", "mbpo.Ensemble", "mbpo.Buffer", "mbpo.Env",
                           "mbpo.Renderer", "mbpo.Video", "mbpo.Mlp", "mbpo.Adam"}) do
      eq(type(show[name]), "function", name)
    end
    eq(show["mbpo.Video"]({width = 16, height = 32, frames = 3}), "mbpo.Video 16x32, 3 frames")
    eq(show["mbpo.Renderer"]({width = 64, height = 48}), "mbpo.Renderer 64x48")
  end)
end)
