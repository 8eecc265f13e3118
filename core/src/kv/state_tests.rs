//! Unit tests of [`KvState`]: sessions, the first format, and each command's semantics
//! against Redis's (replies and error texts as Redis gives them).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use bytes::Bytes;

use super::cmd::Cmd;
use super::legacy::{LegacyCommand, LegacyOp};
use super::reply::errors;
use super::*;
use crate::types::Index;

const LIMITS: SessionLimits = SessionLimits { max: 2, ttl: 1000 };

fn at(time: u64, body: Body) -> Vec<u8> {
    encode(&LogEntry { time, body })
}

fn write(client: u64, seq: u64, op: Op) -> Body {
    Body::Write { command: Command { client, seq, op }, max_value: 1 << 20 }
}

fn cmd(client: u64, seq: u64, op: Op) -> Vec<u8> {
    at(0, write(client, seq, op))
}

fn register(time: u64) -> Vec<u8> {
    at(time, Body::Register { limits: LIMITS })
}

fn ok(s: &str) -> Resp {
    Resp::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn a_retried_write_is_applied_once_and_answered_again() {
    let mut s = KvState::new();
    assert_eq!(s.apply(Index(1), &register(0)), Applied::Registered { client: 1 });
    assert_eq!(s.apply(Index(2), &register(0)), Applied::Registered { client: 2 });
    let first = s.apply(Index(3), &cmd(1, 1, Op::append("k", "a")));
    assert_eq!(first, Applied::Reply { client: 1, seq: 1, reply: Resp::Int(1) });
    // The same request, committed again after a leader change: answered, not applied.
    assert_eq!(s.apply(Index(4), &cmd(1, 1, Op::append("k", "a"))), first);
    assert_eq!(s.get(b"k"), Some(Bytes::from("a")));
    s.apply(Index(5), &cmd(1, 2, Op::append("k", "b")));
    assert_eq!(s.apply(Index(6), &cmd(1, 1, Op::append("k", "a"))), Applied::Stale);
    assert_eq!(s.get(b"k"), Some(Bytes::from("ab")));
    // Another client's numbers are its own.
    s.apply(Index(7), &cmd(2, 1, Op::put("k", "z")));
    assert_eq!(s.get(b"k"), Some(Bytes::from("z")));
    assert_eq!(s.apply(Index(8), b"noop"), Applied::NotACommand);
    let mut trailing = cmd(1, 3, Op::append("k", "x"));
    trailing.push(0);
    assert_eq!(s.apply(Index(9), &trailing), Applied::NotACommand, "an entry with bytes after it");
    assert_eq!(s.applied(), Index(9));
}

#[test]
fn a_write_of_an_unknown_or_expired_session_is_not_applied() {
    let mut s = KvState::new();
    // Never registered (a forged or pre-registration id).
    assert_eq!(s.apply(Index(1), &cmd(1, 1, Op::append("k", "a"))), Applied::Expired { client: 1, seq: 1 });
    s.apply(Index(2), &register(100));
    s.apply(Index(3), &at(600, write(2, 1, Op::append("k", "a"))));
    // A stamp behind the clock (a new leader whose clock is late) does not move it back.
    s.apply(Index(4), &register(50));
    assert_eq!(s.clock(), 600);
    s.apply(Index(5), &at(1200, write(4, 1, Op::append("j", "x"))));
    // The clock passes client 2's last write plus the ttl: it expired, on every replica.
    let late = at(1600, write(2, 2, Op::append("k", "b")));
    assert_eq!(s.apply(Index(6), &late), Applied::Expired { client: 2, seq: 2 });
    assert_eq!(s.get(b"k"), Some(Bytes::from("a")));
    assert_eq!(s.session_ids(), vec![4]);
    // Past the bound, the least recently active session goes.
    s.apply(Index(7), &register(1600));
    s.apply(Index(8), &register(1601));
    assert_eq!(s.session_ids(), vec![7, 8]);
}

#[test]
fn entries_and_snapshots_of_the_first_format_still_apply() {
    let mut s = KvState::new();
    s.apply(Index(1), &register(0));
    let old = |seq, op| LegacyCommand { client: 1, seq, op };
    let put = old(1, LegacyOp::Put { key: "k".into(), value: "v".into() });
    assert_eq!(s.apply(Index(2), &at(0, Body::Request(put))), Applied::Reply { client: 1, seq: 1, reply: Resp::Ok });
    let append = old(2, LegacyOp::Append { key: "k".into(), value: "w".into() });
    let capped = at(0, Body::Capped { command: append, max_value: 1 });
    assert!(matches!(s.apply(Index(3), &capped), Applied::Reply { reply: Resp::Error(_), .. }));
    assert_eq!(s.get(b"k"), Some(Bytes::from("v")));

    // A first-format snapshot: a string map, sessions with text answers.
    #[derive(serde::Serialize)]
    struct Session {
        seq: u64,
        reply: (u32, String),
        last_active: u64,
    }
    #[derive(serde::Serialize)]
    struct Sessions {
        table: alloc::collections::BTreeMap<u64, Session>,
        limits: Option<SessionLimits>,
    }
    #[derive(serde::Serialize)]
    struct Old {
        data: alloc::collections::BTreeMap<String, String>,
        sessions: Sessions,
        applied: Index,
        clock: u64,
    }
    // An enum variant encodes as its index then its fields: `Ok("3")` is (0, "3").
    let table = [(5, Session { seq: 4, reply: (0, "3".to_string()), last_active: 9 })].into_iter().collect();
    let old = Old {
        data: [("a".to_string(), "1".to_string())].into_iter().collect(),
        sessions: Sessions { table, limits: Some(LIMITS) },
        applied: Index(12),
        clock: 9,
    };
    let mut r = KvState::restore(&postcard::to_allocvec(&old).unwrap()).unwrap();
    assert_eq!((r.get(b"a"), r.applied(), r.clock()), (Some(Bytes::from("1")), Index(12), 9));
    // The session's stored answer (an append's length) answers its duplicate.
    let dup = r.apply(Index(13), &cmd(5, 4, Op::append("a", "x")));
    assert_eq!(dup, Applied::Reply { client: 5, seq: 4, reply: Resp::Int(3) });
    assert_eq!(KvState::restore(&r.snapshot()).unwrap(), r, "written back in the new format");
}

#[test]
fn a_snapshot_carries_data_sessions_clock_and_index() {
    let mut s = KvState::new();
    s.apply(Index(1), &register(5));
    s.apply(Index(2), &cmd(1, 5, Op::append("y", "2")));
    let mut r = KvState::restore(&s.snapshot()).unwrap();
    assert_eq!(r, s);
    assert_eq!(r.clock(), 5);
    // The session survived: the duplicate is not applied again.
    r.apply(Index(3), &cmd(1, 5, Op::append("y", "2")));
    assert_eq!(r.get(b"y"), Some(Bytes::from("2")));
    assert_eq!(KvState::restore(b"\xff\xff garbage"), Err(SnapshotError));
    assert_eq!(KvState::restore(b"SKV\x02\xff\xff"), Err(SnapshotError));
}

#[test]
fn a_paced_snapshot_is_the_same_bytes_and_pauses_as_it_goes() {
    let mut s = KvState::new();
    s.apply(Index(1), &register(5));
    for i in 0..3000u64 {
        s.apply(Index(2 + i), &cmd(1, 1 + i, Op::append(alloc::format!("key:{i}"), "v")));
    }
    let pauses = core::cell::Cell::new(0);
    let paced = s.snapshot_paced(&|| pauses.set(pauses.get() + 1));
    // The derived encoding of the whole state, as every snapshot before pacing was.
    assert_eq!(paced, postcard::to_extend(&s, b"SKV\x02".to_vec()).unwrap());
    assert_eq!(KvState::restore(&paced).unwrap(), s);
    // A pause per shard that holds keys (3000 keys fill more than 1000 of the 4096), and
    // one per 256 keys of a shard besides.
    assert!(pauses.get() > 1000 && pauses.get() <= 3000, "{} pauses", pauses.get());
}

#[test]
fn a_retry_of_a_write_with_a_huge_reply_is_told_so_not_applied_again() {
    let mut s = KvState::new();
    s.apply(Index(1), &register(0));
    let big = "x".repeat(100 << 10);
    s.apply(Index(2), &cmd(1, 1, Op::put("k", big.clone())));
    let getdel = Op::Cmd(Cmd::GetDel { key: Bytes::from("k") });
    let first = s.apply(Index(3), &cmd(1, 2, getdel.clone()));
    assert_eq!(first, Applied::Reply { client: 1, seq: 2, reply: Resp::Bulk(Bytes::from(big)) });
    let retry = s.apply(Index(4), &cmd(1, 2, getdel));
    let told = Resp::error(super::state::REPLY_NOT_KEPT);
    assert_eq!(retry, Applied::Reply { client: 1, seq: 2, reply: told });
}

#[test]
fn snapshots_are_due_near_the_bound_and_never_without_one() {
    assert!(!KvState::should_snapshot(10_000, None));
    assert!(!KvState::should_snapshot(800, Some(1000)));
    assert!(KvState::should_snapshot(900, Some(1000)));
}

/// A state with one session, taking commands as a client would type them.
struct Db {
    s: KvState,
    index: u64,
    seq: u64,
    time: u64,
}

impl Db {
    fn new() -> Db {
        let mut s = KvState::new();
        s.apply(Index(1), &at(0, Body::Register { limits: SessionLimits::default() }));
        Db { s, index: 1, seq: 0, time: 0 }
    }

    fn parse(words: &str) -> Result<Cmd, Resp> {
        let args: Vec<Bytes> = words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        Cmd::parse(&args).expect("a data command")
    }

    /// Runs `words` as a client would: a read on the state, a write through an entry.
    fn run(&mut self, words: &str) -> Resp {
        let c = match Db::parse(words) {
            Ok(c) => c,
            Err(e) => return e,
        };
        if !c.is_write() {
            return self.s.read(&c);
        }
        self.op(Op::Cmd(c))
    }

    fn op(&mut self, op: Op) -> Resp {
        self.index += 1;
        self.seq += 1;
        let entry = at(self.time, write(1, self.seq, op));
        match self.s.apply(Index(self.index), &entry) {
            Applied::Reply { reply, .. } => reply,
            other => panic!("{other:?}"),
        }
    }

    /// Moves the replicated clock to `time` with a sweep entry.
    fn tick(&mut self, time: u64) -> Applied {
        self.time = time;
        self.index += 1;
        self.s.apply(Index(self.index), &at(time, Body::Sweep { max: 1000 }))
    }
}

fn int(n: i64) -> Resp {
    Resp::Int(n)
}

fn err(e: &str) -> Resp {
    Resp::error(e)
}

#[test]
fn strings_and_counters_answer_as_redis() {
    let mut db = Db::new();
    assert_eq!(db.run("GET k"), Resp::Nil);
    assert_eq!(db.run("SET k 10"), Resp::Ok);
    assert_eq!(db.run("SET k 11 NX"), Resp::Nil);
    assert_eq!(db.run("SET n 1 XX"), Resp::Nil);
    assert_eq!(db.run("SET k 12 XX GET"), ok("10"));
    assert_eq!(db.run("INCR k"), int(13));
    assert_eq!(db.run("DECRBY k 20"), int(-7));
    assert_eq!(db.run("INCRBY k 9223372036854775807"), int(9223372036854775800));
    assert_eq!(db.run("INCR k"), int(9223372036854775801));
    assert_eq!(db.run("INCRBY k 100"), err(errors::OVERFLOW));
    assert_eq!(db.run("SET s abc"), Resp::Ok);
    assert_eq!(db.run("INCR s"), err(errors::NOT_INTEGER));
    assert_eq!(db.run("INCRBYFLOAT f 1.5"), ok("1.5"));
    assert_eq!(db.run("INCRBYFLOAT f 0.25"), ok("1.75"));
    assert_eq!(db.run("INCRBYFLOAT s 1"), err(errors::NOT_FLOAT));
    assert_eq!(db.run("APPEND s def"), int(6));
    assert_eq!(db.run("STRLEN s"), int(6));
    assert_eq!(db.run("GETRANGE s 1 -2"), ok("bcde"));
    assert_eq!(db.run("GETRANGE s 5 1"), ok(""));
    assert_eq!(db.run("GETRANGE s 0 -100"), ok("a"), "an end before the start is the first byte");
    assert_eq!(db.run("GETRANGE s -1 -5"), ok(""));
    assert_eq!(db.run("GETRANGE s 4 100"), ok("ef"));
    assert_eq!(db.run("SETRANGE s 8 xy"), int(10));
    assert_eq!(db.run("GET s"), Resp::Bulk(Bytes::from_static(b"abcdef\0\0xy")));
    assert_eq!(db.run("SETNX s q"), int(0));
    assert_eq!(db.run("SETNX t q"), int(1));
    assert_eq!(db.run("GETSET t r"), ok("q"));
    assert_eq!(db.run("GETDEL t"), ok("r"));
    assert_eq!(db.run("GETDEL t"), Resp::Nil);
    assert_eq!(db.run("MSET a 1 b 2"), Resp::Ok);
    assert_eq!(db.run("MSETNX b 3 c 4"), int(0));
    assert_eq!(db.run("MSETNX c 3 d 4"), int(1));
    db.run("HSET h f v");
    assert_eq!(db.run("MGET a h nope d"), Resp::Array(vec![ok("1"), Resp::Nil, Resp::Nil, ok("4")]));
    assert_eq!(db.run("GET h"), err(errors::WRONGTYPE));
    assert_eq!(db.run("SET h x GET"), err(errors::WRONGTYPE));
    assert_eq!(db.run("SET h x"), Resp::Ok, "a plain SET replaces any type");
}

#[test]
fn keys_rename_scan_and_flush() {
    let mut db = Db::new();
    db.run("MSET user:1 a user:2 b other c");
    db.run("SADD set x");
    assert_eq!(db.run("EXISTS user:1 user:1 nope"), int(2));
    assert_eq!(db.run("TYPE set"), Resp::Simple("set".into()));
    assert_eq!(db.run("TYPE nope"), Resp::Simple("none".into()));
    assert_eq!(db.run("DBSIZE"), int(4));
    let Resp::Array(mut keys) = db.run("KEYS user:*") else { panic!() };
    keys.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    assert_eq!(keys, vec![ok("user:1"), ok("user:2")]);
    assert_eq!(db.run("RENAME nope x"), err(errors::NO_SUCH_KEY));
    assert_eq!(db.run("RENAMENX user:1 other"), int(0));
    assert_eq!(db.run("RENAME user:1 other"), Resp::Ok);
    assert_eq!(db.run("GET other"), ok("a"));
    assert_eq!(db.run("DEL other user:2 nope"), int(2));
    // A full SCAN answers every key once, whatever COUNT, and filters by MATCH and TYPE.
    for i in 0..300 {
        db.run(&alloc::format!("SET k{i} v"));
    }
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Resp::Array(parts) = db.run(&alloc::format!("SCAN {cursor} COUNT 7 TYPE string")) else { panic!() };
        let [Resp::Bulk(next), Resp::Array(keys)] = &parts[..] else { panic!() };
        seen.extend(keys.iter().map(|k| k.as_bytes().unwrap().to_vec()));
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 300, "the set is not a string");
    seen.dedup();
    assert_eq!(seen.len(), 300);
    assert_eq!(db.run("FLUSHDB"), Resp::Ok);
    assert_eq!(db.run("DBSIZE"), int(0));
}

#[test]
fn expiry_follows_the_replicated_clock_only() {
    let mut db = Db::new();
    db.time = 1000;
    assert_eq!(db.run("SET k v PX 500"), Resp::Ok);
    assert_eq!(db.run("SET p v EX 10"), Resp::Ok);
    assert_eq!(db.run("SET q v"), Resp::Ok);
    assert_eq!(db.run("PTTL k"), int(500));
    assert_eq!(db.run("TTL p"), int(10));
    assert_eq!(db.run("TTL q"), int(-1));
    assert_eq!(db.run("TTL nope"), int(-2));
    assert_eq!(db.run("EXPIRE q 5 XX"), int(0));
    assert_eq!(db.run("EXPIRE q 5 NX"), int(1));
    assert_eq!(db.run("EXPIRE q 50 LT"), int(0));
    assert_eq!(db.run("EXPIRE q 50 GT"), int(1));
    assert_eq!(db.run("PERSIST q"), int(1));
    assert_eq!(db.run("PERSIST q"), int(0));
    // No entry moved the clock: the key still lives, whatever time it is elsewhere.
    assert_eq!(db.run("GET k"), ok("v"));
    assert_eq!(db.tick(1499), Applied::Swept(0));
    assert_eq!(db.run("PTTL k"), int(1));
    // At its time it is gone for every command, and the sweep removes it.
    db.time = 1500;
    assert_eq!(db.run("INCR counter"), int(1));
    assert_eq!((db.run("GET k"), db.run("EXISTS k"), db.run("DBSIZE")), (Resp::Nil, int(0), int(3)));
    assert_eq!(db.s.len(), 4, "not swept yet");
    assert_eq!(db.tick(1501), Applied::Swept(1));
    assert_eq!(db.s.len(), 3);
    // INCR and APPEND keep a key's expiry; SET clears it unless KEEPTTL.
    db.run("EXPIRE counter 100");
    db.run("INCR counter");
    assert_eq!(db.run("TTL counter"), int(100));
    db.run("SET counter 5 KEEPTTL");
    assert_eq!(db.run("TTL counter"), int(100));
    db.run("SET counter 5");
    assert_eq!(db.run("TTL counter"), int(-1));
    // A time in the past deletes at once; PXAT sets an absolute time.
    assert_eq!(db.run("EXPIRE p -1"), int(1));
    assert_eq!(db.run("EXISTS p"), int(0));
    assert_eq!(db.run("SET a v PXAT 9000"), Resp::Ok);
    assert_eq!(db.run("PTTL a"), int(7499));
    assert_eq!(db.tick(9000), Applied::Swept(1));
    // SETEX, GETEX and EXPIRETIME.
    assert_eq!(db.run("SETEX s 10 v"), Resp::Ok);
    assert_eq!(db.run("PEXPIRETIME s"), int(19000));
    assert_eq!(db.run("GETEX s PX 5"), ok("v"));
    assert_eq!(db.run("PTTL s"), int(5));
    assert_eq!(db.run("GETEX s PERSIST"), ok("v"));
    assert_eq!(db.run("EXPIRETIME s"), int(-1));
    assert_eq!(db.run("SETEX s 0 v"), err("ERR invalid expire time in 'setex' command"));
    assert_eq!(db.run("GETEX s EXAT 1"), ok("v"));
    assert_eq!(db.run("EXISTS s"), int(0), "a time in the past deletes");
}

#[test]
fn hashes_lists_and_sets() {
    let mut db = Db::new();
    assert_eq!(db.run("HSET h a 1 b 2"), int(2));
    assert_eq!(db.run("HSET h a 3 c 4"), int(1));
    assert_eq!(db.run("HMSET h d 5"), Resp::Ok);
    assert_eq!(db.run("HGET h a"), ok("3"));
    assert_eq!(db.run("HMGET h a x"), Resp::Array(vec![ok("3"), Resp::Nil]));
    assert_eq!(db.run("HLEN h"), int(4));
    assert_eq!(db.run("HINCRBY h a 4"), int(7));
    assert_eq!(db.run("HINCRBYFLOAT h a 0.5"), ok("7.5"));
    assert_eq!(db.run("HINCRBY h a 1"), err(errors::HASH_NOT_INTEGER));
    assert_eq!(db.run("HSETNX h a 0"), int(0));
    assert_eq!(db.run("HEXISTS h b"), int(1));
    assert_eq!(db.run("HDEL h a b c d nope"), int(4));
    assert_eq!(db.run("EXISTS h"), int(0), "an emptied hash goes");
    assert_eq!(db.run("HGETALL h"), Resp::Map(vec![]));
    db.run("HSET h f v");
    assert_eq!(db.run("HGETALL h"), Resp::Map(vec![(ok("f"), ok("v"))]));
    assert_eq!(db.run("LPUSH h x"), err(errors::WRONGTYPE));

    assert_eq!(db.run("RPUSH l a b c"), int(3));
    assert_eq!(db.run("LPUSH l z y"), int(5));
    assert_eq!(db.run("LRANGE l 0 -1"), Resp::bulks(["y", "z", "a", "b", "c"].map(Bytes::from)));
    assert_eq!(db.run("LRANGE l -2 100"), Resp::bulks(["b", "c"].map(Bytes::from)));
    assert_eq!(db.run("LINDEX l -1"), ok("c"));
    assert_eq!(db.run("LINDEX l 9"), Resp::Nil);
    assert_eq!(db.run("LSET l 9 q"), err("ERR index out of range"));
    assert_eq!(db.run("LPOP l"), ok("y"));
    assert_eq!(db.run("RPOP l 2"), Resp::bulks(["c", "b"].map(Bytes::from)));
    assert_eq!(db.run("LPUSHX nope a"), int(0));
    assert_eq!(db.run("LPOP nope"), Resp::Nil);
    assert_eq!(db.run("LPOP nope 2"), Resp::NilArray);
    assert_eq!(db.run("RPOP l 5"), Resp::bulks(["a", "z"].map(Bytes::from)));
    assert_eq!(db.run("EXISTS l"), int(0));

    assert_eq!(db.run("SADD s a b c a"), int(3));
    assert_eq!(db.run("SREM s a x"), int(1));
    assert_eq!(db.run("SISMEMBER s b"), int(1));
    assert_eq!(db.run("SCARD s"), int(2));
    assert_eq!(db.run("SMEMBERS s"), Resp::Set(vec![ok("b"), ok("c")]));
    let Resp::Bulk(popped) = db.run("SPOP s") else { panic!() };
    assert!(popped == "b" || popped == "c");
    assert_eq!(db.run("SCARD s"), int(1));
    assert_eq!(db.run("SPOP nope"), Resp::Nil);
    // Counts: distinct members, the rest left; past the size, everything.
    let members: Vec<String> = (0..3000).map(|i| alloc::format!("m{i}")).collect();
    db.run(&alloc::format!("SADD big {}", members.join(" ")));
    let Resp::Set(popped) = db.run("SPOP big 1000") else { panic!() };
    let mut popped: Vec<_> = popped.iter().map(|p| p.as_bytes().unwrap().to_vec()).collect();
    popped.sort();
    popped.dedup();
    assert_eq!((popped.len(), db.run("SCARD big")), (1000, int(2000)));
    let Resp::Set(rest) = db.run("SPOP big 5000") else { panic!() };
    assert_eq!((rest.len(), db.run("EXISTS big")), (2000, int(0)));
}

#[test]
fn sorted_sets_order_by_score_then_member() {
    let mut db = Db::new();
    assert_eq!(db.run("ZADD z 1 a 2 b 2 c"), int(3));
    assert_eq!(db.run("ZADD z CH 5 a 2 b 0 d"), int(2));
    assert_eq!(db.run("ZADD z NX 9 a"), int(0));
    assert_eq!(db.run("ZADD z GT CH 4 a"), int(0));
    assert_eq!(db.run("ZADD z XX INCR 1 a"), Resp::Double("6".into()));
    assert_eq!(db.run("ZADD z XX INCR 1 nope"), Resp::Nil);
    assert_eq!(db.run("ZINCRBY z 0.5 d"), Resp::Double("0.5".into()));
    assert_eq!(db.run("ZSCORE z a"), Resp::Double("6".into()));
    assert_eq!(db.run("ZCARD z"), int(4));
    assert_eq!(db.run("ZRANK z b"), int(1));
    assert_eq!(db.run("ZREVRANK z b"), int(2));
    assert_eq!(db.run("ZRANGE z 0 -1"), Resp::bulks(["d", "b", "c", "a"].map(Bytes::from)));
    assert_eq!(
        db.run("ZRANGE z 0 1 REV WITHSCORES"),
        Resp::Pairs(vec![(ok("a"), Resp::Double("6".into())), (ok("c"), Resp::Double("2".into()))])
    );
    assert_eq!(db.run("ZPOPMIN z"), Resp::Array(vec![ok("d"), Resp::Double("0.5".into())]));
    assert_eq!(db.run("ZPOPMAX z 1"), Resp::Pairs(vec![(ok("a"), Resp::Double("6".into()))]));
    assert_eq!(db.run("ZREM z b c x"), int(2));
    assert_eq!(db.run("EXISTS z"), int(0));
    assert_eq!(db.run("ZADD z XX 1 a"), int(0));
    assert_eq!(db.run("EXISTS z"), int(0), "nothing added: no key");
    db.run("ZADD z 1 a");
    assert_eq!(db.run("ZADD z INCR -inf a"), Resp::Double("-inf".into()));
    assert_eq!(db.run("ZADD z INCR +inf a"), err(errors::ZSET_NAN));
}

#[test]
fn transactions_apply_whole_and_watch_aborts_on_any_change() {
    let mut db = Db::new();
    db.run("SET a 1");
    let parse = |w: &str| Db::parse(w).unwrap();
    let exec = |commands: Vec<Cmd>, watched| Op::Exec { commands, watched };
    // Errors are per command; the others apply.
    let got = db.op(exec(vec![parse("INCR a"), parse("LPUSH a x"), parse("GET a")], None));
    assert_eq!(got, Resp::Array(vec![int(2), err(errors::WRONGTYPE), ok("2")]));
    let watch = |db: &Db, keys: &[&str]| {
        let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect();
        let Resp::Array(v) = db.s.watch(&keys) else { panic!() };
        let Resp::Int(at) = v[0] else { panic!() };
        let versions = v[1..].iter().map(|r| if let Resp::Int(n) = r { Some(*n as u64) } else { None });
        Watched { at: at as u64, keys: keys.iter().cloned().zip(versions).collect() }
    };
    // Nothing changed: applied.
    let w = watch(&db, &["a", "missing"]);
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::Array(vec![int(3)]));
    // A watched key written since: aborted, nothing applied.
    let w = watch(&db, &["a"]);
    db.run("SET a 10");
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray);
    assert_eq!(db.run("GET a"), ok("10"));
    // A missing key created and deleted since: aborted too.
    let w = watch(&db, &["missing"]);
    db.run("SET missing 1");
    db.run("DEL missing");
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray);
    // A watched key that expired since: aborted.
    db.run("SET t v PX 10");
    let w = watch(&db, &["t"]);
    db.tick(100);
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray);
    // A key missing at WATCH, then created with an expiry that passed (swept or not, or set
    // with a time already past): aborted.
    for create in ["SET u v PX 10", "SET u v PXAT 1"] {
        let w = watch(&db, &["u"]);
        db.run(create);
        let t = db.time + 50;
        db.tick(t);
        assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray, "{create}");
    }
    let w = watch(&db, &["u"]);
    db.run("SET u v PX 10");
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray, "created, not yet expired");
    // A plain SET over a key that expired (not swept yet) removes it first: a key missing
    // at WATCH then aborts, as for any removal.
    db.run("SET e v PX 10");
    db.time += 50; // later entries carry a later time; no sweep ran
    let w = watch(&db, &["absent"]);
    db.run("SET e w");
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::NilArray, "an expired key overwritten");
    assert_eq!(db.run("GET e"), ok("w"));
    // Nothing at all changed: applied.
    let w = watch(&db, &["nothing"]);
    assert_eq!(db.op(exec(vec![parse("INCR a")], Some(w))), Resp::Array(vec![int(11)]));
    assert!(db.s.consistent());
}
