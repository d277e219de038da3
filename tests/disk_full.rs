//! A full disk under the append-only file: writes are refused with Redis's
//! `-MISCONF` while reads go on, INFO reports it, nothing is acknowledged
//! that is not in the log, and the server recovers on its own when space
//! returns — no exit, no crash loop.
//!
//! Needs root to mount a small tmpfs; skips (saying why) otherwise.

mod common;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Raw, Server, Tmpfs, eventually};

/// Redis 7's reply while the AOF cannot be written (checked against
/// redis-server 7.0.15 on a full tmpfs).
const MISCONF: &str = "-MISCONF Errors writing to the AOF file: No space left on device\r\n";

fn start(dir: &Path, fsync: &str) -> Server {
    let dir = dir.display().to_string();
    Server::start_with(&["--appendonly", "yes", "--appendfsync", fsync, "--dir", &dir])
}

fn info_persistence(c: &mut Raw) -> String {
    c.cmd_str(&["INFO", "persistence"])
}

fn fill_value(i: usize) -> String {
    format!("{i:06}-{}", "f".repeat(4000))
}

fn disk_full_then_recover(fsync: &str) {
    let Some(fs) = Tmpfs::mount("512k") else { return };
    // Half the space, taken now and given back later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 256 * 1024]).unwrap();
    let mut server = start(fs.path(), fsync);
    let pid = server.pid();
    let mut c = server.raw();
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", "lock", "tok", "PX", "600000"])
            .starts_with(':')
    );
    assert_eq!(c.cmd_str(&["SET", "plain", "v", "PX", "600000"]), "+OK\r\n");
    // A transaction that queued a write before the disk filled.
    let mut t = server.raw();
    assert_eq!(t.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(t.cmd_str(&["SET", "queued", "x"]), "+QUEUED\r\n");

    // One client writes 4 KiB values, one at a time, until the disk is full:
    // the write that meets the full disk gets no reply while it lasts.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port;
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = Raw::connect(port);
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let reply = w.cmd_str(&["SET", &format!("fill:{i}"), &fill_value(i)]);
                assert_eq!(reply, "+OK\r\n", "fill:{i}");
                acked.lock().unwrap().push(i);
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(20), || info_persistence(&mut c)
            .contains("aof_last_write_status:err")),
        "the disk never filled: {}",
        info_persistence(&mut c)
    );

    // Writes are refused, with Redis's text: plain ones, deletes, lock
    // releases (native and by script), transactions holding a write, and
    // PING (Redis refuses it so that health checks notice).
    assert_eq!(c.cmd_str(&["SET", "refused", "x"]), MISCONF);
    assert_eq!(c.cmd_str(&["DEL", "plain"]), MISCONF);
    assert_eq!(c.cmd_str(&["DELEX", "lock", "IFEQ", "tok"]), MISCONF);
    let release = "c3f8721cbb97f72bc19e972846bd7aaf91901658";
    assert_eq!(c.cmd_str(&["EVALSHA", release, "1", "lock", "tok"]), MISCONF);
    assert_eq!(c.cmd_str(&["PING"]), MISCONF);
    assert_eq!(c.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["SET", "refused", "x"]), MISCONF);
    assert_eq!(
        c.cmd_str(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(
        t.cmd_str(&["EXEC"]),
        format!("-EXECABORT Transaction discarded because of: {}", &MISCONF[1..])
    );
    assert_eq!(t.cmd_str(&["EXEC"]), "-ERR EXEC without MULTI\r\n", "discarded");
    // Reads are served.
    assert_eq!(c.cmd_str(&["GET", "plain"]), "$1\r\nv\r\n");
    let pttl: i64 = c.cmd_str(&["PTTL", "lock"])[1..].trim().parse().unwrap();
    assert!(pttl > 0, "lock pttl {pttl}");
    assert_eq!(c.cmd_str(&["GET", "fill:0"]), format!("$4007\r\n{}\r\n", fill_value(0)));
    assert_eq!(c.cmd_str(&["EXISTS", "refused"]), ":0\r\n");
    assert_eq!(c.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["GET", "plain"]), "+QUEUED\r\n");
    assert_eq!(c.cmd_str(&["EXEC"]), "*1\r\n$1\r\nv\r\n");
    // The write caught by the full disk is not acknowledged (it is not in
    // the log), not even across a retry.
    let stuck = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        acked.lock().unwrap().len(),
        stuck,
        "a write was acknowledged on a full disk"
    );
    assert!(!writer.is_finished());
    assert!(info_persistence(&mut c).contains("aof_last_write_status:err"));

    // Space returns: the retry writes the pending record, writes resume.
    stop.store(true, Ordering::SeqCst);
    std::fs::remove_file(&filler).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || c.cmd_str(&["SET", "after", "yes"])
            == "+OK\r\n"),
        "writes did not resume"
    );
    assert!(info_persistence(&mut c).contains("aof_last_write_status:ok"));
    writer.join().expect("the writer saw only +OK");
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), stuck + 1, "the stuck write got its reply");
    assert!(
        server.wait_exit(Duration::from_millis(100)).is_none(),
        "redlockd (pid {pid}) exited"
    );

    // Everything acknowledged is in the log, and the log is whole (the
    // partial write was cut back, so there is no torn record to cut).
    server.kill9();
    let server = start(fs.path(), fsync);
    let mut c = server.raw();
    for i in &acked {
        assert_eq!(
            c.cmd_str(&["GET", &format!("fill:{i}")]),
            format!("$4007\r\n{}\r\n", fill_value(*i)),
            "fill:{i}"
        );
    }
    assert_eq!(c.cmd_str(&["GET", "after"]), "$3\r\nyes\r\n");
    assert_eq!(c.cmd_str(&["GET", "plain"]), "$1\r\nv\r\n");
    assert!(c.cmd_str(&["LOCK.INFO", "lock"]).contains("tok"));
    assert_eq!(c.cmd_str(&["EXISTS", "refused", "queued"]), ":0\r\n");
    assert!(!fs.path().join("appendonly.aof.bak").exists());
    eprintln!(
        "{fsync}: {} writes acknowledged before and through the full disk, all found after a restart",
        acked.len()
    );
}

#[test]
fn full_disk_with_fsync_always() {
    disk_full_then_recover("always");
}

#[test]
fn full_disk_with_fsync_everysec() {
    disk_full_then_recover("everysec");
}
