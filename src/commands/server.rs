//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, SHUTDOWN,
//! COMMAND, and the replication/pub-sub stubs clients send (WAIT, PUBLISH)
//! answered truthfully for a server with no replicas and no subscribers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::args::{int, is};
use super::error::unknown_subcommand;
use super::table::{COMMANDS, CommandSpec, KeySpec, flags};
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

/// `PUBLISH channel message`: redlockd has no subscribers, so 0 receivers.
pub fn publish(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    ctx.out.int(0);
    Ok(())
}

// ---------------------------------------------------------------- CONFIG

/// Every parameter CONFIG GET knows, with its current value.
fn config_params(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    let c = &ctx.shared.config;
    let s = &ctx.shared.settings;
    let port = ctx.shared.local_addr.lock().map(|a| a.port()).unwrap_or(c.port);
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
        ("lua-time-limit", "5000".into()),
        ("busy-reply-threshold", "5000".into()),
        ("cluster-enabled", "no".into()),
        ("notify-keyspace-events", String::new()),
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
    Password(Option<Box<[u8]>>),
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
fn config_parse<'a>(s: &'a Settings, name: &str, value: &[u8]) -> Result<Change<'a>, Refusal> {
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
        match config_parse(settings, name, pair[1]) {
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
            Change::Password(p) => *settings.requirepass.write() = p,
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

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "keyspace",
];
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

pub fn info_text(ctx: &Ctx<'_>, wanted: &[String]) -> String {
    let want = |s: &str| wanted.iter().any(|w| w == s);
    let shared = ctx.shared;
    let mut out = String::new();
    let uptime = shared.started.elapsed().as_secs();
    let port = shared.local_addr.lock().map(|a| a.port()).unwrap_or(shared.config.port);
    let totals = stats::totals();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{VERSION_COMPAT}\r\nredlockd_version:{VERSION}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{port}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:redlockd\r\n\r\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.run_id,
            uptime / 86400,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            shared.clients.count(),
            Settings::get(&shared.settings.maxclients)
        );
    }
    if want("memory") {
        let (used, rss, peak) = (memory::used(), rss_bytes(), memory::peak());
        let max = Settings::get(&shared.settings.maxmemory);
        let h = memory::human;
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:noeviction\r\nmem_allocator:libc\r\n\r\n",
            h(used),
            h(rss),
            h(peak),
            h(max),
        );
    }
    if want("persistence") {
        out.push_str("# Persistence\r\nloading:0\r\n");
        match &shared.aof {
            None => out.push_str("aof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_last_write_status:ok\r\n"),
            Some(aof) => {
                let st = &aof.stats;
                let _ = write!(
                    out,
                    "aof_enabled:1\r\naof_rewrite_in_progress:{}\r\naof_rewrites:{}\r\naof_last_bgrewrite_status:{}\r\naof_last_write_status:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\n",
                    st.rewrite_in_progress.load(Ordering::Relaxed) as u8,
                    st.rewrites.load(Ordering::Relaxed),
                    if st.last_rewrite_ok.load(Ordering::Relaxed) {
                        "ok"
                    } else {
                        "err"
                    },
                    if aof.write_error().is_none() { "ok" } else { "err" },
                    st.current_size.load(Ordering::Relaxed),
                    st.base_size.load(Ordering::Relaxed),
                );
            }
        }
        out.push_str("\r\n");
    }
    if want("stats") {
        let expired: u64 = shared
            .keyspace
            .dbs
            .iter()
            .map(|d| d.expired_keys.load(Ordering::Relaxed))
            .sum();
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:0\r\n\r\n",
            shared.counters.connections_received.load(Ordering::Relaxed),
            totals.commands,
            shared.counters.rejected_connections.load(Ordering::Relaxed),
            totals.hits,
            totals.misses,
        );
    }
    if want("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if want("cpu") {
        let (user, sys) = cpu_seconds();
        let _ = write!(out, "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\r\n");
    }
    if want("commandstats") {
        out.push_str("# Commandstats\r\n");
        for (i, c) in COMMANDS.iter().enumerate() {
            if totals.calls[i] > 0 || totals.rejected[i] > 0 {
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={},rejected_calls={},failed_calls={}\r\n",
                    c.name, totals.calls[i], totals.rejected[i], totals.failed[i]
                );
            }
        }
        out.push_str("\r\n");
    }
    if want("keyspace") {
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
        out.push_str("\r\n");
    }
    // Redis ends the text without the blank line after the last section.
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

pub fn info(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut wanted: Vec<String> = Vec::new();
    for a in &args[1..] {
        let s = String::from_utf8_lossy(a).to_ascii_lowercase();
        match s.as_str() {
            "all" | "everything" => wanted.extend(SECTIONS.iter().map(|s| s.to_string())),
            "default" => wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
            _ => wanted.push(s),
        }
    }
    if wanted.is_empty() {
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    let text = info_text(ctx, &wanted);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------- COMMAND

fn key_triplet(keys: &KeySpec) -> (i64, i64, i64) {
    match *keys {
        KeySpec::None | KeySpec::All => (0, 0, 0),
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
        KeySpec::NumKeys { .. } => (0, 0, 0),
    }
}

fn write_command_info(ctx: &mut Ctx<'_>, c: &CommandSpec) {
    let out = &mut *ctx.out;
    out.array(10);
    out.bulk_str(c.name);
    out.int(c.arity as i64);
    let names: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(f, _)| c.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    out.set(names.len());
    for n in names {
        out.simple(n);
    }
    let (first, last, step) = key_triplet(&c.keys);
    out.int(first);
    out.int(last);
    out.int(step);
    let category = format!("@{}", c.group);
    out.set(1);
    out.simple(&category);
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
        let mut pattern = None;
        if args.len() == 5 && is(args[2], "filterby") && is(args[3], "pattern") {
            pattern = Some(args[4]);
        } else if args.len() != 2 {
            return Err(CmdError::Syntax);
        }
        let names: Vec<&str> = COMMANDS
            .iter()
            .map(|c| c.name)
            .filter(|n| pattern.is_none_or(|p| glob::matches(p, n.as_bytes(), true)))
            .collect();
        ctx.out.array(names.len());
        for n in names {
            ctx.out.bulk_str(n);
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
