//! Expiry: an expired key is never visible to any command, and the active
//! expirer reclaims expired keys promptly. Timing is only ever polled with a
//! deadline, never asserted.

mod common;
use std::time::Duration;

use common::{Server, eventually};
use redis::Commands;

fn client(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .expect("client")
        .get_connection()
        .expect("connect")
}

#[test]
fn a_short_ttl_key_disappears_from_every_command() {
    let server = Server::start();
    let mut c = client(&server);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(50)
        .query(&mut c)
        .unwrap();
    let _: () = c.set("persistent", "x").unwrap();
    // Either still counting down from 50 ms or already gone: never more.
    let pttl: i64 = c.pttl("k").unwrap();
    assert!((1..=50).contains(&pttl) || pttl == -2, "pttl {pttl}");
    assert!(eventually(Duration::from_secs(5), || c
        .get::<_, Option<String>>("k")
        .unwrap()
        .is_none()));
    // Once gone, gone for everything.
    assert_eq!(c.exists::<_, i64>("k").unwrap(), 0);
    assert_eq!(c.ttl::<_, i64>("k").unwrap(), -2);
    assert_eq!(c.strlen::<_, i64>("k").unwrap(), 0);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, 1);
    let keys: Vec<String> = c.keys("*").unwrap();
    assert_eq!(keys, vec!["persistent".to_string()]);
    let appended: i64 = c.append("k", "new").unwrap();
    assert_eq!(appended, 3, "APPEND on an expired key starts from empty");
    assert_eq!(c.ttl::<_, i64>("k").unwrap(), -1, "and the new key has no TTL");
}

#[test]
fn expired_lock_token_never_matches() {
    let server = Server::start();
    let mut c = client(&server);
    let _: () = redis::cmd("SET")
        .arg("lock")
        .arg("tok")
        .arg("PX")
        .arg(30)
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || c
        .exists::<_, i64>("lock")
        .unwrap()
        == 0));
    let del: i64 = redis::cmd("DELEX")
        .arg("lock")
        .arg("IFEQ")
        .arg("tok")
        .query(&mut c)
        .unwrap();
    assert_eq!(del, 0);
    let set: Option<String> = redis::cmd("SET")
        .arg("lock")
        .arg("tok")
        .arg("IFEQ")
        .arg("tok")
        .arg("PX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    assert_eq!(set, None, "an expired owner cannot extend");
    let extended: i64 = c.pexpire("lock", 1000).unwrap();
    assert_eq!(extended, 0);
    let acquired: Option<String> = redis::cmd("SET")
        .arg("lock")
        .arg("other")
        .arg("NX")
        .arg("PX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    assert_eq!(acquired.as_deref(), Some("OK"), "a new owner can acquire at once");
}

#[test]
fn incr_keeps_ttl_and_set_clears_it() {
    let server = Server::start();
    let mut c = client(&server);
    let _: () = redis::cmd("SET")
        .arg("n")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let _: i64 = c.incr("n", 5).unwrap();
    let ttl: i64 = c.ttl("n").unwrap();
    assert!((90..=100).contains(&ttl), "ttl {ttl}");
    let _: () = c.set("n", "2").unwrap();
    assert_eq!(c.ttl::<_, i64>("n").unwrap(), -1);
}

#[test]
fn the_expirer_reclaims_many_keys_without_any_access() {
    let server = Server::start();
    let mut c = client(&server);
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg(format!("e:{i}"))
            .arg("token-0123456789abcdef")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    // Nobody touches the keys; INFO's counters must show the expirer at work.
    let expired = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("expired_keys:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(10), || expired(&mut c) == 20_000),
        "expired_keys = {}",
        expired(&mut c)
    );
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    assert!(!info.contains("db0:"), "{info}");
}

#[test]
fn getex_and_persist() {
    let server = Server::start();
    let mut c = client(&server);
    let _: () = c.set("k", "v").unwrap();
    let v: String = redis::cmd("GETEX").arg("k").arg("PX").arg(40).query(&mut c).unwrap();
    assert_eq!(v, "v");
    assert!(c.pttl::<_, i64>("k").unwrap() > 0);
    let _: () = redis::cmd("GETEX").arg("k").arg("PERSIST").query(&mut c).unwrap();
    assert_eq!(c.pttl::<_, i64>("k").unwrap(), -1);
    let _: i64 = c.pexpire("k", 30).unwrap();
    assert!(eventually(Duration::from_secs(5), || c.exists::<_, i64>("k").unwrap() == 0));
}

#[test]
fn exat_in_the_past_and_expire_at() {
    let server = Server::start();
    let mut c = client(&server);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PXAT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(c.exists::<_, i64>("k").unwrap(), 0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PXAT")
        .arg(now_ms + 60_000)
        .query(&mut c)
        .unwrap();
    let at: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut c).unwrap();
    assert_eq!(at, now_ms + 60_000);
}
