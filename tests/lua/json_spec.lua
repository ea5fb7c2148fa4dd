-- mbpo.json (mbpo.io.json_encode / json_decode): the exact text of numbers and escapes, as
-- the cJSON printer that the Lua codec replaced wrote it (the expected strings below were
-- recorded from it), and the parser's edges: unicode escapes, nesting, what follows a value.
local io_ = require "mbpo.io"
local json = require "mbpo.json"

describe("json", function()
  it("is the codec of mbpo.io", function()
    eq(io_.json_encode, json.json_encode, "json_encode")
    eq(io_.json_decode, json.json_decode, "json_decode")
  end)

  it("writes numbers with 15 digits when they read back within a rounding, else 17", function()
    local cases = {{0.1, "0.1"}, {1 / 3, "0.33333333333333331"}, {1e20, "1e+20"},
      {5e-324, "4.94065645841247e-324"}, {2.0, "2"}, {-0.0, "-0"}, {3e-4, "0.0003"},
      {2147483648.0, "2147483648"}, {9007199254740993.0, "9.00719925474099e+15"},
      {1.7976931348623157e308, "1.79769313486232e+308"}, {1 << 60, "1152921504606846976"},
      {math.mininteger, "-9223372036854775808"}}
    for _, c in ipairs(cases) do eq(io_.json_encode(c[1]), c[2], string.format("%.17g", c[1])) end
    eq(tonumber(io_.json_encode(1 / 3)), 1 / 3, "17 digits read back exactly")
  end)

  it("escapes quotes, backslashes and control bytes only", function()
    eq(io_.json_encode('q" b\\ s/ \n\r\t\b\f \1\31\127 é'),
       '"q\\" b\\\\ s/ \\n\\r\\t\\b\\f \\u0001\\u001f\127 é"', "escapes")
    eq(io_.json_encode({b = {true, false}, a = {}, B = "x", ["a b"] = 1}),
       '{"B":"x","a":{},"a b":1,"b":[true,false]}', "sorted keys, no spaces")
    eq(io_.json_encode({{}, {{}}}), "[{},[{}]]", "nested empty tables")
  end)

  it("names where a value cannot be written", function()
    raises(function() io_.json_encode({a = {b = {1, 2, {c = io.stdout}}}}) end,
           "io.json_encode: cannot encode a userdata (in 'c') (at [3]) (in 'b') (in 'a')")
    raises(function() io_.json_encode({["a\0b"] = 1}) end, "key contains a NUL byte")
    raises(function() io_.json_encode({"a\0b"}) end, "string contains a NUL byte (at [1])")
    raises(function() io_.json_encode({-1 / 0}) end, "-inf cannot be written as JSON (at [1])")
    raises(function() io_.json_encode() end, "(value expected)")
    local deep, d = {}, nil
    d = deep
    for _ = 1, 199 do d[1] = {}; d = d[1] end
    eq(#io_.json_encode(deep), 2 * 199 + 2, "200 levels are written")
    d[1] = {}
    raises(function() io_.json_encode(deep) end, "tables nested more than 200 deep")
  end)

  it("reads unicode escapes, nulls, numbers and the byte order mark", function()
    eq(io_.json_decode('"\\u00e9\\ud83d\\ude00\\/"'), "é\240\159\152\128/", "UTF-8 of \\u")
    eq(io_.json_decode('"x\\u0000y"'), "x", "text stops at \\u0000")
    local a = io_.json_decode("[true,false,null,1]")
    eq(a[3], nil, "null is a hole")
    eq(a[4], 1, "after the hole")
    local n = io_.json_decode("[1e5, 9007199254740993, 1e400, -0, 1.5, 1.]")
    eq(math.type(n[1]), "integer", "1e5 is integral")
    eq(n[2], 9007199254740992, "rounded to a double")
    eq(n[3], math.huge, "overflow")
    eq(math.type(n[4]), "integer", "-0")
    eq(n[5], 1.5, "a float")
    eq(n[6], 1, "1.")
    eq(math.type(io_.json_decode("123456789012345678901234567890")), "float", "beyond 2^53")
    eq(io_.json_decode('{"a":1,"a":2}').a, 2, "the last of repeated keys")
    eq(io_.json_decode("\239\187\191[7]")[1], 7, "a byte order mark")
    eq(io_.json_decode(12), 12, "a number is read as its text")
    local nest = string.rep("[", 1000) .. string.rep("]", 1000)
    check(io_.json_decode(nest), "1000 levels are read")
    local v, msg = io_.json_decode("[" .. nest .. "]")
    eq(v, nil, "1001 levels are not")
    check(msg:find("malformed JSON near byte", 1, true), "%s", msg)
  end)

  it("rejects what the parser rejected", function()
    for _, bad in ipairs({".5", "+1", "-", '"\\ud800"', '"\\udc00"', '"\\x"', "nul", '"abc',
                          "[1 2]", '{"a":1,}', "{1:2}", "1-2", "[1e+]", "[1,]"}) do
      local v, msg = io_.json_decode(bad)
      eq(v, nil, "decoded " .. bad)
      check(msg:find("^io.json_decode: malformed JSON near byte %d+ of " .. #bad .. "$"),
            "message for %q: %s", bad, tostring(msg))
    end
    raises(function() io_.json_decode() end, "string expected, got no value")
  end)
end)
