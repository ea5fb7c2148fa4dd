-- mbpo.log: what a run reports. progress.csv (one row per epoch), log.txt (the lines the
-- terminal showed), and on a terminal a live progress line (epoch, steps, last eval
-- return, current phase, ETA) redrawn in place; plain lines when not a terminal.
local core = require "mbpo.core"

local M = {}
M.__index = M

-- CSV -----------------------------------------------------------------------------------

local function fmt_cell(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" end
    return string.format("%.6g", v)
  end
  local s = tostring(v)
  if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- the cells of one CSV record; quoted cells ("a,b", "say ""hi""") are unquoted. nil while
-- a quoted cell is still open at the end (a newline inside it: the record goes on)
local function split(rec)
  local cells, i, n = {}, 1, #rec
  while true do
    if rec:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while true do
        local q = rec:find('"', j, true)
        if not q then return nil end
        buf[#buf + 1] = rec:sub(j, q - 1)
        if rec:sub(q + 1, q + 1) ~= '"' then i = q + 1; break end
        buf[#buf + 1] = '"'
        j = q + 2
      end
      cells[#cells + 1] = table.concat(buf)
      if i > n then return cells end
      i = i + 1 -- the comma after the closing quote
    else
      local c = rec:find(",", i, true)
      cells[#cells + 1] = rec:sub(i, (c or n + 1) - 1)
      if not c then return cells end
      i = c + 1
    end
  end
end

-- iterates over the records of an open CSV file: raw text (lines joined by "\n"), cells
local function records(f)
  local lines = f:lines()
  return function()
    local rec = lines()
    if not rec then return nil end
    local cells = split(rec)
    while not cells do
      local more = lines()
      if not more then cells = split(rec .. '"') break end -- a quote left open: close it
      rec = rec .. "\n" .. more
      cells = split(rec)
    end
    return rec, cells
  end
end

-- reads a CSV written by this module: header list and rows as tables keyed by column.
-- A cell that tonumber reads is a number ("nan" and "inf" stay strings), an empty one nil.
function M.read_csv(path)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local header, rows = nil, {}
  for rec, cells in records(f) do
    if not header then header = cells
    elseif rec ~= "" then
      local row = {}
      for i, name in ipairs(header) do
        local c = cells[i]
        row[name] = tonumber(c) or (c ~= "" and c or nil)
      end
      rows[#rows + 1] = row
    end
  end
  f:close()
  return header, rows
end

-- opens (or, on resume, reopens keeping rows with epoch <= keep_epoch) a CSV file. On resume
-- the kept rows go to PATH.tmp, which replaces PATH by a rename: a crash at any moment
-- leaves either the old file or the new one, never a truncated one.
local function open_csv(path, columns, keep_epoch)
  local kept = {}
  if keep_epoch then
    local f = io.open(path, "r")
    if f then
      local first = true
      for rec, cells in records(f) do
        if first then first = false
        else
          local e = tonumber(cells[1])
          if e and e <= keep_epoch then kept[#kept + 1] = rec end
        end
      end
      f:close()
    end
  end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  local ok, werr = f:write(table.concat(columns, ","), "\n")
  for _, line in ipairs(kept) do
    if ok then ok, werr = f:write(line, "\n") end
  end
  local cok, cerr = f:close()
  if not (ok and cok) then os.remove(tmp); return nil, tostring(werr or cerr) end
  require("mbpo.checkpoint").fault("csv_rewrite")
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); return nil, rerr end
  return io.open(path, "a")
end

-- Logger ----------------------------------------------------------------------------------

-- M.new{dir=, columns=, resume_epoch=, quiet=, append=} -> logger; dir may be nil (no
-- files); log.txt is appended to on resume or with append (a run started again in its
-- directory), else begun afresh
function M.new(opts)
  local self = setmetatable({}, M)
  self.columns = opts.columns or {}
  self.tty = core.isatty(1) and not opts.quiet
  self.quiet = opts.quiet
  self.live = false
  if opts.dir then
    local err
    self.csv, err = open_csv(opts.dir .. "/progress.csv", self.columns, opts.resume_epoch)
    if not self.csv then error("cannot write progress.csv: " .. tostring(err), 0) end
    self.txt, err = io.open(opts.dir .. "/log.txt",
      (opts.resume_epoch or opts.append) and "a" or "w")
    if not self.txt then error("cannot write log.txt: " .. tostring(err), 0) end
  end
  return self
end

-- clears the live line (on a terminal) so a plain line can be printed
function M:clear_live()
  if self.live then
    io.stdout:write("\r\27[K")
    self.live = false
  end
end

-- one plain line: terminal (unless quiet) and log.txt
function M:line(fmt, ...)
  local s = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  if not self.quiet then
    self:clear_live()
    io.stdout:write(s, "\n")
    io.stdout:flush()
  end
  if self.txt then
    self.txt:write(os.date("%Y-%m-%d %H:%M:%S "), s, "\n")
    self.txt:flush()
  end
end

-- the live progress line (terminal only; redrawn at most every 0.2 s unless forced)
function M:progress(p, force)
  if not self.tty then return end
  local now = core.clock()
  if not force and self.last_draw and now - self.last_draw < 0.2 then return end
  self.last_draw = now
  local eta = p.eta and p.eta == p.eta and p.eta < math.huge and
    string.format("%dm%02ds", math.floor(p.eta / 60), math.floor(p.eta % 60)) or "?"
  local s = string.format("epoch %d/%d  steps %d  eval %s  [%s]  ETA %s",
    p.epoch or 0, p.epochs or 0, p.steps or 0,
    p.eval and string.format("%.1f", p.eval) or "-", p.phase or "", eta)
  io.stdout:write("\r\27[K", s)
  io.stdout:flush()
  self.live = true
end

-- one CSV row (a table keyed by column names)
function M:row(t)
  if not self.csv then return end
  local cells = {}
  for i, c in ipairs(self.columns) do cells[i] = fmt_cell(t[c]) end
  local ok, err = self.csv:write(table.concat(cells, ","), "\n")
  if ok then ok, err = self.csv:flush() end
  if not ok then error("cannot write progress.csv: " .. tostring(err), 0) end
end

function M:close()
  self:clear_live()
  if self.csv then self.csv:close(); self.csv = nil end
  if self.txt then self.txt:close(); self.txt = nil end
end

return M
