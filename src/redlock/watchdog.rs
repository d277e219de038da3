//! Keep a lock alive in the background, and say when it is lost.
//!
//! The watchdog extends the lock every `ttl / 3`. If an extension fails, or
//! the lock's validity runs out before one succeeds, it reports the loss
//! through [`Watchdog::lost`] and stops. Dropping a watchdog stops it
//! without blocking (the task is aborted); [`Watchdog::stop`] hands the lock
//! back for release.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::quorum::{Lock, Redlock};

pub struct Watchdog {
    task: JoinHandle<()>,
    lock: Arc<Mutex<Lock>>,
    lost: watch::Receiver<Option<String>>,
}

impl Watchdog {
    pub fn spawn(redlock: Arc<Redlock>, lock: Lock) -> Watchdog {
        let (tx, rx) = watch::channel(None);
        let lock = Arc::new(Mutex::new(lock));
        let shared = lock.clone();
        let task = tokio::spawn(async move {
            loop {
                let (every, remaining) = {
                    let l = shared.lock().await;
                    (l.ttl / 3, l.remaining())
                };
                tokio::time::sleep(every.min(remaining.saturating_sub(Duration::from_millis(1)))).await;
                let mut l = shared.lock().await;
                if l.remaining().is_zero() {
                    let _ = tx.send(Some("the lock's validity ran out before it could be extended".into()));
                    return;
                }
                let ttl = l.ttl;
                if let Err(e) = redlock.extend(&mut l, ttl).await {
                    let _ = tx.send(Some(e.to_string()));
                    return;
                }
            }
        });
        Watchdog { task, lock, lost: rx }
    }

    /// Resolves with the reason once the lock is lost.
    pub async fn lost(&mut self) -> String {
        loop {
            if let Some(why) = self.lost.borrow().clone() {
                return why;
            }
            if self.lost.changed().await.is_err() {
                // The task ended without reporting: it was stopped.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stop extending and return the lock (for release).
    pub async fn stop(self) -> Lock {
        self.task.abort();

        self.lock.lock().await.clone()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
