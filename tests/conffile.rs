//! The config file (`redlockd FILE [flags]`): directives reach CONFIG GET,
//! the command line overrides them, bad files stop the server naming the
//! line, CONFIG REWRITE writes changes back, and quoting reads as
//! redis-server reads it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Differential, Raw, Server, free_port};

/// How long a process refusing its config file may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// Start redlockd from a config file (in `cwd`); killed on drop.
fn start_conf(cwd: &Path, file: &str, args: &[&str]) -> Server {
    let mut cmd = Server::command();
    cmd.arg(file).args(args).current_dir(cwd).stderr(Stdio::inherit());
    Server::launch(cmd).unwrap_or_else(|line| panic!("unexpected first line: {line:?}"))
}

/// Run `program file`, expecting it to exit by itself within [`EXIT_WITHIN`]:
/// its status and stderr.
fn start_expecting_exit(program: &str, cwd: &Path, file: &str) -> (ExitStatus, String) {
    let mut child = Command::new(program)
        .arg(file)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let deadline = Instant::now() + EXIT_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {file} still running after {EXIT_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

/// Debian's redis-server started from a config file, killed on drop.
struct RedisConf {
    child: Child,
    port: u16,
}

impl RedisConf {
    /// `body` is the file without its port line; a free port is added.
    fn start(dir: &Path, body: &str) -> RedisConf {
        for _ in 0..5 {
            let port = free_port();
            let file = dir.join("redis.conf");
            std::fs::write(&file, format!("port {port}\nbind 127.0.0.1\n{body}")).expect("write");
            let mut child = Command::new("redis-server")
                .arg(&file)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed for differential tests");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another one
                }
                // Any reply to PING (-NOAUTH with a password) means it is up.
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut byte = [0u8; 1];
                    if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut byte).is_ok() {
                        return RedisConf { child, port };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server from a config file");
    }
}

impl Drop for RedisConf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CONFIG GET of one parameter: its value (the reply must name it once).
fn config_get(c: &mut Raw, name: &str) -> String {
    let reply = c.cmd(&["CONFIG", "GET", name]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let parts: Vec<&str> = text.split("\r\n").collect();
    assert!(
        parts.len() == 6 && parts[0] == "*2" && parts[2].eq_ignore_ascii_case(name),
        "CONFIG GET {name}: {text:?}"
    );
    parts[4].to_string()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write config file");
}

#[test]
fn file_values_and_includes_reach_config_get() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data dir");
    std::fs::create_dir(&data).expect("mkdir");
    write(
        tmp.path(),
        "main.conf",
        &format!(
            "# redlockd test file\n\nport 0\n   # an indented comment\nrequirepass \"se\\\"cr et\"\nappendonly yes\n\
             dir \"{}\"\n\t\ninclude extra.conf\ntimeout 9\n",
            data.display()
        ),
    );
    // Included relative to the working directory; main.conf's later
    // timeout line overrides this file's.
    write(
        tmp.path(),
        "extra.conf",
        "maxclients 123\ntimeout 1\nloglevel warning\n",
    );
    let server = start_conf(tmp.path(), "main.conf", &[]);
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "port"]),
        "-NOAUTH Authentication required.\r\n"
    );
    assert!(c.cmd_str(&["AUTH", "wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(c.cmd_str(&["AUTH", "se\"cr et"]), "+OK\r\n");
    assert_eq!(config_get(&mut c, "port"), server.port.to_string());
    assert_eq!(config_get(&mut c, "requirepass"), "se\"cr et");
    assert_eq!(config_get(&mut c, "appendonly"), "yes");
    assert_eq!(config_get(&mut c, "dir"), data.display().to_string());
    assert_eq!(config_get(&mut c, "maxclients"), "123");
    assert_eq!(config_get(&mut c, "timeout"), "9");
    assert_eq!(config_get(&mut c, "loglevel"), "warning");
    // appendonly yes took effect: the log is in the quoted directory.
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), "+OK\r\n");
    assert!(common::eventually(Duration::from_secs(5), || {
        data.join("appendonly.aof").metadata().is_ok_and(|m| m.len() > 0)
    }));
}

#[test]
fn command_line_flags_override_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The file's port may be taken meanwhile: it must not matter.
    let (file_port, flag_port) = (free_port(), free_port());
    write(
        tmp.path(),
        "r.conf",
        &format!("port {file_port}\ntimeout 5\nloglevel warning\n"),
    );
    let server = start_conf(tmp.path(), "r.conf", &["--port", &flag_port.to_string()]);
    assert_eq!(server.port, flag_port);
    let mut c = server.raw();
    assert_eq!(config_get(&mut c, "port"), flag_port.to_string());
    assert_eq!(config_get(&mut c, "timeout"), "5");
}

/// Redis's report, and the file named.
fn assert_fatal(stderr: &str, line_no: usize, line: &str, why: &str, file: &str) {
    assert!(stderr.contains("*** FATAL CONFIG FILE ERROR (Redis "), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Reading the configuration file, at line {line_no}\n>>> '{line}'\n{why}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(file), "{stderr}");
}

#[test]
fn bad_files_stop_the_server_naming_the_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_redlockd");

    write(
        tmp.path(),
        "unknown.conf",
        "# fine so far\nport 0\nrename-command FLUSHALL \"\"\n",
    );
    let (status, stderr) = start_expecting_exit(bin, tmp.path(), "unknown.conf");
    assert!(!status.success());
    assert_fatal(
        &stderr,
        3,
        "rename-command FLUSHALL \"\"",
        "Bad directive or wrong number of arguments",
        "unknown.conf",
    );

    write(tmp.path(), "value.conf", "port 0\nmaxclients lots\n");
    let (status, stderr) = start_expecting_exit(bin, tmp.path(), "value.conf");
    assert!(!status.success());
    assert_fatal(&stderr, 2, "maxclients lots", "invalid value 'lots'", "value.conf");

    write(tmp.path(), "policy.conf", "maxmemory-policy allkeys-lru\n");
    let (status, stderr) = start_expecting_exit(bin, tmp.path(), "policy.conf");
    assert!(!status.success());
    assert_fatal(
        &stderr,
        1,
        "maxmemory-policy allkeys-lru",
        "redlockd never evicts keys",
        "policy.conf",
    );

    write(tmp.path(), "a.conf", "port 0\ninclude b.conf\n");
    write(tmp.path(), "b.conf", "# b\ninclude a.conf\n");
    let (status, stderr) = start_expecting_exit(bin, tmp.path(), "a.conf");
    assert!(!status.success());
    assert_fatal(&stderr, 2, "include a.conf", "Include cycle", "b.conf");

    let (status, stderr) = start_expecting_exit(bin, tmp.path(), "missing.conf");
    assert!(!status.success());
    assert!(
        stderr.contains("Fatal error, can't open config file '")
            && stderr.contains("missing.conf': No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn config_rewrite_writes_changes_back_in_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let original =
        "# Top comment\nport 0\n\n# Idle clients\ntimeout 0\n\n# Clients\nmaxclients 10000\nloglevel warning\n";
    write(tmp.path(), "rw.conf", original);
    let file = tmp.path().join("rw.conf");
    {
        let server = start_conf(tmp.path(), "rw.conf", &[]);
        let mut c = server.raw();
        assert_eq!(c.cmd_str(&["CONFIG", "SET", "timeout", "7"]), "+OK\r\n");
        assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxclients", "123"]), "+OK\r\n");
        assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxmemory", "100mb"]), "+OK\r\n");
        assert_eq!(c.cmd_str(&["CONFIG", "REWRITE"]), "+OK\r\n");
    }
    let rewritten = std::fs::read_to_string(&file).expect("read");
    // Comments and order kept, values changed in place, the new parameter
    // appended under Redis's marker (after the blank line the file's last
    // newline leaves, as Redis does).
    assert_eq!(
        rewritten,
        "# Top comment\nport 0\n\n# Idle clients\ntimeout 7\n\n# Clients\nmaxclients 123\nloglevel warning\n\n\
         # Generated by CONFIG REWRITE\nmaxmemory 100mb\n"
    );
    let server = start_conf(tmp.path(), "rw.conf", &[]);
    let mut c = server.raw();
    assert_eq!(config_get(&mut c, "timeout"), "7");
    assert_eq!(config_get(&mut c, "maxclients"), "123");
    assert_eq!(config_get(&mut c, "maxmemory"), (100u64 << 20).to_string());
}

#[test]
fn config_rewrite_without_a_file_as_redis() {
    let mut d = Differential::new();
    d.check(&["CONFIG", "REWRITE"]);
    d.check(&["CONFIG", "REWRITE", "extra"]);
}

#[test]
fn the_dist_example_starts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/redlockd.conf")).expect("read");
    let mut substituted = 0;
    let text: String = example
        .lines()
        .map(|line| match line {
            "port 6379" => {
                substituted += 1;
                "port 0".to_string()
            }
            "dir /var/lib/redlockd" => {
                substituted += 1;
                format!("dir \"{}\"", tmp.path().display())
            }
            other => other.to_string(),
        })
        .map(|line| line + "\n")
        .collect();
    assert_eq!(
        substituted, 2,
        "dist/redlockd.conf no longer has the lines this test replaces"
    );
    write(tmp.path(), "redlockd.conf", &text);
    let server = start_conf(tmp.path(), "redlockd.conf", &["--loglevel", "warning"]);
    let mut c = server.raw();
    assert_eq!(config_get(&mut c, "maxmemory"), (1u64 << 30).to_string());
    assert_eq!(config_get(&mut c, "appendonly"), "yes");
    assert_eq!(config_get(&mut c, "maxmemory-policy"), "noeviction");
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), "+OK\r\n");
}

/// The same requirepass lines, read by redis-server and by redlockd: the
/// password each then knows is the same, and the line both refuse is
/// refused with the same report.
#[test]
fn quoting_reads_as_redis_server_reads_it() {
    let cases = [
        r#""a\"b""#,
        r#""\x41\x42c\x7a""#,
        r#""tab\there\\ and \n""#,
        r#"'it\'s'"#,
        r#"'no \n escape'"#,
        r#"pre"quoted part""#,
        "plain",
    ];
    for quoted in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let body = format!("save \"\"\nappendonly no\nrequirepass {quoted}\n");
        let redis = RedisConf::start(tmp.path(), &body);
        write(tmp.path(), "ours.conf", &format!("port 0\n{body}"));
        let ours = start_conf(tmp.path(), "ours.conf", &["--loglevel", "warning"]);
        let mut r = Raw::connect(redis.port);
        let mut o = ours.raw();
        // Both decoded the line to the expected password: AUTH with it
        // passes on both, and CONFIG GET shows the same bytes.
        let expected = unquote(quoted);
        for c in [&mut r, &mut o] {
            assert_eq!(c.cmd_bytes(&[b"AUTH", &expected]), b"+OK\r\n", "AUTH with {quoted}");
        }
        let theirs = r.cmd(&["CONFIG", "GET", "requirepass"]);
        let mine = o.cmd(&["CONFIG", "GET", "requirepass"]);
        assert_eq!(
            String::from_utf8_lossy(&mine),
            String::from_utf8_lossy(&theirs),
            "requirepass {quoted}"
        );
    }

    // A closing quote followed by more text: both refuse the line alike.
    let tmp = tempfile::tempdir().expect("tempdir");
    let body = "port 0\nrequirepass 'it''s'\n";
    write(tmp.path(), "bad.conf", body);
    let (theirs_status, theirs) = start_expecting_exit("redis-server", tmp.path(), "bad.conf");
    let (ours_status, ours) = start_expecting_exit(env!("CARGO_BIN_EXE_redlockd"), tmp.path(), "bad.conf");
    assert!(!theirs_status.success() && !ours_status.success());
    let report = "Reading the configuration file, at line 2\n>>> 'requirepass 'it''s''\nUnbalanced quotes in configuration line\n";
    assert!(theirs.contains(report), "redis-server: {theirs}");
    assert!(ours.contains(report), "redlockd: {ours}");
}

/// The test's own decoding of the cases above (what both servers must agree
/// on), written independently of the server's parser.
fn unquote(quoted: &str) -> Vec<u8> {
    match quoted {
        r#""a\"b""# => b"a\"b".to_vec(),
        r#""\x41\x42c\x7a""# => b"ABcz".to_vec(),
        r#""tab\there\\ and \n""# => b"tab\there\\ and \n".to_vec(),
        r#"'it\'s'"# => b"it's".to_vec(),
        r#"'no \n escape'"# => b"no \\n escape".to_vec(),
        r#"pre"quoted part""# => b"prequoted part".to_vec(),
        "plain" => b"plain".to_vec(),
        other => panic!("no expected value for {other}"),
    }
}
