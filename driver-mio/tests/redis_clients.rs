//! Redis clients against real `skiff-node` processes: the `redis` crate command by command in
//! RESP2 and RESP3 (through a follower, so every request is forwarded to the leader),
//! redis-py on its default settings, and redis-benchmark's default suite without an error
//! reply. redis-py and redis-benchmark are skipped, saying so, when they are not installed,
//! unless `SKIFF_REQUIRE_REDIS_TOOLS=1` (CI sets it and installs them).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{leader, wait_for, Cluster};
use redis::Value;

fn required() -> bool {
    std::env::var("SKIFF_REQUIRE_REDIS_TOOLS").is_ok_and(|v| v == "1")
}

/// A cluster of three with a leader, and the RESP port of a node that does not lead.
fn cluster() -> (Cluster, u16) {
    let c = Cluster::new(3);
    let l = leader(&c);
    let follower = (l + 1) % 3;
    let port = c.resp[follower];
    (c, port)
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn run(con: &mut redis::Connection, words: &[&str]) -> Value {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    match cmd.query::<Value>(con) {
        Ok(v) => v,
        Err(e) => Value::SimpleString(format!("error: {} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))),
    }
}

/// Every command of `script` (words, then the reply expected in RESP2 and in RESP3).
#[allow(clippy::type_complexity)]
fn script() -> Vec<(Vec<&'static str>, Value, Value)> {
    let same = |words: &'static str, v: Value| (words.split(' ').collect::<Vec<_>>(), v.clone(), v);
    let both = |words: &'static str, v2: Value, v3: Value| (words.split(' ').collect::<Vec<_>>(), v2, v3);
    let err = |code: &str, detail: &str| Value::SimpleString(format!("error: {code} {detail}"));
    vec![
        same("SET a 1", Value::Okay),
        same("GET a", bulk("1")),
        same("INCRBY a 41", Value::Int(42)),
        same("SET a x NX", Value::Nil),
        same("SET a 43 XX GET", bulk("42")),
        same("MSET b 2 c 3", Value::Okay),
        same("MGET a b nope", Value::Array(vec![bulk("43"), bulk("2"), Value::Nil])),
        same("EXISTS a b nope", Value::Int(2)),
        same("DEL b c nope", Value::Int(2)),
        same("APPEND a !", Value::Int(3)),
        same("STRLEN a", Value::Int(3)),
        same("INCR a", err("ERR", "value is not an integer or out of range")),
        same("TYPE a", Value::SimpleString("string".into())),
        same("RENAME a r", Value::Okay),
        same("SET e v EX 100", Value::Okay),
        same("TTL e", Value::Int(100)),
        same("PERSIST e", Value::Int(1)),
        same("TTL e", Value::Int(-1)),
        same("HSET h f v", Value::Int(1)),
        both("HGETALL h", Value::Array(vec![bulk("f"), bulk("v")]), Value::Map(vec![(bulk("f"), bulk("v"))])),
        same("LPUSH h x", err("WRONGTYPE", "Operation against a key holding the wrong kind of value")),
        same("RPUSH l a b c", Value::Int(3)),
        same("LRANGE l 0 -1", Value::Array(vec![bulk("a"), bulk("b"), bulk("c")])),
        same("LPOP l 2", Value::Array(vec![bulk("a"), bulk("b")])),
        same("SADD s m", Value::Int(1)),
        both("SMEMBERS s", Value::Array(vec![bulk("m")]), Value::Set(vec![bulk("m")])),
        same("ZADD z 1.5 m", Value::Int(1)),
        both("ZSCORE z m", bulk("1.5"), Value::Double(1.5)),
        same("ZCARD z", Value::Int(1)),
        same("SETRANGE sr 2 xy", Value::Int(4)),
        same("GETRANGE sr 0 -1", Value::BulkString(b"\0\0xy".to_vec())),
        same("GETRANGE sr -2 -1", bulk("xy")),
        same("INCRBYFLOAT f 1.5", bulk("1.5")),
        same("SET e2 v", Value::Okay),
        same("PEXPIREAT e2 99999999999999", Value::Int(1)),
        same("PEXPIRETIME e2", Value::Int(99999999999999)),
        same("KEYS sr*", Value::Array(vec![bulk("sr")])),
        same("SCAN 0 MATCH e2 COUNT 1000", Value::Array(vec![bulk("0"), Value::Array(vec![bulk("e2")])])),
        same("ZADD z2 1 a 2 b", Value::Int(2)),
        both(
            "ZRANGE z2 0 -1 WITHSCORES",
            Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]),
            Value::Array(vec![
                Value::Array(vec![bulk("a"), Value::Double(1.0)]),
                Value::Array(vec![bulk("b"), Value::Double(2.0)]),
            ]),
        ),
        both("ZPOPMIN z2", Value::Array(vec![bulk("a"), bulk("1")]), Value::Array(vec![bulk("a"), Value::Double(1.0)])),
        same("SADD sp only", Value::Int(1)),
        same("SPOP sp", bulk("only")),
        same("CLIENT SETNAME app", Value::Okay),
        same("CLIENT GETNAME", bulk("app")),
        both(
            "CONFIG GET appendfsync",
            Value::Array(vec![bulk("appendfsync"), bulk("always")]),
            Value::Map(vec![(bulk("appendfsync"), bulk("always"))]),
        ),
        same("SELECT 1", err("ERR", "DB index is out of range")),
        same("ECHO hi", bulk("hi")),
        same("FROB x", err("ERR", "unknown command 'FROB', with args beginning with: 'x' ")),
        same("FLUSHDB", Value::Okay),
        same("DBSIZE", Value::Int(0)),
    ]
}

#[test]
fn commands_answer_as_redis_in_resp2_and_resp3_through_a_follower() {
    let (_c, port) = cluster();
    for (proto, url) in
        [(2, format!("redis://127.0.0.1:{port}/")), (3, format!("redis://127.0.0.1:{port}/?protocol=resp3"))]
    {
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
        for (words, v2, v3) in script() {
            let want = if proto == 2 { v2 } else { v3 };
            assert_eq!(run(&mut con, &words), want, "RESP{proto}: {}", words.join(" "));
        }
        // The server's commands.
        let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
        assert!(count > 90, "RESP{proto}: {count} commands");
        let time: Vec<String> = redis::cmd("TIME").query(&mut con).unwrap();
        assert!(time.len() == 2 && time[0].parse::<u64>().unwrap() > 1_700_000_000, "RESP{proto}: {time:?}");
        let info: String = redis::cmd("INFO").arg("keyspace").query(&mut con).unwrap();
        assert!(info.starts_with("# Keyspace\r\ndb0:keys="), "RESP{proto}: {info}");
        let info: String = redis::cmd("INFO").query(&mut con).unwrap();
        for section in ["# Server", "# Clients", "# Memory", "# Persistence", "# Stats", "# Raft"] {
            assert!(info.contains(section), "RESP{proto}: no {section} in {info}");
        }
        // Binary keys and values, end to end.
        let key: &[u8] = b"\x00k\xff\r\n";
        let value: &[u8] = b"\xff\x00\x01v";
        let _: () = redis::cmd("SET").arg(key).arg(value).query(&mut con).unwrap();
        let got: Vec<u8> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(got, value, "RESP{proto}");
        // A transaction, and one a WATCH aborts.
        let (n, v): (i64, String) = redis::pipe().atomic().incr("t", 1).get("t").query(&mut con).unwrap();
        assert_eq!((n, v.as_str()), (1, "1"));
        let _: () = redis::cmd("WATCH").arg("t").query(&mut con).unwrap();
        let mut other = client.get_connection().unwrap();
        let _: () = redis::cmd("SET").arg("t").arg("9").query(&mut other).unwrap();
        let aborted: Option<(i64,)> = redis::pipe().atomic().incr("t", 1).query(&mut con).unwrap();
        assert_eq!(aborted, None, "RESP{proto}: the watched key changed");
        // A pipeline (not a transaction): many commands in flight, answered in order, an
        // error among them for its own command only.
        let mut p = redis::pipe();
        for i in 0..100 {
            p.cmd("RPUSH").arg("pl").arg(i).ignore();
        }
        p.cmd("LLEN").arg("pl").cmd("LINDEX").arg("pl").arg(-1);
        let (len, last): (i64, String) = p.query(&mut con).unwrap_or_else(|e| panic!("RESP{proto}: {e}"));
        assert_eq!((len, last.as_str()), (100, "99"), "RESP{proto}");
        let mut p = redis::pipe();
        p.cmd("SET").arg("x").arg(1).cmd("HSET").arg("pl").arg("f").arg("v").cmd("SET").arg("y").arg(2);
        let refused = p.query::<Value>(&mut con);
        assert!(refused.is_err_and(|e| e.code() == Some("WRONGTYPE")), "RESP{proto}");
        let after: Vec<String> = redis::cmd("MGET").arg("x").arg("y").query(&mut con).unwrap();
        assert_eq!(after, ["1", "2"], "RESP{proto}: the commands around the error applied");
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    }
}

#[test]
fn a_key_expires_for_every_node_alike() {
    let (c, port) = cluster();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("PX").arg(300).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("keep").arg("v").query(&mut con).unwrap();
    // Gone from every node within a few clock entries, and swept from every state.
    for p in &c.resp {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{p}/")).unwrap().get_connection().unwrap();
        wait_for("the key to expire", Duration::from_secs(10), || {
            redis::cmd("EXISTS").arg("k").query::<i64>(&mut con).unwrap() == 0
        });
        assert_eq!(redis::cmd("EXISTS").arg("keep").query::<i64>(&mut con).unwrap(), 1);
    }
    for p in &c.resp {
        wait_for("the sweep", Duration::from_secs(10), || common::info_field(*p, "keys") == 1);
    }
}

#[test]
fn redis_py_on_default_settings() {
    let has = Command::new("python3").args(["-c", "import redis"]).status().is_ok_and(|s| s.success());
    if !has {
        assert!(!required(), "python3 with the redis package is required (SKIFF_REQUIRE_REDIS_TOOLS=1)");
        eprintln!("SKIPPED: python3 with the redis package (pip install redis) is not installed");
        return;
    }
    let (_c, port) = cluster();
    let script = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
assert r.set("a", "1") and r.get("a") == b"1"
assert r.incr("a") == 2 and r.delete("a") == 1 and r.exists("a") == 0
r.hset("h", mapping={"f": "v"}); assert r.hgetall("h") == {b"f": b"v"}
r.rpush("l", 1, 2, 3); assert r.lrange("l", 0, -1) == [b"1", b"2", b"3"]
r.zadd("z", {"m": 2.5}); assert r.zscore("z", "m") == 2.5
r.set("e", "v", ex=100); assert r.ttl("e") == 100
p = r.pipeline(); p.set("t", 1); p.incr("t"); assert p.execute() == [True, 2]
assert r.dbsize() == 5 and r.ping() and r.echo("x") == b"x"
assert "keys" in r.info("keyspace") or "db0" in r.info("keyspace")
print("ok", r.connection_pool.connection_kwargs.get("protocol"))
"#;
    let out = Command::new("python3").args(["-c", script, &port.to_string()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-py failed:\n{stdout}\n{stderr}");
}

#[test]
fn redis_benchmark_default_suite_has_no_error_reply() {
    if Command::new("redis-benchmark").arg("--version").output().is_err() {
        assert!(!required(), "redis-benchmark is required (SKIFF_REQUIRE_REDIS_TOOLS=1)");
        eprintln!("SKIPPED: redis-benchmark (apt install redis-tools) is not installed");
        return;
    }
    let (_c, port) = cluster();
    // The default suite but XADD (skiff has no streams).
    let tests = "ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset";
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-n", "2000", "-c", "8", "-q", "-t", tests])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let all = format!("{stdout}{stderr}");
    assert!(out.status.success(), "redis-benchmark failed:\n{all}");
    assert!(!all.contains("Error") && !all.contains("ERR"), "an error reply:\n{all}");
    for t in ["PING_INLINE", "SET", "GET", "INCR", "LPUSH", "SPOP", "ZPOPMIN", "LRANGE_600", "MSET"] {
        assert!(all.contains(t), "{t} did not run:\n{all}");
    }
}

/// The body of `GET /metrics` from a node.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: skiff\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}

/// The value of the sample line `name` (with its labels) of a scrape.
fn sample(page: &str, name: &str) -> f64 {
    let line = page.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

#[test]
fn metrics_count_raft_storage_and_client_commands() {
    let c = Cluster::new(3);
    let l = leader(&c);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", c.resp[l])).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..5 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("v").query(&mut con).unwrap();
    }
    let refused = redis::cmd("INCR").arg("k0").query::<Value>(&mut con);
    assert!(refused.is_err(), "INCR of a non-integer: {refused:?}");
    let page = scrape(c.metrics[l]);
    assert_eq!(sample(&page, "skiff_raft_role"), 3.0, "the leader says so");
    assert!(sample(&page, "skiff_raft_term") >= 1.0);
    assert!(sample(&page, "skiff_raft_proposals_total") >= 6.0);
    assert!(sample(&page, "skiff_storage_fsync_seconds_count") >= 1.0);
    assert_eq!(sample(&page, "skiff_client_commands_total{command=\"set\"}"), 5.0);
    assert_eq!(sample(&page, "skiff_client_command_errors_total{command=\"incr\"}"), 1.0, "INCR of a non-integer");
    assert_eq!(sample(&page, "skiff_client_command_seconds_count{command=\"set\"}"), 5.0);
    wait_for("the commit to show", Duration::from_secs(5), || {
        sample(&scrape(c.metrics[l]), "skiff_raft_applied_index") >= 7.0
    });
}
