//! The operator's HTTP port (`--metrics-port`): Prometheus metrics
//! (`/metrics`), health checks (`/healthz`, `/readyz`), the status page
//! (`/`) and its data (`/locks`).
//!
//! Nothing here runs on the RESP path: every value is read at scrape time
//! from what the server keeps anyway — the lock counters of
//! [`crate::lockstats`], the per-command counters of [`crate::stats`], the
//! connection registry, the keyspace (scanned shard by shard under each
//! shard's read lock), memory and the append-only file's status. The HTTP
//! server is a task on the server's runtime ([`http`]).
//!
//! What "a lock" is here: a live key whose value a lock grant stored (the
//! store's lock mark; the rule is in [`crate::lockstats`]).

pub mod http;
pub mod locks;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::commands::table::stat_name;
use crate::config::Settings;
use crate::instance::Shared;
use crate::{memory, stats};

/// Whether the server accepts writes now; the reason when it does not.
pub fn readiness(shared: &Shared) -> Result<(), String> {
    if let Some(left) = shared.grants.remaining() {
        return Err(format!(
            "restart delay: lock grants resume in {} ms",
            left.as_millis().max(1)
        ));
    }
    if let Some(errno) = shared.aof.as_ref().and_then(|aof| aof.write_error()) {
        return Err(format!(
            "append-only file cannot be written: {}",
            std::io::Error::from_raw_os_error(errno)
        ));
    }
    if let Some(group) = shared.group.get()
        && group.leader().0.is_none()
    {
        return Err("replicated group: no leader known".into());
    }
    Ok(())
}

/// Keys of every database, and how many are held locks.
pub struct KeyCounts {
    pub keys: Vec<u64>,
    pub locks: u64,
}

/// Count the keys of every database, one shard under its read lock at a
/// time (so a client waits for one shard's count at most).
pub fn count_keys(shared: &Shared) -> KeyCounts {
    let ks = &shared.keyspace;
    let now = ks.clock.now_us();
    let mut counts = KeyCounts {
        keys: vec![0; ks.dbs.len()],
        locks: 0,
    };
    for (i, db) in ks.dbs.iter().enumerate() {
        for shard in 0..db.shard_count() {
            db.for_each_in_shard(shard, now, |_, e| {
                counts.keys[i] += 1;
                counts.locks += e.is_lock() as u64;
            });
        }
    }
    counts
}

/// Keys removed because their deadline passed, over every database.
pub fn expired_keys(shared: &Shared) -> u64 {
    shared.keyspace.dbs.iter().map(|d| d.expired_keys.load(Relaxed)).sum()
}

/// The metrics in Prometheus text format (0.0.4).
pub fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(shared.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail, and every value is plain data.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// Reads everything at scrape time.
struct Scrape(Arc<Shared>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter family with one label.
fn counters(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for &(l, v) in values {
        ConstCounter::new(v).encode(family.encode_family(&[(label, l)])?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let shared = &*self.0;
        let l = &shared.locks;
        let keys = count_keys(shared);
        gauge(
            &mut e,
            "redlockd_locks_held",
            "Live keys whose value a lock grant stored (granted and not yet released, deleted, overwritten or expired).",
            keys.locks as i64,
        )?;
        counters(
            &mut e,
            "redlockd_lock_acquire",
            "Lock acquire attempts: granted, busy (held by another token), refused (restart delay, maxmemory, disk error), timeout (a blocking acquire's WAIT ended).",
            "result",
            &[
                ("granted", l.granted.load(Relaxed)),
                ("busy", l.busy.load(Relaxed)),
                ("refused", l.refused.load(Relaxed)),
                ("timeout", l.timeout.load(Relaxed)),
            ],
        )?;
        gauge(
            &mut e,
            "redlockd_lock_waiters",
            "Clients blocked in LOCK.ACQUIRE or SEM.ACQUIRE with WAIT.",
            l.waiters.load(Relaxed) as i64,
        )?;
        let (sum, count, buckets) = l.wait_histogram();
        e.encode_descriptor(
            "redlockd_lock_wait_seconds",
            "How long blocking acquires (WAIT) waited, granted or not.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        counters(
            &mut e,
            "redlockd_lock_release",
            "Lock release attempts: released, not_owner (held by another token), missing (no such key).",
            "result",
            &[
                ("released", l.released.load(Relaxed)),
                ("not_owner", l.not_owner.load(Relaxed)),
                ("missing", l.missing.load(Relaxed)),
            ],
        )?;
        counter(
            &mut e,
            "redlockd_lock_expired_while_held",
            "Held locks removed because their deadline passed before anyone released them.",
            l.expired_while_held.load(Relaxed),
        )?;
        counter(
            &mut e,
            "redlockd_fence_rejected",
            "Fenced writes (FENCE.SET/FENCE.INCRBY) refused for a stale token.",
            l.fence_rejected.load(Relaxed),
        )?;
        let (sum, count, buckets) = l.hold_histogram();
        e.encode_descriptor(
            "redlockd_lock_hold_seconds",
            "How long released locks were held (grant to release; releases whose grant time was known).",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        let totals = stats::totals();
        // Subcommands are counted apart, named as INFO commandstats names them (config|get).
        let names: Vec<(std::borrow::Cow<'static, str>, u64)> = (0..totals.calls.len())
            .filter(|&i| totals.calls[i] > 0)
            .map(|i| (stat_name(i), totals.calls[i]))
            .collect();
        let calls: Vec<(&str, u64)> = names.iter().map(|(n, c)| (n.as_ref(), *c)).collect();
        counters(
            &mut e,
            "redlockd_commands",
            "Commands executed, by command.",
            "cmd",
            &calls,
        )?;
        counter(
            &mut e,
            "redlockd_commands_processed",
            "Commands processed (including refused ones).",
            totals.commands,
        )?;
        gauge(
            &mut e,
            "redlockd_connected_clients",
            "Client connections open now.",
            shared.clients.count() as i64,
        )?;
        counter(
            &mut e,
            "redlockd_connections_received",
            "Client connections accepted since start.",
            shared.counters.connections_received.load(Relaxed),
        )?;
        counter(
            &mut e,
            "redlockd_connections_rejected",
            "Client connections refused (maxclients).",
            shared.counters.rejected_connections.load(Relaxed),
        )?;
        let mut family = e.encode_descriptor("redlockd_keys", "Live keys, by database.", None, MetricType::Gauge)?;
        for (db, n) in keys.keys.iter().enumerate() {
            let db = db.to_string();
            ConstGauge::new(*n as i64).encode(family.encode_family(&[("db", db.as_str())])?)?;
        }
        counter(
            &mut e,
            "redlockd_expired_keys",
            "Keys removed because their deadline passed.",
            expired_keys(shared),
        )?;
        gauge(
            &mut e,
            "redlockd_used_memory_bytes",
            "Bytes allocated by the server.",
            memory::used() as i64,
        )?;
        gauge(
            &mut e,
            "redlockd_maxmemory_bytes",
            "The maxmemory limit (0 = none).",
            Settings::get(&shared.settings.maxmemory) as i64,
        )?;
        let aof = shared.aof.as_ref();
        gauge(
            &mut e,
            "redlockd_aof_enabled",
            "1 when the append-only file is on.",
            aof.is_some() as i64,
        )?;
        gauge(
            &mut e,
            "redlockd_aof_last_write_ok",
            "1 unless the last append-only file write failed.",
            aof.is_none_or(|a| a.write_error().is_none()) as i64,
        )?;
        gauge(
            &mut e,
            "redlockd_aof_size_bytes",
            "Size of the append-only file (0 when off).",
            aof.map_or(0, |a| a.stats.current_size.load(Relaxed)) as i64,
        )?;
        gauge(
            &mut e,
            "redlockd_ready",
            "1 when the server accepts writes (see /readyz).",
            readiness(shared).is_ok() as i64,
        )?;
        if let Some(group) = shared.group.get() {
            group_metrics(&mut e, group)?;
        }
        gauge(
            &mut e,
            "redlockd_uptime_seconds",
            "Seconds since the server started.",
            shared.started.elapsed().as_secs() as i64,
        )?;
        Ok(())
    }
}

/// A replicated group member's view: role, term, log indexes, and on the
/// leader each follower's lag in log entries.
fn group_metrics(e: &mut DescriptorEncoder, group: &crate::group::Group) -> std::fmt::Result {
    let m = group.metrics();
    let (leader, term) = group.leader();
    gauge(
        e,
        "redlockd_group_leader",
        "1 on the group's leader, 0 on a follower.",
        (leader == Some(group.id)) as i64,
    )?;
    gauge(
        e,
        "redlockd_group_leader_id",
        "The leader's raft id (0: none known).",
        leader.unwrap_or(0) as i64,
    )?;
    gauge(e, "redlockd_group_term", "The raft term.", term as i64)?;
    let last = m.last_log_index.unwrap_or(0);
    gauge(
        e,
        "redlockd_group_last_log_index",
        "The last log index this node holds.",
        last as i64,
    )?;
    gauge(
        e,
        "redlockd_group_applied_index",
        "The last log index applied here.",
        m.last_applied.map_or(0, |l| l.index) as i64,
    )?;
    if let Some(replication) = &m.replication {
        let mut family = e.encode_descriptor(
            "redlockd_group_follower_lag_entries",
            "On the leader: log entries each follower is behind.",
            None,
            MetricType::Gauge,
        )?;
        for (id, matched) in replication.iter().filter(|(id, _)| **id != group.id) {
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            let id = id.to_string();
            ConstGauge::new(lag as i64).encode(family.encode_family(&[("follower", id.as_str())])?)?;
        }
    }
    Ok(())
}

/// Append `s` to `out` as a JSON string. Client bytes are made text by
/// lossy UTF-8 (an invalid sequence becomes U+FFFD); `<`, `>` and `&` are
/// escaped too, so the JSON is safe even if someone serves it as HTML.
pub fn json_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::json_str;

    #[test]
    fn json_strings_escape_markup_and_invalid_bytes() {
        let mut s = String::new();
        json_str(&mut s, b"<img src=x onerror=\"a\\b\">\n\x01\xff");
        assert_eq!(
            s,
            r#""\u003cimg src=x onerror=\"a\\b\"\u003e\n\u0001\u{fffd}""#.replace("\\u{fffd}", "\u{fffd}")
        );
    }
}
