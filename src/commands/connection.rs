//! Connection commands: PING, ECHO, HELLO, QUIT, RESET, SELECT, AUTH, CLIENT.

use std::sync::atomic::Ordering;

use super::args::{int, is};
use super::error::unknown_subcommand;
use super::{CmdError, CmdResult, Ctx, table, transactions};
use crate::VERSION_COMPAT;
use crate::instance::ClientHandle;
use crate::store::Locked;

pub fn ping(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::WrongArity);
    }
    // In RESP2 subscriber mode a reply must look like a message: Redis
    // answers `pong` and the argument (empty without one) as an array.
    if ctx.client.in_subscriber_mode() {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).copied().unwrap_or(b""));
        return Ok(());
    }
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(args[1]),
        _ => return Err(CmdError::WrongArity),
    }
    Ok(())
}

pub fn echo(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`
pub fn hello(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        let v = int(args[1]).map_err(|_| CmdError::Static("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Static("NOPROTO unsupported protocol version"));
        }
        proto = Some(v);
        i = 2;
    }
    let mut setname = None;
    let mut credentials = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(args[i], "auth") && more >= 2 {
            credentials = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if is(args[i], "setname") && more >= 1 {
            setname = Some(args[i + 1]);
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(args[i]);
            return Err(CmdError::msg(format!("ERR Syntax error in HELLO option '{opt}'")));
        }
    }
    match credentials {
        Some((user, pass)) => authenticate(ctx, user, pass)?,
        None if !ctx.client.authenticated => {
            return Err(CmdError::Static(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            ));
        }
        None => {}
    }
    if let Some(name) = setname {
        validate_client_name(name)?;
        *ctx.client.handle.name.lock() = String::from_utf8_lossy(name).into_owned();
    }
    if let Some(p) = proto {
        ctx.out.resp3 = p == 3;
        ctx.client.handle.resp.store(p as u8, Ordering::Relaxed);
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk_str("server");
    out.bulk_str("redis");
    out.bulk_str("version");
    out.bulk_str(VERSION_COMPAT);
    out.bulk_str("proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk_str("id");
    out.int(ctx.client.handle.id as i64);
    out.bulk_str("mode");
    out.bulk_str("standalone");
    out.bulk_str("role");
    out.bulk_str("master");
    out.bulk_str("modules");
    out.array(0);
    Ok(())
}

pub fn quit(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    ctx.client.close = true;
    Ok(())
}

pub fn reset(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    // Unsubscribed from everything, after what was already published to it.
    ctx.client.deliver_pending(ctx.out);
    ctx.client.pubsub = None;
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    transactions::unwatch_all(ctx);
    ctx.client.db = 0;
    ctx.client.handle.db.store(0, Ordering::Relaxed);
    ctx.out.resp3 = false;
    ctx.client.handle.resp.store(2, Ordering::Relaxed);
    ctx.client.authenticated = !ctx.shared.settings.password_required();
    ctx.out.simple("RESET");
    Ok(())
}

pub fn select(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let db = int(args[1])?;
    if db < 0 || db as usize >= ctx.shared.keyspace.dbs.len() {
        return Err(CmdError::Static("ERR DB index is out of range"));
    }
    ctx.client.db = db as usize;
    ctx.client.handle.db.store(db as usize, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// `AUTH [user] password`. Without a configured password the default user
/// accepts any password; there are no other users.
pub fn auth(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let (user, pass) = if args.len() == 3 {
        (args[1], args[2])
    } else {
        (&b"default"[..], args[1])
    };
    if !ctx.shared.settings.password_required() && args.len() == 2 {
        return Err(CmdError::Static(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    authenticate(ctx, user, pass)?;
    ctx.out.ok();
    Ok(())
}

/// Check credentials for the default user; on success the client is authenticated.
fn authenticate(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> CmdResult {
    if user == b"default" && ctx.shared.settings.password_matches(pass) {
        ctx.client.authenticated = true;
        return Ok(());
    }
    tracing::warn!(id = ctx.client.handle.id, peer = %ctx.client.handle.addr, "authentication failed");
    Err(CmdError::Static(
        "WRONGPASS invalid username-password pair or user is disabled.",
    ))
}

fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::Static(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID",
    "    Return the ID of the current connection.",
    "GETNAME",
    "    Return the name of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [TYPE normal] [ID id ...]",
    "    Return information about client connections.",
    "KILL <ip:port> | KILL ID <id> | KILL ADDR <ip:port> | KILL LADDR <ip:port> | KILL SKIPME yes|no",
    "    Kill connections.",
    "NO-EVICT (ON|OFF)",
    "    Accepted; redlockd never evicts keys.",
    "NO-TOUCH (ON|OFF)",
    "    Accepted; redlockd keeps no access times.",
    "HELP",
    "    Print this help.",
];

pub fn client(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    let handle = ctx.client.handle.clone();
    if is(sub, "id") && n == 2 {
        ctx.out.int(handle.id as i64);
    } else if is(sub, "getname") && n == 2 {
        let name = handle.name.lock().clone();
        if name.is_empty() {
            ctx.out.null()
        } else {
            ctx.out.bulk(name.as_bytes())
        }
    } else if is(sub, "setname") && n == 3 {
        validate_client_name(args[2])?;
        *handle.name.lock() = String::from_utf8_lossy(args[2]).into_owned();
        ctx.out.ok();
    } else if is(sub, "setinfo") && n == 4 {
        let value = String::from_utf8_lossy(args[3]).into_owned();
        if value.chars().any(|c| !('!'..='~').contains(&c)) {
            let attr = String::from_utf8_lossy(args[2]).to_ascii_lowercase();
            return Err(CmdError::msg(format!(
                "ERR {attr} cannot contain spaces, newlines or special characters."
            )));
        }
        if is(args[2], "lib-name") {
            *handle.lib_name.lock() = value;
        } else if is(args[2], "lib-ver") {
            *handle.lib_ver.lock() = value;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(args[2])
            )));
        }
        ctx.out.ok();
    } else if is(sub, "info") && n == 2 {
        let mut line = describe(&handle);
        line.push('\n');
        ctx.out.verbatim(line.as_bytes());
    } else if is(sub, "list") {
        client_list(ctx, args)?;
    } else if is(sub, "kill") && n >= 3 {
        client_kill(ctx, args)?;
    } else if is(sub, "unblock") && (n == 3 || n == 4) {
        client_unblock(ctx, args)?;
    } else if (is(sub, "no-evict") || is(sub, "no-touch")) && n == 3 {
        if !is(args[2], "on") && !is(args[2], "off") {
            return Err(CmdError::Syntax);
        }
        let flag = if is(sub, "no-evict") {
            &handle.no_evict
        } else {
            &handle.no_touch
        };
        flag.store(is(args[2], "on"), Ordering::Relaxed);
        ctx.out.ok();
    } else if is(sub, "help") && n == 2 {
        ctx.help(CLIENT_HELP);
    } else {
        return Err(unknown_subcommand(sub, "client"));
    }
    Ok(())
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: end the blocking acquire of client
/// `id` as if its WAIT ran out (nil), or with an -UNBLOCKED error; 1 if it
/// was blocked, 0 if not. The reason is checked before the id, as Redis does.
fn client_unblock(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    use crate::instance::{BLOCK_ERROR, BLOCK_TIMEOUT};
    let how = match args.get(3) {
        None => BLOCK_TIMEOUT,
        Some(r) if is(r, "timeout") => BLOCK_TIMEOUT,
        Some(r) if is(r, "error") => BLOCK_ERROR,
        Some(_) => return Err(CmdError::Static("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
    };
    let id = super::args::int(args[2])?;
    let target = u64::try_from(id).ok().and_then(|id| ctx.shared.clients.get(id));
    let done = target.is_some_and(|c| c.unblock(how));
    ctx.out.int(done as i64);
    Ok(())
}

/// A client's CLIENT LIST / CLIENT INFO line, naming its last command.
fn describe(handle: &ClientHandle) -> String {
    let cmd = handle.last_command().map(table::stat_name);
    handle.describe(cmd.as_deref().unwrap_or("NULL"))
}

/// `CLIENT LIST [TYPE normal|master|replica|slave|pubsub] | [ID id ...]`:
/// one filter or none, as Redis 7 takes them. A client with subscriptions
/// is a pubsub one, every other a normal one.
fn client_list(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    // TYPE normal / pubsub: Some(true) lists subscribers only.
    let mut pubsub: Option<bool> = None;
    if args.len() == 4 && is(args[2], "type") {
        let t = args[3];
        if !["normal", "master", "replica", "slave", "pubsub"]
            .iter()
            .any(|k| is(t, k))
        {
            return Err(CmdError::msg(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(t)
            )));
        }
        if is(t, "normal") || is(t, "pubsub") {
            pubsub = Some(is(t, "pubsub"));
        } else {
            ids = Some(Vec::new());
        }
    } else if args.len() >= 4 && is(args[2], "id") {
        let mut v = Vec::with_capacity(args.len() - 3);
        for a in &args[3..] {
            // Any integer: one that is no client's id matches nothing.
            let id = int(a).map_err(|_| CmdError::Static("ERR Invalid client ID"))?;
            v.push(id as u64);
        }
        ids = Some(v);
    } else if args.len() != 2 {
        return Err(CmdError::Syntax);
    }
    let mut text = String::new();
    for c in ctx.shared.clients.snapshot() {
        let subscriber = c.subscriptions.iter().any(|n| n.load(Ordering::Relaxed) > 0);
        if ids.as_ref().is_none_or(|v| v.contains(&c.id)) && pubsub.is_none_or(|p| p == subscriber) {
            text.push_str(&describe(&c));
            text.push('\n');
        }
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let me = ctx.client.handle.id;
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port -> +OK or an error.
        let addr = String::from_utf8_lossy(args[2]).into_owned();
        let target = ctx
            .shared
            .clients
            .snapshot()
            .into_iter()
            .find(|c| c.addr.to_string() == addr);
        return match target {
            Some(c) => {
                c.request_kill();
                if c.id == me {
                    ctx.client.close = true;
                }
                ctx.out.ok();
                Ok(())
            }
            None => Err(CmdError::Static("ERR No such client")),
        };
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut i = 2;
    while i + 1 < args.len() {
        let v = args[i + 1];
        if is(args[i], "id") {
            id = Some(
                int(v)
                    .ok()
                    .filter(|&x| x > 0)
                    .ok_or(CmdError::Static("ERR client-id should be greater than 0"))? as u64,
            );
        } else if is(args[i], "addr") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if is(args[i], "laddr") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if is(args[i], "skipme") {
            skipme = if is(v, "yes") {
                true
            } else if is(v, "no") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
        } else if is(args[i], "type") || is(args[i], "user") || is(args[i], "maxage") {
            // Every client is a normal client of the default user.
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    if i != args.len() {
        return Err(CmdError::Syntax);
    }
    let mut killed = 0;
    for c in ctx.shared.clients.snapshot() {
        let matches = id.is_none_or(|x| x == c.id)
            && addr.as_ref().is_none_or(|a| *a == c.addr.to_string())
            && laddr.as_ref().is_none_or(|a| *a == c.laddr.to_string());
        if matches && !(skipme && c.id == me) {
            c.request_kill();
            if c.id == me {
                ctx.client.close = true;
            }
            killed += 1;
        }
    }
    ctx.out.int(killed);
    Ok(())
}
