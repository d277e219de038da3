//! The group's settings, from the server flags: who the members are, where
//! this node reaches each of them, and openraft's timings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ServerConfig;

pub struct GroupConfig {
    pub id: u64,
    pub raft_port: u16,
    pub bind: String,
    /// How this node reaches each member (its own "hosts file"): the
    /// address given for it in `--raft-peers`, which may be a proxy.
    pub peers: BTreeMap<u64, String>,
    pub name: String,
    pub leader_wait: Duration,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_entries: u64,
    /// Where the log, the vote and the snapshot live (`<dir>/raft`).
    pub dir: PathBuf,
}

impl GroupConfig {
    /// The group settings, or None without `--raft-peers` (a single server).
    pub fn from_server(config: &ServerConfig) -> Result<Option<GroupConfig>, String> {
        if config.raft_peers.is_empty() {
            return Ok(None);
        }
        let peers = parse_peers(&config.raft_peers)?;
        if config.raft_id == 0 {
            return Err("--raft-peers needs --raft-id (a member id, not 0)".into());
        }
        // Group-wide client ids carry the member id in 16 bits (Group::client_id).
        if config.raft_id >= 1 << 16 {
            return Err("--raft-id must be below 65536".into());
        }
        if config.raft_port == 0 {
            return Err("--raft-peers needs --raft-port".into());
        }
        if config.raft_heartbeat_ms == 0 || config.raft_election_timeout_ms <= config.raft_heartbeat_ms {
            return Err("--raft-election-timeout-ms must exceed --raft-heartbeat-ms (> 0)".into());
        }
        Ok(Some(GroupConfig {
            id: config.raft_id,
            raft_port: config.raft_port,
            bind: config.bind.split_whitespace().next().unwrap_or("127.0.0.1").to_string(),
            peers,
            name: config.raft_name.clone(),
            leader_wait: Duration::from_millis(config.leader_wait_ms),
            heartbeat_ms: config.raft_heartbeat_ms,
            election_ms: config.raft_election_timeout_ms,
            snapshot_entries: config.raft_snapshot_entries.max(1),
            dir: config.dir.join("raft"),
        }))
    }

    /// Whether this node is one of the founding members (in `--raft-peers`):
    /// those form the group by themselves; any other node waits to be
    /// added with `RAFT.ADD`.
    pub fn founding(&self) -> bool {
        self.peers.contains_key(&self.id)
    }
}

/// `1@127.0.0.1:17001,2@127.0.0.1:17002,...`
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| format!("bad --raft-peers entry '{item}': expected id@host:port"))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|&i| i != 0)
            .ok_or_else(|| format!("bad member id in '{item}'"))?;
        if !addr.contains(':') {
            return Err(format!("bad address in '{item}': expected host:port"));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(format!("member {id} is listed twice in --raft-peers"));
        }
    }
    if peers.is_empty() {
        return Err("--raft-peers lists no member".into());
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_bad_entries() {
        let p = parse_peers("1@127.0.0.1:17001, 2@h:2").unwrap();
        assert_eq!(p[&1], "127.0.0.1:17001");
        assert_eq!(p[&2], "h:2");
        assert!(parse_peers("1@a:1,1@b:2").is_err());
        assert!(parse_peers("0@a:1").is_err());
        assert!(parse_peers("x").is_err());
        assert!(parse_peers("1@nohost").is_err());
    }
}
