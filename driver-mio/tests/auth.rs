//! Clients must authenticate to a cluster with users: RESP `AUTH` and `HELLO 3 AUTH`, roles
//! that allow what they say (read-only, read-write, admin), failed attempts bounded per
//! connection, forwarded requests that carry the client's credentials, and the native
//! protocol's token (the `skiff` CLI from `SKIFF_USER`/`SKIFF_PASSWORD`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Cluster};
use redis::Value;
use skiff_mio::server::acl::hash_password;

/// A cluster of three whose users are `reader` (read-only), `writer` (read-write) and `ops`
/// (admin), each with the password `<name>-pass`; and the RESP port of a node that does not
/// lead (so what it runs is forwarded).
fn cluster() -> (Cluster, tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (name, role) in [("reader", "read-only"), ("writer", "read-write"), ("ops", "admin")] {
        let hash = hash_password(&format!("{name}-pass"));
        toml.push_str(&format!("[[users]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{hash}\"\n"));
    }
    let path = dir.path().join("users.toml");
    std::fs::write(&path, toml).unwrap();
    let c = Cluster::with_flags(3, &["--config", path.to_str().unwrap()]);
    // INFO needs a user: the leader is found from the metrics, which need none.
    let mut l = 0;
    wait_for("a leader", Duration::from_secs(20), || {
        let found = (0..3).find(|i| scrape(c.metrics[*i]).lines().any(|x| x == "skiff_raft_role 3"));
        l = found.unwrap_or(0);
        found.is_some()
    });
    let port = c.resp[(l + 1) % 3];
    (c, dir, port)
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn connect(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap()
}

fn run(con: &mut redis::Connection, words: &[&str]) -> Result<Value, String> {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query::<Value>(con).map_err(|e| format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")))
}

#[test]
fn users_authenticate_and_roles_allow_what_they_say() {
    let (c, _dir, port) = cluster();
    let mut con = connect(port);
    // Nothing before authenticating but AUTH, HELLO and QUIT.
    assert_eq!(run(&mut con, &["PING"]), Err("NOAUTH Authentication required.".into()));
    assert_eq!(run(&mut con, &["GET", "k"]), Err("NOAUTH Authentication required.".into()));
    assert!(run(&mut con, &["HELLO", "3"]).unwrap_err().starts_with("NOAUTH HELLO must be called"));
    assert!(run(&mut con, &["AUTH", "writer", "wrong"]).unwrap_err().starts_with("WRONGPASS"));
    assert!(run(&mut con, &["AUTH", "nobody", "writer-pass"]).unwrap_err().starts_with("WRONGPASS"));
    // A writer, through a follower: its forwarded writes carry its credentials.
    assert_eq!(run(&mut con, &["AUTH", "writer", "writer-pass"]), Ok(Value::Okay));
    assert_eq!(run(&mut con, &["SET", "k", "v"]), Ok(Value::Okay));
    assert_eq!(run(&mut con, &["GET", "k"]), Ok(Value::BulkString(b"v".to_vec())));
    assert!(run(&mut con, &["SKIFF.MEMBER", "REMOVE", "3"]).unwrap_err().starts_with("NOPERM"));
    // A reader reads and cannot write, nor within a transaction.
    let mut r = connect(port);
    assert_eq!(run(&mut r, &["AUTH", "reader", "reader-pass"]), Ok(Value::Okay));
    assert_eq!(run(&mut r, &["GET", "k"]), Ok(Value::BulkString(b"v".to_vec())));
    assert_eq!(
        run(&mut r, &["SET", "k", "w"]),
        Err("NOPERM User reader has no permissions to run the 'set' command".into())
    );
    assert_eq!(run(&mut r, &["MULTI"]), Ok(Value::Okay));
    assert!(run(&mut r, &["INCR", "n"]).unwrap_err().starts_with("NOPERM"));
    assert!(run(&mut r, &["EXEC"]).unwrap_err().starts_with("EXECABORT"));
    // An admin may list and change the membership; HELLO 3 AUTH authenticates too.
    let mut a = connect(port);
    let Value::Map(hello) = run(&mut a, &["HELLO", "3", "AUTH", "ops", "ops-pass"]).unwrap() else { panic!() };
    assert!(hello.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
    assert!(run(&mut a, &["SKIFF.MEMBER", "LIST"]).is_ok());
    // Failed attempts are bounded per connection: the fifth closes it.
    let mut bad = connect(port);
    for _ in 0..4 {
        assert!(run(&mut bad, &["AUTH", "writer", "guess"]).unwrap_err().starts_with("WRONGPASS"));
    }
    assert!(run(&mut bad, &["AUTH", "writer", "guess"]).unwrap_err().contains("too many failed authentication"));
    assert!(run(&mut bad, &["PING"]).is_err(), "closed");
    let _ = c;
}

#[test]
fn the_native_protocol_needs_a_token_that_checks() {
    let (c, _dir, _) = cluster();
    let servers: Vec<String> = c.native.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
    let skiff = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.args(args).args(["--servers", &servers.join(",")]).env_remove("SKIFF_USER").env_remove("SKIFF_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = skiff(&["put", "a", "1"], &[]);
    assert!(!ok && out.contains("NOAUTH"), "{out}");
    let writer = [("SKIFF_USER", "writer"), ("SKIFF_PASSWORD", "writer-pass")];
    let (ok, out) = skiff(&["put", "a", "1"], &writer);
    assert!(ok, "{out}");
    let reader = [("SKIFF_USER", "reader"), ("SKIFF_PASSWORD", "reader-pass")];
    let (ok, out) = skiff(&["get", "a"], &reader);
    assert!(ok && out.trim() == "1", "{out}");
    let (ok, out) = skiff(&["put", "a", "2"], &reader);
    assert!(!ok && out.contains("NOPERM"), "{out}");
    let (ok, out) = skiff(&["get", "a"], &[("SKIFF_USER", "reader"), ("SKIFF_PASSWORD", "nope")]);
    assert!(!ok && out.contains("WRONGPASS"), "{out}");
    std::thread::sleep(Duration::from_millis(10));
}
