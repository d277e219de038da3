//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, SHUTDOWN,
//! COMMAND, and the replication/pub-sub stubs clients send (WAIT, PUBLISH)
//! answered truthfully for a server with no replicas and no subscribers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use super::args::{int, is};
use super::error::unknown_subcommand;
use super::table::{COMMANDS, CommandSpec, KeySpec, flags, stat_name};
use super::{CmdError, CmdResult, Ctx};
use crate::config::{Settings, parse_memory};
use crate::store::Locked;
use crate::{VERSION, VERSION_COMPAT, glob, memory, stats};

pub fn dbsize(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    let n = keys.len();
    ctx.out.int(n as i64);
    Ok(())
}

fn flush_mode(args: &[&[u8]]) -> CmdResult {
    match args.len() {
        1 => Ok(()),
        2 if is(args[1], "async") || is(args[1], "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

pub fn flushdb(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    flush_mode(args)?;
    keys.clear();
    ctx.shared.watches.touch_db(Some(ctx.client.db));
    ctx.out.ok();
    Ok(())
}

/// FLUSHALL locks each database in turn; inside EXEC the current one is
/// already locked by the transaction and is cleared through that view.
pub fn flushall(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    flush_mode(args)?;
    let keyspace = &ctx.shared.keyspace;
    for db in &keyspace.dbs {
        if std::ptr::eq(db, keys.db()) && keys.holds_all() {
            keys.clear();
        } else {
            db.lock_all(keys.now).clear();
        }
    }
    ctx.shared.watches.touch_db(None);
    ctx.out.ok();
    Ok(())
}

pub fn time(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(now.as_secs().to_string().as_bytes());
    ctx.out.bulk(now.subsec_micros().to_string().as_bytes());
    Ok(())
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: there is nothing to save;
/// the server stops accepting, lets replies in flight go out and exits 0.
pub fn shutdown(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    for a in &args[1..] {
        if is(a, "abort") {
            return Err(CmdError::Static("ERR No shutdown in progress."));
        }
        if !["nosave", "save", "now", "force"].iter().any(|k| is(a, k)) {
            return Err(CmdError::Syntax);
        }
    }
    tracing::warn!("User requested shutdown...");
    ctx.shared.lua.abort();
    let _ = ctx.shared.shutdown.send(());
    ctx.client.close = true;
    Ok(())
}

/// `BGREWRITEAOF`: compact the append-only file in the background.
pub fn bgrewriteaof(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    let Some(aof) = &ctx.shared.aof else {
        return Err(CmdError::Static("ERR Background AOF rewriting needs appendonly yes"));
    };
    if !aof.request_rewrite() {
        return Err(CmdError::Static(
            "ERR Background append only file rewriting already in progress",
        ));
    }
    ctx.out.simple("Background append only file rewriting started");
    Ok(())
}

/// `WAIT numreplicas timeout`: there are no replicas, so 0 at once.
pub fn wait(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    int(args[1])?;
    let timeout = int(args[2])?;
    if timeout < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    ctx.out.int(0);
    Ok(())
}

// ---------------------------------------------------------------- CONFIG

/// Every parameter CONFIG GET knows, with its current value.
fn config_params(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    let c = &ctx.shared.config;
    let s = &ctx.shared.settings;
    let port = ctx.shared.local_addr.lock().map(|a| a.port()).unwrap_or(c.port);
    let threshold = ctx.shared.lua.threshold_ms.load(Ordering::Relaxed).to_string();
    vec![
        ("bind", c.bind.clone()),
        ("port", port.to_string()),
        ("databases", c.databases.to_string()),
        ("maxclients", Settings::get(&s.maxclients).to_string()),
        ("timeout", Settings::get(&s.timeout).to_string()),
        ("proto-max-bulk-len", Settings::get(&s.proto_max_bulk_len).to_string()),
        (
            "client-query-buffer-limit",
            Settings::get(&s.client_query_buffer_limit).to_string(),
        ),
        ("save", String::new()),
        ("appendonly", if c.appendonly { "yes" } else { "no" }.into()),
        ("appendfsync", c.appendfsync.clone()),
        ("appendfilename", c.appendfilename.clone()),
        ("dir", c.dir.display().to_string()),
        ("maxmemory", Settings::get(&s.maxmemory).to_string()),
        ("maxmemory-policy", "noeviction".into()),
        ("loglevel", c.log_level.clone()),
        (
            "protected-mode",
            if s.protected_mode.load(Ordering::Relaxed) {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        ("tcp-keepalive", Settings::get(&s.tcp_keepalive).to_string()),
        (
            "requirepass",
            s.requirepass
                .read()
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        ),
        ("lua-time-limit", threshold.clone()),
        ("latency-tracking", "no".into()),
        (
            "latency-monitor-threshold",
            ctx.shared.latency.threshold_ms.load(Ordering::Relaxed).to_string(),
        ),
        (
            "slowlog-log-slower-than",
            ctx.shared.slowlog.slower_than.load(Ordering::Relaxed).to_string(),
        ),
        (
            "slowlog-max-len",
            ctx.shared.slowlog.max_len.load(Ordering::Relaxed).to_string(),
        ),
        ("busy-reply-threshold", threshold),
        ("cluster-enabled", "no".into()),
        (
            "notify-keyspace-events",
            crate::pubsub::events::format(ctx.shared.pubsub.keyspace_events()),
        ),
        (
            "lock-delay",
            ctx.shared.coord.lock_delay_ms.load(Ordering::Relaxed).to_string(),
        ),
        (
            "max-waiters",
            ctx.shared.coord.max_waiters.load(Ordering::Relaxed).to_string(),
        ),
        (
            "max-waiters-per-key",
            ctx.shared.coord.max_waiters_per_key.load(Ordering::Relaxed).to_string(),
        ),
    ]
}

/// Parameters CONFIG SET knows (it may still refuse some values of them).
const SETTABLE: &[&str] = &[
    "maxclients",
    "maxmemory",
    "maxmemory-policy",
    "timeout",
    "tcp-keepalive",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "requirepass",
    "protected-mode",
    "save",
    "appendonly",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "notify-keyspace-events",
    "busy-reply-threshold",
    "lua-time-limit",
    "lock-delay",
    "max-waiters",
    "max-waiters-per-key",
    "latency-monitor-threshold",
];

/// A CONFIG SET assignment, validated but not yet applied: CONFIG SET
/// changes all of its parameters or none, as Redis 7's does.
enum Change<'a> {
    Number(&'a AtomicU64, u64),
    /// Raising it must fit the open-files limit first.
    MaxClients(u64),
    /// Bytes, 0 = no limit; lowering it below what is in use is allowed.
    MaxMemory(u64),
    Flag(&'a AtomicBool, bool),
    Signed(&'a AtomicI64, i64),
    Password(Option<Box<[u8]>>),
    /// `notify-keyspace-events`, parsed.
    KeyspaceEvents(u32),
    /// Accepted for compatibility: describes what redlockd always does.
    Nothing,
}

/// Why a value was refused: `Unknown` is reported as an unknown option.
enum Refusal {
    Unknown,
    Invalid(String),
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Self {
        Refusal::Invalid(why.into())
    }
}

/// An integer parameter: Redis's strict integer syntax, then its bounds.
fn bounded(value: &[u8], min: i64, max: i64) -> Result<u64, Refusal> {
    let n = crate::protocol::decode::parse_i64(value).ok_or("argument couldn't be parsed into an integer")?;
    if n < min || n > max {
        return Err(Refusal::Invalid(format!(
            "argument must be between {min} and {max} inclusive"
        )));
    }
    Ok(n as u64)
}

/// A 64-bit integer parameter of at least `min`.
fn signed(value: &[u8], min: i64) -> Result<i64, Refusal> {
    let n = crate::protocol::decode::parse_i64(value).ok_or("argument couldn't be parsed into an integer")?;
    if n < min {
        return Err(Refusal::Invalid(format!(
            "argument must be between {min} and {} inclusive",
            i64::MAX
        )));
    }
    Ok(n)
}

/// A memory parameter of at least 1 MiB.
fn memory(value: &[u8]) -> Result<u64, Refusal> {
    let text = std::str::from_utf8(value).map_err(|_| "argument must be a memory value")?;
    let v = parse_memory(text).map_err(|_| "argument must be a memory value")?;
    if v < 1024 * 1024 {
        return Err("argument must be between 1048576 and 9223372036854775807 inclusive".into());
    }
    Ok(v)
}

/// Validate one assignment of a parameter named in [`SETTABLE`].
fn config_parse<'a>(shared: &'a crate::instance::Shared, name: &str, value: &[u8]) -> Result<Change<'a>, Refusal> {
    let s = &shared.settings;
    const INT_MAX: i64 = i32::MAX as i64;
    Ok(match name {
        "maxclients" => Change::MaxClients(bounded(value, 1, u32::MAX as i64)?),
        "maxmemory" => match std::str::from_utf8(value).map(parse_memory) {
            Ok(Ok(v)) => Change::MaxMemory(v),
            _ => return Err("argument must be a memory value".into()),
        },
        // A lock server never evicts a lock: noeviction is the only policy.
        "maxmemory-policy" if is(value, "noeviction") => Change::Nothing,
        "maxmemory-policy" => {
            return Err(
                "redlockd never evicts keys (an evicted lock is a lock granted twice): the only policy is noeviction"
                    .into(),
            );
        }
        "timeout" => Change::Number(&s.timeout, bounded(value, 0, INT_MAX)?),
        "tcp-keepalive" => Change::Number(&s.tcp_keepalive, bounded(value, 0, INT_MAX)?),
        "proto-max-bulk-len" => Change::Number(&s.proto_max_bulk_len, memory(value)?),
        "client-query-buffer-limit" => Change::Number(&s.client_query_buffer_limit, memory(value)?),
        "requirepass" => Change::Password((!value.is_empty()).then(|| value.into())),
        "protected-mode" => match std::str::from_utf8(value).map(crate::config::parse_yes_no) {
            Ok(Ok(on)) => Change::Flag(&s.protected_mode, on),
            _ => return Err("argument must be 'yes' or 'no'".into()),
        },
        "slowlog-log-slower-than" => Change::Signed(&shared.slowlog.slower_than, signed(value, -1)?),
        "slowlog-max-len" => Change::Number(&shared.slowlog.max_len, signed(value, 0)? as u64),
        "notify-keyspace-events" => {
            Change::KeyspaceEvents(crate::pubsub::events::parse(value).ok_or(crate::pubsub::events::INVALID)?)
        }
        "busy-reply-threshold" | "lua-time-limit" => Change::Number(&shared.lua.threshold_ms, signed(value, 0)? as u64),
        // Every node of a group applies expiries with its own lock-delay:
        // it is set alike at startup, never on one node.
        "lock-delay" if shared.group.get().is_some() => {
            return Err(
                "lock-delay cannot be changed in a replicated group: start every node with the same --lock-delay"
                    .into(),
            );
        }
        "lock-delay" => Change::Number(&shared.coord.lock_delay_ms, signed(value, 0)? as u64),
        "max-waiters" => Change::Number(&shared.coord.max_waiters, signed(value, 0)? as u64),
        "max-waiters-per-key" => Change::Number(&shared.coord.max_waiters_per_key, signed(value, 0)? as u64),
        "latency-monitor-threshold" => Change::Number(&shared.latency.threshold_ms, signed(value, 0)? as u64),
        "save" if value.is_empty() => Change::Nothing,
        "appendonly" if value == b"no" => Change::Nothing,
        _ => return Err(Refusal::Unknown),
    })
}

/// `CONFIG SET name value [name value ...]`: every name must be known and
/// named once, every value valid, and a higher maxclients must fit the
/// open-files limit; only then is anything changed.
fn config_set(ctx: &mut Ctx<'_>, pairs: &[&[u8]]) -> CmdResult {
    let unknown = |raw: &[u8]| {
        CmdError::msg(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            String::from_utf8_lossy(raw)
        ))
    };
    let failed = |name: &str, why: &str| {
        CmdError::msg(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut names: Vec<&'static str> = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let Some(&name) = SETTABLE.iter().find(|n| is(pair[0], n)) else {
            return Err(unknown(pair[0]));
        };
        if names.contains(&name) {
            // Redis names the duplicate as the client spelled it.
            return Err(failed(&String::from_utf8_lossy(pair[0]), "duplicate parameter"));
        }
        names.push(name);
    }
    let settings = &ctx.shared.settings;
    let mut changes = Vec::with_capacity(names.len());
    for (pair, &name) in pairs.chunks_exact(2).zip(&names) {
        match config_parse(ctx.shared, name, pair[1]) {
            Ok(change) => changes.push(change),
            Err(Refusal::Unknown) => return Err(unknown(pair[0])),
            Err(Refusal::Invalid(why)) => return Err(failed(name, &why)),
        }
    }
    for change in &changes {
        if let Change::MaxClients(wanted) = *change
            && wanted > Settings::get(&settings.maxclients)
        {
            let fits = crate::fdlimit::adjust_open_files_limit(wanted).unwrap_or(0);
            if fits != wanted {
                return Err(failed(
                    "maxclients",
                    &format!(
                        "The operating system is not able to handle the specified number of clients, try with {fits}"
                    ),
                ));
            }
        }
    }
    for change in changes {
        match change {
            Change::Number(setting, v) => setting.store(v, Ordering::Relaxed),
            Change::MaxClients(v) => settings.maxclients.store(v, Ordering::Relaxed),
            Change::MaxMemory(v) => {
                settings.maxmemory.store(v, Ordering::Relaxed);
                if memory::over(v) {
                    tracing::warn!(
                        "the new maxmemory value set via CONFIG SET ({v}) is smaller than the current memory usage ({}): commands that may grow memory are refused until enough keys are deleted or expire",
                        memory::used()
                    );
                }
            }
            Change::Flag(setting, on) => setting.store(on, Ordering::Relaxed),
            Change::Signed(setting, v) => setting.store(v, Ordering::Relaxed),
            Change::Password(p) => *settings.requirepass.write() = p,
            Change::KeyspaceEvents(flags) => ctx.shared.pubsub.set_keyspace_events(flags),
            Change::Nothing => {}
        }
    }
    ctx.out.ok();
    Ok(())
}

/// `CONFIG REWRITE`: the current settings (the startup ones, with CONFIG
/// SET's changes) written into the file the server was started with.
fn config_rewrite(ctx: &mut Ctx<'_>) -> CmdResult {
    let Some(path) = &ctx.shared.config.config_file else {
        return Err(CmdError::Static("ERR The server is running without a config file"));
    };
    let s = &ctx.shared.settings;
    let mut current = ctx.shared.config.clone();
    current.maxclients = Settings::get(&s.maxclients);
    current.maxmemory = Settings::get(&s.maxmemory);
    current.tcp_keepalive = Settings::get(&s.tcp_keepalive);
    current.timeout = Settings::get(&s.timeout);
    current.proto_max_bulk_len = Settings::get(&s.proto_max_bulk_len);
    current.client_query_buffer_limit = Settings::get(&s.client_query_buffer_limit);
    current.protected_mode = s.protected_mode.load(Ordering::Relaxed);
    current.slowlog_log_slower_than = ctx.shared.slowlog.slower_than.load(Ordering::Relaxed);
    current.slowlog_max_len = ctx.shared.slowlog.max_len.load(Ordering::Relaxed);
    current.notify_keyspace_events = ctx.shared.pubsub.keyspace_events();
    current.lock_delay = ctx.shared.coord.lock_delay_ms.load(Ordering::Relaxed);
    current.max_waiters = ctx.shared.coord.max_waiters.load(Ordering::Relaxed);
    current.max_waiters_per_key = ctx.shared.coord.max_waiters_per_key.load(Ordering::Relaxed);
    current.latency_monitor_threshold = ctx.shared.latency.threshold_ms.load(Ordering::Relaxed);
    current.busy_reply_threshold = ctx.shared.lua.threshold_ms.load(Ordering::Relaxed);
    // The file is read back as text: a password that is not UTF-8 could
    // not be loaded from it.
    current.requirepass = match s.requirepass.read().as_deref().map(|p| String::from_utf8(p.to_vec())) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            return Err(CmdError::Static(
                "ERR Rewriting config file: requirepass is not valid UTF-8",
            ));
        }
    };
    if let Err(e) = crate::conffile::rewrite(path, &current) {
        let why = crate::conffile::strerror(&e);
        tracing::warn!("CONFIG REWRITE failed: {why}");
        return Err(CmdError::msg(format!("ERR Rewriting config file: {why}")));
    }
    tracing::warn!("CONFIG REWRITE executed with success.");
    ctx.out.ok();
    Ok(())
}

pub fn config(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    if is(sub, "get") && args.len() >= 3 {
        let params = config_params(ctx);
        let mut hits: Vec<(&[u8], &str)> = Vec::new();
        for pattern in &args[2..] {
            // As Redis: a name without `[`, `*` or `?` is looked up rather
            // than matched (`\` escapes nothing there), and echoed as spelled.
            let literal = !pattern.iter().any(|b| b"[*?".contains(b));
            for (name, value) in &params {
                let hit = if literal {
                    name.as_bytes().eq_ignore_ascii_case(pattern)
                } else {
                    glob::matches(pattern, name.as_bytes(), true)
                };
                if hit && !hits.iter().any(|h| h.0.eq_ignore_ascii_case(name.as_bytes())) {
                    hits.push((if literal { pattern } else { name.as_bytes() }, value));
                }
            }
        }
        ctx.out.map(hits.len());
        for (name, value) in hits {
            ctx.out.bulk(name);
            ctx.out.bulk_str(value);
        }
    } else if is(sub, "set") && args.len() >= 4 && args.len().is_multiple_of(2) {
        config_set(ctx, &args[2..])?;
    } else if is(sub, "resetstat") && args.len() == 2 {
        stats::reset();
        ctx.out.ok();
    } else if is(sub, "help") && args.len() == 2 {
        let help = [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Print this help.",
        ];
        ctx.help(&help);
    } else if is(sub, "rewrite") && args.len() == 2 {
        config_rewrite(ctx)?;
    } else if ["get", "set", "resetstat", "rewrite"].iter().any(|s| is(sub, s)) {
        let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for 'config|{sub}' command"
        )));
    } else {
        return Err(unknown_subcommand(sub, "config"));
    }
    Ok(())
}

// ---------------------------------------------------------------- INFO

/// Every section, in the order Redis 7 prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];
/// What `INFO` and `INFO default` print: all but the per-command sections.
const NOT_DEFAULT: &[&str] = &["commandstats", "latencystats"];

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// (system, user) CPU seconds of `who` (RUSAGE_SELF or RUSAGE_CHILDREN).
fn cpu_seconds(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_stime), secs(usage.ru_utime))
}

/// `uname -s -r -m`, as Redis prints `os`.
fn os_name() -> String {
    // SAFETY: uname only writes the struct we pass; its fields are
    // NUL-terminated on success.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {} {}", field(&u.sysname), field(&u.release), field(&u.machine))
}

/// Physical memory of the machine, in bytes.
fn total_system_memory() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages.max(0) as u64).saturating_mul(size.max(0) as u64)
}

/// Commands per second since the previous INFO asked (at most over the
/// last minute; Redis samples every 100 ms, redlockd measures when asked).
fn ops_per_sec(commands: u64) -> u64 {
    static LAST: parking_lot::Mutex<Option<(std::time::Instant, u64)>> = parking_lot::Mutex::new(None);
    let now = std::time::Instant::now();
    let mut last = LAST.lock();
    let rate = match *last {
        Some((at, n)) if now > at && commands >= n => {
            let secs = now.duration_since(at).as_secs_f64();
            if secs < 0.001 {
                0
            } else {
                ((commands - n) as f64 / secs) as u64
            }
        }
        _ => 0,
    };
    if last.is_none_or(|(at, _)| now.duration_since(at).as_secs() >= 1) {
        *last = Some((now, commands));
    }
    rate
}

fn server_section(out: &mut String, shared: &crate::instance::Shared) {
    let uptime = shared.started.elapsed().as_secs();
    let port = shared.local_addr.lock().map(|a| a.port()).unwrap_or(shared.config.port);
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let config_file = shared
        .config
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "# Server\r\nredis_version:{VERSION_COMPAT}\r\nredlockd_version:{VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{port}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:{executable}\r\nconfig_file:{config_file}\r\nio_threads_active:0\r\n",
        os_name(),
        std::process::id(),
        shared.run_id,
        crate::store::clock::Clock::wall_us(),
        uptime / 86400,
    );
}

fn memory_section(out: &mut String, shared: &crate::instance::Shared) {
    let (used, rss, peak) = (memory::used(), rss_bytes(), memory::peak());
    let max = Settings::get(&shared.settings.maxmemory);
    let system = total_system_memory();
    let h = memory::human;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let _ = write!(
        out,
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\n",
        h(used),
        h(rss),
        h(peak),
        ratio(used, peak) * 100.0,
        h(system),
    );
    // The Lua state of uncatalogued scripts; no functions.
    let (scripts, lua) = shared.lua.usage();
    let _ = write!(
        out,
        "used_memory_lua:{lua}\r\nused_memory_vm_eval:{lua}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:0\r\nnumber_of_cached_scripts:{scripts}\r\nnumber_of_functions:0\r\nnumber_of_libraries:0\r\nused_memory_vm_functions:0\r\nused_memory_vm_total:{lua}\r\nused_memory_vm_total_human:{}\r\nused_memory_functions:0\r\nused_memory_scripts:0\r\nused_memory_scripts_human:0B\r\n",
        h(lua),
        h(lua),
    );
    let _ = write!(
        out,
        "maxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\nmem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\nmem_cluster_links:0\r\nmem_allocator:libc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
        h(max),
        ratio(rss, used),
        rss as i64 - used as i64,
    );
}

fn persistence_section(out: &mut String, shared: &crate::instance::Shared, totals: &stats::Totals) {
    // No RDB, no fork: nothing was ever saved or loaded from a snapshot.
    // Redis reports the start time as the last save when none happened.
    let started = crate::store::clock::Clock::wall_ms() / 1000 - shared.started.elapsed().as_secs() as i64;
    let writes: u64 = COMMANDS
        .iter()
        .enumerate()
        .filter(|(_, c)| c.flags & flags::WRITE != 0)
        .map(|(i, _)| totals.calls[i] - totals.failed[i].min(totals.calls[i]))
        .sum();
    let _ = write!(
        out,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{writes}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{started}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\n"
    );
    let (enabled, in_progress, rewrites, rewrite_ok, write_ok) = match &shared.aof {
        None => (0, 0, 0, true, true),
        Some(aof) => {
            let st = &aof.stats;
            (
                1,
                st.rewrite_in_progress.load(Ordering::Relaxed) as u8,
                st.rewrites.load(Ordering::Relaxed),
                st.last_rewrite_ok.load(Ordering::Relaxed),
                aof.write_error().is_none(),
            )
        }
    };
    let status = |ok: bool| if ok { "ok" } else { "err" };
    let _ = write!(
        out,
        "aof_enabled:{enabled}\r\naof_rewrite_in_progress:{in_progress}\r\naof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{rewrites}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        status(rewrite_ok),
        status(write_ok),
    );
    if let Some(aof) = &shared.aof {
        let _ = write!(
            out,
            "aof_current_size:{}\r\naof_base_size:{}\r\n",
            aof.stats.current_size.load(Ordering::Relaxed),
            aof.stats.base_size.load(Ordering::Relaxed),
        );
    }
}

fn stats_section(
    out: &mut String,
    shared: &crate::instance::Shared,
    totals: &stats::Totals,
    errors: &stats::ErrorCounts,
) {
    let expired: u64 = shared
        .keyspace
        .dbs
        .iter()
        .map(|d| d.expired_keys.load(Ordering::Relaxed))
        .sum();
    let pubsub = shared.pubsub.sizes();
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{expired}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nevicted_keys:0\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:0\r\ntracking_total_items:0\r\ntracking_total_prefixes:0\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\n",
        shared.counters.connections_received.load(Ordering::Relaxed),
        totals.commands,
        ops_per_sec(totals.commands),
        shared.counters.rejected_connections.load(Ordering::Relaxed),
        totals.hits,
        totals.misses,
        pubsub[0],
        pubsub[1],
        pubsub[2],
        errors.total,
    );
}

fn replication_section(out: &mut String, shared: &crate::instance::Shared) {
    if let Some(group) = shared.group.get() {
        out.push_str(&group.replication_info());
        return;
    }
    // A master without replicas and without a backlog.
    let _ = write!(
        out,
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:0\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
        shared.run_id
    );
}

fn keyspace_section(out: &mut String, shared: &crate::instance::Shared) {
    out.push_str("# Keyspace\r\n");
    let now = shared.keyspace.clock.now_us();
    for (i, db) in shared.keyspace.dbs.iter().enumerate() {
        let mut locked = db.lock_all(now);
        let keys = locked.len();
        if keys > 0 {
            let mut expires = 0;
            locked.scan(0, usize::MAX, |_, e| expires += e.has_deadline() as usize);
            let _ = write!(out, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
    }
}

/// The INFO text of the given sections (lowercase names), in Redis's order.
pub fn info_text(ctx: &Ctx<'_>, wanted: &[&str]) -> String {
    let shared = ctx.shared;
    let totals = stats::totals();
    let errors = stats::errors();
    let mut out = String::new();
    for &section in SECTIONS.iter().filter(|s| wanted.contains(s)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match section {
            "server" => server_section(&mut out, shared),
            "clients" => {
                let _ = write!(
                    out,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                    shared.clients.count(),
                    Settings::get(&shared.settings.maxclients),
                    shared.locks.waiters.load(Ordering::Relaxed),
                );
            }
            "memory" => memory_section(&mut out, shared),
            "persistence" => persistence_section(&mut out, shared, &totals),
            "stats" => stats_section(&mut out, shared, &totals, &errors),
            "replication" => replication_section(&mut out, shared),
            "cpu" => {
                let (sys, user) = cpu_seconds(libc::RUSAGE_SELF);
                let (csys, cuser) = cpu_seconds(libc::RUSAGE_CHILDREN);
                let _ = write!(
                    out,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:{csys:.6}\r\nused_cpu_user_children:{cuser:.6}\r\n"
                );
            }
            "modules" => out.push_str("# Modules\r\n"),
            "commandstats" => {
                out.push_str("# Commandstats\r\n");
                for i in 0..totals.calls.len() {
                    let calls = totals.calls[i];
                    if calls > 0 || totals.rejected[i] > 0 || totals.failed[i] > 0 {
                        let usec = totals.usec[i];
                        let per_call = if calls == 0 { 0.0 } else { usec as f64 / calls as f64 };
                        let _ = write!(
                            out,
                            "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                            stat_name(i),
                            totals.rejected[i],
                            totals.failed[i]
                        );
                    }
                }
            }
            "errorstats" => {
                out.push_str("# Errorstats\r\n");
                for (kind, n) in &errors.by_kind {
                    let _ = write!(out, "errorstat_{kind}:count={n}\r\n");
                }
            }
            // latency-tracking is off: no percentiles are kept.
            "latencystats" => out.push_str("# Latencystats\r\n"),
            "cluster" => out.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            "keyspace" => keyspace_section(&mut out, shared),
            _ => unreachable!("every section of SECTIONS is printed"),
        }
    }
    out
}

/// `INFO [section ...]`: sections by name (case-insensitive, unknown ones
/// ignored), or `all` / `everything` / `default`; none means `default`.
pub fn info(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut wanted: Vec<&str> = Vec::new();
    let defaults = SECTIONS.iter().filter(|s| !NOT_DEFAULT.contains(s));
    if args.len() == 1 {
        wanted.extend(defaults);
    } else {
        for a in &args[1..] {
            if is(a, "all") || is(a, "everything") {
                wanted.extend(SECTIONS);
            } else if is(a, "default") {
                wanted.extend(defaults.clone());
            } else if let Some(s) = SECTIONS.iter().find(|s| is(a, s)) {
                wanted.push(s);
            }
        }
    }
    let text = info_text(ctx, &wanted);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------- SLOWLOG

/// `SLOWLOG GET [count] | LEN | RESET | HELP`.
pub fn slowlog(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (sub, n) = (args[1], args.len());
    let log = &ctx.shared.slowlog;
    if is(sub, "get") && n <= 3 {
        let count = match args.get(2) {
            None => Some(10),
            Some(a) => match crate::protocol::decode::parse_i64(a) {
                Some(-1) => None,
                Some(c) if c >= 0 => Some(c as usize),
                _ => return Err(CmdError::Static("ERR count should be greater than or equal to -1")),
            },
        };
        let entries = log.newest(count);
        let out = &mut *ctx.out;
        out.array(entries.len());
        for e in entries {
            out.array(6);
            out.int(e.id as i64);
            out.int(e.time);
            out.int(e.duration_us as i64);
            out.array(e.args.len());
            for a in &e.args {
                out.bulk(a);
            }
            out.bulk_str(&e.addr);
            out.bulk_str(&e.name);
        }
    } else if is(sub, "len") && n == 2 {
        ctx.out.int(log.len() as i64);
    } else if is(sub, "reset") && n == 2 {
        log.reset();
        ctx.out.ok();
    } else if is(sub, "help") && n == 2 {
        ctx.help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Prints this help.",
        ]);
    } else {
        return Err(subcommand_error(sub, "slowlog", &["get", "len", "reset", "help"]));
    }
    Ok(())
}

/// A known subcommand with the wrong number of arguments, or an unknown one.
fn subcommand_error(sub: &[u8], container: &str, known: &[&str]) -> CmdError {
    if let Some(name) = known.iter().find(|k| is(sub, k)) {
        return CmdError::msg(format!(
            "ERR wrong number of arguments for '{container}|{name}' command"
        ));
    }
    unknown_subcommand(sub, container)
}

// ---------------------------------------------------------------- LATENCY

/// `LATENCY LATEST | HISTORY event | RESET [event ...] | GRAPH event |
/// DOCTOR | HISTOGRAM [command ...] | HELP`: the latency monitor's events
/// ([`crate::latency`]) in Redis 7's reply shapes. GRAPH prints Redis's
/// header and one line per sample instead of its ASCII art; no per-command
/// histograms are kept (`latency-tracking` is no), so HISTOGRAM is empty.
pub fn latency(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (sub, n) = (args[1], args.len());
    let monitor = &ctx.shared.latency;
    if is(sub, "latest") && n == 2 {
        let events = monitor.events();
        ctx.out.array(events.len());
        for (event, ts) in events {
            let (time, ms) = ts.latest();
            ctx.out.array(4);
            ctx.out.bulk_str(event);
            ctx.out.int(time);
            ctx.out.int(ms as i64);
            ctx.out.int(ts.max as i64);
        }
    } else if is(sub, "history") && n == 3 {
        let samples: Vec<(i64, u64)> = monitor
            .series(args[2])
            .map(|ts| ts.samples().collect())
            .unwrap_or_default();
        ctx.out.array(samples.len());
        for (time, ms) in samples {
            ctx.out.array(2);
            ctx.out.int(time);
            ctx.out.int(ms as i64);
        }
    } else if is(sub, "reset") {
        let n = if n == 2 {
            monitor.reset(None)
        } else {
            args[2..].iter().map(|e| monitor.reset(Some(e))).sum()
        };
        ctx.out.int(n as i64);
    } else if is(sub, "graph") && n == 3 {
        let Some(ts) = monitor.series(args[2]) else {
            return Err(CmdError::msg(format!(
                "ERR No samples available for event '{}'",
                String::from_utf8_lossy(args[2])
            )));
        };
        let now = crate::store::Clock::wall_ms() / 1000;
        let samples: Vec<(i64, u64)> = ts.samples().collect();
        let high = samples.iter().map(|s| s.1).max().unwrap_or(0);
        let low = samples.iter().map(|s| s.1).min().unwrap_or(0);
        let mut graph = format!(
            "{} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
            String::from_utf8_lossy(args[2]),
            ts.max,
            "-".repeat(80)
        );
        for (time, ms) in samples {
            let ago = (now - time).max(0);
            let label = match ago {
                0..60 => format!("{ago}s"),
                60..3600 => format!("{}m", ago / 60),
                3600..86400 => format!("{}h", ago / 3600),
                _ => format!("{}d", ago / 86400),
            };
            graph.push_str(&format!("{label:>4} ago {ms} ms\n"));
        }
        ctx.out.verbatim(graph.as_bytes());
    } else if is(sub, "histogram") {
        ctx.out.map(0);
    } else if is(sub, "doctor") && n == 2 {
        let report = monitor.doctor(ctx.shared.slowlog.slower_than.load(Ordering::Relaxed));
        ctx.out.verbatim(report.as_bytes());
    } else if is(sub, "help") && n == 2 {
        ctx.help(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
            "HELP",
            "    Prints this help.",
        ]);
    } else {
        return Err(subcommand_error(
            sub,
            "latency",
            &["latest", "history", "graph", "doctor", "help"],
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- COMMAND

fn key_triplet(keys: &KeySpec) -> (i64, i64, i64) {
    match *keys {
        KeySpec::None | KeySpec::All => (0, 0, 0),
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
        KeySpec::NumKeys { .. } => (0, 0, 0),
        KeySpec::DestNumKeys => (1, 1, 1),
    }
}

/// COMMAND INFO's flags and ACL categories of the commands and subcommands
/// redlockd shares with Redis, as redis-server 7.0 reports them (CLIENT
/// SETINFO and NO-TOUCH, which came in 7.2, as 7.2 does). redlockd's own
/// commands are described from their rows ([`derived_description`]).
#[rustfmt::skip]
const REDIS_DESCRIPTIONS: &[(&str, &[&str], &[&str])] = &[
    ("ping", &["fast"], &["@fast", "@connection"]),
    ("echo", &["loading", "stale", "fast"], &["@fast", "@connection"]),
    ("hello", &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    ("quit", &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    ("reset", &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    ("select", &["loading", "stale", "fast"], &["@fast", "@connection"]),
    ("client", &[], &["@slow"]),
    ("client|id", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|getname", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|setname", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|setinfo", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|info", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|list", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous", "@connection"]),
    ("client|kill", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous", "@connection"]),
    ("client|unblock", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous", "@connection"]),
    ("client|no-evict", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous", "@connection"]),
    ("client|no-touch", &["noscript", "loading", "stale"], &["@slow", "@connection"]),
    ("client|help", &["loading", "stale"], &["@slow", "@connection"]),
    ("auth", &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], &["@fast", "@connection"]),
    ("info", &["loading", "stale"], &["@slow", "@dangerous"]),
    ("config", &[], &["@slow"]),
    ("config|get", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("config|set", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("config|resetstat", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("config|rewrite", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("config|help", &["loading", "stale"], &["@slow"]),
    ("dbsize", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("flushdb", &["write"], &["@keyspace", "@write", "@slow", "@dangerous"]),
    ("flushall", &["write"], &["@keyspace", "@write", "@slow", "@dangerous"]),
    ("time", &["loading", "stale", "fast"], &["@fast"]),
    ("shutdown", &["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"], &["@admin", "@slow", "@dangerous"]),
    ("command", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|count", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|list", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|info", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|docs", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|getkeys", &["loading", "stale"], &["@slow", "@connection"]),
    ("command|help", &["loading", "stale"], &["@slow", "@connection"]),
    ("slowlog", &[], &["@slow"]),
    ("slowlog|get", &["admin", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("slowlog|len", &["admin", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("slowlog|reset", &["admin", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("slowlog|help", &["loading", "stale"], &["@slow"]),
    ("latency", &[], &["@slow"]),
    ("latency|latest", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|history", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|reset", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|doctor", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|graph", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|histogram", &["admin", "noscript", "loading", "stale"], &["@admin", "@slow", "@dangerous"]),
    ("latency|help", &["loading", "stale"], &["@slow"]),
    ("bgrewriteaof", &["admin", "noscript", "no_async_loading"], &["@admin", "@slow", "@dangerous"]),
    ("wait", &["noscript"], &["@slow", "@connection"]),
    ("subscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("unsubscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("psubscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("punsubscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("ssubscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("sunsubscribe", &["pubsub", "noscript", "loading", "stale"], &["@pubsub", "@slow"]),
    ("publish", &["pubsub", "loading", "stale", "fast"], &["@pubsub", "@fast"]),
    ("spublish", &["pubsub", "loading", "stale", "fast"], &["@pubsub", "@fast"]),
    ("pubsub", &[], &["@slow"]),
    ("pubsub|channels", &["pubsub", "loading", "stale"], &["@pubsub", "@slow"]),
    ("pubsub|numpat", &["pubsub", "loading", "stale"], &["@pubsub", "@slow"]),
    ("pubsub|numsub", &["pubsub", "loading", "stale"], &["@pubsub", "@slow"]),
    ("pubsub|shardchannels", &["pubsub", "loading", "stale"], &["@pubsub", "@slow"]),
    ("pubsub|shardnumsub", &["pubsub", "loading", "stale"], &["@pubsub", "@slow"]),
    ("pubsub|help", &["loading", "stale"], &["@slow"]),
    ("del", &["write"], &["@keyspace", "@write", "@slow"]),
    ("unlink", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("exists", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("touch", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("type", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("keys", &["readonly"], &["@keyspace", "@read", "@slow", "@dangerous"]),
    ("scan", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("randomkey", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("rename", &["write"], &["@keyspace", "@write", "@slow"]),
    ("renamenx", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("expire", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("pexpire", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("expireat", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("pexpireat", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("ttl", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("pttl", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("expiretime", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("pexpiretime", &["readonly", "fast"], &["@keyspace", "@read", "@fast"]),
    ("persist", &["write", "fast"], &["@keyspace", "@write", "@fast"]),
    ("get", &["readonly", "fast"], &["@read", "@string", "@fast"]),
    ("set", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("setnx", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("setex", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("psetex", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("getset", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("getdel", &["write", "fast"], &["@write", "@string", "@fast"]),
    ("getex", &["write", "fast"], &["@write", "@string", "@fast"]),
    ("mget", &["readonly", "fast"], &["@read", "@string", "@fast"]),
    ("mset", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("msetnx", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("incr", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("decr", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("incrby", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("decrby", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("incrbyfloat", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("append", &["write", "denyoom", "fast"], &["@write", "@string", "@fast"]),
    ("strlen", &["readonly", "fast"], &["@read", "@string", "@fast"]),
    ("getrange", &["readonly"], &["@read", "@string", "@slow"]),
    ("substr", &["readonly"], &["@read", "@string", "@slow"]),
    ("setrange", &["write", "denyoom"], &["@write", "@string", "@slow"]),
    ("multi", &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    ("exec", &["noscript", "loading", "stale", "skip_slowlog"], &["@slow", "@transaction"]),
    ("discard", &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    ("watch", &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    ("unwatch", &["noscript", "loading", "stale", "fast", "allow_busy"], &["@fast", "@transaction"]),
    ("eval", &["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], &["@slow", "@scripting"]),
    ("evalsha", &["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], &["@slow", "@scripting"]),
    ("eval_ro", &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], &["@slow", "@scripting"]),
    ("evalsha_ro", &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], &["@slow", "@scripting"]),
    ("hset", &["write", "denyoom", "fast"], &["@write", "@hash", "@fast"]),
    ("hsetnx", &["write", "denyoom", "fast"], &["@write", "@hash", "@fast"]),
    ("hmset", &["write", "denyoom", "fast"], &["@write", "@hash", "@fast"]),
    ("hget", &["readonly", "fast"], &["@read", "@hash", "@fast"]),
    ("hmget", &["readonly", "fast"], &["@read", "@hash", "@fast"]),
    ("hdel", &["write", "fast"], &["@write", "@hash", "@fast"]),
    ("hexists", &["readonly", "fast"], &["@read", "@hash", "@fast"]),
    ("hlen", &["readonly", "fast"], &["@read", "@hash", "@fast"]),
    ("hstrlen", &["readonly", "fast"], &["@read", "@hash", "@fast"]),
    ("hgetall", &["readonly"], &["@read", "@hash", "@slow"]),
    ("hkeys", &["readonly"], &["@read", "@hash", "@slow"]),
    ("hvals", &["readonly"], &["@read", "@hash", "@slow"]),
    ("hincrby", &["write", "denyoom", "fast"], &["@write", "@hash", "@fast"]),
    ("hincrbyfloat", &["write", "denyoom", "fast"], &["@write", "@hash", "@fast"]),
    ("hscan", &["readonly"], &["@read", "@hash", "@slow"]),
    ("lpush", &["write", "denyoom", "fast"], &["@write", "@list", "@fast"]),
    ("rpush", &["write", "denyoom", "fast"], &["@write", "@list", "@fast"]),
    ("lpushx", &["write", "denyoom", "fast"], &["@write", "@list", "@fast"]),
    ("rpushx", &["write", "denyoom", "fast"], &["@write", "@list", "@fast"]),
    ("lpop", &["write", "fast"], &["@write", "@list", "@fast"]),
    ("rpop", &["write", "fast"], &["@write", "@list", "@fast"]),
    ("llen", &["readonly", "fast"], &["@read", "@list", "@fast"]),
    ("lrange", &["readonly"], &["@read", "@list", "@slow"]),
    ("lindex", &["readonly"], &["@read", "@list", "@slow"]),
    ("lset", &["write", "denyoom"], &["@write", "@list", "@slow"]),
    ("lrem", &["write"], &["@write", "@list", "@slow"]),
    ("ltrim", &["write"], &["@write", "@list", "@slow"]),
    ("lpos", &["readonly"], &["@read", "@list", "@slow"]),
    ("lmove", &["write", "denyoom"], &["@write", "@list", "@slow"]),
    ("rpoplpush", &["write", "denyoom"], &["@write", "@list", "@slow"]),
    ("blpop", &["write", "noscript", "blocking"], &["@write", "@list", "@slow", "@blocking"]),
    ("brpop", &["write", "noscript", "blocking"], &["@write", "@list", "@slow", "@blocking"]),
    ("blmove", &["write", "denyoom", "noscript", "blocking"], &["@write", "@list", "@slow", "@blocking"]),
    ("brpoplpush", &["write", "denyoom", "noscript", "blocking"], &["@write", "@list", "@slow", "@blocking"]),
    ("sadd", &["write", "denyoom", "fast"], &["@write", "@set", "@fast"]),
    ("srem", &["write", "fast"], &["@write", "@set", "@fast"]),
    ("sismember", &["readonly", "fast"], &["@read", "@set", "@fast"]),
    ("smismember", &["readonly", "fast"], &["@read", "@set", "@fast"]),
    ("scard", &["readonly", "fast"], &["@read", "@set", "@fast"]),
    ("smembers", &["readonly"], &["@read", "@set", "@slow"]),
    ("spop", &["write", "fast"], &["@write", "@set", "@fast"]),
    ("srandmember", &["readonly"], &["@read", "@set", "@slow"]),
    ("sscan", &["readonly"], &["@read", "@set", "@slow"]),
    ("zadd", &["write", "denyoom", "fast"], &["@write", "@sortedset", "@fast"]),
    ("zincrby", &["write", "denyoom", "fast"], &["@write", "@sortedset", "@fast"]),
    ("zrem", &["write", "fast"], &["@write", "@sortedset", "@fast"]),
    ("zscore", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zmscore", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zcard", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zcount", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zlexcount", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zrank", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zrevrank", &["readonly", "fast"], &["@read", "@sortedset", "@fast"]),
    ("zrange", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zrevrange", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zrangebyscore", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zrevrangebyscore", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zrangebylex", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zrevrangebylex", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("zremrangebyscore", &["write"], &["@write", "@sortedset", "@slow"]),
    ("zremrangebyrank", &["write"], &["@write", "@sortedset", "@slow"]),
    ("zremrangebylex", &["write"], &["@write", "@sortedset", "@slow"]),
    ("zpopmin", &["write", "fast"], &["@write", "@sortedset", "@fast"]),
    ("zpopmax", &["write", "fast"], &["@write", "@sortedset", "@fast"]),
    ("zunionstore", &["write", "denyoom", "movablekeys"], &["@write", "@sortedset", "@slow"]),
    ("zinterstore", &["write", "denyoom", "movablekeys"], &["@write", "@sortedset", "@slow"]),
    ("zscan", &["readonly"], &["@read", "@sortedset", "@slow"]),
    ("object", &[], &["@slow"]),
    ("object|help", &["loading", "stale"], &["@keyspace", "@slow"]),
    ("object|idletime", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("object|freq", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("object|encoding", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("object|refcount", &["readonly"], &["@keyspace", "@read", "@slow"]),
    ("script", &[], &["@slow"]),
    ("script|load", &["noscript", "stale"], &["@slow", "@scripting"]),
    ("script|exists", &["noscript"], &["@slow", "@scripting"]),
    ("script|flush", &["noscript"], &["@slow", "@scripting"]),
    ("script|kill", &["noscript", "allow_busy"], &["@slow", "@scripting"]),
    ("script|help", &["loading", "stale"], &["@slow", "@scripting"]),
];

/// Flags and ACL categories of a command of redlockd's own: the row's
/// flags; @write or @read, @string for string commands, @fast or @slow.
fn derived_description(c: &CommandSpec) -> (Vec<&'static str>, Vec<&'static str>) {
    let names = flags::NAMES
        .iter()
        .filter(|(f, _)| c.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    let mut categories = Vec::new();
    if c.flags & flags::WRITE != 0 {
        categories.push("@write");
    } else if c.flags & flags::READONLY != 0 {
        categories.push("@read");
    }
    if c.group == "string" {
        categories.push("@string");
    }
    categories.push(if c.flags & flags::FAST != 0 { "@fast" } else { "@slow" });
    if c.flags & flags::BLOCKING != 0 {
        categories.push("@blocking");
    }
    (names, categories)
}

/// The flags and ACL categories COMMAND reports for a command (`get`) or
/// subcommand (`config|get`); None for a subcommand redlockd lacks.
fn description(name: &str) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    if let Some((_, f, a)) = REDIS_DESCRIPTIONS.iter().find(|(n, _, _)| *n == name) {
        return Some((f.to_vec(), a.to_vec()));
    }
    COMMANDS.iter().find(|c| c.name == name).map(derived_description)
}

/// Every command and subcommand name COMMAND LIST can filter.
fn all_names() -> impl Iterator<Item = std::borrow::Cow<'static, str>> {
    (0..super::table::stat_count()).map(stat_name)
}

fn write_command_info(ctx: &mut Ctx<'_>, c: &CommandSpec) {
    let (names, categories) = description(c.name).unwrap_or_default();
    let out = &mut *ctx.out;
    out.array(10);
    out.bulk_str(c.name);
    out.int(c.arity as i64);
    out.set(names.len());
    for n in names {
        out.simple(n);
    }
    // A container's keys belong to its subcommands (OBJECT): Redis reports none.
    let (first, last, step) = if c.flags & flags::CONTAINER != 0 {
        (0, 0, 0)
    } else {
        key_triplet(&c.keys)
    };
    out.int(first);
    out.int(last);
    out.int(step);
    out.set(categories.len());
    for category in categories {
        out.simple(category);
    }
    out.set(0); // tips
    out.array(0); // key specifications
    out.array(0); // subcommands
}

fn write_command_docs(ctx: &mut Ctx<'_>, c: &CommandSpec) {
    let out = &mut *ctx.out;
    out.bulk_str(c.name);
    out.map(3);
    out.bulk_str("summary");
    out.bulk_str(c.summary);
    out.bulk_str("since");
    out.bulk_str("1.0.0");
    out.bulk_str("group");
    out.bulk_str(c.group);
}

pub fn command(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() == 1 {
        ctx.out.array(COMMANDS.len());
        for c in COMMANDS {
            write_command_info(ctx, c);
        }
        return Ok(());
    }
    let sub = args[1];
    if is(sub, "count") && args.len() == 2 {
        ctx.out.int(COMMANDS.len() as i64);
    } else if is(sub, "list") {
        let names: Vec<std::borrow::Cow<'static, str>> = if args.len() == 2 {
            COMMANDS.iter().map(|c| c.name.into()).collect()
        } else if args.len() == 5 && is(args[2], "filterby") {
            let (kind, value) = (args[3], args[4]);
            if is(kind, "module") {
                Vec::new() // redlockd loads no modules
            } else if is(kind, "aclcat") {
                all_names()
                    .filter(|n| {
                        description(n).is_some_and(|(_, categories)| {
                            categories.iter().any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(value))
                        })
                    })
                    .collect()
            } else if is(kind, "pattern") {
                all_names()
                    .filter(|n| glob::matches(value, n.as_bytes(), true))
                    .collect()
            } else {
                return Err(CmdError::Syntax);
            }
        } else {
            return Err(CmdError::Syntax);
        };
        ctx.out.array(names.len());
        for n in names {
            ctx.out.bulk_str(&n);
        }
    } else if is(sub, "info") {
        let wanted: Vec<Option<&'static CommandSpec>> = if args.len() == 2 {
            COMMANDS.iter().map(Some).collect()
        } else {
            args[2..]
                .iter()
                .map(|n| super::table::lookup(n).map(|(_, c)| c))
                .collect()
        };
        ctx.out.array(wanted.len());
        for c in wanted {
            match c {
                Some(c) => write_command_info(ctx, c),
                None => ctx.out.null_array(),
            }
        }
    } else if is(sub, "docs") {
        let wanted: Vec<&'static CommandSpec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..]
                .iter()
                .filter_map(|n| super::table::lookup(n).map(|(_, c)| c))
                .collect()
        };
        ctx.out.map(wanted.len());
        for c in wanted {
            write_command_docs(ctx, c);
        }
    } else if is(sub, "getkeys") && args.len() >= 3 {
        let Some((_, c)) = super::table::lookup(args[2]) else {
            return Err(CmdError::Static("ERR Invalid command specified"));
        };
        let target = &args[2..];
        if !super::table::arity_ok(c, target.len()) {
            return Err(CmdError::Static(
                "ERR Invalid number of arguments specified for command",
            ));
        }
        let positions: Vec<usize> = super::key_positions(&c.keys, target)?.collect();
        if positions.is_empty() {
            return Err(CmdError::Static("ERR The command has no key arguments"));
        }
        ctx.out.array(positions.len());
        for i in positions {
            ctx.out.bulk(target[i]);
        }
    } else if is(sub, "help") {
        let help = [
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands.",
            "LIST",
            "    Return a list of all commands.",
            "INFO [<command-name> ...]",
            "    Return details about the given commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about the given commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help.",
        ];
        ctx.help(&help);
    } else {
        return Err(unknown_subcommand(sub, "command"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every description is of a command or subcommand redlockd serves, and
    /// every one of those has a description.
    #[test]
    fn descriptions_match_the_table() {
        let names: Vec<String> = all_names().map(|n| n.into_owned()).collect();
        for (name, _, _) in REDIS_DESCRIPTIONS {
            assert!(names.iter().any(|n| n == name), "{name} is not served");
        }
        for n in &names {
            let (_, categories) = description(n).unwrap_or_else(|| panic!("{n} undescribed"));
            assert!(categories.contains(&"@fast") != categories.contains(&"@slow"), "{n}");
        }
    }
}
