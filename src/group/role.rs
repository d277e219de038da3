//! How a group shows itself to clients: ROLE, INFO replication, the
//! SENTINEL commands that HA-aware clients (redis-py's `Sentinel`, ...) use
//! to find the master — every node answers as a sentinel watching one
//! master, the group's leader, named `--raft-name` — and the RAFT.*
//! membership commands.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use openraft::BasicNode;

use super::{Group, Metrics};
use crate::commands::ClientState;
use crate::protocol::ReplyBuf;

/// The node's replication offset: its last applied log index.
fn offset(m: &Metrics) -> u64 {
    m.last_applied.map_or(0, |l| l.index)
}

/// The commit index as this node knows it: on the leader, the highest
/// index a majority of voters has; elsewhere its applied index.
fn commit_index(m: &Metrics) -> u64 {
    let Some(replication) = &m.replication else {
        return offset(m);
    };
    let voters: Vec<u64> = m.membership_config.voter_ids().collect();
    let mut matched: Vec<u64> = voters
        .iter()
        .map(|id| {
            if *id == m.id {
                m.last_log_index.unwrap_or(0)
            } else {
                replication.get(id).and_then(|l| l.map(|l| l.index)).unwrap_or(0)
            }
        })
        .collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched.get(voters.len() / 2).copied().unwrap_or(0).max(offset(m))
}

fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

impl Group {
    /// The members (voters and learners) other than this node.
    fn others(&self, m: &Metrics) -> Vec<u64> {
        m.membership_config
            .nodes()
            .map(|(id, _)| *id)
            .filter(|&id| id != self.id)
            .collect()
    }

    fn members_text(m: &Metrics) -> String {
        let ids: Vec<String> = m.membership_config.voter_ids().map(|id| id.to_string()).collect();
        ids.join(",")
    }

    /// INFO's "# Replication" section.
    pub fn replication_info(&self) -> String {
        let m = self.metrics();
        let mut out = String::from("# Replication\r\n");
        let leader = m.current_leader;
        if leader == Some(self.id) {
            let replicas: Vec<(u64, String)> = self
                .others(&m)
                .into_iter()
                .filter_map(|id| self.client_addr(id).map(|a| (id, a)))
                .collect();
            let _ = write!(out, "role:master\r\nconnected_slaves:{}\r\n", replicas.len());
            for (i, (id, addr)) in replicas.iter().enumerate() {
                let (host, port) = split_addr(addr);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).copied().flatten())
                    .map_or(0, |l| l.index);
                let _ = write!(
                    out,
                    "slave{i}:ip={host},port={port},state=online,offset={matched},lag=0\r\n"
                );
            }
            let _ = write!(out, "master_failover_state:no-failover\r\n");
        } else {
            let master = leader.and_then(|id| self.client_addr(id));
            let (host, port) = master.as_deref().map(split_addr).unwrap_or_default();
            let up = if master.is_some() { "up" } else { "down" };
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{up}\r\nmaster_last_io_seconds_ago:0\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:{o}\r\nslave_repl_offset:{o}\r\nslave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n",
                o = offset(&m)
            );
        }
        let _ = write!(
            out,
            "master_replid:{}\r\nmaster_repl_offset:{}\r\nraft_id:{}\r\nraft_leader_id:{}\r\nraft_term:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_members:{}\r\nraft_last_snapshot_index:{}\r\n",
            self.shared.run_id,
            offset(&m),
            self.id,
            leader.map_or(-1, |l| l as i64),
            m.current_term,
            commit_index(&m),
            offset(&m),
            Self::members_text(&m),
            m.snapshot.map_or(-1, |s| s.index as i64),
        );
        out
    }

    /// The leader's client address, asking it over the group link if this
    /// node has not learnt it yet.
    async fn leader_client_addr(&self, m: &Metrics) -> Option<(u64, String)> {
        let id = m.current_leader?;
        if let Some(a) = self.client_addr(id) {
            return Some((id, a));
        }
        super::network::hello(self, id).await.map(|a| (id, a))
    }
}

/// A sentinel state: a map in RESP3, a flat array in RESP2, as Sentinel sends it.
fn flat(out: &mut ReplyBuf, fields: &[(&str, String)]) {
    out.map(fields.len());
    for (k, v) in fields {
        out.bulk_str(k);
        out.bulk_str(v);
    }
}

fn master_fields(group: &Group, m: &Metrics, addr: &str) -> Vec<(&'static str, String)> {
    let (host, port) = split_addr(addr);
    let others = group.others(m).len();
    vec![
        ("name", group.config.name.clone()),
        ("ip", host),
        ("port", port.to_string()),
        ("runid", String::new()),
        ("flags", "master".into()),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", "0".into()),
        ("last-ping-reply", "0".into()),
        ("down-after-milliseconds", group.config.election_ms.to_string()),
        ("info-refresh", "0".into()),
        ("role-reported", "master".into()),
        ("role-reported-time", "0".into()),
        ("config-epoch", m.current_term.to_string()),
        ("num-slaves", others.to_string()),
        ("num-other-sentinels", others.to_string()),
        ("quorum", (m.membership_config.voter_ids().count() / 2 + 1).to_string()),
        (
            "failover-timeout",
            group.config.election_ms.saturating_mul(2).to_string(),
        ),
        ("parallel-syncs", "1".into()),
    ]
}

/// Serve ROLE, SENTINEL and RAFT.* (the forward module routes them here).
pub async fn run(group: &Arc<Group>, _client: &mut ClientState, out: &mut ReplyBuf, args: &[Vec<u8>]) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let m = group.metrics();
    match name.as_str() {
        "role" => role(group, &m, out).await,
        "sentinel" => sentinel(group, &m, out, args).await,
        "raft.info" => raft_info(group, &m, out),
        "raft.add" => raft_add(group, out, args).await,
        "raft.remove" => raft_remove(group, out, args).await,
        _ => out.error("ERR unknown group command"),
    }
}

async fn role(group: &Group, m: &Metrics, out: &mut ReplyBuf) {
    if m.current_leader == Some(group.id) {
        let replicas: Vec<(u64, String)> = group
            .others(m)
            .into_iter()
            .filter_map(|id| group.client_addr(id).map(|a| (id, a)))
            .collect();
        out.array(3);
        out.bulk_str("master");
        out.int(offset(m) as i64);
        out.array(replicas.len());
        for (id, addr) in replicas {
            let (host, port) = split_addr(&addr);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map_or(0, |l| l.index);
            out.array(3);
            out.bulk_str(&host);
            out.bulk_str(&port.to_string());
            out.bulk_str(&matched.to_string());
        }
        return;
    }
    let master = group.leader_client_addr(m).await;
    let (host, port) = master.as_ref().map(|(_, a)| split_addr(a)).unwrap_or_default();
    out.array(5);
    out.bulk_str("slave");
    out.bulk_str(&host);
    out.int(port as i64);
    out.bulk_str(if master.is_some() { "connected" } else { "connect" });
    out.int(offset(m) as i64);
}

async fn sentinel(group: &Group, m: &Metrics, out: &mut ReplyBuf, args: &[Vec<u8>]) {
    let sub = args.get(1).map(|a| String::from_utf8_lossy(a).to_ascii_lowercase());
    let named = |i: usize| args.get(i).is_some_and(|n| n[..] == *group.config.name.as_bytes());
    let no_such = "ERR No such master with that name";
    let master = group.leader_client_addr(m).await;
    match sub.as_deref() {
        Some("get-master-addr-by-name") if args.len() == 3 => match master.filter(|_| named(2)) {
            Some((_, addr)) => {
                let (host, port) = split_addr(&addr);
                out.array(2);
                out.bulk_str(&host);
                out.bulk_str(&port.to_string());
            }
            None => out.null_array(),
        },
        Some("masters") if args.len() == 2 => match master {
            Some((_, addr)) => {
                out.array(1);
                flat(out, &master_fields(group, m, &addr));
            }
            None => out.array(0),
        },
        Some("master") if args.len() == 3 => match master.filter(|_| named(2)) {
            Some((_, addr)) => flat(out, &master_fields(group, m, &addr)),
            None => out.error(no_such),
        },
        Some("replicas" | "slaves") if args.len() == 3 => {
            let Some((leader, leader_addr)) = master.filter(|_| named(2)) else {
                return out.error(no_such);
            };
            let (mhost, mport) = split_addr(&leader_addr);
            let replicas: Vec<(u64, String)> = m
                .membership_config
                .nodes()
                .map(|(id, _)| *id)
                .filter(|&id| id != leader)
                .filter_map(|id| group.client_addr(id).map(|a| (id, a)))
                .collect();
            out.array(replicas.len());
            for (_, addr) in replicas {
                let (host, port) = split_addr(&addr);
                flat(
                    out,
                    &[
                        ("name", addr.clone()),
                        ("ip", host),
                        ("port", port.to_string()),
                        ("runid", String::new()),
                        ("flags", "slave".into()),
                        ("master-link-down-time", "0".into()),
                        ("master-link-status", "ok".into()),
                        ("master-host", mhost.clone()),
                        ("master-port", mport.to_string()),
                        ("slave-priority", "100".into()),
                        ("slave-repl-offset", offset(m).to_string()),
                    ],
                );
            }
        }
        Some("sentinels") if args.len() == 3 => {
            if !named(2) {
                return out.error(no_such);
            }
            let others: Vec<(u64, String)> = group
                .others(m)
                .into_iter()
                .filter_map(|id| group.client_addr(id).map(|a| (id, a)))
                .collect();
            out.array(others.len());
            for (id, addr) in others {
                let (host, port) = split_addr(&addr);
                flat(
                    out,
                    &[
                        ("name", format!("raft-{id}")),
                        ("ip", host),
                        ("port", port.to_string()),
                        ("runid", String::new()),
                        ("flags", "sentinel".into()),
                        ("voted-leader", "?".into()),
                        ("voted-leader-epoch", "0".into()),
                    ],
                );
            }
        }
        _ => out.error(&format!(
            "ERR Unknown sentinel subcommand or wrong number of arguments for '{}'",
            sub.unwrap_or_default()
        )),
    }
}

/// (live keys, digest) of this node's state: the digest is a sum of
/// one hash per key (database, key, value, deadline, fence), the fence
/// counter and a hash of the coordination state's snapshot records
/// (lock options, lock-delays, semaphore holders: sorted), so it does not
/// depend on where keys sit in memory, and two nodes that applied the same
/// log give the same one.
fn state_digest(group: &Group) -> (usize, u64) {
    let keyspace = &group.shared.keyspace;
    let (now, _) = group.time.applied();
    let (mut keys, mut digest) = (
        0usize,
        xxhash_rust::xxh3::xxh3_64(&keyspace.fences.current().to_le_bytes()),
    );
    for (i, db) in keyspace.dbs.iter().enumerate() {
        for shard in 0..db.shard_count() {
            db.for_each_in_shard(shard, now, |key, e| {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                h.update(&(i as u64).to_le_bytes());
                h.update(&(key.len() as u64).to_le_bytes());
                h.update(key);
                h.update(e.value.type_name().as_bytes());
                match &e.value {
                    crate::store::Value::Str(v) => h.update(v),
                    container => h.update(&crate::persist::aof::container_payload(container)),
                }
                h.update(&e.deadline().to_le_bytes());
                h.update(&e.fence().to_le_bytes());
                digest = digest.wrapping_add(h.digest());
                keys += 1;
            });
        }
    }
    let mut coord = Vec::new();
    group.shared.coord.snapshot_records(now, &mut coord);
    digest = digest.wrapping_add(xxhash_rust::xxh3::xxh3_64(&coord));
    (keys, digest)
}

fn raft_info(group: &Group, m: &Metrics, out: &mut ReplyBuf) {
    let (keys, digest) = state_digest(group);
    let text = format!(
        "id:{}\r\nstate:{:?}\r\nleader:{}\r\nterm:{}\r\ncommit:{}\r\napplied:{}\r\nlast_log:{}\r\nmembers:{}\r\nlearners:{}\r\nlast_snapshot:{}\r\npurged:{}\r\nkeys:{}\r\ndigest:{:016x}\r\n",
        group.id,
        m.state,
        m.current_leader.map_or(-1, |l| l as i64),
        m.current_term,
        commit_index(m),
        offset(m),
        m.last_log_index.map_or(-1, |i| i as i64),
        Group::members_text(m),
        m.membership_config
            .membership()
            .learner_ids()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        m.snapshot.map_or(-1, |s| s.index as i64),
        m.purged.map_or(-1, |s| s.index as i64),
        keys,
        digest,
    );
    out.bulk(text.as_bytes());
}

fn parse_id(a: &[u8]) -> Option<u64> {
    std::str::from_utf8(a).ok()?.parse().ok().filter(|&i| i != 0)
}

/// Run a membership change on the leader (this node must be it).
fn not_leader(group: &Group, m: &Metrics) -> Option<String> {
    match m.current_leader {
        Some(l) if l == group.id => None,
        Some(l) => Some(format!(
            "ERR not the leader: send RAFT.ADD/RAFT.REMOVE to the leader ({})",
            group.client_addr(l).unwrap_or_else(|| format!("member {l}"))
        )),
        None => Some("TRYAGAIN no leader elected".into()),
    }
}

async fn raft_add(group: &Group, out: &mut ReplyBuf, args: &[Vec<u8>]) {
    let (Some(id), Some(addr)) = (args.get(1).and_then(|a| parse_id(a)), args.get(2)) else {
        return out.error("ERR usage: RAFT.ADD id host:raftport");
    };
    if args.len() != 3 {
        return out.error("ERR usage: RAFT.ADD id host:raftport");
    }
    if let Some(e) = not_leader(group, &group.metrics()) {
        return out.error(&e);
    }
    let addr = String::from_utf8_lossy(addr).to_string();
    // As a learner first, waiting until it has caught up; then as a voter
    // (openraft changes the voters through joint consensus).
    if let Err(e) = group.raft.add_learner(id, BasicNode::new(addr), true).await {
        return out.error(&format!("ERR raft add learner: {e}"));
    }
    let mut voters: BTreeSet<u64> = group.metrics().membership_config.voter_ids().collect();
    voters.insert(id);
    match group.raft.change_membership(voters, false).await {
        Ok(_) => out.ok(),
        Err(e) => out.error(&format!("ERR raft change membership: {e}")),
    }
}

async fn raft_remove(group: &Group, out: &mut ReplyBuf, args: &[Vec<u8>]) {
    let Some(id) = args.get(1).and_then(|a| parse_id(a)).filter(|_| args.len() == 2) else {
        return out.error("ERR usage: RAFT.REMOVE id");
    };
    let m = group.metrics();
    if let Some(e) = not_leader(group, &m) {
        return out.error(&e);
    }
    let voters: BTreeSet<u64> = m.membership_config.voter_ids().filter(|&v| v != id).collect();
    if voters.is_empty() {
        return out.error("ERR cannot remove the last member");
    }
    let nodes: BTreeMap<u64, ()> = m.membership_config.nodes().map(|(i, _)| (*i, ())).collect();
    if !nodes.contains_key(&id) {
        return out.error("ERR no such member");
    }
    match group.raft.change_membership(voters, false).await {
        Ok(_) => out.ok(),
        Err(e) => out.error(&format!("ERR raft change membership: {e}")),
    }
}
