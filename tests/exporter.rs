//! Debian's prometheus-redis-exporter (oliver006/redis_exporter) scraping
//! redlockd: what operators already run against Redis must work unchanged,
//! with every command it sends answered without an error.

mod common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, free_port};

/// The exporter process, killed on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    fn start(redis_port: u16) -> Exporter {
        let port = free_port();
        let child = Command::new("prometheus-redis-exporter")
            .args([
                "--redis.addr",
                &format!("redis://127.0.0.1:{redis_port}"),
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-redis-exporter must be installed (scripts/test.sh installs it)");
        Exporter { child, port }
    }

    /// GET /metrics, retried (bounded) until the exporter listens.
    fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.get("/metrics") {
                Some(body) => return body,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => panic!("the exporter did not answer on port {}", self.port),
            }
        }
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200").then(|| body.to_string())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `name` (with its labels, as printed).
fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

#[test]
fn redis_exporter_scrapes_redlockd() {
    let server = Server::start();
    let mut c = server.raw();
    for i in 0..5 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let exporter = Exporter::start(server.port);
    let metrics = exporter.scrape();
    let want = |name: &str| series(&metrics, name).unwrap_or_else(|| panic!("no {name} in:\n{metrics}"));
    assert_eq!(want("redis_up"), 1.0);
    assert_eq!(want("redis_commands_total{cmd=\"set\"}"), 5.0);
    assert_eq!(want("redis_db_keys{db=\"db0\"}"), 5.0);
    assert!(want("redis_connected_clients") >= 1.0);
    assert!(want("redis_memory_used_bytes") > 0.0);
    assert_eq!(want("redis_exporter_last_scrape_error{err=\"\"}"), 0.0);
    // Everything the exporter asked was answered: no error reply at all.
    let errors = c.cmd_str(&["INFO", "errorstats"]);
    assert!(!errors.contains("errorstat_"), "{errors}");
    // The exporter names subcommands as Redis does; it reads INFO before
    // SLOWLOG and LATENCY, so only what it sent before INFO is counted.
    assert!(want("redis_commands_total{cmd=\"config|get\"}") >= 1.0);
    assert!(want("redis_commands_total{cmd=\"client|setname\"}") >= 1.0);
}
