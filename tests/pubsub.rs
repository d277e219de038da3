//! Publish/subscribe, keyspace notifications and lock events.
//!
//! Where Redis defines the behaviour the test is differential: the same
//! commands on raw sockets to redis-server 7 and to redlockd, every reply
//! and every message (RESP2 arrays, RESP3 pushes) compared byte for byte.
//! Lock events (`__lock__:KEY`) are redlockd's own and have hand-written
//! expectations; so has the slow subscriber, which Redis disconnects too
//! but whose timing no byte comparison can pin down.

mod common;
use std::time::{Duration, Instant};

use common::{Pair, Raw, RedisServer, Server, eventually};

/// Neither server has sent anything more on `p` (checked with a PING round
/// trip on a connection not in RESP2 subscriber mode).
fn nothing_pending(p: &mut Pair) {
    p.check(&["PING"]);
}

fn servers() -> (RedisServer, Server) {
    (RedisServer::start(), Server::start())
}

#[test]
fn resp2_subscriber_mode_and_messages() {
    let (redis, ours) = servers();
    let mut sub = Pair::new(&redis, &ours);
    let mut publisher = Pair::new(&redis, &ours);
    sub.check(&["UNSUBSCRIBE"]);
    sub.check(&["PUNSUBSCRIBE"]);
    sub.check(&["SUNSUBSCRIBE"]);
    sub.check(&["UNSUBSCRIBE", "never"]);
    sub.check(&["SUBSCRIBE"]);
    sub.check_frames(&["SUBSCRIBE", "news", "sport", "news"], 3);
    sub.check_frames(&["PSUBSCRIBE", "n*", "s?ort"], 2);
    // Subscriber mode: only the pub/sub commands, PING, QUIT and RESET.
    for refused in [
        &["GET", "x"][..],
        &["SET", "x", "y"],
        &["PUBLISH", "news", "x"],
        &["PUBSUB", "NUMPAT"],
        &["CLIENT", "INFO"],
        &["MULTI"],
        &["EXEC"],
        &["HELLO", "3"],
        &["ECHO", "x"],
    ] {
        sub.check(refused);
    }
    sub.check(&["PING"]);
    sub.check(&["PING", "hello"]);
    sub.check(&["PING", "a", "b"]);
    sub.check(&["NOSUCHCOMMAND"]);
    publisher.check(&["PUBLISH", "news", "hello"]);
    sub.reply("message");
    sub.reply("pmessage");
    publisher.check(&["PUBLISH", "sport", "goal"]);
    sub.reply("message");
    sub.reply("pmessage s?ort");
    publisher.check(&["PUBLISH", "nobody", "x"]);
    sub.reply("pmessage n*");
    publisher.check(&["PUBLISH", "other", "x"]);
    // Binary-safe channel and message.
    let bin: &[&[u8]] = &[b"PUBLISH", b"news", b"\x00\r\n\xff"];
    assert_eq!(publisher.o.cmd_bytes(bin), publisher.r.cmd_bytes(bin));
    sub.reply("binary message");
    sub.reply("binary pmessage");
    sub.check(&["UNSUBSCRIBE", "news"]);
    sub.check(&["PUNSUBSCRIBE", "n*"]);
    sub.check(&["PUNSUBSCRIBE", "nope"]);
    sub.check(&["UNSUBSCRIBE"]);
    sub.check(&["PUNSUBSCRIBE"]);
    // Out of subscriber mode again.
    sub.check(&["GET", "x"]);
    sub.check(&["PING"]);
    // RESET leaves subscriber mode at once.
    sub.check(&["SUBSCRIBE", "a"]);
    sub.check(&["RESET"]);
    sub.check(&["GET", "x"]);
    publisher.check(&["PUBLISH", "a", "nobody hears"]);
    nothing_pending(&mut sub);
}

#[test]
fn subscribe_inside_transactions() {
    let (redis, ours) = servers();
    for resp3 in [false, true] {
        let mut c = Pair::new(&redis, &ours);
        if resp3 {
            c.send_only(&["HELLO", "3"]);
        }
        c.check(&["MULTI"]);
        c.check(&["SUBSCRIBE", "x"]);
        c.check(&["PUBLISH", "x", "m"]);
        c.check(&["SET", "a", "b"]);
        c.check(&["EXEC"]);
        c.check(&["PING"]);
        c.check(&["UNSUBSCRIBE"]);
        c.check(&["WATCH", "k"]);
        c.check(&["SUBSCRIBE", "y"]);
        c.check(&["EXEC"]);
        c.check(&["UNWATCH"]);
        c.check_frames(&["PSUBSCRIBE", "a", "b"], 2);
        c.check_frames(&["PUNSUBSCRIBE", "b", "c"], 2);
        c.check(&["QUIT"]);
    }
}

#[test]
fn resp3_pushes_between_replies() {
    let (redis, ours) = servers();
    let mut sub = Pair::new(&redis, &ours);
    let mut publisher = Pair::new(&redis, &ours);
    sub.send_only(&["HELLO", "3"]);
    sub.check(&["UNSUBSCRIBE"]);
    sub.check(&["SUBSCRIBE", "c"]);
    sub.check(&["PSUBSCRIBE", "c*"]);
    // Any command is served while subscribed, and PING is plain.
    sub.check(&["SET", "k", "v"]);
    sub.check(&["GET", "k"]);
    sub.check(&["PING"]);
    // Publishing to oneself: the pushes come before PUBLISH's reply.
    sub.check_frames(&["PUBLISH", "c", "self"], 3);
    publisher.check(&["PUBLISH", "c", "other"]);
    sub.reply("message push");
    sub.reply("pmessage push");
    publisher.check(&["PUBLISH", "cx", "p"]);
    sub.reply("pmessage push");
    sub.check(&["UNSUBSCRIBE", "c"]);
    sub.check(&["PUNSUBSCRIBE"]);
    sub.check(&["SSUBSCRIBE", "s"]);
    sub.check_frames(&["SPUBLISH", "s", "mine"], 2);
    sub.check(&["SUNSUBSCRIBE"]);
    publisher.check(&["PUBLISH", "c", "gone"]);
    nothing_pending(&mut sub);
    // A message arriving while half a request is in: delivered at once,
    // and the request completes undisturbed.
    sub.check(&["SUBSCRIBE", "c"]);
    let value = "v".repeat(100_000);
    let request = common::encode(&[b"SET", b"big", value.as_bytes()]);
    for cut in [5, 40, 60_000] {
        sub.r.send(&request[..cut]);
        sub.o.send(&request[..cut]);
        publisher.check(&["PUBLISH", "c", &format!("during {cut}")]);
        sub.reply("message during a partial request");
        sub.r.send(&request[cut..]);
        sub.o.send(&request[cut..]);
        sub.reply("reply to the completed request");
    }
    sub.check(&["UNSUBSCRIBE"]);
    // Back to RESP2 while subscribed: messages follow the new protocol.
    sub.check(&["SUBSCRIBE", "c"]);
    sub.send_only(&["HELLO", "2"]);
    publisher.check(&["PUBLISH", "c", "in resp2"]);
    sub.reply("RESP2 message after HELLO 2");
}

#[test]
fn sharded_pubsub_and_counts() {
    let (redis, ours) = servers();
    let mut a = Pair::new(&redis, &ours);
    let mut b = Pair::new(&redis, &ours);
    let mut q = Pair::new(&redis, &ours);
    q.check(&["PUBSUB", "NUMSUB"]);
    q.check(&["PUBSUB", "NUMSUB", "x", "y"]);
    q.check(&["PUBSUB", "NUMPAT"]);
    q.check(&["PUBSUB", "CHANNELS"]);
    q.check(&["PUBSUB", "SHARDCHANNELS"]);
    q.check(&["PUBSUB", "SHARDNUMSUB", "s"]);
    a.check_frames(&["SUBSCRIBE", "x", "y"], 2);
    b.check(&["SUBSCRIBE", "x"]);
    b.check(&["PSUBSCRIBE", "x*"]);
    a.check(&["PSUBSCRIBE", "x*"]);
    a.check(&["PSUBSCRIBE", "y*"]);
    a.check_frames(&["SSUBSCRIBE", "s1", "s2"], 2);
    b.check(&["SSUBSCRIBE", "s1"]);
    q.check(&["PUBSUB", "NUMSUB", "x", "y", "z"]);
    q.check(&["PUBSUB", "NUMPAT"]);
    q.check(&["PUBSUB", "CHANNELS", "y*"]);
    q.check(&["PUBSUB", "SHARDNUMSUB", "s1", "s2", "s3"]);
    q.check(&["PUBSUB", "SHARDCHANNELS", "s2"]);
    // Several channels: the order is unspecified, so compare sorted.
    let sorted = |reply: Vec<u8>| {
        let text = String::from_utf8(reply).unwrap();
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        lines.sort();
        lines.join("\n")
    };
    for sub in ["CHANNELS", "SHARDCHANNELS"] {
        let theirs = sorted(q.r.cmd(&["PUBSUB", sub]));
        let ours = sorted(q.o.cmd(&["PUBSUB", sub]));
        assert_eq!(ours, theirs, "PUBSUB {sub}");
    }
    // Sharded messages reach only shard subscribers; PUBLISH does not.
    q.check(&["SPUBLISH", "s1", "hi"]);
    a.reply("smessage");
    b.reply("smessage");
    q.check(&["SPUBLISH", "x", "not a shard channel"]);
    q.check(&["PUBLISH", "s1", "not a channel"]);
    q.check(&["PUBLISH", "x", "both"]);
    a.reply("message");
    a.reply("pmessage");
    b.reply("message");
    b.reply("pmessage");
    // Errors of the PUBSUB container.
    for bad in [
        &["PUBSUB"][..],
        &["PUBSUB", "NOPE"],
        &["PUBSUB", "NUMPAT", "x"],
        &["PUBSUB", "CHANNELS", "a", "b"],
        &["PUBSUB", "SHARDCHANNELS", "a", "b"],
        &["PUBSUB", "HELP"],
        &["PUBSUB", "HELP", "x"],
        &["PUBLISH", "x"],
        &["SPUBLISH", "x", "y", "z"],
        &["SSUBSCRIBE"],
    ] {
        q.check(bad);
    }
    // A closed connection leaves every channel.
    drop(a);
    drop(b);
    assert!(eventually(Duration::from_secs(5), || {
        q.o.cmd_str(&["PUBSUB", "NUMPAT"]) == ":0\r\n"
    }));
    q.check(&["PUBSUB", "NUMSUB", "x", "y"]);
    q.check(&["PUBSUB", "SHARDNUMSUB", "s1"]);
    q.check(&["PUBSUB", "CHANNELS"]);
}

#[test]
fn client_list_counts_subscriptions() {
    let ours = Server::start();
    let mut sub = ours.raw();
    let mut admin = ours.raw();
    sub.cmd(&["CLIENT", "SETNAME", "listener"]);
    for cmd in [
        &["SUBSCRIBE", "a"][..],
        &["SUBSCRIBE", "b"],
        &["PSUBSCRIBE", "p*"],
        &["SSUBSCRIBE", "s"],
    ] {
        sub.cmd(cmd);
    }
    let list = admin.cmd_str(&["CLIENT", "LIST"]);
    let line = list.lines().find(|l| l.contains("name=listener")).expect("listed");
    assert!(line.contains("flags=P "), "{line}");
    assert!(line.contains(" sub=2 psub=1 ssub=1 "), "{line}");
    let info = admin.cmd_str(&["INFO", "stats"]);
    assert!(
        info.contains("pubsub_channels:2\r\npubsub_patterns:1\r\npubsubshard_channels:1\r\n"),
        "{info}"
    );
    let pubsub = admin.cmd_str(&["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert!(
        pubsub.contains("name=listener") && pubsub.matches("id=").count() == 1,
        "{pubsub}"
    );
    let normal = admin.cmd_str(&["CLIENT", "LIST", "TYPE", "normal"]);
    assert!(!normal.contains("name=listener"), "{normal}");
    sub.cmd(&["RESET"]);
    let list = admin.cmd_str(&["CLIENT", "LIST"]);
    let line = list.lines().find(|l| l.contains("id=")).expect("listed");
    assert!(line.contains(" sub=0 psub=0 ssub=0 "), "{line}");
}

#[test]
fn notify_keyspace_events_config_round_trips() {
    let (redis, ours) = servers();
    let mut c = Pair::new(&redis, &ours);
    c.check(&["CONFIG", "GET", "notify-keyspace-events"]);
    for flags in [
        "KEA",
        "g$lshzxetdKEmn",
        "Ex$",
        "x",
        "AAKE",
        "nK",
        "Km",
        "KEg$x",
        "Q",
        "KE ",
        "a",
        "",
    ] {
        c.check(&["CONFIG", "SET", "notify-keyspace-events", flags]);
        c.check(&["CONFIG", "GET", "notify-keyspace-events"]);
    }
    // From the command line (and so the config file): the same normal form.
    let started = Server::start_with(&["--notify-keyspace-events", "EKx$g"]);
    let reply = started.raw().cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]);
    assert_eq!(reply, "*2\r\n$22\r\nnotify-keyspace-events\r\n$5\r\ng$xKE\r\n");
    let (status, stderr) = Server::start_expecting_failure(&["--notify-keyspace-events", "KEQ"]);
    assert!(!status.success());
    assert!(stderr.contains("Invalid event class character"), "{stderr}");
}

/// The writes of the string and generic families, each with its events.
const KEYSPACE_SCRIPT: &[&[&str]] = &[
    &["SET", "a", "1"],
    &["SET", "a", "2", "EX", "100"],
    &["SET", "a", "3", "KEEPTTL"],
    &["SET", "a", "4", "NX"],
    &["SET", "a", "5", "XX", "GET"],
    &["SETNX", "a", "x"],
    &["SETNX", "b", "x"],
    &["INCR", "n"],
    &["DECR", "n"],
    &["INCRBY", "n", "5"],
    &["DECRBY", "n", "2"],
    &["INCRBYFLOAT", "n", "1.5"],
    &["APPEND", "n", "x"],
    &["SETRANGE", "n", "0", "ab"],
    &["SETRANGE", "zz", "0", ""],
    &["DEL", "n", "a", "zz"],
    &["UNLINK", "b"],
    &["MSET", "m1", "1", "m2", "2"],
    &["MSETNX", "m1", "x", "m9", "y"],
    &["MSETNX", "m8", "x", "m9", "y"],
    &["RENAME", "m1", "m3"],
    &["RENAME", "m3", "m3"],
    &["RENAMENX", "m3", "m2"],
    &["RENAMENX", "m3", "m4"],
    &["RENAME", "m4", "m2"],
    &["EXPIRE", "m2", "100"],
    &["EXPIRE", "m2", "200", "NX"],
    &["PEXPIREAT", "m2", "99999999999999"],
    &["PERSIST", "m2"],
    &["PERSIST", "m2"],
    &["PEXPIRE", "m2", "-1"],
    &["SETEX", "e", "100", "v"],
    &["PSETEX", "f", "100000", "v"],
    &["GETEX", "e", "PX", "100000"],
    &["GETEX", "e", "PERSIST"],
    &["GETEX", "e", "PERSIST"],
    &["GETEX", "e"],
    &["GETEX", "e", "PXAT", "1"],
    &["SET", "g", "1"],
    &["GETSET", "g", "2"],
    &["GETDEL", "g"],
    &["GETDEL", "g"],
    &["GET", "f"],
];

/// Subscribe `sub` to every keyspace notification, on both servers.
fn listen_to_keyspace(sub: &mut Pair, resp3: bool) {
    if resp3 {
        sub.send_only(&["HELLO", "3"]);
    }
    sub.check(&["PSUBSCRIBE", "__key*__:*"]);
}

/// Run the script on `writer` and compare every notification `sub` gets.
fn compare_keyspace_events(writer: &mut Pair, sub: &mut Pair) {
    for cmd in KEYSPACE_SCRIPT {
        writer.check(cmd);
    }
    // A marker after the script: everything before it has been compared
    // once both subscribers reach it.
    writer.check(&["SET", "end", "marker"]);
    let mut frames = 0;
    loop {
        let theirs = sub.r.read_frame();
        let ours = sub.o.read_frame();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "notification {frames} differs (left: redlockd, right: redis-server)"
        );
        frames += 1;
        if String::from_utf8_lossy(&theirs).contains("__keyevent@0__:set\r\n$3\r\nend") {
            break;
        }
    }
    assert!(frames > 60, "only {frames} notifications");
}

#[test]
fn keyspace_notifications_resp2_and_resp3() {
    let (redis, ours) = servers();
    let mut writer = Pair::new(&redis, &ours);
    writer.check(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for resp3 in [false, true] {
        writer.check(&["FLUSHALL"]);
        let mut sub = Pair::new(&redis, &ours);
        listen_to_keyspace(&mut sub, resp3);
        compare_keyspace_events(&mut writer, &mut sub);
    }
    // Only some classes, only keyevent: what is off is not sent.
    writer.check(&["FLUSHALL"]);
    writer.check(&["CONFIG", "SET", "notify-keyspace-events", "E$"]);
    let mut sub = Pair::new(&redis, &ours);
    listen_to_keyspace(&mut sub, false);
    writer.check(&["SET", "k", "v", "EX", "100"]);
    writer.check(&["DEL", "k"]);
    writer.check(&["INCR", "k"]);
    sub.reply("keyevent set");
    sub.reply("keyevent incrby");
    // The database number is in the channel.
    writer.check(&["SELECT", "3"]);
    writer.check(&["SET", "k3", "v"]);
    sub.reply("set in db 3");
    // A subscriber that asked for its own notifications in RESP3 gets them
    // before the reply.
    writer.check(&["CONFIG", "SET", "notify-keyspace-events", "KA"]);
    writer.send_only(&["HELLO", "3"]);
    writer.check(&["SELECT", "0"]);
    writer.check(&["SUBSCRIBE", "__keyspace@0__:mine"]);
    writer.check_frames(&["SET", "mine", "v", "PX", "100000"], 3);
    writer.check_frames(&["DEL", "mine"], 2);
}

#[test]
fn expired_events_from_the_expirer_and_from_lookups() {
    let (redis, ours) = servers();
    let mut writer = Pair::new(&redis, &ours);
    writer.check(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    for resp3 in [false, true] {
        let mut sub = Pair::new(&redis, &ours);
        if resp3 {
            sub.send_only(&["HELLO", "3"]);
        }
        sub.check(&["SUBSCRIBE", "__keyevent@0__:expired"]);
        // Removed by the active expirer: nobody touches the key.
        writer.check(&["SET", "soon", "v", "PX", "30"]);
        sub.reply("expired by the expirer");
        // Removed when looked up: Redis's lazy expiry (DEBUG SLEEP would
        // stop redis-server's expirer too; a lookup right after the
        // deadline usually beats both expirers, and either way one
        // `expired` message is sent).
        writer.check(&["SET", "lazy", "v", "PX", "20"]);
        std::thread::sleep(Duration::from_millis(25));
        writer.check(&["GET", "lazy"]);
        sub.reply("expired on lookup");
        writer.check(&["SET", "gone", "v", "PXAT", "1"]);
        writer.check(&["EXISTS", "gone"]);
        sub.reply("expired at once");
    }
}

/// A subscriber to `__lock__:KEY` sees grants, releases, extends and expiry.
#[test]
fn lock_events() {
    let ours = Server::start();
    let mut watcher = ours.raw();
    let mut pwatcher = ours.raw();
    let mut c = ours.raw();
    assert_eq!(
        watcher.cmd_str(&["SUBSCRIBE", "__lock__:job"]),
        "*3\r\n$9\r\nsubscribe\r\n$12\r\n__lock__:job\r\n:1\r\n"
    );
    pwatcher.cmd(&["HELLO", "3"]);
    pwatcher.cmd(&["PSUBSCRIBE", "__lock__:*"]);
    let message = |w: &mut Raw| {
        let frame = String::from_utf8(w.read_frame()).unwrap();
        frame.rsplit("\r\n").nth(1).unwrap().to_string()
    };
    let fence: i64 = c.cmd_str(&["LOCK.ACQUIRE", "job", "alice", "PX", "10000"])[1..]
        .trim()
        .parse()
        .unwrap();
    assert_eq!(message(&mut watcher), format!("acquired alice {fence}"));
    let push = String::from_utf8(pwatcher.read_frame()).unwrap();
    assert_eq!(
        push,
        format!(
            ">4\r\n$8\r\npmessage\r\n$10\r\n__lock__:*\r\n$12\r\n__lock__:job\r\n${}\r\nacquired alice {fence}\r\n",
            format!("acquired alice {fence}").len()
        )
    );
    // A busy acquire and a stranger's release or extend say nothing.
    assert_eq!(c.cmd_str(&["LOCK.ACQUIRE", "job", "bob", "PX", "10000"]), "$-1\r\n");
    assert_eq!(c.cmd_str(&["LOCK.RELEASE", "job", "bob"]), ":0\r\n");
    assert_eq!(c.cmd_str(&["LOCK.EXTEND", "job", "bob", "PX", "5"]), ":0\r\n");
    assert_eq!(c.cmd_str(&["LOCK.EXTEND", "job", "alice", "PX", "20000"]), ":1\r\n");
    let extended = message(&mut watcher);
    let pttl: i64 = extended.strip_prefix("extended alice ").unwrap().parse().unwrap();
    assert!((19_000..=20_000).contains(&pttl), "{extended}");
    // The holder acquiring again keeps its fence: an extension.
    c.cmd(&["LOCK.ACQUIRE", "job", "alice", "PX", "30000"]);
    assert!(message(&mut watcher).starts_with("extended alice "));
    assert_eq!(c.cmd_str(&["LOCK.RELEASE", "job", "alice"]), ":1\r\n");
    assert_eq!(message(&mut watcher), "released alice");
    // Expiry, found by the expirer.
    c.cmd(&["LOCK.ACQUIRE", "job", "carol", "PX", "50"]);
    assert!(message(&mut watcher).starts_with("acquired carol "));
    let start = Instant::now();
    assert_eq!(message(&mut watcher), "expired carol");
    assert!(start.elapsed() < Duration::from_secs(2));
    // The other lock idioms: SET NX PX, DELIFEQ, a catalogued script.
    assert_eq!(c.cmd_str(&["SET", "job", "dave", "NX", "PX", "10000"]), "+OK\r\n");
    assert_eq!(message(&mut watcher), "acquired dave 0");
    assert_eq!(c.cmd_str(&["DELIFEQ", "job", "dave"]), ":1\r\n");
    assert_eq!(message(&mut watcher), "released dave");
    c.cmd(&["SET", "job", "erin", "NX", "PX", "10000"]);
    message(&mut watcher);
    // redis-py's Lock.release script.
    let release = "c3f8721cbb97f72bc19e972846bd7aaf91901658";
    assert_eq!(c.cmd_str(&["EVALSHA", release, "1", "job", "erin"]), ":1\r\n");
    assert_eq!(message(&mut watcher), "released erin");
    // Other keys' events go to their own channels.
    c.cmd(&["LOCK.ACQUIRE", "other", "x", "PX", "10000"]);
    c.cmd(&["LOCK.ACQUIRE", "job", "frank", "PX", "10000"]);
    assert!(message(&mut watcher).starts_with("acquired frank "));
    // The pattern watcher saw all of them, in order.
    let expected = [
        "__lock__:job extended",
        "__lock__:job extended",
        "__lock__:job released",
        "__lock__:job acquired",
        "__lock__:job expired",
        "__lock__:job acquired",
        "__lock__:job released",
        "__lock__:job acquired",
        "__lock__:job released",
        "__lock__:other acquired",
        "__lock__:job acquired",
    ];
    for (i, want) in expected.iter().enumerate() {
        let frame = String::from_utf8(pwatcher.read_frame()).unwrap();
        let parts: Vec<&str> = frame.split("\r\n").filter(|p| !p.starts_with(['$', '>'])).collect();
        let got = format!("{} {}", parts[2], parts[3].split(' ').next().unwrap());
        assert_eq!(&got, want, "event {i}: {frame:?}");
    }
}

/// Grants and releases made by the waiter queues publish their events too,
/// once each: a client-bound lock released as its connection closes, the
/// hand-over to the next waiter, and the hand-over when a lock expires.
#[test]
fn lock_events_from_waiter_queues_and_onclose() {
    let ours = Server::start();
    let mut watcher = ours.raw();
    watcher.cmd(&["SUBSCRIBE", "__lock__:q"]);
    let message = |w: &mut Raw| {
        let frame = String::from_utf8(w.read_frame()).unwrap();
        frame.rsplit("\r\n").nth(1).unwrap().to_string()
    };
    let fence_of = |reply: String| -> i64 { reply[1..].trim().parse().unwrap() };
    let mut ctl = ours.raw();
    let waiting = |ctl: &mut Raw, n: usize| {
        let want = format!("blocked_clients:{n}\r\n");
        assert!(
            eventually(Duration::from_secs(5), || ctl
                .cmd_str(&["INFO", "clients"])
                .contains(&want)),
            "never {n} blocked"
        );
    };
    let mut alice = ours.raw();
    let f1 = fence_of(alice.cmd_str(&["LOCK.ACQUIRE", "q", "alice", "PX", "10000", "ONCLOSE"]));
    assert_eq!(message(&mut watcher), format!("acquired alice {f1}"));
    let mut bob = ours.raw();
    bob.send(&common::encode(&[
        b"LOCK.ACQUIRE",
        b"q",
        b"bob",
        b"PX",
        b"300",
        b"WAIT",
        b"0",
    ]));
    waiting(&mut ctl, 1);
    drop(alice);
    assert_eq!(message(&mut watcher), "released alice");
    let f2 = fence_of(String::from_utf8(bob.read_frame()).unwrap());
    assert_eq!(message(&mut watcher), format!("acquired bob {f2}"));
    let mut carol = ours.raw();
    carol.send(&common::encode(&[
        b"LOCK.ACQUIRE",
        b"q",
        b"carol",
        b"PX",
        b"10000",
        b"WAIT",
        b"5000",
    ]));
    waiting(&mut ctl, 1);
    // Bob's lease runs out: expired, then handed to carol.
    assert_eq!(message(&mut watcher), "expired bob");
    let f3 = fence_of(String::from_utf8(carol.read_frame()).unwrap());
    assert_eq!(message(&mut watcher), format!("acquired carol {f3}"));
    assert!(f1 < f2 && f2 < f3);
    assert_eq!(carol.cmd_str(&["LOCK.RELEASE", "q", "carol"]), ":1\r\n");
    // Nothing was published twice: the release is the next message.
    assert_eq!(message(&mut watcher), "released carol");
}

/// The resident set size of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// A subscriber that never reads is disconnected once its messages pass
/// the pubsub output limit (32 MB); the publisher is never blocked and the
/// server's memory stays bounded; a subscriber that reads is unaffected.
#[test]
fn a_slow_subscriber_is_disconnected_and_memory_stays_bounded() {
    let ours = Server::start();
    let mut slow = ours.raw();
    slow.cmd(&["CLIENT", "SETNAME", "slow"]);
    slow.cmd(&["SUBSCRIBE", "firehose"]);
    // Let the kernel buffer little of what the server sends it.
    socket2::SockRef::from(&slow.stream).set_recv_buffer_size(4096).unwrap();
    let mut fast = ours.raw();
    fast.cmd(&["SUBSCRIBE", "firehose"]);
    let before = rss(ours.pid());
    let mut publisher = ours.raw();
    let payload = "x".repeat(64 * 1024);
    let start = Instant::now();
    let mut published = 0u64;
    let mut receivers = 2;
    // 200 MB offered, far past the limit; the publisher never waits on it.
    while published < 200 << 20 && receivers == 2 {
        let reply = publisher.cmd_str(&["PUBLISH", "firehose", &payload]);
        receivers = reply[1..].trim().parse::<u32>().unwrap();
        published += payload.len() as u64;
        // The fast subscriber keeps up.
        fast.read_frame();
    }
    assert_eq!(receivers, 1, "the slow subscriber was disconnected");
    assert!(published > 32 << 20, "not before the limit: {published} bytes");
    assert!(start.elapsed() < Duration::from_secs(30));
    let grown = rss(ours.pid()).saturating_sub(before);
    assert!(grown < 120 << 20, "the server grew by {grown} bytes");
    // Its connection is closed.
    let mut admin = ours.raw();
    assert!(eventually(Duration::from_secs(5), || {
        !admin.cmd_str(&["CLIENT", "LIST"]).contains("name=slow")
    }));
    drop(slow);
    // And its memory is given back.
    assert!(eventually(Duration::from_secs(5), || rss(ours.pid()) < before + (16 << 20)));
    assert_eq!(publisher.cmd_str(&["PUBLISH", "firehose", "still"]), ":1\r\n");
}
