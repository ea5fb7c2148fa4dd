-- mbpo.log: progress.csv written and read back (numbers, nan, empty and quoted cells), the
-- resume rewrite through progress.csv.tmp and a rename (and its failures), log.txt lines,
-- and what reaches stdout on a terminal (the live line) and elsewhere (plain lines only).
local lfs = require "lfs"
local log = require "mbpo.log"
local test = require "mbpo.test"

local base = test.tmpdir()
local n = 0
local function newdir()
  n = n + 1
  local d = base .. "/d" .. n
  assert(lfs.mkdir(d))
  return d
end

-- runs f with io.stdout replaced by a file; returns what f wrote there
local function stdout_of(f)
  n = n + 1
  local path = base .. "/stdout" .. n
  local saved = io.stdout
  io.stdout = assert(io.open(path, "w"))
  local ok, err = pcall(f)
  io.stdout:close()
  io.stdout = saved
  if not ok then error(err, 0) end
  return test.read(path)
end

local STAMP = "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d "

describe("csv", function()
  local columns = {"epoch", "int", "big", "float", "small", "nan", "inf", "empty", "comma",
                   "quote", "newline", "plain"}
  local first = {epoch = 1, int = -42, big = math.maxinteger, float = 1 / 3, small = -1.5e-7,
                 nan = 0 / 0, inf = -math.huge, empty = nil, comma = "a,b", quote = 'say "hi"',
                 newline = "two\nlines", plain = "word", unknown = "not a column"}

  it("writes integers exactly, floats at %.6g, nan, empty cells and quoted strings", function()
    local d = newdir()
    local lg = log.new{dir = d, columns = columns, quiet = true}
    lg:row(first)
    lg:row{epoch = 2}
    lg:close()
    eq(test.read(d .. "/progress.csv"), table.concat(columns, ",") .. "\n" ..
      '1,-42,9223372036854775807,0.333333,-1.5e-07,nan,-inf,,"a,b","say ""hi""",' ..
      '"two\nlines",word\n' .. "2,,,,,,,,,,,\n", "file text")
  end)

  it("reads back what it wrote, record by record", function()
    local d = newdir()
    local lg = log.new{dir = d, columns = columns, quiet = true}
    lg:row(first)
    lg:row{epoch = 2, float = 2.5, plain = "x"}
    lg:close()
    local header, rows = log.read_csv(d .. "/progress.csv")
    eq(table.concat(header, "|"), table.concat(columns, "|"), "header")
    eq(#rows, 2, "rows")
    local r = rows[1]
    eq(r.epoch, 1, "epoch")
    eq(math.type(r.int), "integer", "int type")
    eq(r.int, -42, "int")
    eq(r.big, math.maxinteger, "big")
    eq(r.float, 0.333333, "float at 6 significant digits")
    eq(r.small, -1.5e-7, "small")
    eq(r.nan, "nan", "nan stays a string (not a number)")
    eq(r.inf, "-inf", "inf stays a string")
    eq(r.empty, nil, "empty cell")
    eq(r.comma, "a,b", "comma")
    eq(r.quote, 'say "hi"', "quote")
    eq(r.newline, "two\nlines", "newline")
    eq(r.plain, "word", "plain")
    eq(r.unknown, nil, "a key that is no column")
    eq(rows[2].epoch, 2, "row 2 epoch")
    eq(rows[2].float, 2.5, "row 2 float")
    eq(rows[2].plain, "x", "row 2 plain")
    eq(rows[2].int, nil, "row 2 missing cell")
  end)

  it("reads a header-only file as no rows and a missing one as nil, message", function()
    local d = newdir()
    log.new{dir = d, columns = {"epoch", "x"}, quiet = true}:close()
    local header, rows = log.read_csv(d .. "/progress.csv")
    eq(#header, 2, "header")
    eq(#rows, 0, "rows")
    local h, err = log.read_csv(d .. "/none.csv")
    eq(h, nil, "missing file")
    check(tostring(err):find("none.csv", 1, true), "message names the file: %s", tostring(err))
  end)

  it("raises one line when a row cannot be written (a full disk)", function()
    local lg = log.new{columns = {"epoch"}, quiet = true}
    lg.csv = assert(io.open("/dev/full", "w"))
    local err = raises(function() lg:row{epoch = 1} end, "cannot write progress.csv: ")
    check(not err:find("log.lua", 1, true), "no position in the message: %s", err)
    lg:close()
  end)

  it("writes no files without dir", function()
    local lg = log.new{columns = {"epoch"}, quiet = true}
    lg:row{epoch = 1}
    lg:line("nothing")
    eq(lg.csv, nil, "csv")
    eq(lg.txt, nil, "txt")
    lg:close()
  end)
end)

describe("resume", function()
  -- a run of 5 epochs, then a resume from the checkpoint of epoch 3
  local function run5(d)
    local lg = log.new{dir = d, columns = {"epoch", "x", "note"}, quiet = true}
    for e = 1, 5 do lg:row{epoch = e, x = e * 0.5, note = e == 2 and "a\n9,b" or nil} end
    lg:line("epoch %d", 5)
    lg:close()
  end
  local header = "epoch,x,note\n"
  local upto3 = header .. '1,0.5,\n2,1,"a\n9,b"\n3,1.5,\n'

  it("keeps the rows with epoch <= keep_epoch, whole records, and appends after them", function()
    local d = newdir()
    run5(d)
    local lg = log.new{dir = d, columns = {"epoch", "x", "note"}, resume_epoch = 3, quiet = true}
    eq(test.read(d .. "/progress.csv"), upto3, "rewritten file")
    eq(lfs.attributes(d .. "/progress.csv.tmp"), nil, "progress.csv.tmp left behind")
    lg:row{epoch = 4, x = 7}
    lg:close()
    eq(test.read(d .. "/progress.csv"), upto3 .. "4,7,\n", "after a new row")
    local _, rows = log.read_csv(d .. "/progress.csv")
    eq(#rows, 4, "rows")
    eq(rows[2].note, "a\n9,b", "the two-line cell")
    eq(rows[4].x, 7, "new row")
  end)

  it("keeps no rows at resume_epoch 0 and makes a missing file with its header", function()
    local d = newdir()
    run5(d)
    log.new{dir = d, columns = {"epoch", "x", "note"}, resume_epoch = 0, quiet = true}:close()
    eq(test.read(d .. "/progress.csv"), header, "resume from 0")
    local e = newdir()
    log.new{dir = e, columns = {"epoch", "x", "note"}, resume_epoch = 3, quiet = true}:close()
    eq(test.read(e .. "/progress.csv"), header, "no file before")
  end)

  it("starts both files afresh without resume_epoch", function()
    local d = newdir()
    run5(d)
    log.new{dir = d, columns = {"epoch", "x", "note"}, quiet = true}:close()
    eq(test.read(d .. "/progress.csv"), header, "progress.csv")
    eq(test.read(d .. "/log.txt"), "", "log.txt")
  end)

  it("appends to log.txt on resume", function()
    local d = newdir()
    run5(d)
    local lg = log.new{dir = d, columns = {"epoch", "x", "note"}, resume_epoch = 3, quiet = true}
    lg:line("resumed")
    lg:close()
    local text = test.read(d .. "/log.txt")
    check(text:match("^" .. STAMP .. "epoch 5\n" .. STAMP .. "resumed\n$"), "log.txt: %q", text)
  end)

  it("raises one line and keeps the old file when the rewrite fails", function()
    local d = newdir()
    run5(d)
    local before = test.read(d .. "/progress.csv")
    -- a directory in the way of progress.csv.tmp: the open fails, for root too
    assert(lfs.mkdir(d .. "/progress.csv.tmp"))
    local err = raises(function()
      log.new{dir = d, columns = {"epoch", "x", "note"}, resume_epoch = 3, quiet = true}
    end, "cannot write progress.csv: ")
    check(err:find("progress.csv.tmp", 1, true), "message names the file: %s", err)
    check(not err:find("log.lua", 1, true), "no position in the message: %s", err)
    eq(test.read(d .. "/progress.csv"), before, "old progress.csv")
    eq(lfs.attributes(d .. "/progress.csv.tmp", "mode"), "directory", "the directory")
  end)

  it("raises one line when the directory is a file", function()
    local d = newdir()
    test.write(d .. "/file", "keep")
    raises(function()
      log.new{dir = d .. "/file", columns = {"epoch"}, resume_epoch = 3, quiet = true}
    end, "cannot write progress.csv: ")
    eq(test.read(d .. "/file"), "keep", "the file")
  end)
end)

describe("log.txt and stdout", function()
  it("writes each line with a timestamp, formatted only when given arguments", function()
    local d = newdir()
    local lg = log.new{dir = d, columns = {"epoch"}}
    local out = stdout_of(function()
      lg:line("epoch %d: return %.1f", 3, 12.345)
      lg:line("100% done")
    end)
    lg:close()
    eq(out, "epoch 3: return 12.3\n100% done\n", "stdout")
    local text = test.read(d .. "/log.txt")
    check(text:match("^" .. STAMP .. "epoch 3: return 12%.3\n" .. STAMP .. "100%% done\n$"),
      "log.txt: %q", text)
  end)

  it("writes nothing to stdout when quiet, log.txt still", function()
    local d = newdir()
    local lg = log.new{dir = d, columns = {"epoch"}, quiet = true}
    local out = stdout_of(function()
      lg:line("hidden")
      lg:progress({epoch = 1, epochs = 2}, true)
    end)
    lg:close()
    eq(out, "", "stdout")
    check(test.read(d .. "/log.txt"):match("^" .. STAMP .. "hidden\n$"), "log.txt")
  end)

  it("prints plain lines only when stdout is not a terminal", function()
    local d = newdir()
    local script = d .. "/plain.lua"
    test.write(script, [[
      local lg = require("mbpo.log").new{columns = {"epoch"}}
      io.write(tostring(lg.tty), "\n")
      lg:progress({epoch = 1, epochs = 3, steps = 10, phase = "model"}, true)
      lg:line("epoch %d done", 1)
      lg:progress({epoch = 2, epochs = 3, steps = 20, eval = 5, phase = "sac", eta = 61}, true)
      lg:line("epoch %d done", 2)
      lg:close()
    ]])
    local rc, out = test.mbpo(string.format("%q", script))
    eq(rc, 0, out)
    eq(out, "false\nepoch 1 done\nepoch 2 done\n", "output through a pipe")
  end)

  it("redraws the live line in place on a terminal and clears it before a plain line", function()
    local lg = log.new{columns = {"epoch"}}
    lg.tty = true -- as core.isatty(1) says on a terminal
    local out = stdout_of(function()
      lg:progress({epoch = 2, epochs = 10, steps = 500, eval = 12.34, phase = "model",
                   eta = 65.7}, true)
      lg:progress({epoch = 3, epochs = 10, steps = 600, phase = "sac", eta = 0 / 0}, true)
      lg:line("done")
      lg.last_draw = require("mbpo.core").clock() + 1000 -- the last draw was just now
      lg:progress({epoch = 4, epochs = 10, steps = 700}) -- not forced: too soon, not drawn
      lg:progress({epoch = 4, epochs = 10, steps = 700, eta = 1 / 0}, true)
      lg:close()
    end)
    eq(out, "\r\27[Kepoch 2/10  steps 500  eval 12.3  [model]  ETA 1m05s" ..
      "\r\27[Kepoch 3/10  steps 600  eval -  [sac]  ETA ?" ..
      "\r\27[Kdone\n" ..
      "\r\27[Kepoch 4/10  steps 700  eval -  []  ETA ?" ..
      "\r\27[K", "terminal output")
  end)
end)

require("mbpo.checkpoint").rmtree(base)
