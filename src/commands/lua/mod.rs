//! Embedded Lua 5.1 for the scripts the catalogue does not know
//! (`--lua yes`, the default; catalogued scripts never come here).
//!
//! One Lua state serves every database, created on first use, behind a
//! mutex. Its sandbox (`sandbox.lua`) is Redis's: `KEYS`/`ARGV`, the
//! `redis` API, `cjson` and `bit` (in Rust, [`libs`]), read-only globals,
//! no `os`/`io`/`loadfile`/`dofile`/`require`, `math.random` on Redis's
//! rand48 sequence.
//!
//! Atomicity: a script may touch keys it did not declare, so it runs with
//! every shard of its database locked (its declared keys' shards are given
//! up and all are taken before anything is read), then the Lua state's
//! mutex: always in that order, so two scripts on two databases cannot
//! deadlock. `redis.call` runs the command's own handler against that
//! view, like EXEC; its reply bytes become Lua values ([`resp`]) as in
//! Redis, so every command converts by the same rules.
//!
//! Effects: each write a script makes is recorded as the append-only
//! file's record of that command (the resulting state of its keys),
//! collected while it runs and appended once it ends, never the script:
//! replay is deterministic and sees the script's writes together.
//!
//! Time limit: past `busy-reply-threshold` other clients get `-BUSY`
//! ([`Engine::wait_turn`], one relaxed load on dispatch's path); a count
//! hook stops the script on SCRIPT KILL (refused once it wrote) or on
//! shutdown.

mod libs;
mod resp;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;

use super::args::is;
use super::error::{OOM, misconf_aof};
use super::table::{self, CommandSpec, KeySpec, Persist, flags};
use super::{CmdError, CmdResult, Ctx};
use crate::config::Settings;
use crate::protocol::ReplyBuf;
use crate::store::Locked;
use crate::store::clock::monotonic_us;

/// Scripts cached by EVAL (not SCRIPT LOAD) beyond this many are forgotten
/// oldest first, as Redis 7.4 does, so clients that build a new script per
/// call cannot grow the cache without bound.
const EVAL_CACHE_MAX: usize = 500;
/// The Lua heap's limit: a script allocating past it fails with an error.
const LUA_MEMORY_LIMIT: usize = 64 << 20;
/// Instructions between two looks at the kill flag (Redis's count hook).
const HOOK_EVERY: u32 = 100_000;

pub const BUSY: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const NOSCRIPT: CmdError = CmdError::Static("NOSCRIPT No matching script. Please use EVAL.");
const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

/// The interpreter and what other connections may see of the script it runs.
pub struct Engine {
    enabled: bool,
    vm: Mutex<Option<Vm>>,
    run: Arc<RunState>,
    /// `busy-reply-threshold` (alias `lua-time-limit`) in ms; 0: never BUSY.
    pub threshold_ms: AtomicU64,
    /// Scripts cached and the Lua heap's size, as of the last script or
    /// SCRIPT command (INFO reads these: a script may call INFO while it
    /// holds the interpreter).
    cached: AtomicU64,
    memory: AtomicU64,
}

/// The running script, as other threads and the hook see it.
#[derive(Default)]
struct RunState {
    /// When it started ([`monotonic_us`]); 0 while none runs.
    started: AtomicU64,
    /// SCRIPT KILL asked it to stop.
    kill: AtomicBool,
    /// The server is shutting down: stop it, writes or not.
    abort: AtomicBool,
    /// It ran a write command: SCRIPT KILL is refused.
    wrote: AtomicBool,
    /// math.random's rand48 state (Redis's: one sequence for all scripts).
    rand: AtomicU64,
    /// The protocol redis.call's replies are read in (redis.setresp).
    resp: AtomicU8,
    /// It ran long enough for the hook to fire.
    long: AtomicBool,
    /// Where the hook stopped it ("@user_script:3").
    killed_at: Mutex<Option<String>>,
}

/// Where a script comes from: its text (EVAL) or its SHA (EVALSHA).
pub enum Source<'a> {
    Text { body: &'a [u8], sha: &'a str },
    Sha(&'a [u8]),
}

impl Engine {
    pub fn new(enabled: bool, threshold_ms: u64) -> Engine {
        Engine {
            enabled,
            vm: Mutex::new(None),
            run: Arc::new(RunState {
                rand: AtomicU64::new(RAND48_START),
                ..RunState::default()
            }),
            threshold_ms: AtomicU64::new(threshold_ms),
            cached: AtomicU64::new(0),
            memory: AtomicU64::new(0),
        }
    }

    /// (scripts cached, bytes of Lua heap), for INFO memory.
    pub fn usage(&self) -> (u64, u64) {
        (self.cached.load(Ordering::Relaxed), self.memory.load(Ordering::Relaxed))
    }

    fn note_usage(&self, vm: Option<&Vm>) {
        let (n, m) = vm.map_or((0, 0), |vm| (vm.scripts.len() as u64, vm.lua.used_memory() as u64));
        self.cached.store(n, Ordering::Relaxed);
        self.memory.store(m, Ordering::Relaxed);
    }

    /// `--lua yes`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a Lua script is running (one relaxed load, for dispatch).
    #[inline]
    pub fn running(&self) -> bool {
        self.run.started.load(Ordering::Relaxed) != 0
    }

    /// Called by dispatch while a script runs: wait for it to end, or
    /// refuse with BUSY once it has run past the threshold. What Redis
    /// serves during a long script runs at once.
    #[cold]
    pub fn wait_turn(&self, spec: &CommandSpec, args: &[&[u8]]) -> Result<(), &'static str> {
        if allowed_while_busy(spec, args) {
            return Ok(());
        }
        loop {
            let started = self.run.started.load(Ordering::Relaxed);
            if started == 0 {
                return Ok(());
            }
            let threshold = self.threshold_ms.load(Ordering::Relaxed);
            let elapsed = monotonic_us().saturating_sub(started);
            if threshold > 0 && elapsed >= threshold.saturating_mul(1000) {
                return Err(BUSY);
            }
            // Most scripts take microseconds: yield while it is young,
            // sleep once it has run a millisecond.
            if elapsed < 1000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// SCRIPT KILL.
    pub fn kill(&self) -> CmdResult {
        if !self.running() {
            return Err(CmdError::Static("NOTBUSY No scripts in execution right now."));
        }
        if self.run.wrote.load(Ordering::SeqCst) {
            return Err(CmdError::Static(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            ));
        }
        self.run.kill.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Shutdown: stop a running script even if it wrote (its effects are
    /// not logged), so that the server does not wait for it.
    pub fn abort(&self) {
        self.run.abort.store(true, Ordering::SeqCst);
    }

    /// SCRIPT LOAD of an uncatalogued script: compile and keep it.
    pub fn load(&self, body: &[u8], sha: &str) -> CmdResult {
        let mut guard = self.vm.lock();
        let vm = self.vm_in(&mut guard)?;
        let compiled = vm.compile(body, sha, true).map(|_| ());
        self.note_usage(Some(vm));
        compiled
    }

    /// SCRIPT EXISTS for one SHA.
    pub fn exists(&self, sha: &[u8]) -> bool {
        let Some(key) = sha_key(sha) else { return false };
        self.vm.lock().as_ref().is_some_and(|vm| vm.scripts.contains_key(&key))
    }

    /// The text of the cached script `sha`, if cached.
    pub fn body(&self, sha: &[u8]) -> Option<Vec<u8>> {
        let key = sha_key(sha)?;
        self.vm.lock().as_ref()?.scripts.get(&key).map(|c| c.body.to_vec())
    }

    /// SCRIPT FLUSH: forget every script, with the state that compiled them.
    pub fn flush(&self) {
        *self.vm.lock() = None;
        self.note_usage(None);
    }

    fn vm_in<'g>(&self, guard: &'g mut Option<Vm>) -> Result<&'g mut Vm, CmdError> {
        if guard.is_none() {
            let vm = Vm::new(&self.run).map_err(|e| CmdError::msg(format!("ERR cannot start Lua: {e}")))?;
            *guard = Some(vm);
        }
        Ok(guard.as_mut().expect("just set"))
    }
}

/// What Redis serves while a script is busy (commands flagged allow-busy).
fn allowed_while_busy(spec: &CommandSpec, args: &[&[u8]]) -> bool {
    match spec.name {
        "auth" | "hello" | "quit" | "reset" | "multi" | "discard" | "watch" | "unwatch" => true,
        "script" => args.len() == 2 && is(args[1], "kill"),
        "shutdown" => args[1..].iter().any(|a| is(a, "nosave")),
        _ => false,
    }
}

fn sha_key(sha: &[u8]) -> Option<[u8; 40]> {
    let mut key: [u8; 40] = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// C's `snprintf("%.<prec>g")`: Lua's and Redis's number formatting.
pub(crate) fn fmt_g(v: f64, prec: u8) -> String {
    let mut buf = [0u8; 64];
    let fmt: &std::ffi::CStr = if prec == 17 { c"%.17g" } else { c"%.14g" };
    // SAFETY: the buffer's size is passed; the format takes one double.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), v) };
    String::from_utf8_lossy(&buf[..(n.max(0) as usize).min(buf.len() - 1)]).into_owned()
}

/// Redis's rand48 state before any `math.randomseed`: its generator is
/// never reseeded between scripts (Redis 7 replicates effects, not scripts).
const RAND48_START: u64 = 0x1234_ABCD_330E;

/// rand48 as Redis's `redisLrand48` (the POSIX generator), one step.
fn lrand48(state: &AtomicU64) -> f64 {
    let x = state.load(Ordering::Relaxed);
    let next = (x.wrapping_mul(0x5DEECE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    state.store(next, Ordering::Relaxed);
    (next >> 17) as f64
}

/// `redisSrand48(seed)`.
fn srand48(state: &AtomicU64, seed: i32) {
    state.store((((seed as u32) as u64) << 16) | 0x330E, Ordering::Relaxed);
}

/// The Lua state, its sandbox and the script cache.
struct Vm {
    lua: Lua,
    /// sandbox.lua's `run(f)`.
    runner: Function,
    /// The script running now, for redis.call and redis.pcall: its
    /// `RefCell<Exec>`, null between scripts.
    current: Arc<AtomicPtr<()>>,
    /// The scripts' environment (read-only globals).
    env: Table,
    scripts: HashMap<[u8; 40], Cached, ahash::RandomState>,
    /// SHAs cached by EVAL, oldest first.
    evals: VecDeque<[u8; 40]>,
    /// Scripts run since the last incremental collection.
    runs: u32,
}

struct Cached {
    f: Function,
    /// Its text: a replicated group's node sends EVALSHA to the log as
    /// EVAL (`crate::group::forward`), so no node depends on its own cache.
    body: Box<[u8]>,
    /// Loaded by SCRIPT LOAD: never evicted.
    loaded: bool,
}

/// The count hook: stop the script once it is to be killed, and from then
/// on at every instruction, so that a pcall inside it cannot go on.
///
/// The first time it fires in a script (a long one), it also makes sure
/// another worker thread takes over the runtime's I/O: this thread is busy
/// until the script ends, and the clients that are to get BUSY or send
/// SCRIPT KILL must still be read.
fn install_hook(lua: &Lua, run: Arc<RunState>, every: u32) -> mlua::Result<()> {
    lua.set_hook(HookTriggers::new().every_nth_instruction(every), move |lua, debug| {
        if !run.long.swap(true, Ordering::Relaxed) {
            wake_another_worker();
        }
        if run.kill.load(Ordering::Relaxed) || run.abort.load(Ordering::Relaxed) {
            if every != 1 {
                // Where it was stopped, for the reply.
                let source = debug.source().source.map(|s| s.into_owned());
                if let (Some(source), Some(line)) = (source, debug.current_line()) {
                    *run.killed_at.lock() = Some(format!("{source}:{line}"));
                }
                install_hook(lua, run.clone(), 1)?;
            }
            return Err(mlua::Error::external(ScriptError::Redis(KILLED.into())));
        }
        Ok(VmState::Continue)
    })
}

impl Vm {
    fn new(run: &Arc<RunState>) -> mlua::Result<Vm> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: the debug library is only kept by the sandbox's error
        // handler (to find the failing line); it removes `debug` from the
        // globals before any script is compiled.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
        let natives = lua.create_table()?;
        natives.set("sha1hex", lua.create_function(sha1hex)?)?;
        natives.set("log", lua.create_function(log)?)?;
        natives.set("error_info", lua.create_function(error_info)?)?;
        let r = run.clone();
        natives.set(
            "setresp",
            lua.create_function(move |_, args: MultiValue| {
                if args.len() != 1 {
                    return Err(redis_error("redis.setresp() requires one argument."));
                }
                match c_int(&args[0]) {
                    n @ (2 | 3) => r.resp.store(n as u8, Ordering::Relaxed),
                    _ => return Err(redis_error("RESP version must be 2 or 3.")),
                }
                Ok(())
            })?,
        )?;
        let r = run.clone();
        natives.set(
            "random",
            lua.create_function(move |lua, args: MultiValue| random(lua, &r.rand, &args))?,
        )?;
        let r = run.clone();
        natives.set(
            "randomseed",
            lua.create_function(move |lua, args: MultiValue| {
                srand48(&r.rand, check_int(lua, &args, 0, "randomseed")? as i32);
                Ok(())
            })?,
        )?;
        libs::register(&lua, &natives)?;
        let (runner, env, redis): (Function, Table, Table) =
            lua.load(include_str!("sandbox.lua")).set_name("=redis").call(natives)?;
        let current: Arc<AtomicPtr<()>> = Arc::default();
        for (name, raise) in [("call", true), ("pcall", false)] {
            let current = current.clone();
            let f = lua.create_function(move |lua, args: MultiValue| {
                let p = current.load(Ordering::SeqCst);
                if p.is_null() {
                    return Err(redis_error(
                        "redis.call/pcall can only be called inside a script invocation",
                    ));
                }
                // SAFETY: `current` points at the RefCell<Exec> of the
                // script this thread is running: set just before the runner
                // is called and cleared just after it returns, all under the
                // interpreter's mutex, and Lua calls back only from within
                // that call. The lifetimes it is read with are not used past it.
                let exec = unsafe { &*p.cast::<RefCell<Exec<'static, 'static, 'static, 'static>>>() };
                let mut exec = exec.try_borrow_mut().map_err(|_| mlua::Error::RecursiveMutCallback)?;
                // The reply's values are the dataset's, not the script's
                // own allocations: made without the limit (see `eval`).
                lua.set_memory_limit(0)?;
                let result = exec.call(lua, args, raise);
                lua.set_memory_limit(LUA_MEMORY_LIMIT)?;
                result
            })?;
            redis.raw_set(name, f)?;
        }
        install_hook(&lua, run.clone(), HOOK_EVERY)?;
        Ok(Vm {
            lua,
            runner,
            env,
            current,
            scripts: HashMap::default(),
            evals: VecDeque::new(),
            runs: 0,
        })
    }

    /// The compiled script with this SHA, compiling `body` if needed.
    fn compile(&mut self, body: &[u8], sha: &str, by_load: bool) -> Result<Function, CmdError> {
        let key = sha_key(sha.as_bytes()).ok_or(NOSCRIPT)?;
        if let Some(c) = self.scripts.get_mut(&key) {
            c.loaded |= by_load;
            return Ok(c.f.clone());
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let text = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                CmdError::msg(format!("ERR Error compiling script (new function): {text}"))
            })?;
        self.scripts.insert(
            key,
            Cached {
                f: f.clone(),
                body: body.into(),
                loaded: by_load,
            },
        );
        if !by_load {
            self.evals.push_back(key);
            while self.evals.len() > EVAL_CACHE_MAX {
                if let Some(old) = self.evals.pop_front()
                    && self.scripts.get(&old).is_some_and(|c| !c.loaded)
                {
                    self.scripts.remove(&old);
                }
            }
        }
        Ok(f)
    }

    /// The runner's arguments: the script, its keys and arguments as one
    /// string, how many are keys, and each one's length.
    fn run_args(&self, f: Function, numkeys: usize, items: &[&[u8]]) -> mlua::Result<MultiValue> {
        let packed: Vec<u8> = items.concat();
        let mut values = Vec::with_capacity(3 + items.len());
        values.push(Value::Function(f));
        values.push(Value::String(self.lua.create_string(&packed)?));
        values.push(Value::Integer(numkeys as i64));
        values.extend(items.iter().map(|a| Value::Integer(a.len() as i64)));
        Ok(MultiValue::from_vec(values))
    }
}

/// EVAL/EVALSHA (`read_only`: the _RO forms) of an uncatalogued script.
pub fn eval(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    source: Source<'_>,
    args: &[&[u8]],
    read_only: bool,
) -> CmdResult {
    let shared = ctx.shared;
    let engine = &shared.lua;
    let numkeys = super::key_positions(&KeySpec::NumKeys { at: 2, first: 3 }, args)?.len();
    // Undeclared keys may be touched: hold the whole database, before the
    // interpreter (the one lock order for scripts).
    keys.lock_all_in_place();
    let mut guard = engine.vm.lock();
    let vm = engine.vm_in(&mut guard)?;
    let (sha, f) = match source {
        Source::Text { body, sha } => (sha.to_string(), vm.compile(body, sha, false)?),
        Source::Sha(sha) => {
            let key = sha_key(sha).ok_or(NOSCRIPT)?;
            let f = vm.scripts.get(&key).ok_or(NOSCRIPT)?.f.clone();
            (String::from_utf8_lossy(&key).into_owned(), f)
        }
    };
    let lua_error = |e: mlua::Error| CmdError::msg(format!("ERR Error running script {sha}, {e}"));
    let run_args = vm.run_args(f, numkeys, &args[3..]).map_err(lua_error)?;

    let run = &engine.run;
    run.kill.store(false, Ordering::SeqCst);
    run.wrote.store(false, Ordering::SeqCst);
    run.resp.store(2, Ordering::Relaxed);
    let exec = RefCell::new(Exec {
        ctx,
        keys,
        effects: Vec::new(),
        read_only,
        past_maxmemory: crate::memory::over(Settings::get(&shared.settings.maxmemory)),
        run,
        out: ReplyBuf::new(256),
    });
    run.started.store(monotonic_us().max(1), Ordering::SeqCst);
    run.long.store(false, Ordering::Relaxed);
    vm.current.store(
        (&exec as *const RefCell<Exec<'_, '_, '_, '_>>).cast_mut().cast(),
        Ordering::SeqCst,
    );
    // The heap's limit applies while the script's code runs. Outside it
    // (and in redis.call's conversions) mlua creates values without the
    // protected call a limit needs on every allocation, several times
    // cheaper; an allocation failure there is the process's, as for any
    // Rust allocation.
    let outcome = vm
        .lua
        .set_memory_limit(LUA_MEMORY_LIMIT)
        .and_then(|_| vm.runner.call::<(bool, Value)>(run_args));
    let _ = vm.lua.set_memory_limit(0);
    vm.current.store(std::ptr::null_mut(), Ordering::SeqCst);
    run.started.store(0, Ordering::SeqCst);
    let killed = run.kill.swap(false, Ordering::SeqCst);
    let aborted = run.abort.load(Ordering::SeqCst);
    if killed || aborted {
        install_hook(&vm.lua, run.clone(), HOOK_EVERY).map_err(lua_error)?;
    }
    vm.runs += 1;
    if vm.runs >= 50 {
        // A step now and then instead of a full cycle at a bad time (Redis's LUA_GC_CYCLE_PERIOD).
        vm.runs = 0;
        let _ = vm.lua.gc_step();
    }
    engine.note_usage(Some(vm));
    let resp = run.resp.load(Ordering::Relaxed) as i64;
    let Exec { ctx, effects, .. } = exec.into_inner();
    // Taken by this EVAL's own log_effects (a read-only script has none);
    // a script stopped by shutdown leaves no partial record behind.
    if shared.aof.is_some() && !read_only {
        ctx.client.script_effects = Some(if aborted { Vec::new() } else { effects });
    }
    if killed || aborted {
        // Whatever the script was doing (even its error handler) was cut.
        let mut text = KILLED.to_string();
        if let Some(at) = run.killed_at.lock().take() {
            text.push_str(&format!(" script: {sha}, on {at}."));
        }
        return Err(CmdError::Message(text));
    }
    match outcome {
        Ok((true, value)) => resp::reply(ctx.out, resp, &value, 0).map_err(lua_error),
        Ok((false, err)) => Err(failure(&err, &sha)),
        Err(e) => Err(lua_error(e)),
    }
}

/// From a worker thread that will stay busy (a long script): wake a parked
/// worker, which then polls the runtime's I/O driver in its place. Two
/// empty tasks, because tokio's scheduler notifies a parked worker only
/// when a spawn pushes an earlier task out of this worker's LIFO slot.
/// (block_in_place around every script would do it too, at the cost of a
/// thread hand-off per script.) With `--threads 1` there is no other
/// worker: clients wait for the script's end.
fn wake_another_worker() {
    if let Ok(h) = tokio::runtime::Handle::try_current()
        && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        h.spawn(async {});
        h.spawn(async {});
    }
}

/// The reply to a failed script, from the error table the sandbox's
/// handler built: `<err> script: <sha>, on <source>:<line>.`
fn failure(err: &Value, sha: &str) -> CmdError {
    let Value::Table(t) = err else {
        let msg = match err {
            Value::String(s) => s.to_string_lossy(),
            _ => "execution failure".into(),
        };
        let msg: String = msg.chars().take(100).collect();
        return CmdError::msg(format!("ERR Error running script {sha}, {msg} "));
    };
    let field = |name: &str| match t.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        Ok(Value::Integer(i)) => Some(i.to_string()),
        Ok(Value::Number(n)) => Some(fmt_g(n, 14)),
        _ => None,
    };
    let mut text = field("err").unwrap_or_default();
    if let (Some(source), Some(line)) = (field("source"), field("line")) {
        text.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    CmdError::Message(text)
}

/// An error a native raises (a userdata to Lua, which the sandbox's
/// handler and pcall read with `error_info`).
#[derive(Debug)]
enum ScriptError {
    /// A Redis error, code included (redis.call's, Redis's luaPushError).
    Redis(String),
    /// A Lua error (luaL_error's): "<where>: msg", ERR added in the reply.
    Lua(String),
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::Redis(s) | ScriptError::Lua(s) => f.write_str(s),
        }
    }
}

/// Redis's luaPushError + luaError: "ERR msg".
fn redis_error(msg: &str) -> mlua::Error {
    mlua::Error::external(ScriptError::Redis(format!("ERR {msg}")))
}

/// luaL_error: the message at the calling Lua line.
pub(crate) fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    let place = lua
        .inspect_stack(1, |d| {
            let src = d.source().short_src.map(|s| s.into_owned());
            (src, d.current_line())
        })
        .and_then(|(src, line)| Some(format!("{}:{}: ", src?, line?)))
        .unwrap_or_default();
    mlua::Error::external(ScriptError::Lua(format!("{place}{msg}")))
}

/// `error_info(e)` for the sandbox: a raised userdata's message, and
/// whether it is a Lua error (to which the reply adds ERR).
fn error_info(_: &Lua, v: Value) -> mlua::Result<(String, bool)> {
    let Value::Error(e) = v else {
        return Ok(("execution failure".into(), true));
    };
    Ok(match e.downcast_ref::<ScriptError>() {
        Some(ScriptError::Redis(s)) => (s.clone(), false),
        Some(ScriptError::Lua(s)) => (s.clone(), true),
        None => {
            let text = e.to_string();
            let text = text.split("\nstack traceback:").next().unwrap_or("").to_string();
            (text, true)
        }
    })
}

/// C's `(int)lua_tonumber(v)`.
fn c_int(v: &Value) -> i64 {
    libs::to_number(v).map_or(0, |n| n as i32 as i64)
}

/// luaL_checkint of argument `i` of `name`.
fn check_int(lua: &Lua, args: &MultiValue, i: usize, name: &str) -> mlua::Result<i64> {
    let v = args.get(i);
    match v.and_then(libs::to_number) {
        Some(n) => Ok(n as i32 as i64),
        None => Err(lua_error(
            lua,
            &format!(
                "bad argument #{} to '{name}' (number expected, got {})",
                i + 1,
                libs::type_name(v)
            ),
        )),
    }
}

/// redis.sha1hex.
fn sha1hex(_: &Lua, args: MultiValue) -> mlua::Result<String> {
    if args.len() != 1 {
        return Err(redis_error("wrong number of arguments"));
    }
    Ok(match &args[0] {
        Value::String(s) => crate::scripts::sha1_hex(&s.as_bytes()),
        v @ (Value::Integer(_) | Value::Number(_)) => {
            crate::scripts::sha1_hex(fmt_g(libs::to_number(v).unwrap_or(0.0), 14).as_bytes())
        }
        _ => crate::scripts::sha1_hex(b""),
    })
}

/// redis.log(level, ...), to tracing.
fn log(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return Err(redis_error("redis.log() requires two arguments or more."));
    }
    if libs::to_number(&args[0]).is_none() {
        return Err(redis_error("First argument must be a number (log level)."));
    }
    let level = c_int(&args[0]);
    if !(0..=3).contains(&level) {
        return Err(redis_error("Invalid debug level."));
    }
    let mut parts = Vec::with_capacity(args.len() - 1);
    for v in args.iter().skip(1) {
        match v {
            Value::String(s) => parts.push(s.to_string_lossy()),
            Value::Integer(_) | Value::Number(_) => parts.push(fmt_g(libs::to_number(v).unwrap_or(0.0), 14)),
            _ => {}
        }
    }
    let msg = parts.join(" ");
    match level {
        0 => tracing::debug!(target: "redlockd::lua", "{msg}"),
        1 | 2 => tracing::info!(target: "redlockd::lua", "{msg}"),
        _ => tracing::warn!(target: "redlockd::lua", "{msg}"),
    }
    Ok(())
}

/// math.random as Redis's (Lua's own, on rand48).
fn random(lua: &Lua, state: &AtomicU64, args: &MultiValue) -> mlua::Result<f64> {
    const MAX: f64 = 2147483647.0;
    let r = (lrand48(state) % MAX) / MAX;
    match args.len() {
        0 => Ok(r),
        1 => {
            let u = check_int(lua, args, 0, "random")?;
            if u < 1 {
                return Err(lua_error(lua, "bad argument #1 to 'random' (interval is empty)"));
            }
            Ok((r * u as f64).floor() + 1.0)
        }
        2 => {
            let l = check_int(lua, args, 0, "random")?;
            let u = check_int(lua, args, 1, "random")?;
            if l > u {
                return Err(lua_error(lua, "bad argument #2 to 'random' (interval is empty)"));
            }
            Ok((r * (u - l + 1) as f64).floor() + l as f64)
        }
        _ => Err(lua_error(lua, "wrong number of arguments")),
    }
}

impl std::error::Error for ScriptError {}

/// One script's run: what `redis.call` needs.
struct Exec<'c, 'a, 'k, 'l> {
    ctx: &'c mut Ctx<'a>,
    keys: &'k mut Locked<'l>,
    /// The append-only records of its writes so far.
    effects: Vec<u8>,
    read_only: bool,
    /// Memory was past maxmemory when it started.
    past_maxmemory: bool,
    run: &'c RunState,
    /// The reply of the command it runs now (reused).
    out: ReplyBuf,
}

impl Exec<'_, '_, '_, '_> {
    /// redis.call (`raise`) or redis.pcall: the command's reply as a Lua
    /// value; an error is raised by redis.call, returned by redis.pcall.
    fn call(&mut self, lua: &Lua, args: MultiValue, raise: bool) -> mlua::Result<Value> {
        let refuse = |text: &[u8]| -> mlua::Result<Value> {
            if raise {
                let text = String::from_utf8_lossy(&resp::error_text(text)).into_owned();
                return Err(mlua::Error::external(ScriptError::Redis(text)));
            }
            resp::error_table(lua, text)
        };
        let mut argv: Vec<Vec<u8>> = Vec::with_capacity(args.len());
        for v in args {
            argv.push(match v {
                Value::String(s) => s.as_bytes().to_vec(),
                // "%.17g", not Lua's lossy "%.14g".
                Value::Integer(i) => fmt_g(i as f64, 17).into_bytes(),
                Value::Number(n) => fmt_g(n, 17).into_bytes(),
                _ => return refuse(b"Lua redis lib command arguments must be strings or integers"),
            });
        }
        if argv.is_empty() {
            return refuse(b"Please specify at least one argument for this redis lib call");
        }
        let argv: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
        let resp3 = self.run.resp.load(Ordering::Relaxed) == 3;
        match self.command(&argv, resp3) {
            Ok(()) => match resp::top_error(&self.out.buf) {
                Some(text) if raise => Err(mlua::Error::external(ScriptError::Redis(
                    String::from_utf8_lossy(&text).into_owned(),
                ))),
                _ => resp::to_lua(lua, &self.out.buf),
            },
            Err(text) => refuse(text.as_bytes()),
        }
    }

    /// Run one command from the script (Redis's scriptCall): its checks,
    /// then its handler on the locked database, replying into `self.out`;
    /// or the refusal ("msg" or "-CODE msg").
    fn command(&mut self, argv: &[&[u8]], resp3: bool) -> Result<(), String> {
        let Some((index, spec)) = table::lookup(argv[0]) else {
            return Err("Unknown Redis command called from script".into());
        };
        if !table::arity_ok(spec, argv.len()) {
            return Err("Wrong number of args calling Redis command from script".into());
        }
        // FLUSHALL would lock the other databases while this one and the
        // interpreter are held.
        if spec.flags & flags::NOSCRIPT != 0 || spec.persist == Persist::FlushAll {
            return Err("This Redis command is not allowed from script".into());
        }
        let shared = self.ctx.shared;
        let writes = spec.flags & flags::WRITE != 0;
        if writes {
            if self.read_only {
                return Err("Write commands are not allowed from read-only scripts.".into());
            }
            if let Some(errno) = shared.aof.as_ref().and_then(|aof| aof.write_error()) {
                return Err(format!("-{}", misconf_aof(errno)));
            }
        }
        if spec.flags & flags::DENYOOM != 0 && self.past_maxmemory && !self.run.wrote.load(Ordering::Relaxed) {
            return Err(format!("-{OOM}"));
        }
        if writes {
            self.run.wrote.store(true, Ordering::SeqCst);
        }
        let slot = if spec.flags & flags::CONTAINER != 0 {
            table::stat_index(index, argv)
        } else {
            index
        };
        let start = shared.keyspace.clock.now_us();
        let out = &mut self.out;
        out.buf.clear();
        out.resp3 = resp3;
        let db = self.ctx.client.db;
        let positions = super::key_positions(&spec.keys, argv);
        let result = {
            let mut inner = Ctx {
                shared,
                client: &mut *self.ctx.client,
                out: &mut *out,
            };
            match &positions {
                Ok(_) if spec.flags & flags::GRANTS_LOCK != 0 => inner
                    .check_grants_allowed()
                    .and_then(|()| (spec.handler)(&mut inner, self.keys, argv)),
                Ok(_) => (spec.handler)(&mut inner, self.keys, argv),
                Err(e) => Err(e.clone()),
            }
        };
        let failed = result.is_err();
        if let Err(e) = result {
            let text = e.text(spec.name);
            out.error(&text);
            crate::stats::error_reply(&text);
        }
        if writes
            && shared.watches.any()
            && let Ok(range) = positions
        {
            for i in range {
                shared.watches.touch(db, argv[i]);
            }
        }
        if spec.persist != Persist::Nothing && shared.aof.is_some() {
            super::record_effects(&mut self.effects, shared, db, spec, self.keys, argv);
        }
        crate::stats::command_done(slot, failed, shared.keyspace.clock.now_us().saturating_sub(start));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_matches_posix() {
        // lrand48() after srand48(0) on glibc: 0, 2116118, 89401895.
        let s = AtomicU64::new(0);
        srand48(&s, 0);
        let got: Vec<f64> = (0..3).map(|_| lrand48(&s)).collect();
        let mut want = Vec::new();
        // SAFETY: srand48/lrand48 touch only libc's own generator state.
        unsafe {
            libc::srand48(0);
            for _ in 0..3 {
                want.push(libc::lrand48() as f64);
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn numbers_format_as_c() {
        assert_eq!(fmt_g(1.0, 17), "1");
        assert_eq!(fmt_g(0.1, 17), "0.10000000000000001");
        assert_eq!(fmt_g(1e20, 14), "1e+20");
    }
}
