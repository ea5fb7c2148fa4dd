-- mbpo.report: the results page is a pure function of the committed runs (results/), and
-- its figures are computed from progress.csv as documented (mean / min / max at the marks,
-- the first step reaching 1000, the stop-rule carry-forward).
local R = require "mbpo.report"
local lfs = require "lfs"

local root = MBPO_ROOT

local th = require "mbpo.test"
local tmpdir, write = th.tmpdir, th.write
local function read(path) return assert(th.read(path)) end

-- the page of DIR with Hopper's reference (points, marks) set to REF for the call
local function page_with_hopper_ref(dir, ref)
  local old = R.references.hopper
  R.references.hopper = ref
  local text, err = R.page(dir)
  R.references.hopper = old
  return assert(text, err)
end

describe("report", function()
  it("reproduces the committed results/README.md from the committed runs", function()
    local text = assert(R.page(root .. "/results"))
    local committed = read(root .. "/results/README.md")
    eq(text, committed, "results/README.md is stale: run mbpo report results -o results/README.md")
  end)

  it("every committed run's config.lua still resolves (the page's commands run again)", function()
    local n = 0
    for task in lfs.dir(root .. "/results") do
      local td = root .. "/results/" .. task
      if not task:match("^%.") and lfs.attributes(td, "mode") == "directory" then
        for seed in lfs.dir(td) do
          local f = td .. "/" .. seed .. "/config.lua"
          if seed:match("^seed%d+$") and lfs.attributes(f, "mode") then
            local ok, res = require("mbpo.config").load_sandboxed(f)
            check(ok, f .. ": " .. tostring(res))
            local cfg, err = require("mbpo.run").resolve(res, {}, {})
            check(cfg ~= nil, f .. ": " .. tostring(err))
            n = n + 1
          end
        end
      end
    end
    check(n >= 10, "found " .. n .. " committed runs")
  end)

  it("computes the table from progress.csv", function()
    local d = tmpdir()
    local cols = "epoch,env_steps,eval_return,time_epoch\n"
    for seed, rows in ipairs({
      {"1,1000,10,2", "2,1500,100,4", "3,2000,1000,6"},          -- stops at 2000 (solved)
      {"1,1000,30,3", "2,1500,200,3", "3,2000,500,3", "4,2500,900,3"},
    }) do
      local sd = d .. "/inverted_pendulum/seed" .. seed
      assert(lfs.mkdir(d .. "/inverted_pendulum") or true)
      assert(lfs.mkdir(sd))
      write(sd .. "/progress.csv", cols .. table.concat(rows, "\n") .. "\n")
      write(sd .. "/config.lua", "-- resolved config of `mbpo run x.lua seed=" .. seed ..
        "`\nreturn {\n  epoch_length = 500,\n  stop_return = 1000,\n}\n")
    end
    local text = assert(R.page(d))
    -- the mean of each run's evaluations so far (up to 5) beside the marks' own
    assert(text:find("| 1000 | 20.0 | 10.0 | 30.0 | 2 | 20.0 |  |", 1, true), text)
    assert(text:find("| 1500 | 150 | 100 | 200 | 2 | 85.0 |  |", 1, true), text)
    assert(text:find("| 2000 | 750 | 500 | 1000 | 2 | 307 |  |", 1, true), text)
    -- seed 1 stopped at 1000: it counts with 1000 at 2500 (seed 2 ended there, unsolved), one
    -- more evaluation of 1000 in its window: ((10+100+1000+1000)/4 + (30+200+500+900)/4) / 2
    assert(text:find("| 2500 | 950 | 900 | 1000 | 2 | 468 |  |", 1, true), text)
    assert(not text:find("| 3000 |", 1, true), "no row past every run's end")
    assert(text:find(
      "| inverted_pendulum/seed1 | 2000 | 1000 | 2000 | 0.00 | 4.0 | `mbpo run x.lua seed=1` |",
      1, true), text)
    assert(text:find("| inverted_pendulum/seed2 | 2500 | 900 | - | 0.00 | 3.0 |", 1, true), text)
    assert(not text:find("Looked into", 1, true), text)
    -- a task's notes.md ends its section, after the run table
    write(d .. "/inverted_pendulum/notes.md", "Looked into: the pole.\n\n")
    text = assert(R.page(d))
    local at = text:find("Looked into: the pole.\n", 1, true)
    check(at and at > text:find("| inverted_pendulum/seed2 |", 1, true), text)
    os.execute(string.format("rm -rf %q", d))
  end)

  it("puts the reference mean and std at the same env step, exploration included", function()
    local d = tmpdir()
    assert(lfs.mkdir(d .. "/hopper"))
    for seed, rows in ipairs({{"1,24000,10,1", "2,25000,40,1"},
      {"1,24000,20,1", "2,25000,80,1"}}) do
      local sd = d .. "/hopper/seed" .. seed
      assert(lfs.mkdir(sd))
      write(sd .. "/progress.csv", "epoch,env_steps,eval_return,time_epoch\n" ..
        table.concat(rows, "\n") .. "\n")
      write(sd .. "/config.lua", "-- resolved config of `mbpo run h.lua`\nreturn {\n" ..
        "  init_exploration_steps = 5000,\n}\n")
    end
    local text = page_with_hopper_ref(d, {points = {{25000, 587, 214}}, marks = {24000, 25000}})
    assert(text:find("| 24000 | 15.0 | 10.0 | 20.0 | 2 | 15.0 |  |", 1, true), text)
    assert(text:find("| 25000 | 60.0 | 40.0 | 80.0 | 2 | 37.5 | 587 ± 214 |", 1, true), text)
    os.execute(string.format("rm -rf %q", d))
  end)

  it("averages a run's last 5 evaluations up to a mark, fewer near its start", function()
    local d = tmpdir()
    assert(lfs.mkdir(d .. "/hopper"))
    assert(lfs.mkdir(d .. "/hopper/seed1"))
    local rows = {"epoch,env_steps,eval_return,time_epoch"}
    for i = 1, 7 do rows[#rows + 1] = string.format("%d,%d,%d,1", i, 8000 + 1000 * i, 10 * i) end
    write(d .. "/hopper/seed1/progress.csv", table.concat(rows, "\n") .. "\n")
    write(d .. "/hopper/seed1/config.lua", "-- resolved config of `mbpo run h.lua`\nreturn {}\n")
    local text = page_with_hopper_ref(d, {points = {}, marks = {10000, 15000}})
    assert(text:find("| 10000 | 20.0 | 20.0 | 20.0 | 1 | 15.0 |  |", 1, true), text)
    assert(text:find("| 15000 | 70.0 | 70.0 | 70.0 | 1 | 50.0 |  |", 1, true), text)
    os.execute(string.format("rm -rf %q", d))
  end)

  it("draws the curves when a run has just begun (no evaluated epoch yet)", function()
    local d = tmpdir()
    assert(lfs.mkdir(d .. "/hopper"))
    for _, seed in ipairs({"seed1", "seed2"}) do assert(lfs.mkdir(d .. "/hopper/" .. seed)) end
    local src = root .. "/results/hopper_bf16/seed1/"
    local csv = read(src .. "progress.csv")
    write(d .. "/hopper/seed1/progress.csv", csv)
    write(d .. "/hopper/seed2/progress.csv", csv:match("^[^\n]*\n"))
    for _, seed in ipairs({"seed1", "seed2"}) do
      write(d .. "/hopper/" .. seed .. "/config.lua", read(src .. "config.lua"))
    end
    local out = d .. "/README.md"
    eq(R.main({d, "-o", out}), 0)
    check(lfs.attributes(d .. "/hopper/curve.png", "mode") == "file", "the curve is drawn")
    assert(read(out):find("| hopper/seed2 | 0 |", 1, true), read(out))
    os.execute(string.format("rm -rf %q", d))
  end)

  it("orders the tasks as the paper does, each task's bf16 runs after its fp32 runs", function()
    local d = tmpdir()
    local src = root .. "/results/hopper_bf16/seed1/"
    for _, t in ipairs({"ant_bf16", "walker2d_bf16", "hopper_bf16", "walker2d", "zz_custom"}) do
      assert(lfs.mkdir(d .. "/" .. t))
      assert(lfs.mkdir(d .. "/" .. t .. "/seed1"))
      write(d .. "/" .. t .. "/seed1/progress.csv", read(src .. "progress.csv"))
      write(d .. "/" .. t .. "/seed1/config.lua", read(src .. "config.lua"))
    end
    local text = assert(R.page(d))
    local order = {}
    for name in text:gmatch("\n## ([^\n]+)") do order[#order + 1] = name end
    eq(table.concat(order, ", "), "Hopper (bf16), Walker2d, Walker2d (bf16), Ant (bf16), " ..
      "zz_custom")
    os.execute(string.format("rm -rf %q", d))
  end)

  it("adds CPU hours where a task's runs record time_cpu, a dash for a run without", function()
    local d = tmpdir()
    assert(lfs.mkdir(d .. "/hopper"))
    for seed, csv in ipairs({
      "epoch,env_steps,eval_return,time_epoch,time_cpu\n1,6000,10,3600,1800\n2,7000,20,3600,900\n",
      "epoch,env_steps,eval_return,time_epoch\n1,6000,10,7200\n",  -- an older build's run
    }) do
      local sd = d .. "/hopper/seed" .. seed
      assert(lfs.mkdir(sd))
      write(sd .. "/progress.csv", csv)
      write(sd .. "/config.lua", "-- resolved config of `mbpo run h.lua`\nreturn {}\n")
    end
    local text = assert(R.page(d))
    check(text:find("| hours | CPU hours | median s/epoch |", 1, true), text)
    check(text:find("| hopper/seed1 | 7000 | 20.0 | - | 2.00 | 0.75 | 3600 |", 1, true), text)
    check(text:find("| hopper/seed2 | 6000 | 10.0 | - | 2.00 | - | 7200 |", 1, true), text)
    -- no run of the task records it: no column
    os.remove(d .. "/hopper/seed1/progress.csv")
    os.execute(string.format("rm -rf %q", d .. "/hopper/seed1"))
    text = assert(R.page(d))
    check(not text:find("CPU hours |", 1, true) and
      text:find("| hopper/seed2 | 6000 | 10.0 | - | 2.00 | 7200 |", 1, true), text)
    os.execute(string.format("rm -rf %q", d))
  end)

  it("refuses a directory without runs with a message", function()
    local d = tmpdir()
    local text, err = R.page(d)
    eq(text, nil)
    assert(err:find("no runs under", 1, true), err)
    os.remove(d)
  end)
end)
