//! The commands a RESP session answers itself, without the state machine: the connection's
//! (`HELLO`, `PING`, `ECHO`, `SELECT`, `CLIENT ...`, `RESET`) and the server's (`COMMAND`,
//! `CONFIG`, `TIME`), plus the table of every command skiff knows, which `COMMAND` reports.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use skiff_core::kv::{arity_error, arity_of, Resp};

use crate::resp::Proto;

/// What the session knows of the server, for `CONFIG GET` and `HELLO`.
#[derive(Clone, Debug)]
pub(crate) struct ServerFacts {
    pub(crate) node: u64,
    pub(crate) resp_port: u16,
    pub(crate) max_key_bytes: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_clients: usize,
}

/// The connection's own state.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) id: u64,
    pub(crate) proto: Proto,
    pub(crate) name: Bytes,
    pub(crate) lib_name: Bytes,
    pub(crate) lib_ver: Bytes,
    pub(crate) addr: String,
}

/// The Redis version whose command semantics skiff follows (what `HELLO` and `INFO` report:
/// clients pick features by it).
pub(crate) const REDIS_VERSION: &str = "7.2.0";

/// What a local command asks the session to do.
#[derive(Debug)]
pub(crate) enum Local {
    Reply(Resp),
    /// Answer, then close (`QUIT`).
    Close(Resp),
    /// Not a local command.
    No,
}

fn simple(s: &str) -> Resp {
    Resp::Simple(s.to_string())
}

fn bulk(s: impl Into<String>) -> Resp {
    Resp::Bulk(Bytes::from(s.into().into_bytes()))
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// Connection and server commands with their arity (Redis's convention: negative is a
/// minimum), flags and key positions as `COMMAND` reports them.
const LOCAL: &[(&str, i32)] = &[
    ("ping", -1),
    ("echo", 2),
    ("quit", -1),
    ("hello", -1),
    ("select", 2),
    ("client", -2),
    ("command", -1),
    ("config", -2),
    ("time", 1),
    ("info", -1),
    ("reset", 1),
    ("auth", -2),
    ("multi", 1),
    ("exec", 1),
    ("discard", 1),
    ("watch", -2),
    ("unwatch", 1),
    ("skiff.member", -2),
    ("bgsave", -1),
    ("lastsave", 1),
];

/// Data commands that change the state.
const WRITES: &[&str] = &[
    "set",
    "setnx",
    "getset",
    "getdel",
    "mset",
    "msetnx",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "incrbyfloat",
    "append",
    "setrange",
    "del",
    "unlink",
    "rename",
    "renamenx",
    "flushdb",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "getex",
    "setex",
    "psetex",
    "flushall",
    "persist",
    "hset",
    "hmset",
    "hsetnx",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lpop",
    "rpop",
    "lset",
    "sadd",
    "srem",
    "spop",
    "zadd",
    "zincrby",
    "zrem",
    "zpopmin",
    "zpopmax",
];

/// Data commands that only read.
const READS: &[&str] = &[
    "get",
    "mget",
    "strlen",
    "getrange",
    "exists",
    "type",
    "keys",
    "scan",
    "dbsize",
    "ttl",
    "pttl",
    "hget",
    "hmget",
    "hgetall",
    "hkeys",
    "hvals",
    "hlen",
    "hexists",
    "hstrlen",
    "llen",
    "lrange",
    "lindex",
    "smembers",
    "sismember",
    "scard",
    "zscore",
    "zrank",
    "zrevrank",
    "zrange",
    "zrevrange",
    "expiretime",
    "pexpiretime",
    "zcard",
];

/// The metrics label of command `name` (lowercase): its name if skiff knows it, else
/// `other` (a client cannot grow the set of labels).
pub(crate) fn command_label(name: &str) -> &'static str {
    all_commands().find(|n| *n == name).unwrap_or("other")
}

/// Whether data command `name` (lowercase) may change the state.
pub(crate) fn is_write(name: &str) -> bool {
    WRITES.contains(&name)
}

/// Every command name skiff answers.
pub(crate) fn all_commands() -> impl Iterator<Item = &'static str> {
    LOCAL.iter().map(|(n, _)| *n).chain(WRITES.iter().copied()).chain(READS.iter().copied())
}

/// `COMMAND INFO`'s entry for `name`, if skiff knows it.
fn command_info(name: &str) -> Option<Resp> {
    let arity = arity_of(name).or_else(|| LOCAL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a))?;
    let write = WRITES.contains(&name);
    let data = write || READS.contains(&name);
    let (first, last, step) = match name {
        _ if !data => (0, 0, 0),
        "mget" | "del" | "unlink" | "exists" => (1, -1, 1),
        "mset" | "msetnx" => (1, -1, 2),
        "rename" | "renamenx" => (1, 2, 1),
        "keys" | "scan" | "dbsize" | "flushdb" | "flushall" => (0, 0, 0),
        _ => (1, 1, 1),
    };
    let mut flags = vec![simple(if write {
        "write"
    } else if data {
        "readonly"
    } else {
        "fast"
    })];
    if write && !matches!(name, "flushdb" | "flushall" | "del" | "unlink") {
        flags.push(simple("denyoom"));
    }
    Some(Resp::Array(vec![
        bulk(name),
        Resp::Int(arity.into()),
        Resp::Set(flags),
        Resp::Int(first),
        Resp::Int(last),
        Resp::Int(step),
        Resp::Set(vec![]),
        Resp::Array(vec![]),
        Resp::Array(vec![]),
        Resp::Array(vec![]),
    ]))
}

/// What `CONFIG GET` answers: the parameters that tell the truth about skiff.
fn config_params(facts: &ServerFacts) -> Vec<(&'static str, String)> {
    vec![
        // Nothing is saved by RDB: every write is in the Raft log, fsynced before it commits.
        ("save", String::new()),
        ("appendonly", "yes".into()),
        ("appendfsync", "always".into()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("databases", "1".into()),
        ("port", facts.resp_port.to_string()),
        ("proto-max-bulk-len", facts.max_value_bytes.to_string()),
        ("maxclients", facts.max_clients.to_string()),
        ("timeout", "0".into()),
        ("cluster-enabled", "no".into()),
    ]
}

/// Runs local command `name` (lowercased) with `args` (after the name).
pub(crate) fn local(name: &str, args: &[Bytes], conn: &mut ConnState, facts: &ServerFacts) -> Local {
    if let Some((_, spec)) = LOCAL.iter().find(|(n, _)| *n == name) {
        let n = args.len() as i32 + 1;
        let fits = if *spec >= 0 { n == *spec } else { n >= -spec };
        if !fits {
            return Local::Reply(arity_error(name));
        }
    }
    Local::Reply(match name {
        "ping" => match args {
            [] => simple("PONG"),
            [msg] => Resp::Bulk(msg.clone()),
            _ => arity_error(name),
        },
        "echo" => Resp::Bulk(args[0].clone()),
        "quit" => return Local::Close(Resp::Ok),
        "hello" => return hello(args, conn, facts),
        "auth" => Resp::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your \
             configuration is correct?",
        ),
        "select" => match args[0].as_ref() {
            b"0" => Resp::Ok,
            _ => Resp::error("ERR DB index is out of range"),
        },
        "reset" => {
            conn.proto = Proto::Resp2;
            conn.name = Bytes::new();
            simple("RESET")
        }
        "client" => client(args, conn),
        "command" => command(args),
        "config" => config(args, facts),
        "time" => {
            let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            Resp::Array(vec![bulk(t.as_secs().to_string()), bulk(t.subsec_micros().to_string())])
        }
        _ => return Local::No,
    })
}

fn hello(args: &[Bytes], conn: &mut ConnState, facts: &ServerFacts) -> Local {
    let mut proto = conn.proto;
    let mut rest = args;
    if let Some((v, tail)) = args.split_first() {
        proto = match v.as_ref() {
            b"2" => Proto::Resp2,
            b"3" => Proto::Resp3,
            _ => return Local::Reply(Resp::error("NOPROTO unsupported protocol version")),
        };
        rest = tail;
    }
    let mut name = None;
    while let Some((opt, tail)) = rest.split_first() {
        match (upper(opt).as_str(), tail) {
            ("AUTH", [user, _pass, more @ ..]) => {
                // No users are configured: only the default user exists, and it needs no
                // password (as a Redis without `requirepass`).
                if user.as_ref() != b"default" {
                    return Local::Reply(Resp::error("WRONGPASS invalid username-password pair or user is disabled."));
                }
                rest = more;
            }
            ("SETNAME", [n, more @ ..]) => {
                if n.iter().any(|b| *b <= b' ') {
                    return Local::Reply(Resp::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                name = Some(n.clone());
                rest = more;
            }
            _ => {
                let shown = String::from_utf8_lossy(opt).into_owned();
                return Local::Reply(Resp::Error(format!("ERR Syntax error in HELLO option '{shown}'")));
            }
        }
    }
    conn.proto = proto;
    if let Some(n) = name {
        conn.name = n;
    }
    let proto_n = if proto == Proto::Resp3 { 3 } else { 2 };
    Local::Reply(Resp::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(REDIS_VERSION)),
        (bulk("proto"), Resp::Int(proto_n)),
        (bulk("id"), Resp::Int(conn.id as i64)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Resp::Array(vec![])),
        (bulk("skiff_version"), bulk(env!("CARGO_PKG_VERSION"))),
        (bulk("skiff_node"), Resp::Int(facts.node as i64)),
    ]))
}

/// This connection's line of `CLIENT LIST` and `CLIENT INFO`.
fn client_line(conn: &ConnState) -> String {
    let resp = if conn.proto == Proto::Resp3 { 3 } else { 2 };
    format!(
        "id={} addr={} name={} db=0 resp={resp} lib-name={} lib-ver={}\n",
        conn.id,
        conn.addr,
        String::from_utf8_lossy(&conn.name),
        String::from_utf8_lossy(&conn.lib_name),
        String::from_utf8_lossy(&conn.lib_ver)
    )
}

fn client(args: &[Bytes], conn: &mut ConnState) -> Resp {
    let sub = upper(&args[0]);
    match (sub.as_str(), &args[1..]) {
        ("SETNAME", [n]) => {
            if n.iter().any(|b| *b <= b' ') {
                return Resp::error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            conn.name = n.clone();
            Resp::Ok
        }
        ("GETNAME", []) if conn.name.is_empty() => Resp::Nil,
        ("GETNAME", []) => Resp::Bulk(conn.name.clone()),
        ("ID", []) => Resp::Int(conn.id as i64),
        ("SETINFO", [attr, value]) => match upper(attr).as_str() {
            "LIB-NAME" => {
                conn.lib_name = value.clone();
                Resp::Ok
            }
            "LIB-VER" => {
                conn.lib_ver = value.clone();
                Resp::Ok
            }
            _ => Resp::Error(format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(attr))),
        },
        // Only this connection: the other connections of the node are not listed.
        ("LIST", _) | ("INFO", []) => bulk(client_line(conn)),
        ("REPLY", [mode]) if upper(mode) == "ON" => Resp::Ok,
        ("NO-EVICT" | "NO-TOUCH", [_]) => Resp::Ok,
        _ => Resp::Error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&args[0])
        )),
    }
}

fn command(args: &[Bytes]) -> Resp {
    let Some(sub) = args.first() else { return Resp::Array(all_commands().filter_map(command_info).collect()) };
    let names = || args[1..].iter().map(|n| String::from_utf8_lossy(n).to_ascii_lowercase());
    match upper(sub).as_str() {
        "COUNT" => Resp::Int(all_commands().count() as i64),
        "LIST" => Resp::Array(all_commands().map(bulk).collect()),
        "INFO" if args.len() == 1 => Resp::Array(all_commands().filter_map(command_info).collect()),
        "INFO" => Resp::Array(names().map(|n| command_info(&n).unwrap_or(Resp::NilArray)).collect()),
        // No documentation is served: redis-cli then goes without hints.
        "DOCS" => Resp::Map(vec![]),
        _ => Resp::Error(format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", String::from_utf8_lossy(sub))),
    }
}

fn config(args: &[Bytes], facts: &ServerFacts) -> Resp {
    match upper(&args[0]).as_str() {
        "GET" if args.len() >= 2 => {
            let params = config_params(facts);
            let mut out = Vec::new();
            for (name, value) in &params {
                if args[1..].iter().any(|p| skiff_core::kv::glob_match(&p.to_ascii_lowercase(), name.as_bytes())) {
                    out.push((bulk(*name), bulk(value.clone())));
                }
            }
            Resp::Map(out)
        }
        "SET" => Resp::error("ERR CONFIG SET is not supported by skiff: set options in the node's configuration file"),
        "RESETSTAT" => Resp::Ok,
        _ => Resp::Error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[0])
        )),
    }
}

/// The sections of INFO text `text` that `args` ask for (all of them when none, `all`,
/// `everything` or `default` is asked).
pub(crate) fn info_sections(text: &str, args: &[Bytes]) -> String {
    let wanted: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    if wanted.is_empty() || wanted.iter().any(|w| matches!(w.as_str(), "all" | "everything" | "default")) {
        return text.to_string();
    }
    let mut out = String::new();
    let mut keep = false;
    for line in text.split_inclusive("\r\n") {
        if let Some(name) = line.strip_prefix("# ") {
            keep = wanted.iter().any(|w| w == &name.trim_end().to_ascii_lowercase());
        }
        if keep {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnState {
        ConnState {
            id: 7,
            proto: Proto::Resp2,
            name: Bytes::new(),
            lib_name: Bytes::new(),
            lib_ver: Bytes::new(),
            addr: "127.0.0.1:1".into(),
        }
    }

    fn facts() -> ServerFacts {
        ServerFacts { node: 1, resp_port: 6379, max_key_bytes: 1024, max_value_bytes: 1 << 20, max_clients: 100 }
    }

    fn run(words: &str, c: &mut ConnState) -> Resp {
        let args: Vec<Bytes> = words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        match local(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase(), &args[1..], c, &facts()) {
            Local::Reply(r) | Local::Close(r) => r,
            Local::No => panic!("not local"),
        }
    }

    #[test]
    fn hello_switches_protocol_and_names_the_connection() {
        let mut c = conn();
        let Resp::Map(fields) = run("HELLO 3 AUTH default x SETNAME app", &mut c) else { panic!() };
        assert!(fields.contains(&(bulk("proto"), Resp::Int(3))));
        assert_eq!((c.proto, c.name.as_ref()), (Proto::Resp3, &b"app"[..]));
        assert_eq!(run("HELLO 4", &mut c), Resp::error("NOPROTO unsupported protocol version"));
        assert!(run("HELLO 3 AUTH someone x", &mut c).is_error());
        assert!(run("HELLO 3 BOGUS", &mut c).is_error());
        assert_eq!(run("CLIENT GETNAME", &mut c), bulk("app"));
        assert_eq!(run("CLIENT SETINFO LIB-NAME redis-py", &mut c), Resp::Ok);
        assert!(matches!(run("CLIENT INFO", &mut c), Resp::Bulk(b) if b.starts_with(b"id=7 ")));
        assert_eq!(run("SELECT 0", &mut c), Resp::Ok);
        assert_eq!(run("SELECT 1", &mut c), Resp::error("ERR DB index is out of range"));
        assert_eq!(run("ECHO hi", &mut c), bulk("hi"));
        assert_eq!(run("ECHO", &mut c), arity_error("echo"));
    }

    #[test]
    fn config_and_command_tell_the_truth_about_skiff() {
        let mut c = conn();
        assert_eq!(
            run("CONFIG GET save appendfsync", &mut c),
            Resp::Map(vec![(bulk("save"), bulk("")), (bulk("appendfsync"), bulk("always"))])
        );
        let Resp::Map(all) = run("CONFIG GET *", &mut c) else { panic!() };
        assert!(all.len() > 5);
        assert!(run("CONFIG SET save x", &mut c).is_error());
        assert_eq!(run("COMMAND COUNT", &mut c), Resp::Int(all_commands().count() as i64));
        let Resp::Array(info) = run("COMMAND INFO get nope", &mut c) else { panic!() };
        assert_eq!(info[1], Resp::NilArray);
        let Resp::Array(get) = &info[0] else { panic!() };
        assert_eq!((&get[0], &get[1]), (&bulk("get"), &Resp::Int(2)));
    }

    #[test]
    fn info_keeps_the_sections_asked_for() {
        let text = "# Server\r\na:1\r\n# Raft\r\nb:2\r\n# Keyspace\r\nc:3\r\n";
        assert_eq!(info_sections(text, &[]), text);
        assert_eq!(
            info_sections(text, &[Bytes::from("raft"), Bytes::from("KEYSPACE")]),
            "# Raft\r\nb:2\r\n# Keyspace\r\nc:3\r\n"
        );
        assert_eq!(info_sections(text, &[Bytes::from("nope")]), "");
    }
}
