//! Decode requests from arbitrary bytes and execute them against a real
//! (in-process) server state: no input may panic the command layer.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use redlockd::commands::{self, ClientState};
use redlockd::config::ServerConfig;
use redlockd::protocol::decode::MAX_ARGS;
use redlockd::protocol::{Decoder, Limits, ReplyBuf};
use redlockd::server::Shared;

fn shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| Shared::new(ServerConfig::default()).expect("state"))
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fuzz_target!(|data: &[u8]| {
    let shared = shared();
    // Keep memory bounded across millions of runs.
    if RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000 == 0 {
        let now = shared.keyspace.clock.now_us();
        for db in &shared.keyspace.dbs {
            db.lock_all(now).clear();
        }
    }
    let handle = shared
        .clients
        .register("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
    let mut client = ClientState::new(handle.clone(), true);
    let mut out = ReplyBuf::new(0);
    let mut decoder = Decoder::new();
    let limits = Limits {
        max_bulk_len: 1 << 16,
        max_args: MAX_ARGS,
        authenticated: true,
    };
    let mut pos = 0;
    while let Ok(Some(request)) = decoder.decode(&data[pos..], &limits) {
        let args = request.args();
        // SHUTDOWN would only signal the (absent) accept loop; harmless.
        if !args.is_empty() {
            commands::execute(shared, &mut client, &mut out, &args);
        }
        pos += request.size();
        if client.close || out.len() > 1 << 20 {
            break;
        }
    }
    shared.clients.unregister(handle.id);
});
