-- mbpo.show: what the native objects print as, tostring(x), written from their own methods
-- and fields. A class of the bindings whose row says show (mbLClass, src/lua/l_mbpo.h) says
-- "mbpo.Sac (closed)" once closed and otherwise calls its function here with the object:
--   mbpo.Sac (obs 11, act 3, 250 updates, alpha 0.2)
--   mbpo.Ensemble (inputs=14 outputs=12 members=7 elites=5 hidden=200,200,200,200 ...)
--   mbpo.Buffer obs=11 act=3 size=5000 capacity=1000000
--   mbpo.Env Hopper (obs 11, act 3, dt 0.008)
--   mbpo.Renderer 480x480         mbpo.Video 480x480, 12 frames
--   mbpo.Mlp [3 -> 64 -> 1] relu  mbpo.Adam (386 parameters, lr 0.001)
-- A number is written as tostring writes a float (lua_pushfstring's %f: 14 digits, "1.0").
-- mbpo.nn's objects (for tests and examples) tell their activation and learning rate only
-- in their state: their text costs a copy of it.

-- a float as tostring writes it
local function num(x) return tostring(x + 0.0) end

return {
  ["mbpo.Sac"] = function(agent)
    local c = agent:config()
    return string.format("mbpo.Sac (obs %d, act %d, %d updates, alpha %s)", c.obs, c.act,
                         agent:updates(), num(agent:alpha()))
  end,
  ["mbpo.Ensemble"] = function(ens) return "mbpo.Ensemble (" .. ens:info().layout .. ")" end,
  ["mbpo.Buffer"] = function(buf)
    local obs, act = buf:dims()
    return string.format("mbpo.Buffer obs=%d act=%d size=%d capacity=%d", obs, act, buf:size(),
                         buf:capacity())
  end,
  ["mbpo.Env"] = function(env)
    return string.format("mbpo.Env %s (obs %d, act %d, dt %s)", env.name, env.obs_dim,
                         env.act_dim, num(env.dt))
  end,
  ["mbpo.Renderer"] = function(r)
    return string.format("mbpo.Renderer %dx%d", r.width, r.height)
  end,
  ["mbpo.Mlp"] = function(net)
    return string.format("mbpo.Mlp [%s] %s", table.concat(net:sizes(), " -> "),
                         net:state().activation)
  end,
  ["mbpo.Adam"] = function(opt)
    local s = opt:state()
    return string.format("mbpo.Adam (%d parameters, lr %s)", s.adam_m:numel(), num(s.lr))
  end,
  ["mbpo.Video"] = function(v)
    return string.format("mbpo.Video %dx%d, %d frames", v.width, v.height, v.frames)
  end,
}
