-- Redis's script sandbox, built once per Lua state (chunk name "=redis", so
-- that the error handler can skip these frames). Called with the natives
-- implemented in Rust; returns the runner and the scripts' environment.
local natives = ...
local dbg = debug
local G = _G
local type, tostring, tonumber, select, error, setmetatable = type, tostring, tonumber, select, error, setmetatable
local rawpcall, rawxpcall, raw_rawset, raw_loadstring, raw_load, setfenv =
    pcall, xpcall, rawset, loadstring, load, setfenv
local error_info = natives.error_info

-- luaPushErrorBuff: "-CODE msg" keeps its code, anything else gets ERR;
-- the message loses its leading and trailing CR/LF.
local function push_error(s)
    local code, msg = 'ERR', s
    if s:sub(1, 1) == '-' then
        local sp = s:find(' ', 1, true)
        if sp then
            code, msg = s:sub(2, sp - 1), s:sub(sp + 1)
        else
            msg = s:sub(2)
        end
    end
    msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
    return { err = code .. ' ' .. msg }
end

-- Where a script failed: the first frame that is neither C nor this file.
local function handler(err)
    local level, info = 2, nil
    while true do
        local i = dbg.getinfo(level, 'Sl')
        if not i then break end
        if i.what ~= 'C' and i.source ~= '=redis' then
            info = i
            break
        end
        level = level + 1
    end
    if type(err) == 'userdata' then
        local msg, lua_style = error_info(err)
        err = { err = lua_style and ('ERR ' .. msg) or msg }
    elseif type(err) ~= 'table' then
        err = { err = 'ERR ' .. tostring(err) }
    end
    if info then
        err.source = info.source
        err.line = info.currentline
    end
    return err
end

-- redis.call and redis.pcall are added by the Rust side (C functions, as
-- in Redis, so `return redis.call(...)` keeps the script's frame for the
-- error's line); redis.call raises a userdata whose text is the Redis error.
local redis = {}
redis.setresp = natives.setresp
redis.sha1hex = natives.sha1hex
redis.error_reply = function(...)
    local e = ...
    if select('#', ...) ~= 1 or type(e) ~= 'string' then
        return push_error('wrong number or type of arguments')
    end
    if e:sub(1, 1) ~= '-' then e = '-' .. e end
    return push_error(e)
end
redis.status_reply = function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= 'string' then
        return push_error('wrong number or type of arguments')
    end
    return { ok = s }
end
redis.log = natives.log
redis.set_repl = function() end
redis.replicate_commands = function() return true end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = '7.0.15', 0x07000f

-- math.random as Redis's: its own rand48 sequence.
G.math.random = natives.random
G.math.randomseed = natives.randomseed

G.redis = redis
G.cjson = { encode = natives.cjson_encode, decode = natives.cjson_decode, null = natives.null }
local bit = {}
for _, name in ipairs({ 'tobit', 'bnot', 'band', 'bor', 'bxor', 'lshift', 'rshift', 'arshift', 'rol', 'ror', 'bswap', 'tohex' }) do
    bit[name] = natives['bit_' .. name]
end
G.bit = bit

-- Redis's pcall: an error table comes back as its message.
local function pcall_result(ok, ...)
    if ok then return true, ... end
    local e = ...
    if type(e) == 'userdata' then return false, (error_info(e)) end
    if type(e) == 'table' then
        local m = e.err
        if type(m) == 'string' or type(m) == 'number' then return false, m end
    end
    return false, e
end
G.pcall = function(f, ...)
    return pcall_result(rawpcall(f, ...))
end

-- Read-only tables (Redis patches Lua for them; here, empty proxies whose
-- reads fall through to the real table and whose writes fail).
local readonly_error = function() error('Attempt to modify a readonly table', 2) end
local protected = setmetatable({}, { __mode = 'k' })
local function readonly(t)
    local p = setmetatable({}, { __index = t, __newindex = readonly_error, __metatable = false })
    protected[p] = true
    return p
end

-- What scripts may not reach at all.
for _, name in ipairs({ 'print', 'loadfile', 'dofile', 'require', 'module', 'package', 'os', 'io', 'debug' }) do
    G[name] = nil
end

for _, name in ipairs({ 'redis', 'cjson', 'bit', 'string', 'math', 'table', 'coroutine' }) do
    if G[name] then G[name] = readonly(G[name]) end
end

local env = readonly(G)
G._G = env
G.loadstring = function(...)
    local f, e = raw_loadstring(...)
    if f then setfenv(f, env) end
    return f, e
end
G.load = function(...)
    local f, e = raw_load(...)
    if f then setfenv(f, env) end
    return f, e
end
G.rawset = function(t, k, v)
    if protected[t] or t == G then error('Attempt to modify a readonly table', 2) end
    return raw_rawset(t, k, v)
end
protected[G] = true
setmetatable(G, {
    __index = function(_, k)
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end,
    __newindex = readonly_error,
    __metatable = false,
})

-- Run a compiled script: whether it succeeded, and its value or error
-- table. KEYS and ARGV come as one string and the lengths of its parts
-- (one string to create from Rust instead of one per argument).
local sub = string.sub
local function run(f, packed, nkeys, ...)
    local lens = { ... }
    local keys, argv = {}, {}
    local pos = 1
    for i = 1, #lens do
        local stop = pos + lens[i]
        local s = sub(packed, pos, stop - 1)
        pos = stop
        if i <= nkeys then keys[i] = s else argv[i - nkeys] = s end
    end
    raw_rawset(G, 'KEYS', keys)
    raw_rawset(G, 'ARGV', argv)
    return rawxpcall(f, handler)
end

return run, env, redis
