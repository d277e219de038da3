//! What Redis operators' tools read: INFO sections and field names, CLIENT
//! LIST / CLIENT INFO lines, SLOWLOG and LATENCY replies, compared with
//! Debian's redis-server 7 where Redis defines them.

mod common;
use std::collections::BTreeSet;

use common::{Differential, Raw};

/// Redis 7 fields redlockd does not print, because it has nothing true to
/// say in them: build details of a C program, the `hz` timer and LRU clock
/// (redlockd has neither), allocator internals (it uses the system
/// allocator without jemalloc's statistics), network byte counters and
/// buffer resizes (not counted), and per-main-thread CPU time (commands run
/// on a pool of threads).
const OMITTED: &[&str] = &[
    "redis_build_id",
    "gcc_version",
    "hz",
    "configured_hz",
    "lru_clock",
    "client_recent_max_input_buffer",
    "client_recent_max_output_buffer",
    "used_memory_overhead",
    "used_memory_startup",
    "used_memory_dataset",
    "used_memory_dataset_perc",
    "allocator_allocated",
    "allocator_active",
    "allocator_resident",
    "allocator_frag_ratio",
    "allocator_frag_bytes",
    "allocator_rss_ratio",
    "allocator_rss_bytes",
    "rss_overhead_ratio",
    "rss_overhead_bytes",
    "mem_clients_normal",
    "mem_aof_buffer",
    "aof_last_rewrite_time_sec",
    "aof_current_rewrite_time_sec",
    "aof_rewrites_consecutive_failures",
    "total_net_input_bytes",
    "total_net_output_bytes",
    "instantaneous_input_kbps",
    "instantaneous_output_kbps",
    "expire_cycle_cpu_milliseconds",
    "total_reads_processed",
    "total_writes_processed",
    "reply_buffer_shrinks",
    "reply_buffer_expands",
    "used_cpu_sys_main_thread",
    "used_cpu_user_main_thread",
];

/// Fields redlockd prints that Redis 7 does not.
const EXTRA: &[&str] = &["redlockd_version"];

/// An INFO reply as (section, field names) in order.
fn sections(reply: &[u8]) -> Vec<(String, Vec<String>)> {
    let text = String::from_utf8_lossy(reply);
    let body = text.split_once("\r\n").map(|(_, b)| b).unwrap_or("");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in body.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.to_string(), Vec::new()));
        } else if let Some((field, _)) = line.split_once(':') {
            out.last_mut()
                .expect("a field inside a section")
                .1
                .push(field.to_string());
        }
    }
    out
}

/// Fields named after commands or errors vary with what ran; their shape is
/// checked apart.
fn fixed_names(section: &str) -> bool {
    !matches!(section, "Commandstats" | "Errorstats" | "Latencystats" | "Keyspace")
}

#[test]
fn info_prints_redis_sections_in_order_with_redis_field_names() {
    let mut d = Differential::new();
    for form in [
        &["INFO"][..],
        &["INFO", "ALL"],
        &["INFO", "EVERYTHING"],
        &["INFO", "default"],
    ] {
        let theirs = sections(&d.r.cmd(form));
        let ours = sections(&d.o.cmd(form));
        let names = |s: &[(String, Vec<String>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs), "sections of {form:?}");
        for ((section, our_fields), (_, their_fields)) in ours.iter().zip(&theirs) {
            if !fixed_names(section) {
                continue;
            }
            let our_set: BTreeSet<&str> = our_fields.iter().map(String::as_str).collect();
            let their_set: BTreeSet<&str> = their_fields.iter().map(String::as_str).collect();
            let missing: Vec<_> = their_set
                .difference(&our_set)
                .filter(|f| !OMITTED.contains(f))
                .collect();
            let extra: Vec<_> = our_set.difference(&their_set).filter(|f| !EXTRA.contains(f)).collect();
            assert!(missing.is_empty(), "{section}: redlockd lacks {missing:?}");
            assert!(extra.is_empty(), "{section}: redlockd adds {extra:?}");
            // The fields both print come in the same order.
            let common_ours: Vec<_> = our_fields.iter().filter(|f| their_set.contains(f.as_str())).collect();
            let common_theirs: Vec<_> = their_fields.iter().filter(|f| our_set.contains(f.as_str())).collect();
            assert_eq!(common_ours, common_theirs, "{section}: field order");
        }
    }
    // Every omitted field is one Redis prints: the list holds nothing stale.
    let all: BTreeSet<String> = sections(&d.r.cmd(&["INFO", "EVERYTHING"]))
        .into_iter()
        .flat_map(|(_, f)| f)
        .collect();
    for f in OMITTED {
        assert!(all.contains(*f), "{f} is not a Redis 7 field");
    }
}

#[test]
fn info_section_selection_matches_redis() {
    let mut d = Differential::new();
    for form in [
        &["INFO", "server"][..],
        &["INFO", "CPU", "keyspace"],
        &["INFO", "keyspace", "server"],
        &["INFO", "commandstats"],
        &["INFO", "errorstats", "cluster"],
        &["INFO", "modules"],
        &["INFO", "latencystats"],
        &["INFO", "nosuchsection"],
        &["INFO", "default", "commandstats"],
        &["INFO", "all", "server"],
    ] {
        let theirs = sections(&d.r.cmd(form));
        let ours = sections(&d.o.cmd(form));
        let names = |s: &[(String, Vec<String>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs), "sections of {form:?}");
    }
}

/// The value of `field` in an INFO reply.
fn info_field(raw: &mut Raw, section: &str, field: &str) -> Option<String> {
    let reply = raw.cmd_str(&["INFO", section]);
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

#[test]
fn commandstats_and_errorstats_count_like_redis() {
    let mut d = Differential::new();
    d.run(&[
        &["CONFIG", "RESETSTAT"],
        &["SET", "k", "v"],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["INCR", "k"],
        &["GET"],
        &["NOSUCHCOMMAND"],
        &["SET", "k", "v", "BADOPT"],
    ]);
    let fields = |reply: String| -> Vec<String> {
        reply
            .lines()
            .filter(|l| l.starts_with("cmdstat_") || l.starts_with("errorstat_"))
            .filter(|l| !l.starts_with("cmdstat_config"))
            .map(|l| {
                // usec values differ; the counts must not.
                l.split(',')
                    .filter(|kv| !kv.starts_with("usec"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let theirs = fields(d.r.cmd_str(&["INFO", "commandstats", "errorstats"]));
    let ours = fields(d.o.cmd_str(&["INFO", "commandstats", "errorstats"]));
    assert_eq!(ours, theirs);
    assert_eq!(info_field(&mut d.o, "stats", "total_error_replies"), Some("4".into()));
    // usec and usec_per_call are there, usec_per_call with two decimals.
    let line = d.o.cmd_str(&["INFO", "commandstats"]);
    let set = line
        .lines()
        .find(|l| l.starts_with("cmdstat_set:"))
        .expect("cmdstat_set");
    let per_call = set
        .split(',')
        .find_map(|kv| kv.strip_prefix("usec_per_call="))
        .expect("usec_per_call");
    assert!(per_call.split_once('.').is_some_and(|(_, dec)| dec.len() == 2), "{set}");
    assert!(set.contains(",usec="), "{set}");
}

#[test]
fn info_values_are_true_for_redlockd() {
    let s = common::Server::start();
    let mut c = s.raw();
    c.cmd(&["SET", "a", "1"]);
    for (section, field, want) in [
        ("replication", "role", "master"),
        ("replication", "connected_slaves", "0"),
        ("replication", "master_repl_offset", "0"),
        ("cluster", "cluster_enabled", "0"),
        ("persistence", "loading", "0"),
        ("persistence", "aof_enabled", "0"),
        ("persistence", "aof_last_write_status", "ok"),
        ("persistence", "rdb_saves", "0"),
        ("server", "tcp_port", &s.port.to_string()),
        ("server", "process_id", &s.pid().to_string()),
    ] {
        assert_eq!(info_field(&mut c, section, field).as_deref(), Some(want), "{field}");
    }
    let cpu: f64 = info_field(&mut c, "cpu", "used_cpu_user").unwrap().parse().unwrap();
    assert!(cpu >= 0.0);
    assert_eq!(
        info_field(&mut c, "keyspace", "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
}

#[test]
fn slowlog_and_latency_answer_as_redis() {
    let mut d = Differential::new();
    d.run(&[
        &["SLOWLOG", "HELP"],
        &["SLOWLOG", "LEN", "1"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "FOO"],
        &["SLOWLOG"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-2"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "x"],
        &["CONFIG", "SET", "slowlog-max-len", "-1"],
        &["CONFIG", "GET", "slowlog-log-slower-than"],
        &["CONFIG", "GET", "slowlog-max-len"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
        &["SET", "a", "1"],
        &["SLOWLOG", "LEN"],
        &["SLOWLOG", "GET"],
        &["LATENCY", "HELP"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "RESET"],
        &["LATENCY", "RESET", "command", "fast-command"],
        &["LATENCY", "DOCTOR"],
        &["LATENCY", "GRAPH", "command"],
        &["LATENCY", "NOPE"],
        &["CONFIG", "GET", "latency-monitor-threshold"],
        // Enabled, before any spike.
        &["CONFIG", "SET", "latency-monitor-threshold", "-1"],
        &["CONFIG", "SET", "latency-monitor-threshold", "x"],
        &["CONFIG", "SET", "latency-monitor-threshold", "100000"],
        &["CONFIG", "GET", "latency-monitor-threshold"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "DOCTOR"],
        &["LATENCY", "RESET"],
        &["LATENCY", "RESET", "command"],
        &["CONFIG", "SET", "latency-monitor-threshold", "0"],
    ]);
}

/// A command of at least `ms` milliseconds: MSET of enough keys.
fn slow_mset(c: &mut Raw, ms: u64) {
    let keys: Vec<String> = (0..ms * 40_000).map(|i| format!("k{i}")).collect();
    let mut args = vec!["MSET"];
    for k in &keys {
        args.extend([k.as_str(), "v"]);
    }
    assert_eq!(c.cmd(&args), b"+OK\r\n");
}

fn int(reply: &redis::Value) -> i64 {
    redis::FromRedisValue::from_redis_value(reply.clone()).expect("an integer")
}

#[test]
fn latency_events_of_slow_commands() {
    let server = common::Server::start();
    let mut c = server.raw();
    // Off: no sample, however slow.
    slow_mset(&mut c, 2);
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]), b"*0\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "1"]), b"+OK\r\n");
    // Fast commands stay below it.
    assert_eq!(c.cmd(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]), b"*0\r\n");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    slow_mset(&mut c, 2);
    let latest = redis::parse_redis_value(&c.cmd(&["LATENCY", "LATEST"])).expect("RESP");
    let redis::Value::Array(events) = latest else {
        panic!("{latest:?}")
    };
    assert_eq!(events.len(), 1, "{events:?}");
    let redis::Value::Array(event) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(event.len(), 4, "event, time, latest ms, max ms: {event:?}");
    assert_eq!(event[0], redis::Value::BulkString(b"command".to_vec()));
    let (time, ms, max) = (int(&event[1]), int(&event[2]), int(&event[3]));
    assert!((before..=before + 5).contains(&time), "{time} vs {before}");
    assert!(ms >= 1 && max >= ms, "{event:?}");
    let history = c.cmd_str(&["LATENCY", "HISTORY", "command"]);
    assert_eq!(history, format!("*1\r\n*2\r\n:{time}\r\n:{ms}\r\n"));
    let doctor = c.cmd_str(&["LATENCY", "DOCTOR"]);
    assert!(
        doctor.contains(&format!(
            "1. command: 1 latency spikes (average {ms}ms, mean deviation 0ms"
        )),
        "{doctor}"
    );
    assert!(doctor.contains("- Check your Slow Log"), "{doctor}");
    let graph = c.cmd_str(&["LATENCY", "GRAPH", "command"]);
    assert!(
        graph.contains(&format!(
            "command - high {ms} ms, low {ms} ms (all time high {max} ms)\n"
        )),
        "{graph}"
    );
    assert_eq!(c.cmd(&["LATENCY", "RESET", "nope", "command"]), b":1\r\n");
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]), b"*0\r\n");
}

/// A SLOWLOG GET reply's entries, with the values that differ between two
/// servers (id aside) blanked: time, duration, client port.
fn slowlog_shape(raw: &mut Raw) -> Vec<(i64, Vec<String>, String)> {
    use redis::FromRedisValue;
    let reply = raw.cmd(&["SLOWLOG", "GET", "-1"]);
    let value = redis::parse_redis_value(&reply).expect("a RESP reply");
    let entries: Vec<redis::Value> = FromRedisValue::from_redis_value(value).expect("an array");
    entries
        .into_iter()
        .map(|e| {
            let e: Vec<redis::Value> = FromRedisValue::from_redis_value(e).expect("an entry");
            assert_eq!(e.len(), 6, "id, time, duration, args, addr, name");
            let id: i64 = FromRedisValue::from_redis_value(e[0].clone()).unwrap();
            let time: i64 = FromRedisValue::from_redis_value(e[1].clone()).unwrap();
            let duration: i64 = FromRedisValue::from_redis_value(e[2].clone()).unwrap();
            assert!(time > 1_600_000_000 && duration >= 0);
            let args: Vec<Vec<u8>> = FromRedisValue::from_redis_value(e[3].clone()).unwrap();
            let addr: String = FromRedisValue::from_redis_value(e[4].clone()).unwrap();
            let name: String = FromRedisValue::from_redis_value(e[5].clone()).unwrap();
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            let args = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            (id, args, name)
        })
        .collect()
}

#[test]
fn slowlog_entries_have_redis_shape() {
    let mut d = Differential::new();
    let long = "v".repeat(200);
    let mut many = vec!["MGET"];
    many.extend(std::iter::repeat_n("k", 40));
    d.run(&[
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        &["CONFIG", "SET", "slowlog-max-len", "4"],
        &["SLOWLOG", "RESET"],
        &["CLIENT", "SETNAME", "probe"],
        &["SET", "key", &long],
    ]);
    d.check(&many);
    d.check(&["GET", "key"]);
    let theirs = slowlog_shape(&mut d.r);
    let ours = slowlog_shape(&mut d.o);
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 4, "slowlog-max-len keeps the newest 4");
    d.check(&["SLOWLOG", "LEN"]);
    d.check(&["SLOWLOG", "RESET"]);
    d.check(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    d.check(&["SLOWLOG", "LEN"]);
}

/// Fields Redis 7.2 added to CLIENT LIST after 7.0 (redis-server here is
/// 7.0): redlockd prints them, at the end, as 7.2 does.
const CLIENT_FIELDS_SINCE_7_2: &[&str] = &["lib-name", "lib-ver"];

/// A CLIENT LIST / CLIENT INFO line as (field, value) pairs in order.
fn client_fields(line: &str) -> Vec<(String, String)> {
    line.trim_end()
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("not a field: {kv:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The one line of a CLIENT INFO / CLIENT LIST ID reply (RESP2 bulk).
fn client_line(reply: &str) -> String {
    let body = reply.split_once("\r\n").map(|(_, b)| b).expect("a bulk reply");
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("id=")).collect();
    assert_eq!(lines.len(), 1, "{reply:?}");
    lines[0].to_string()
}

#[test]
fn client_info_and_list_fields_match_redis() {
    let mut d = Differential::new();
    d.run(&[&["CLIENT", "SETNAME", "probe"], &["SELECT", "3"]]);
    let ours = client_fields(&client_line(&d.o.cmd_str(&["CLIENT", "INFO"])));
    let theirs = client_fields(&client_line(&d.r.cmd_str(&["CLIENT", "INFO"])));
    let names = |f: &[(String, String)]| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let mut expected = names(&theirs);
    expected.extend(CLIENT_FIELDS_SINCE_7_2.iter().map(|s| s.to_string()));
    assert_eq!(names(&ours), expected, "CLIENT INFO fields and their order");
    let value = |f: &[(String, String)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for k in [
        "name", "db", "multi", "flags", "cmd", "resp", "user", "redir", "sub", "psub", "ssub",
    ] {
        assert_eq!(value(&ours, k), value(&theirs, k), "CLIENT INFO {k}");
    }
    // The file descriptor is the socket's.
    assert!(value(&ours, "fd").unwrap().parse::<i32>().unwrap() > 2);

    // Seen from another connection, inside MULTI with two queued commands.
    d.run(&[&["MULTI"], &["SET", "a", "1"], &["GET", "a"]]);
    let (mut r2, mut o2) = (d.redis.raw(), d.ours.raw());
    let find = |raw: &mut Raw| -> Vec<(String, String)> {
        let list = raw.cmd_str(&["CLIENT", "LIST", "TYPE", "normal"]);
        list.lines()
            .filter(|l| l.contains("name=probe"))
            .map(client_fields)
            .next()
            .expect("the probe client")
    };
    let (theirs, ours) = (find(&mut r2), find(&mut o2));
    for k in ["name", "db", "multi", "flags", "cmd", "resp"] {
        assert_eq!(value(&ours, k), value(&theirs, k), "CLIENT LIST {k} inside MULTI");
    }
    d.check(&["EXEC"]);
    let (theirs, ours) = (find(&mut r2), find(&mut o2));
    for k in ["multi", "flags", "cmd"] {
        assert_eq!(value(&ours, k), value(&theirs, k), "CLIENT LIST {k} after EXEC");
    }
    // HELLO 3, a subcommand, an unknown command: resp and cmd follow.
    d.o.cmd(&["HELLO", "3"]);
    d.r.cmd(&["HELLO", "3"]);
    for cmd in [&["CONFIG", "GET", "port"][..], &["NOSUCH"], &["GET"]] {
        d.o.cmd(cmd);
        d.r.cmd(cmd);
        let (theirs, ours) = (find(&mut r2), find(&mut o2));
        for k in ["resp", "cmd", "flags"] {
            assert_eq!(value(&ours, k), value(&theirs, k), "CLIENT LIST {k} after {cmd:?}");
        }
    }
}

#[test]
fn client_list_filters_as_redis() {
    let mut d = Differential::new();
    d.run(&[
        &["CLIENT", "LIST", "TYPE", "master"],
        &["CLIENT", "LIST", "TYPE", "replica"],
        &["CLIENT", "LIST", "TYPE", "slave"],
        &["CLIENT", "LIST", "TYPE", "pubsub"],
        &["CLIENT", "LIST", "TYPE", "bogus"],
        &["CLIENT", "LIST", "TYPE"],
        &["CLIENT", "LIST", "ID"],
        &["CLIENT", "LIST", "ID", "abc"],
        &["CLIENT", "LIST", "ID", "0"],
        &["CLIENT", "LIST", "ID", "-5"],
        &["CLIENT", "LIST", "ID", "99999"],
        &["CLIENT", "LIST", "TYPE", "normal", "ID", "1"],
        &["CLIENT", "LIST", "FOO", "bar"],
        &["CLIENT", "NO-EVICT", "on"],
    ]);
    // ID with several ids, some unknown: only the known ones, in id order.
    for (raw, label) in [(&mut d.o, "redlockd"), (&mut d.r, "redis")] {
        let me = String::from_utf8_lossy(&raw.cmd(&["CLIENT", "ID"]))
            .trim_start_matches(':')
            .trim()
            .to_string();
        let list = raw.cmd_str(&["CLIENT", "LIST", "ID", "99999", &me]);
        assert_eq!(
            list.lines().filter(|l| l.starts_with("id=")).count(),
            1,
            "{label}: {list}"
        );
        let line = client_line(&raw.cmd_str(&["CLIENT", "INFO"]));
        assert!(line.contains(" flags=e "), "{label}: {line}");
    }
}

/// A RESP reply parsed by the redis crate.
fn value(raw: &mut Raw, args: &[&str]) -> redis::Value {
    redis::parse_redis_value(&raw.cmd(args)).expect("a RESP reply")
}

fn strings(v: redis::Value) -> Vec<String> {
    let mut v: Vec<String> = redis::FromRedisValue::from_redis_value(v).expect("strings");
    v.sort();
    v
}

#[test]
fn command_info_flags_and_categories_match_redis() {
    let d = Differential::new();
    let (mut r, mut o) = (d.redis.raw(), d.ours.raw());
    let names = strings(value(&mut o, &["COMMAND", "LIST"]));
    let mut args = vec!["COMMAND", "INFO"];
    args.extend(names.iter().map(String::as_str));
    let as_list = |v: redis::Value| -> Vec<redis::Value> { redis::FromRedisValue::from_redis_value(v).unwrap() };
    let ours = as_list(value(&mut o, &args));
    let theirs = as_list(value(&mut r, &args));
    let mut shared = 0;
    for ((name, o), t) in names.iter().zip(ours).zip(theirs) {
        if t == redis::Value::Nil {
            continue; // redlockd's own command
        }
        shared += 1;
        let (o, t) = (as_list(o), as_list(t));
        assert_eq!(strings(o[2].clone()), strings(t[2].clone()), "{name} flags");
        assert_eq!(strings(o[6].clone()), strings(t[6].clone()), "{name} ACL categories");
        assert_eq!(o[1..2], t[1..2], "{name} arity");
        assert_eq!(o[3..6], t[3..6], "{name} key positions");
    }
    assert!(shared > 50);
    let eval = as_list(as_list(value(&mut o, &["COMMAND", "INFO", "eval"])).remove(0));
    assert!(strings(eval[2].clone()).contains(&"movablekeys".to_string()));
}

#[test]
fn command_list_filters_as_redis() {
    let d = Differential::new();
    let (mut r, mut o) = (d.redis.raw(), d.ours.raw());
    // Everything redlockd can list (commands and subcommands).
    let ours_all = strings(value(&mut o, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "*"]));
    let theirs_all = strings(value(&mut r, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "*"]));
    for filter in [
        &["ACLCAT", "string"][..],
        &["ACLCAT", "keyspace"],
        &["ACLCAT", "CONNECTION"],
        &["ACLCAT", "fast"],
        &["ACLCAT", "dangerous"],
        &["ACLCAT", "nosuch"],
        &["PATTERN", "config*"],
        &["PATTERN", "*|help"],
        &["PATTERN", "g?t*"],
        &["MODULE", "nosuch"],
    ] {
        let mut args = vec!["COMMAND", "LIST", "FILTERBY"];
        args.extend(filter);
        // Compared on the names both have (redlockd's own commands aside).
        let ours: Vec<String> = strings(value(&mut o, &args))
            .into_iter()
            .filter(|n| theirs_all.contains(n))
            .collect();
        let theirs: Vec<String> = strings(value(&mut r, &args))
            .into_iter()
            .filter(|n| ours_all.contains(n))
            .collect();
        assert_eq!(ours, theirs, "{filter:?}");
    }
    // redlockd's own commands are listed under their categories too.
    let writes = strings(value(&mut o, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "write"]));
    assert!(writes.contains(&"lock.acquire".to_string()), "{writes:?}");
    let mut d = d;
    d.run(&[
        &["COMMAND", "LIST", "FILTERBY", "foo", "bar"],
        &["COMMAND", "LIST", "FILTERBY"],
        &["COMMAND", "LIST", "foo"],
        &["COMMAND", "LIST", "FILTERBY", "aclcat"],
    ]);
}

#[test]
fn slowlog_settings_from_flags() {
    let s = common::Server::start_with(&["--slowlog-log-slower-than", "0", "--slowlog-max-len", "3"]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "slowlog-*"]),
        "*4\r\n$23\r\nslowlog-log-slower-than\r\n$1\r\n0\r\n$15\r\nslowlog-max-len\r\n$1\r\n3\r\n"
    );
    for i in 0..5 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(c.cmd_str(&["SLOWLOG", "LEN"]), ":3\r\n");
    let off = common::Server::start_with(&["--slowlog-log-slower-than", "-1"]);
    let mut c = off.raw();
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(c.cmd_str(&["SLOWLOG", "LEN"]), ":0\r\n");
}
