//! Test helpers: start the real `redlockd` binary (and Debian's
//! `redis-server` for differential tests) on free loopback ports, talk to
//! them over raw sockets, and stop them on drop.

#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod group;

/// How long any single reply may take before a test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redlockd process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start with extra flags; `--port 0` and the announced address are
    /// handled here.
    pub fn start_with(args: &[&str]) -> Server {
        Server::spawn(0, args)
    }

    /// Start on a given port (to restart an instance where it was).
    pub fn start_on_port(port: u16) -> Server {
        Server::spawn(port, &[])
    }

    /// Start on a given port with extra flags.
    pub fn start_on_port_with(port: u16, args: &[&str]) -> Server {
        Server::spawn(port, args)
    }

    /// Start and expect the process to exit at once (bad configuration or
    /// data); its exit status and stderr.
    pub fn start_expecting_failure(args: &[&str]) -> (std::process::ExitStatus, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_redlockd"))
            .args(["--port", "0", "--log-level", "warning"])
            .args(args)
            .output()
            .expect("run redlockd");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn spawn(port: u16, args: &[&str]) -> Server {
        let mut cmd = Server::command();
        cmd.args(["--port", &port.to_string(), "--log-level", "warning"])
            .args(args)
            .stderr(Stdio::inherit());
        Server::launch(cmd).unwrap_or_else(|line| panic!("unexpected first line: {line:?}"))
    }

    /// The binary under test, to build a command line for [`Server::launch`].
    pub fn command() -> Command {
        Command::new(env!("CARGO_BIN_EXE_redlockd"))
    }

    /// Run `cmd` (redlockd's command line, possibly under a wrapper such as
    /// prlimit that execs it) and wait for the address it announces on
    /// stdout; what it printed instead if it did not start.
    pub fn launch(mut cmd: Command) -> Result<Server, String> {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start redlockd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(REPLY_TIMEOUT).unwrap_or_default();
        match line.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
            Some(port) => Ok(Server { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(line)
            }
        }
    }

    /// The process, for signals, piped stderr and exit checks.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait (bounded) for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; a small race is tolerated by retries).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Debian's redis-server, for differential tests; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Start with extra redis-server flags (`--maxmemory 1`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed for differential tests (scripts/test.sh installs it)");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken or failed: try another port
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut buf = [0u8; 7];
                    if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                        return RedisServer { child, port };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server");
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Encode a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A raw protocol connection: bytes in, whole reply frames out.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Send a command given as strings and return its reply's raw bytes.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(&args)
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_frame()
    }

    /// The reply as text, for readable assertions.
    pub fn cmd_str(&mut self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cmd(args)).into_owned()
    }

    /// Read exactly one reply frame (RESP2 or RESP3).
    pub fn read_frame(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if !self.buf.is_empty() {
                // RESP3 first; RESP2's null bulk and null array are not RESP3.
                let len = match redis_protocol::resp3::decode::complete::decode_range(&self.buf) {
                    Ok(found) => found.map(|(_, len)| len),
                    Err(_) => match redis_protocol::resp2::decode::decode_range(&self.buf) {
                        Ok(found) => found.map(|(_, len)| len),
                        Err(e) => panic!("undecodable reply {:?}: {e:?}", String::from_utf8_lossy(&self.buf)),
                    },
                };
                if let Some(len) = len {
                    return self.buf.drain(..len).collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no complete reply; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).expect("read reply");
            assert!(
                n > 0,
                "connection closed; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One frame, or whatever arrived before the server closed the connection.
    pub fn read_until_closed_or_frame(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(Some((_, len))) = redis_protocol::resp2::decode::decode_range(&self.buf) {
                return self.buf.drain(..len).collect();
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Read whatever arrives until the server closes the connection.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("connection not closed: {e}; have {:?}", String::from_utf8_lossy(&all)),
            }
        }
    }
}

/// One connection to redis-server and one to redlockd, driven in lockstep,
/// every frame compared byte for byte (a test may hold several, e.g. a
/// subscriber and a publisher, or a blocked client and its controller).
pub struct Pair {
    pub r: Raw,
    pub o: Raw,
}

impl Pair {
    pub fn new(redis: &RedisServer, ours: &Server) -> Pair {
        Pair {
            r: redis.raw(),
            o: ours.raw(),
        }
    }

    /// Send a command to both without reading anything.
    pub fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let bytes = encode(&args);
        self.r.send(&bytes);
        self.o.send(&bytes);
    }

    /// Read the next frame from each and compare them; ours.
    pub fn reply(&mut self, what: &str) -> Vec<u8> {
        let theirs = self.r.read_frame();
        let ours = self.o.read_frame();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{what} differs (left: redlockd, right: redis-server)"
        );
        ours
    }

    /// Send a command to both and compare their replies.
    pub fn check(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args);
        self.reply(&format!("reply to {args:?}"))
    }

    /// Send a command to both and compare the next `frames` frames (a
    /// multi-channel SUBSCRIBE answers once per channel).
    pub fn check_frames(&mut self, args: &[&str], frames: usize) {
        self.send(args);
        for i in 0..frames {
            self.reply(&format!("frame {i} after {args:?}"));
        }
    }

    /// Send a command to both, ignoring the replies (HELLO names the server).
    pub fn send_only(&mut self, args: &[&str]) {
        self.r.cmd(args);
        self.o.cmd(args);
    }
}

/// The same command sequence against redis-server and redlockd, replies
/// compared byte for byte.
pub struct Differential {
    pub redis: RedisServer,
    pub ours: Server,
    pub r: Raw,
    pub o: Raw,
}

impl Differential {
    pub fn new() -> Differential {
        let redis = RedisServer::start();
        let ours = Server::start();
        let r = redis.raw();
        let o = ours.raw();
        Differential { redis, ours, r, o }
    }

    /// Run one command on both; panic with both replies if they differ.
    pub fn check(&mut self, args: &[&str]) -> Vec<u8> {
        let theirs = self.r.cmd(args);
        let ours = self.o.cmd(args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "reply to {args:?} differs (left: redlockd, right: redis-server)"
        );
        ours
    }

    /// Run each command of a script.
    pub fn run(&mut self, script: &[&[&str]]) {
        for cmd in script {
            self.check(cmd);
        }
    }

    /// Raw bytes (possibly several or partial frames) to both; compare all
    /// replies that arrive until `frames` frames were read from each.
    pub fn check_raw(&mut self, bytes: &[u8], frames: usize) {
        self.r.send(bytes);
        self.o.send(bytes);
        for i in 0..frames {
            let theirs = self.r.read_frame();
            let ours = self.o.read_frame();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "reply {i} to {:?} differs (left: redlockd, right: redis-server)",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// Poll `f` until it returns true or `within` passes; true if it did.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small tmpfs mounted on a temporary directory (for disk-full tests),
/// unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount one of `size` (mount's syntax: "512k"); None, with the reason
    /// printed, when not root or the mount fails.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match mounted {
            Ok(s) if s.success() => Some(Tmpfs { dir }),
            other => {
                eprintln!("skipped: cannot mount a tmpfs: {other:?}");
                None
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy: detach it now, the kernel frees it when unused.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// BGREWRITEAOF on a server that has not rewritten its log yet, and wait
/// (bounded) until that first rewrite has finished.
pub fn rewrite_aof(c: &mut Raw) {
    assert_eq!(
        c.cmd_str(&["BGREWRITEAOF"]),
        "+Background append only file rewriting started\r\n"
    );
    assert!(eventually(Duration::from_secs(20), || {
        let info = c.cmd_str(&["INFO", "persistence"]);
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1")
    }));
}

/// An integer reply's value (`:N\r\n`), or a panic naming what came.
pub fn int(reply: &str) -> i64 {
    reply
        .strip_prefix(':')
        .and_then(|r| r.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

/// Fill a small disk under the append-only file of the server on `port`:
/// `writes` SETs of 8000-byte values sent from a connection that never
/// reads its replies (the write that meets the full disk waits for space
/// before it replies). The connection, to be kept open while the disk is full.
pub fn fill_disk(port: u16, writes: usize) -> TcpStream {
    let mut writer = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let value = "v".repeat(8000);
    for i in 0..writes {
        let key = format!("fill{i}");
        writer
            .write_all(&encode(&[b"SET", key.as_bytes(), value.as_bytes()]))
            .expect("send");
    }
    writer
}
