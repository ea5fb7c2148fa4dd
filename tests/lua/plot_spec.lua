-- mbpo.plot: no shell from data. Run directories and output paths named with backquotes,
-- $(...), quotes and newlines reach gnuplot as nothing it runs; reference points draw.
local plot = require "mbpo.plot"
local lfs = require "lfs"
local tmpdir = require("mbpo.test").tmpdir

describe("plot", function()
  it("runs nothing from a path or a title, whatever characters they hold", function()
    local base = tmpdir()
    local tag = tostring(os.time()) .. tostring(math.random(1e6))
    local names = {"`touch pwned1-" .. tag .. "`", "$(touch pwned2-" .. tag .. ")",
      "it's", 'say "hi"', "new\nline", "back\\slash"}
    for i, name in ipairs(names) do
      local d = base .. "/" .. name
      assert(lfs.mkdir(d))
      local f = assert(io.open(d .. "/progress.csv", "w"))
      f:write("epoch,env_steps,eval_return\n1,1000,10\n2,2000,30\n")
      f:close()
      local out = d .. "/`touch pwned3-" .. tag .. "` $(touch pwned4-" .. tag .. ").png"
      local file, err = plot.plot({d}, out, nil, i == 1 and {refs = {{1500, 20}}} or nil)
      eq(file, out, tostring(err))
      local png = io.open(out, "rb")
      check(png and png:read(4) == "\137PNG", "no PNG at %q", out)
      if png then png:close() end
    end
    local file, err = plot.plot({base .. "/" .. names[1], base .. "/" .. names[3]},
      base .. "/two.svg", "title `touch pwned5-" .. tag .. "`")
    eq(file, base .. "/two.svg", tostring(err))
    -- a command would run in gnuplot's working directory, ours
    for k = 1, 5 do
      check(not lfs.attributes(lfs.currentdir() .. "/pwned" .. k .. "-" .. tag),
        "pwned%d file created", k)
    end
    os.execute(string.format("rm -rf %q", base))
  end)

  it("draws the reference points up to the runs' last step and the first one past it", function()
    local refs = {{10000, 1}, {75000, 4}, {25000, 2}, {50000, 3}, {300000, 6}, {100000, 5}}
    local got = plot.refs_in_range(refs, 50000)
    eq(#got, 4)
    for i, x in ipairs{10000, 25000, 50000, 75000} do eq(got[i][1], x) end
    got = plot.refs_in_range(refs, 9000)
    eq(#got, 1)
    eq(got[1][1], 10000)
    eq(#plot.refs_in_range(refs, 400000), 6)
    eq(#plot.refs_in_range(nil, 1000), 0)
  end)

  it("draws the random policy's line and keeps apostrophes in titles (SVG text)", function()
    local d = tmpdir()
    local f = assert(io.open(d .. "/progress.csv", "w"))
    f:write("epoch,env_steps,eval_return\n1,1000,10\n2,2000,30\n")
    f:close()
    local out = d .. "/c.svg"
    eq(plot.plot({d}, out, "it's a title", {refs = {{1500, 20}}, refs_title = "authors' curves",
      baseline = {-5.5, "random policy"}}), out)
    local svg = assert(io.open(out)):read("a")
    for _, text in ipairs{"random policy", "authors' curves", "it's a title"} do
      check(svg:find(text, 1, true), "no %q in the SVG", text)
    end
    local ok, err = plot.plot({d}, d .. "/n.svg", nil, {baseline = {0 / 0}})
    check(not ok and err:find("baseline must be a finite number", 1, true), tostring(err))
    check(not lfs.attributes(d .. "/n.svg"), "a picture despite the refusal")
    os.execute(string.format("rm -rf %q", d))
  end)
end)
