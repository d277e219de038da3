//! The `rslock` crate (a Redlock client for Rust) against 3 redlockd
//! instances: acquire, contend, extend, release, expiry. Its tokens are 20
//! raw random bytes, so this also checks binary-safe script arguments.

mod common;
use std::time::Duration;

use common::Server;
use rslock::LockManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rslock_lifecycle() {
    let servers: Vec<Server> = (0..3).map(|_| Server::start()).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let mut manager = LockManager::new(urls.clone());
    manager.set_retry(1, Duration::from_millis(10));
    let lock = manager
        .lock("resource", Duration::from_secs(10))
        .await
        .expect("acquire");
    assert_eq!(lock.val.len(), 20);
    assert!(
        manager.lock("resource", Duration::from_secs(10)).await.is_err(),
        "a rival must not acquire"
    );
    assert!(!manager.is_freed(&lock).await.expect("query"));
    let extended = manager.extend(&lock, Duration::from_secs(20)).await.expect("extend");
    let mut c = servers[1].raw();
    let pttl: i64 = c
        .cmd_str(&["PTTL", "resource"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 10_000 && pttl <= 20_000, "{pttl}");
    manager.unlock(&extended).await;
    assert_eq!(c.cmd(&["EXISTS", "resource"]), b":0\r\n");
    // A forged lock with another value can neither extend nor release.
    let held = manager
        .lock("resource", Duration::from_secs(10))
        .await
        .expect("re-acquire");
    let forged = rslock::Lock {
        resource: held.resource.clone(),
        val: vec![7; 20],
        validity_time: held.validity_time,
        lock_manager: manager.clone(),
    };
    assert!(manager.extend(&forged, Duration::from_secs(10)).await.is_err());
    manager.unlock(&forged).await;
    assert_eq!(c.cmd(&["EXISTS", "resource"]), b":1\r\n");
    manager.unlock(&held).await;
    // Expiry.
    let _short = manager
        .lock("short", Duration::from_millis(30))
        .await
        .expect("short lock");
    let mut again = None;
    for _ in 0..200 {
        if let Ok(l) = manager.lock("short", Duration::from_secs(10)).await {
            again = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "re-acquired after expiry");
}
