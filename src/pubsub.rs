//! Publish/subscribe: the channel registry, each subscriber's outbox, and
//! the two kinds of server-made messages, keyspace notifications
//! (`notify-keyspace-events`) and lock events (`__lock__:KEY`).
//!
//! The registry maps channels, patterns and shard channels to the outboxes
//! of their subscribers. Publishing encodes the message into each
//! subscriber's outbox (RESP2 array or RESP3 push, as the subscriber
//! speaks) and wakes its connection, which writes the outbox out with its
//! own replies; a publisher never waits for a subscriber. An outbox is
//! bounded as Redis bounds a pubsub client's output buffer
//! (`client-output-buffer-limit pubsub 32mb 8mb 60`): past the hard limit,
//! or past the soft one for 60 s, its contents are dropped and the client
//! is disconnected.
//!
//! When nobody subscribes to anything, a publish, a keyspace notification
//! or a lock event costs one relaxed load. Lock order: a shard lock (the
//! expire hook publishes under it), then the registry, then an outbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::glob;
use crate::instance::ClientHandle;

/// Redis's default `client-output-buffer-limit pubsub 32mb 8mb 60`.
pub const OUTBOX_HARD: usize = 32 << 20;
pub const OUTBOX_SOFT: usize = 8 << 20;
pub const OUTBOX_SOFT_SECONDS: Duration = Duration::from_secs(60);

/// The three subscription kinds, each with its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE: glob patterns matched against PUBLISH's channel.
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (one shard: a namespace of its own).
    Shard,
}

impl Kind {
    fn index(self) -> usize {
        self as usize
    }
}

type Subscribers = HashMap<Box<[u8]>, Vec<Arc<Outbox>>, ahash::RandomState>;

#[derive(Default)]
struct Registry {
    /// Indexed by [`Kind::index`].
    kinds: [Subscribers; 3],
}

/// The instance's channels and their subscribers, and the
/// `notify-keyspace-events` setting.
#[derive(Default)]
pub struct PubSub {
    registry: RwLock<Registry>,
    /// Subscriptions of every kind and client: 0 means nobody listens.
    active: AtomicUsize,
    /// `notify-keyspace-events`, as [`events`] flags.
    keyspace_events: AtomicU32,
}

impl PubSub {
    pub fn new(keyspace_events: u32) -> Self {
        PubSub {
            keyspace_events: AtomicU32::new(keyspace_events),
            ..Default::default()
        }
    }

    /// Whether anyone subscribes to anything.
    #[inline]
    pub fn listened(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Add `outbox` to `name`'s subscribers (the caller knows it is not one yet).
    fn add(&self, kind: Kind, name: &[u8], outbox: &Arc<Outbox>) {
        let mut reg = self.registry.write();
        reg.kinds[kind.index()]
            .entry(name.into())
            .or_default()
            .push(outbox.clone());
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self, kind: Kind, name: &[u8], outbox: &Arc<Outbox>) {
        let mut reg = self.registry.write();
        let map = &mut reg.kinds[kind.index()];
        if let Some(list) = map.get_mut(name) {
            let before = list.len();
            list.retain(|o| !Arc::ptr_eq(o, outbox));
            self.active.fetch_sub(before - list.len(), Ordering::Relaxed);
            if list.is_empty() {
                map.remove(name);
            }
        }
    }

    /// PUBLISH: deliver to the channel's subscribers, then to every matching
    /// pattern's (Redis's order); the number of deliveries.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        if !self.listened() {
            return 0;
        }
        let reg = self.registry.read();
        let mut n = 0;
        if let Some(subs) = reg.kinds[Kind::Channel.index()].get(channel) {
            for s in subs {
                s.push(&[b"message", channel, message]);
            }
            n += subs.len();
        }
        for (pattern, subs) in &reg.kinds[Kind::Pattern.index()] {
            if glob::matches(pattern, channel, false) {
                for s in subs {
                    s.push(&[b"pmessage", pattern, channel, message]);
                }
                n += subs.len();
            }
        }
        n
    }

    /// SPUBLISH: deliver to the shard channel's subscribers.
    pub fn spublish(&self, channel: &[u8], message: &[u8]) -> usize {
        if !self.listened() {
            return 0;
        }
        let reg = self.registry.read();
        let Some(subs) = reg.kinds[Kind::Shard.index()].get(channel) else {
            return 0;
        };
        for s in subs {
            s.push(&[b"smessage", channel, message]);
        }
        subs.len()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: the channels with subscribers
    /// matching `pattern` (all without one).
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        let reg = self.registry.read();
        reg.kinds[kind.index()]
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of one channel.
    pub fn subscribers(&self, kind: Kind, channel: &[u8]) -> usize {
        self.registry.read().kinds[kind.index()]
            .get(channel)
            .map_or(0, Vec::len)
    }

    /// PUBSUB NUMPAT: patterns with at least one subscriber.
    pub fn patterns(&self) -> usize {
        self.registry.read().kinds[Kind::Pattern.index()].len()
    }

    /// Channels, patterns and shard channels with subscribers (INFO stats).
    pub fn sizes(&self) -> [usize; 3] {
        let reg = self.registry.read();
        reg.kinds.each_ref().map(|k| k.len())
    }

    /// The `notify-keyspace-events` flags.
    #[inline]
    pub fn keyspace_events(&self) -> u32 {
        self.keyspace_events.load(Ordering::Relaxed)
    }

    pub fn set_keyspace_events(&self, flags: u32) {
        self.keyspace_events.store(flags, Ordering::Relaxed);
    }

    /// A keyspace notification, as Redis's notifyKeyspaceEvent: `event`
    /// happened to `key` of database `db`; published on
    /// `__keyspace@DB__:KEY` (message: the event) and
    /// `__keyevent@DB__:EVENT` (message: the key) as the flags ask, if
    /// `class` is enabled. Costs one load when notifications are off.
    #[inline]
    pub fn notify(&self, class: u32, event: &str, db: usize, key: &[u8]) {
        let flags = self.keyspace_events();
        if flags & class != 0 && self.listened() {
            self.notify_slow(flags, event, db, key);
        }
    }

    #[cold]
    fn notify_slow(&self, flags: u32, event: &str, db: usize, key: &[u8]) {
        if flags & events::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            self.publish(&channel, event.as_bytes());
        }
        if flags & events::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(channel.as_bytes(), key);
        }
    }

    /// A lock event, published as a message on `__lock__:KEY` (whatever the
    /// database): `acquired TOKEN FENCE`, `released TOKEN`, `expired
    /// TOKEN`, `extended TOKEN PTTL`. Call it once where a lock is granted
    /// (a fresh grant: a holder re-acquiring is `Extended`), released by
    /// its holder (or on its behalf: an ONCLOSE release; a semaphore's
    /// holder, with the semaphore's key), extended, or removed by expiry;
    /// from a command handler prefer [`crate::commands::Ctx::lock_event`],
    /// which also delivers at once to a subscribed caller. Costs one load
    /// when nobody subscribes to anything.
    ///
    /// What counts as a lock: a key granted by LOCK.ACQUIRE, SET NX with a
    /// TTL or a catalogued acquire script (those two have no fence: 0),
    /// and released or extended by the owner-checked commands (LOCK.*,
    /// DELIFEQ, DELEX IFEQ/IFDEQ, catalogued scripts). Expiry cannot tell a
    /// lock from another key with a TTL (a lock is an ordinary string key),
    /// so every expiring key reports `expired VALUE` on its channel, heard
    /// only by whoever subscribed to that key's channel.
    #[inline]
    pub fn lock_event(&self, key: &[u8], event: LockEvent<'_>) {
        if self.listened() {
            self.lock_event_slow(key, event);
        }
    }

    #[cold]
    fn lock_event_slow(&self, key: &[u8], event: LockEvent<'_>) {
        let mut channel = Vec::with_capacity(LOCK_CHANNEL.len() + key.len());
        channel.extend_from_slice(LOCK_CHANNEL);
        channel.extend_from_slice(key);
        let (name, token) = match event {
            LockEvent::Acquired { token, .. } => ("acquired", token),
            LockEvent::Released { token } => ("released", token),
            LockEvent::Expired { token } => ("expired", token),
            LockEvent::Extended { token, .. } => ("extended", token),
        };
        let mut message = Vec::with_capacity(name.len() + token.len() + 22);
        message.extend_from_slice(name.as_bytes());
        message.push(b' ');
        message.extend_from_slice(token);
        match event {
            LockEvent::Acquired { fence, .. } => message.extend_from_slice(format!(" {fence}").as_bytes()),
            LockEvent::Extended { pttl, .. } => message.extend_from_slice(format!(" {pttl}").as_bytes()),
            _ => {}
        }
        self.publish(&channel, &message);
    }
}

/// The prefix of a lock's event channel.
pub const LOCK_CHANNEL: &[u8] = b"__lock__:";

/// What happened to a lock (see [`PubSub::lock_event`]).
#[derive(Debug, Clone, Copy)]
pub enum LockEvent<'a> {
    /// Granted to `token`; `fence` is its fencing token (0 for a grant
    /// without one: SET NX PX, lock scripts).
    Acquired {
        token: &'a [u8],
        fence: u64,
    },
    Released {
        token: &'a [u8],
    },
    /// Removed because its TTL ran out, `token` holding it.
    Expired {
        token: &'a [u8],
    },
    /// Its holder extended it; `pttl` ms are left.
    Extended {
        token: &'a [u8],
        pttl: i64,
    },
}

/// `notify-keyspace-events` flags, with Redis's letters and values.
pub mod events {
    pub const KEYSPACE: u32 = 1 << 0; // K
    pub const KEYEVENT: u32 = 1 << 1; // E
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m
    pub const MODULE: u32 = 1 << 13; // d
    pub const NEW: u32 = 1 << 14; // n
    /// `A`: every class but key-miss and new.
    pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Redis's keyspaceEventsStringToFlags; None for an unknown letter.
    pub fn parse(text: &[u8]) -> Option<u32> {
        let mut flags = 0;
        for &c in text {
            flags |= match c {
                b'A' => ALL,
                b'g' => GENERIC,
                b'$' => STRING,
                b'l' => LIST,
                b's' => SET,
                b'h' => HASH,
                b'z' => ZSET,
                b'x' => EXPIRED,
                b'e' => EVICTED,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b't' => STREAM,
                b'm' => KEY_MISS,
                b'd' => MODULE,
                b'n' => NEW,
                _ => return None,
            };
        }
        Some(flags)
    }

    /// Redis's keyspaceEventsFlagsToString: the canonical text CONFIG GET shows.
    pub fn format(flags: u32) -> String {
        let mut s = String::new();
        if flags & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if flags & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
        s
    }

    /// The error CONFIG SET and the config file give for a bad letter.
    pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

    /// clap's value parser for `--notify-keyspace-events`.
    pub fn parse_flag(s: &str) -> Result<u32, String> {
        parse(s.as_bytes()).ok_or_else(|| INVALID.to_string())
    }
}

/// One subscribed connection's pending messages, written out by its
/// connection with its replies.
pub struct Outbox {
    handle: Arc<ClientHandle>,
    state: Mutex<OutboxState>,
    /// Wakes the connection when its outbox stops being empty.
    pub ready: Notify,
}

#[derive(Default)]
struct OutboxState {
    buf: BytesMut,
    /// Bytes taken by the connection and not yet written: they count
    /// against the limits as Redis counts its whole output buffer.
    in_flight: usize,
    /// When the pending bytes last went over the soft limit.
    soft_since: Option<Instant>,
    /// Over a limit: the client is being disconnected, nothing more is queued.
    closed: bool,
}

impl Outbox {
    pub fn new(handle: Arc<ClientHandle>) -> Self {
        Outbox {
            handle,
            state: Mutex::new(OutboxState::default()),
            ready: Notify::new(),
        }
    }

    /// Queue one message frame (a RESP3 push or a RESP2 array of bulks).
    fn push(&self, parts: &[&[u8]]) {
        let resp3 = self.handle.resp.load(Ordering::Relaxed) == 3;
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        let was_empty = st.buf.is_empty();
        encode_frame(&mut st.buf, resp3, parts);
        let pending = st.buf.len() + st.in_flight;
        let over = if pending > OUTBOX_HARD {
            true
        } else if pending > OUTBOX_SOFT {
            let since = *st.soft_since.get_or_insert_with(Instant::now);
            since.elapsed() >= OUTBOX_SOFT_SECONDS
        } else {
            st.soft_since = None;
            false
        };
        if over {
            st.closed = true;
            st.buf = BytesMut::new();
            drop(st);
            tracing::warn!(
                id = self.handle.id,
                peer = %self.handle.addr,
                "closing pubsub client: {pending} bytes of messages over the output buffer limit"
            );
            self.handle.request_kill();
            return;
        }
        if was_empty {
            drop(st);
            self.ready.notify_one();
        }
    }

    /// Move the pending messages to the end of `out`; they are then in
    /// flight until [`Outbox::written`].
    pub fn drain_into(&self, out: &mut BytesMut) {
        let mut st = self.state.lock();
        if st.buf.is_empty() {
            return;
        }
        st.in_flight += st.buf.len();
        out.extend_from_slice(&st.buf);
        st.buf.clear();
        // A burst's buffer is not kept once delivered.
        if st.buf.capacity() > 64 * 1024 {
            st.buf = BytesMut::new();
        }
    }

    /// What [`Outbox::drain_into`] gave out has been written.
    pub fn written(&self) {
        self.state.lock().in_flight = 0;
    }
}

/// Encode `parts` as a push (RESP3) or an array (RESP2) of bulk strings.
pub fn encode_frame(buf: &mut BytesMut, resp3: bool, parts: &[&[u8]]) {
    let mut num = itoa::Buffer::new();
    buf.put_u8(if resp3 { b'>' } else { b'*' });
    buf.put_slice(num.format(parts.len()).as_bytes());
    buf.put_slice(b"\r\n");
    for p in parts {
        buf.put_u8(b'$');
        buf.put_slice(num.format(p.len()).as_bytes());
        buf.put_slice(b"\r\n");
        buf.put_slice(p);
        buf.put_slice(b"\r\n");
    }
}

/// One connection's subscriptions. Dropping it (the connection closed, or
/// RESET) unsubscribes it from everything.
pub struct Subscriptions {
    registry: Arc<PubSub>,
    pub outbox: Arc<Outbox>,
    /// Indexed by [`Kind::index`]; patterns in subscription order (Redis
    /// keeps them in a list), channels in a set (Redis's dict order is
    /// unspecified too).
    names: [Vec<Box<[u8]>>; 3],
    index: [std::collections::HashSet<Box<[u8]>, ahash::RandomState>; 3],
}

impl Subscriptions {
    pub fn new(registry: Arc<PubSub>, handle: Arc<ClientHandle>) -> Self {
        Subscriptions {
            registry,
            outbox: Arc::new(Outbox::new(handle)),
            names: Default::default(),
            index: Default::default(),
        }
    }

    /// Subscribe; false if already subscribed.
    pub fn subscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        let i = kind.index();
        if !self.index[i].insert(name.into()) {
            return false;
        }
        self.names[i].push(name.into());
        self.registry.add(kind, name, &self.outbox);
        self.publish_counts();
        true
    }

    /// Unsubscribe; false if not subscribed.
    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        let i = kind.index();
        if !self.index[i].remove(name) {
            return false;
        }
        if let Some(at) = self.names[i].iter().position(|n| **n == *name) {
            self.names[i].remove(at);
        }
        self.registry.remove(kind, name, &self.outbox);
        self.publish_counts();
        true
    }

    /// The names subscribed to, in order.
    pub fn names(&self, kind: Kind) -> Vec<Box<[u8]>> {
        self.names[kind.index()].clone()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.names[kind.index()].len()
    }

    /// Channels + patterns: what (P)SUBSCRIBE replies report.
    pub fn classic(&self) -> usize {
        self.count(Kind::Channel) + self.count(Kind::Pattern)
    }

    pub fn total(&self) -> usize {
        self.classic() + self.count(Kind::Shard)
    }

    /// CLIENT LIST's sub/psub/ssub.
    fn publish_counts(&self) {
        let counts = &self.outbox.handle.subscriptions;
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            counts[kind.index()].store(self.count(kind), Ordering::Relaxed);
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(&mut self.names[kind.index()]) {
                self.registry.remove(kind, &name, &self.outbox);
            }
            self.index[kind.index()].clear();
        }
        self.publish_counts();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_flags_as_redis() {
        use events::*;
        assert_eq!(format(parse(b"KEA").unwrap()), "AKE");
        assert_eq!(format(parse(b"g$lshzxetdKEmn").unwrap()), "AKEm");
        assert_eq!(format(parse(b"Ex$").unwrap()), "$xE");
        assert_eq!(format(parse(b"").unwrap()), "");
        assert_eq!(format(parse(b"nK").unwrap()), "nK");
        assert!(parse(b"Q").is_none());
    }

    #[test]
    fn frames_follow_the_protocol() {
        let mut b = BytesMut::new();
        encode_frame(&mut b, false, &[b"message", b"c", b"m"]);
        assert_eq!(&b[..], b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
        let mut b = BytesMut::new();
        encode_frame(&mut b, true, &[b"smessage", b"c", b""]);
        assert_eq!(&b[..], b">3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$0\r\n\r\n");
    }
}
