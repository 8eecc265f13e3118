//! Unit tests of [`RespSession`]: ordering, pipelines, transactions, timeouts.
use super::*;
use mio::net::{TcpListener, TcpStream};
use mio::{Poll, Token};

fn session() -> (RespSession, Poll) {
    let poll = Poll::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let conn = Conn::register(stream, Token(1), poll.registry(), crate::server::wire::Wire::Plain, None).unwrap();
    let facts =
        ServerFacts { node: 1, resp_port: 6379, max_key_bytes: 1024, max_value_bytes: 1 << 20, max_clients: 10 };
    let users = std::sync::Arc::new(std::sync::Mutex::new(crate::server::acl::Users::default()));
    (RespSession::new(conn, Clerk::new(11, vec![NodeId(1), NodeId(2), NodeId(3)]), facts, Metrics::new(), users), poll)
}

fn sent(need: Option<Need>) -> (NodeId, u64, Command) {
    match need {
        Some(Need::Send { to, attempt, command, .. }) => (to, attempt, command),
        other => panic!("not a send: {other:?}"),
    }
}

#[test]
fn pipelined_commands_are_answered_in_order_with_kv_ops_one_at_a_time() {
    let (mut s, _poll) = session();
    let now = Instant::now();
    s.conn.rbuf.extend_from_slice(
        b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nINFO\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nNOPE\r\n",
    );
    s.parse(&Limits::default());
    let (_, attempt, register) = sent(s.drive(now));
    assert_eq!(s.conn.wbuf, b"+PONG\r\n");
    // The first write opens the connection's session.
    assert_eq!(register.op, Op::Register);
    let (to, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
    assert_eq!((cmd.client, cmd.seq), (9, 1));
    // The current leader guess refuses with a hint; the clerk follows it.
    let (next, again, resent) = sent(s.on_reply(attempt, Reply::WrongLeader { hint: Some(NodeId(2)) }, now));
    assert_eq!((to, next, resent.seq), (NodeId(3), NodeId(2), cmd.seq));
    // A duplicate of the refusal is not taken for the new attempt's answer.
    assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Ok), now), None);
    assert_eq!(s.on_reply(again, Reply::Ok(Resp::Ok), now), Some(Need::Info), "then INFO");
    s.answer_info("# Raft\r\n".into());
    let (_, attempt, get) = sent(s.drive(now));
    assert!(matches!(get.op, Op::Cmd(Cmd::Get { .. })));
    assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::bulk("v")), now), None);
    assert_eq!(
        s.conn.wbuf,
        b"+PONG\r\n+OK\r\n$8\r\n# Raft\r\n\r\n$1\r\nv\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n"
    );
    assert!(s.idle());
}

fn wire(cmds: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        let words: Vec<&str> = c.split(' ').collect();
        out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    }
    out
}

#[test]
fn pipelined_data_commands_go_as_one_operation_and_are_answered_in_order() {
    let (mut s, _poll) = session();
    let now = Instant::now();
    s.conn.rbuf.extend_from_slice(&wire(&["SET a 1", "INCR a", "LPUSH a x", "GET a", "PING", "GET a", "GET b"]));
    s.parse(&Limits::default());
    let (_, attempt, register) = sent(s.drive(now));
    assert_eq!(register.op, Op::Register);
    let (_, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
    let Op::Exec { commands, watched: None } = &cmd.op else { panic!("{:?}", cmd.op) };
    assert_eq!(commands.len(), 4, "up to the PING");
    let wrongtype = Resp::error("WRONGTYPE Operation against a key holding the wrong kind of value");
    let replies = Resp::Array(vec![Resp::Ok, Resp::Int(2), wrongtype, Resp::bulk("2")]);
    // The PING is answered here; then the reads after it go as one read pipeline.
    let (_, attempt, reads) = sent(s.on_reply(attempt, Reply::Ok(replies), now));
    assert!(matches!(&reads.op, Op::Reads { commands } if commands.len() == 2), "{:?}", reads.op);
    assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Array(vec![Resp::bulk("2"), Resp::Nil])), now), None);
    let got = String::from_utf8(s.conn.wbuf.clone()).unwrap();
    assert_eq!(
        got,
        "+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n+PONG\r\n\
         $1\r\n2\r\n$-1\r\n"
    );
    // A refusal of the whole pipeline answers each of its commands with it.
    s.conn.wbuf.clear();
    s.conn.rbuf.extend_from_slice(&wire(&["SET a 1", "SET b 2"]));
    s.parse(&Limits::default());
    let (_, attempt, _) = sent(s.drive(now));
    assert_eq!(s.on_reply(attempt, Reply::Invalid { reason: "no".into() }, now), None);
    assert_eq!(s.conn.wbuf, b"-ERR no\r\n-ERR no\r\n");
    assert!(s.idle());
}

#[test]
fn a_transaction_queues_data_commands_and_answers_in_their_places() {
    let (mut s, _poll) = session();
    let now = Instant::now();
    let exec = wire(&["EXEC"]);
    s.conn.rbuf.extend_from_slice(&exec);
    s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", "INCRBY a x", "PING", "GET a", "EXEC"]));
    s.parse(&Limits::default());
    let (_, attempt, register) = sent(s.drive(now));
    assert_eq!(register.op, Op::Register);
    let (_, attempt, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
    let Op::Exec { commands, watched: None } = &cmd.op else { panic!("{:?}", cmd.op) };
    assert_eq!(commands.len(), 2, "SET and GET go in the entry");
    assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Array(vec![Resp::Ok, Resp::bulk("1")])), now), None);
    assert_eq!(
        String::from_utf8(std::mem::take(&mut s.conn.wbuf)).unwrap(),
        "-ERR EXEC without MULTI\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
         *4\r\n+OK\r\n-ERR value is not an integer or out of range\r\n+PONG\r\n$1\r\n1\r\n"
    );
    // A wrong number of arguments, an unknown command or WATCH dooms it; DISCARD drops it.
    for doom in ["GET", "FROB x", "WATCH a", "CLIENT ID"] {
        s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", doom, "EXEC"]));
        s.parse(&Limits::default());
        assert_eq!(s.drive(now), None);
        let out = String::from_utf8(std::mem::take(&mut s.conn.wbuf)).unwrap();
        assert!(out.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"), "{doom}: {out}");
    }
    s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "SET a 1", "DISCARD", "DISCARD"]));
    s.parse(&Limits::default());
    assert_eq!(s.drive(now), None);
    assert_eq!(s.conn.wbuf, b"+OK\r\n+QUEUED\r\n+OK\r\n-ERR DISCARD without MULTI\r\n");
    // A transaction of answers only needs no entry.
    s.conn.wbuf.clear();
    s.conn.rbuf.extend_from_slice(&wire(&["MULTI", "PING", "EXEC"]));
    s.parse(&Limits::default());
    assert_eq!(s.drive(now), None);
    assert_eq!(s.conn.wbuf, b"+OK\r\n+QUEUED\r\n*1\r\n+PONG\r\n");
    assert!(s.idle());
}

#[test]
fn a_pipeline_stops_at_the_value_limit_so_its_entry_and_frame_fit() {
    let (mut s, _poll) = session();
    let now = Instant::now();
    // 1 MiB of values in all: no batch passes it.
    let value = "v".repeat(300 << 10);
    let sets: Vec<String> = (0..4).map(|i| format!("SET k{i} {value}")).collect();
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    s.conn.rbuf.extend_from_slice(&wire(&refs));
    s.parse(&Limits::default());
    let (_, attempt, _) = sent(s.drive(now));
    let (_, _, cmd) = sent(s.on_reply(attempt, Reply::Registered { client: 9 }, now));
    let Op::Exec { commands, .. } = &cmd.op else { panic!("{:?}", cmd.op) };
    assert_eq!(commands.len(), 3, "the fourth would pass 1 MiB");
}

#[test]
fn an_unanswered_server_is_given_up_on_and_garbage_closes_the_connection() {
    let (mut s, _poll) = session();
    let now = Instant::now();
    s.conn.rbuf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$99999999999\r\n");
    s.parse(&Limits::default());
    let (first, _, cmd) = sent(s.drive(now));
    assert_eq!(s.on_tick(now), None, "not yet");
    let (second, attempt, again) = sent(s.on_tick(now + SERVER_TIMEOUT));
    assert_ne!(first, second);
    assert_eq!(again.seq, cmd.seq);
    assert_eq!(s.on_reply(attempt, Reply::Ok(Resp::Nil), now), None);
    assert_eq!(s.conn.wbuf, b"$-1\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert!(s.conn.closing);
}
