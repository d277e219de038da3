//! Every server flag, spelled as redis-server spells it, and the runtime
//! settings that `CONFIG SET` may change.

use std::sync::atomic::{AtomicU64, Ordering};

use clap::Args;

/// Flags of the server (also accepted with redis-server's `--name value` form).
#[derive(Args, Debug, Clone)]
pub struct ServerConfig {
    /// TCP port to listen on; 0 picks a free port (the chosen one is logged
    /// and printed as `redlockd listening on ADDR`).
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Number of databases (SELECT 0..N-1).
    #[arg(long, default_value_t = 16)]
    pub databases: usize,
    /// Most simultaneous clients; the next one gets an error and is closed.
    #[arg(long, default_value_t = 10_000)]
    pub maxclients: u64,
    /// Close a client idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Log level: redis-server's debug|verbose|notice|warning, or a tracing
    /// filter (`RUST_LOG` wins when set).
    #[arg(long, default_value = "notice")]
    pub log_level: String,
    /// Largest bulk string a client may send (redis-server units: 512mb, 1gb).
    #[arg(long, default_value = "512mb", value_parser = parse_memory)]
    pub proto_max_bulk_len: u64,
    /// Largest query buffer of one client before it is disconnected.
    #[arg(long, default_value = "1gb", value_parser = parse_memory)]
    pub client_query_buffer_limit: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 6379,
            bind: "127.0.0.1".into(),
            databases: 16,
            maxclients: 10_000,
            timeout: 0,
            log_level: "notice".into(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
        }
    }
}

/// Parse a size the way redis-server does: `100`, `1k` (1000), `1kb` (1024),
/// `1m`, `1mb`, `1g`, `1gb`, case-insensitive.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("invalid size unit in '{s}'")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("size '{s}' is too large"))
}

/// The settings `CONFIG SET` can change while the server runs.
pub struct Settings {
    pub maxclients: AtomicU64,
    pub timeout: AtomicU64,
    pub proto_max_bulk_len: AtomicU64,
    pub client_query_buffer_limit: AtomicU64,
}

impl Settings {
    pub fn new(cfg: &ServerConfig) -> Self {
        Settings {
            maxclients: AtomicU64::new(cfg.maxclients),
            timeout: AtomicU64::new(cfg.timeout),
            proto_max_bulk_len: AtomicU64::new(cfg.proto_max_bulk_len),
            client_query_buffer_limit: AtomicU64::new(cfg.client_query_buffer_limit),
        }
    }

    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_as_redis() {
        assert_eq!(parse_memory("512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("1k"), Ok(1000));
        assert_eq!(parse_memory("1KB"), Ok(1024));
        assert_eq!(parse_memory("7"), Ok(7));
        assert!(parse_memory("1xb").is_err());
        assert!(parse_memory("").is_err());
    }
}
