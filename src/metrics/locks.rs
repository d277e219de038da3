//! `/locks`: the status page's data, as JSON — held locks (a bounded
//! listing), recent lock events, and the server's health.
//!
//! Keys and tokens are client bytes: they go out as lossy UTF-8 JSON
//! strings ([`super::json_str`]) with their true length beside them, and
//! tokens only as a prefix (a token is the holder's secret).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::{json_str, readiness};
use crate::commands::ttl::pttl_of;
use crate::config::Settings;
use crate::instance::Shared;
use crate::{memory, stats};

/// Most locks listed.
pub const LIST_LIMIT: usize = 1000;
/// Bytes of a token shown.
const TOKEN_SHOWN: usize = 8;

/// The JSON document of `/locks`.
pub fn render(shared: &Shared) -> String {
    let ks = &shared.keyspace;
    let now = ks.clock.now_us();
    let mut out = String::with_capacity(4096);
    out.push_str("{\"locks\":[");
    let (mut listed, mut truncated) = (0usize, false);
    'dbs: for (db_no, db) in ks.dbs.iter().enumerate() {
        for shard in 0..db.shard_count() {
            if listed >= LIST_LIMIT {
                truncated = true;
                break 'dbs;
            }
            db.for_each_in_shard(shard, now, |key, e| {
                // A lock: a string value a lock grant stored.
                let (true, Ok(token)) = (e.is_lock(), e.str()) else {
                    return;
                };
                if listed >= LIST_LIMIT {
                    truncated = true;
                    return;
                }
                if listed > 0 {
                    out.push(',');
                }
                listed += 1;
                let _ = write!(out, "{{\"db\":{db_no},\"key\":");
                json_str(&mut out, key);
                let _ = write!(out, ",\"key_len\":{},\"token\":", key.len());
                json_str(&mut out, &token[..token.len().min(TOKEN_SHOWN)]);
                let _ = write!(out, ",\"token_len\":{},\"ttl_ms\":{}", token.len(), pttl_of(e, now));
                match shared.locks.age_ms(db_no, key, token, now) {
                    Some(age) => {
                        let _ = write!(out, ",\"age_ms\":{age}");
                    }
                    None => out.push_str(",\"age_ms\":null"),
                }
                if e.fence() == 0 {
                    out.push_str(",\"fence\":null}");
                } else {
                    let _ = write!(out, ",\"fence\":{}}}", e.fence());
                }
            });
        }
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let _ = write!(out, "],\"limit\":{LIST_LIMIT},\"truncated\":{truncated},\"events\":[");
    for (i, ev) in shared.locks.recent_events().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"kind\":\"{}\",\"db\":{},\"key\":", ev.kind.name(), ev.db);
        json_str(&mut out, &ev.key);
        let _ = write!(out, ",\"key_len\":{},\"token\":", ev.key_len);
        json_str(&mut out, &ev.token[..ev.token.len().min(TOKEN_SHOWN)]);
        // Events keep the commands' monotonic clock; the page wants wall time.
        let at_ms = now_ms.saturating_sub(now.saturating_sub(ev.at_us) / 1000);
        let _ = write!(out, ",\"at_ms\":{at_ms}");
        match ev.held_ms {
            Some(ms) => {
                let _ = write!(out, ",\"held_ms\":{ms}}}");
            }
            None => out.push_str(",\"held_ms\":null}"),
        }
    }
    let _ = write!(
        out,
        "],\"health\":{{\"now_ms\":{now_ms},\"uptime_s\":{},\"clients\":{},\"used_memory\":{},\"maxmemory\":{},\"commands_processed\":{},\"expired_while_held\":{},\"granted\":{},\"busy\":{},\"refused\":{},\"ready\":",
        shared.started.elapsed().as_secs(),
        shared.clients.count(),
        memory::used(),
        Settings::get(&shared.settings.maxmemory),
        stats::totals().commands,
        shared.locks.expired_while_held.load(Relaxed),
        shared.locks.granted.load(Relaxed),
        shared.locks.busy.load(Relaxed),
        shared.locks.refused.load(Relaxed),
    );
    match readiness(shared) {
        Ok(()) => out.push_str("true,\"not_ready\":null}}"),
        Err(why) => {
            out.push_str("false,\"not_ready\":");
            json_str(&mut out, why.as_bytes());
            out.push_str("}}");
        }
    }
    out
}
