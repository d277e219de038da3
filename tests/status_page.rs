//! The status page in a real browser: Debian's headless `chromium`
//! (installed by scripts/test.sh) renders `/` of a server holding locks,
//! one of them a key made of `<script>` markup, and the rendered DOM must
//! list every lock with the markup only as text.

mod common;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, eventually, free_port};

/// Run headless chromium on `url` with `extra` flags; its stdout. Bounded:
/// killed after 60 s.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &profile_arg,
            "--virtual-time-budget=3000",
        ])
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromium (Debian's package; scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn headless_chromium_shows_held_locks_and_escapes_markup() {
    let port = free_port();
    let server = Server::start_with(&["--metrics-port", &port.to_string()]);
    let mut c = server.raw();
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", "orders:42", "worker-7f3a", "PX", "60000"])
            .starts_with(':')
    );
    assert_eq!(c.cmd(&["SET", evil, "tok<i>", "NX", "PX", "60000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "tmp", "x", "NX", "PX", "60000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["DELIFEQ", "tmp", "x"]), b":1\r\n");
    // The server announces its RESP address before it binds the metrics port.
    assert!(eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));

    let url = format!("http://127.0.0.1:{port}/");
    let dom = chromium(&url, &["--dump-dom"]);
    assert!(dom.contains("<title>redlockd status</title>"), "{dom}");
    assert!(dom.contains(r#"<span id="lock-count">2</span>"#), "{dom}");
    assert!(dom.contains("<code>orders:42</code>"), "{dom}");
    assert!(dom.contains("worker-7…"), "token prefix: {dom}");
    // The markup key is there as escaped text, in the locks and the events...
    let escaped = "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";
    assert!(dom.matches(&format!("<code>{escaped}</code>")).count() >= 2, "{dom}");
    assert!(dom.contains("tok&lt;i&gt;"), "{dom}");
    // ...and nowhere as an element: no injected script ran, no image exists.
    assert!(!dom.contains("<img"), "{dom}");
    assert!(!dom.contains("<i>"), "{dom}");
    assert!(!dom.contains("pwned</title>"), "{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "only the page's own script: {dom}");
    assert!(dom.contains(r#"class="released">released<"#), "{dom}");

    // The README's screenshot is taken the same way.
    let shots = tempfile::tempdir().expect("screenshot dir");
    let png = shots.path().join("status-page.png");
    chromium(
        &url,
        &[
            "--hide-scrollbars",
            "--window-size=1200,800",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let image = std::fs::read(&png).expect("a screenshot was written");
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 10_000,
        "{} bytes",
        image.len()
    );
}
