//! Server and connection commands that Redis defines but whose replies
//! differ by nature (versions, ids, counters): checked by hand.

mod common;
use std::time::Duration;

use common::{Server, eventually};

#[test]
fn hello_switches_protocol_and_describes_the_server() {
    let server = Server::start();
    let mut c = server.raw();
    let reply = c.cmd_str(&["HELLO", "3"]);
    assert!(
        reply.starts_with(
            "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n8.4.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"
        ),
        "{reply}"
    );
    assert!(
        reply.ends_with("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"),
        "{reply}"
    );
    assert_eq!(c.cmd(&["GET", "nope"]), b"_\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "appendonly"]),
        "%1\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    );
    let reply = c.cmd_str(&["HELLO", "2", "SETNAME", "me"]);
    assert!(reply.starts_with("*14\r\n"), "{reply}");
    assert_eq!(c.cmd(&["GET", "nope"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), b"$2\r\nme\r\n");
    // No arguments: the map in the current protocol.
    assert!(c.cmd_str(&["HELLO"]).starts_with("*14\r\n"));
    assert!(
        c.cmd_str(&["HELLO", "3", "AUTH", "default", "whatever"])
            .contains("$5\r\nproto\r\n:3\r\n")
    );
}

#[test]
fn info_reports_versions_and_counters() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["SET", "a", "1"]);
    c.cmd(&["GET", "a"]);
    c.cmd(&["GET", "missing"]);
    let info = c.cmd_str(&["INFO"]);
    for needle in [
        "redis_version:8.4.0\r\n",
        "redlockd_version:",
        "loading:0\r\n",
        "connected_clients:1\r\n",
        "db0:keys=1,expires=0",
    ] {
        assert!(info.contains(needle), "{needle} missing from {info}");
    }
    let stats = c.cmd_str(&["INFO", "stats"]);
    assert!(stats.contains("keyspace_hits:1\r\n"), "{stats}");
    assert!(stats.contains("keyspace_misses:1\r\n"), "{stats}");
    assert!(!stats.contains("# Server"), "{stats}");
    let cmdstats = c.cmd_str(&["INFO", "commandstats"]);
    assert!(cmdstats.contains("cmdstat_get:calls=2,"), "{cmdstats}");
    c.cmd(&["CONFIG", "RESETSTAT"]);
    let cmdstats = c.cmd_str(&["INFO", "commandstats"]);
    assert!(!cmdstats.contains("cmdstat_get:"), "{cmdstats}");
    // RESP3: a verbatim string.
    c.cmd(&["HELLO", "3"]);
    assert!(c.cmd_str(&["INFO", "server"]).starts_with('='));
}

#[test]
fn command_introspection() {
    let server = Server::start();
    let mut c = server.raw();
    let count = c.cmd_str(&["COMMAND", "COUNT"]);
    let n: usize = count.trim_start_matches(':').trim().parse().unwrap();
    assert!(n > 70, "{count}");
    let info = c.cmd_str(&["COMMAND", "INFO", "get", "nosuch"]);
    assert!(info.starts_with("*2\r\n*10\r\n$3\r\nget\r\n:2\r\n"), "{info}");
    assert!(info.ends_with("*-1\r\n"), "{info}");
    let keys = c.cmd_str(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]);
    assert_eq!(keys, "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    let keys = c.cmd_str(&["COMMAND", "GETKEYS", "EVAL", "x", "2", "k1", "k2", "arg"]);
    assert_eq!(keys, "*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n");
    let docs = c.cmd_str(&["COMMAND", "DOCS", "set"]);
    assert!(docs.contains("summary"), "{docs}");
    let all = c.cmd_str(&["COMMAND"]);
    assert!(all.starts_with(&format!("*{n}\r\n")));
    let list = c.cmd_str(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "lock.*"]);
    assert!(list.contains("lock.acquire"), "{list}");
}

#[test]
fn client_list_setinfo_and_kill() {
    let server = Server::start();
    let mut a = server.raw();
    let mut b = server.raw();
    assert_eq!(a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["CLIENT", "SETINFO", "LIB-VER", "8.1.0"]), b"+OK\r\n");
    assert!(
        a.cmd_str(&["CLIENT", "SETINFO", "FOO", "x"])
            .starts_with("-ERR Unrecognized option 'FOO'")
    );
    assert!(
        a.cmd_str(&["CLIENT", "MAINT_NOTIFICATIONS", "ON"])
            .starts_with("-ERR unknown subcommand 'MAINT_NOTIFICATIONS'")
    );
    a.cmd(&["CLIENT", "SETNAME", "alpha"]);
    let id_b = b.cmd_str(&["CLIENT", "ID"]).trim_start_matches(':').trim().to_string();
    let list = a.cmd_str(&["CLIENT", "LIST"]);
    assert!(list.contains("name=alpha"), "{list}");
    assert!(list.contains("lib-name=redis-py lib-ver=8.1.0"), "{list}");
    assert!(list.contains(&format!("id={id_b} ")), "{list}");
    let me = a.cmd_str(&["CLIENT", "INFO"]);
    assert!(me.contains("name=alpha") && me.contains("cmd=client"), "{me}");
    assert_eq!(a.cmd_str(&["CLIENT", "KILL", "ID", &id_b]), ":1\r\n");
    assert_eq!(b.read_until_closed(), b"");
    assert!(eventually(Duration::from_secs(5), || !a
        .cmd_str(&["CLIENT", "LIST"])
        .contains(&format!("id={id_b} "))));
}

#[test]
fn config_set_changes_runtime_limits() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxclients", "500"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "maxclients"]),
        "*2\r\n$10\r\nmaxclients\r\n$3\r\n500\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "2mb"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "proto-max-bulk-len"]),
        "*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n2097152\r\n"
    );
    assert!(
        c.cmd_str(&["CONFIG", "SET", "maxclients", "abc"])
            .starts_with("-ERR CONFIG SET failed")
    );
    assert!(
        c.cmd_str(&["CONFIG", "SET", "nosuch", "1"])
            .starts_with("-ERR Unknown option")
    );
    let all = c.cmd_str(&["CONFIG", "GET", "*max*"]);
    assert!(all.contains("maxclients") && all.contains("maxmemory"), "{all}");
}

#[test]
fn time_and_dbs() {
    let server = Server::start_with(&["--databases", "2"]);
    let mut c = server.raw();
    let time = c.cmd_str(&["TIME"]);
    assert!(time.starts_with("*2\r\n$10\r\n"), "{time}");
    assert_eq!(c.cmd(&["SELECT", "1"]), b"+OK\r\n");
    assert_eq!(c.cmd_str(&["SELECT", "2"]), "-ERR DB index is out of range\r\n");
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["SELECT", "0"]);
    assert_eq!(c.cmd(&["DBSIZE"]), b":0\r\n");
    c.cmd(&["FLUSHALL"]);
    c.cmd(&["SELECT", "1"]);
    assert_eq!(c.cmd(&["DBSIZE"]), b":0\r\n");
}

#[test]
fn reset_restores_connection_defaults() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["HELLO", "3"]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["MULTI"]);
    assert_eq!(c.cmd(&["RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&["GET", "x"]), b"$-1\r\n");
    assert!(c.cmd_str(&["CLIENT", "INFO"]).contains("db=0"));
    assert_eq!(c.cmd_str(&["EXEC"]), "-ERR EXEC without MULTI\r\n");
}

#[test]
fn multi_exec_across_select_and_flushall() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["MULTI"]);
    c.cmd(&["SET", "a", "0"]);
    c.cmd(&["SELECT", "1"]);
    c.cmd(&["SET", "b", "1"]);
    c.cmd(&["FLUSHALL"]);
    c.cmd(&["SET", "c", "2"]);
    assert_eq!(c.cmd_str(&["EXEC"]), "*5\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":1\r\n");
    c.cmd(&["SELECT", "0"]);
    assert_eq!(c.cmd(&["DBSIZE"]), b":0\r\n");
}
