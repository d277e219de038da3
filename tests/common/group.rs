//! A replicated group of real redlockd nodes on loopback, for tests:
//! start N nodes (each with its own peer list, so that a test can route a
//! link through a proxy), stop, kill -9, pause and restart them by id, and
//! find the leader.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Raw, Server, free_port};

/// Ports and ids of a group to be started.
pub struct Plan {
    pub ids: Vec<u64>,
    pub raft_ports: Vec<u16>,
    pub client_ports: Vec<u16>,
}

impl Plan {
    /// Members 1..=n on free loopback ports.
    pub fn new(n: usize) -> Plan {
        Plan {
            ids: (1..=n as u64).collect(),
            raft_ports: (0..n).map(|_| free_port()).collect(),
            client_ports: (0..n).map(|_| free_port()).collect(),
        }
    }

    /// `--raft-peers` with every member reached directly.
    pub fn peers(&self) -> String {
        self.ids
            .iter()
            .zip(&self.raft_ports)
            .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub struct Node {
    pub id: u64,
    pub port: u16,
    pub raft_port: u16,
    pub dir: PathBuf,
    pub peers: String,
    extra: Vec<String>,
    server: Option<Server>,
}

impl Node {
    fn start(&mut self) {
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--log-level".into(),
            "warning".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--raft-id".into(),
            self.id.to_string(),
            "--raft-port".into(),
            self.raft_port.to_string(),
            "--raft-peers".into(),
            self.peers.clone(),
        ];
        args.extend(self.extra.iter().cloned());
        // Logs go to the node's directory (under faults openraft logs a
        // lot); a restart right after a kill may find a port not yet free.
        for _ in 0..50 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("node.log"))
                .expect("node log");
            let mut cmd = Server::command();
            cmd.args(&args).stderr(log);
            match Server::launch(cmd) {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!(
            "node {} did not start: see {}",
            self.id,
            self.dir.join("node.log").display()
        );
    }

    pub fn is_up(&self) -> bool {
        self.server.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One field of INFO replication (`raft_leader_id`, `role`, ...).
    pub fn info_field(&self, field: &str) -> Option<String> {
        let text = self.raw().cmd_str(&["INFO", "replication"]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
    }

    /// One field of RAFT.INFO (`applied`, `digest`, `members`, ...).
    pub fn raft_field(&self, field: &str) -> Option<String> {
        let text = self.raw().cmd_str(&["RAFT.INFO"]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
    }
}

pub struct Group {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Group {
    /// N founding members reaching each other directly; `extra` flags for all.
    pub fn start(n: usize, extra: &[&str]) -> Group {
        let plan = Plan::new(n);
        let peers = vec![plan.peers(); n];
        Group::launch(&plan, &peers, extra)
    }

    /// Start the members of `plan`, node i with `peers[i]` as its
    /// `--raft-peers` (e.g. through proxies).
    pub fn launch(plan: &Plan, peers: &[String], extra: &[&str]) -> Group {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<Node> = plan
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Node {
                id,
                port: plan.client_ports[i],
                raft_port: plan.raft_ports[i],
                dir: dir.path().join(format!("n{id}")),
                peers: peers[i].clone(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                server: None,
            })
            .collect();
        for n in &mut nodes {
            std::fs::create_dir_all(&n.dir).expect("node dir");
            n.start();
        }
        Group { nodes, _dir: dir }
    }

    /// Start a node that is not a founding member (its id is not in
    /// `peers`), to be added with RAFT.ADD; its index in `nodes`.
    pub fn start_extra(&mut self, id: u64, peers: &str, extra: &[&str]) -> usize {
        let dir = self._dir.path().join(format!("n{id}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            id,
            port: free_port(),
            raft_port: free_port(),
            dir,
            peers: peers.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            server: None,
        };
        node.start();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("no such node")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("no such node")
    }

    /// SIGKILL node `id`, as a crash would.
    pub fn kill9(&mut self, id: u64) {
        if let Some(mut s) = self.node_mut(id).server.take() {
            s.kill9();
        }
    }

    /// SIGSTOP / SIGCONT node `id`.
    pub fn pause(&self, id: u64, paused: bool) {
        if let Some(pid) = self.node(id).pid() {
            let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on a child process we started.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// Start node `id` again with its dir and ports.
    pub fn restart(&mut self, id: u64) {
        let node = self.node_mut(id);
        assert!(node.server.is_none(), "node {id} is running");
        node.start();
    }

    /// The leader id, if the running nodes agree on one that says it is master.
    pub fn leader(&self) -> Option<u64> {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.is_up()).collect();
        let mut leader = None;
        for n in &live {
            let id: i64 = n.info_field("raft_leader_id")?.parse().ok()?;
            if id < 0 || leader.is_some_and(|l| l != id as u64) {
                return None;
            }
            leader = Some(id as u64);
        }
        let l = leader?;
        let node = live.iter().find(|n| n.id == l)?;
        (node.info_field("role")?.as_str() == "master").then_some(l)
    }

    /// Wait (bounded) for the running nodes to agree on a leader.
    pub fn wait_leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (bounded) until every running node has applied the same index
    /// and holds the same state digest; that digest.
    pub fn wait_converged(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<(Option<String>, Option<String>)> = self
                .nodes
                .iter()
                .filter(|n| n.is_up())
                .map(|n| (n.raft_field("applied"), n.raft_field("digest")))
                .collect();
            if states.windows(2).all(|w| w[0] == w[1])
                && let Some((_, Some(digest))) = states.first()
            {
                return digest.clone();
            }
            assert!(Instant::now() < deadline, "nodes did not converge: {states:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
