//! [`Cmd::parse`]: a Redis command's arguments to a [`Cmd`], with Redis's error replies for
//! bad arity, syntax and numbers. Numbers parse as strictly as Redis parses them (`+1`, `01`
//! and ` 1` are not integers).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use super::cmd::{Cmd, Cond, ExpireCond, SetTtl, When, ZAddFlags};
use super::reply::{errors, Resp};
use super::value::Float;

type Parsed = Result<Cmd, Resp>;

/// The error for a wrong number of arguments to `name` (as the client spelled it, lowercased).
pub fn arity_error(name: &str) -> Resp {
    Resp::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// Redis's integer: an optional `-`, then digits without a leading zero (or just `0`), in
/// range of an `i64`.
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = match digits {
        [b'0'] => b.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || b.len() > 20 {
        return None;
    }
    core::str::from_utf8(b).ok()?.parse().ok()
}

/// A float as Redis reads one: decimal or exponent notation, `inf`, `+inf`, `-inf`; never NaN
/// nor blank-padded.
pub fn parse_float(b: &[u8]) -> Option<Float> {
    let s = core::str::from_utf8(b).ok()?;
    if s.is_empty() || s.bytes().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    (!x.is_nan()).then_some(Float(x))
}

fn int(b: &[u8]) -> Result<i64, Resp> {
    parse_int(b).ok_or_else(|| Resp::error(errors::NOT_INTEGER))
}

fn float(b: &[u8]) -> Result<Float, Resp> {
    parse_float(b).ok_or_else(|| Resp::error(errors::NOT_FLOAT))
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn pairs(a: &[Bytes]) -> Vec<(Bytes, Bytes)> {
    a.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect()
}

/// Whether `len` arguments (the name included) fit Redis's arity `spec`: exactly `spec`
/// when positive, at least `-spec` when negative.
fn arity_ok(spec: i32, len: usize) -> bool {
    if spec >= 0 {
        len == spec as usize
    } else {
        len >= spec.unsigned_abs() as usize
    }
}

/// The arity of each data command, as Redis's `COMMAND` reports it (the name counts).
pub fn arity_of(name: &str) -> Option<i32> {
    Some(match name {
        "get" | "getdel" | "strlen" | "type" | "ttl" | "pttl" | "persist" | "hgetall" | "hkeys" | "hvals" | "hlen"
        | "llen" | "smembers" | "scard" | "zcard" | "expiretime" | "pexpiretime" => 2,
        "getex" => -2,
        "setex" | "psetex" => 4,
        "zrevrange" => -4,
        "flushall" => -1,
        "setnx" | "getset" | "append" | "incrby" | "decrby" | "incrbyfloat" | "rename" | "renamenx" | "hget"
        | "hexists" | "hstrlen" | "lindex" | "sismember" | "zscore" | "zrank" | "zrevrank" => 3,
        "incr" | "decr" => 2,
        "getrange" | "setrange" | "hsetnx" | "hincrby" | "hincrbyfloat" | "lrange" | "lset" | "zincrby" => 4,
        "set" | "expire" | "pexpire" | "expireat" | "pexpireat" => -3,
        "mget" | "del" | "unlink" | "exists" | "lpop" | "rpop" | "spop" | "zpopmin" | "zpopmax" => -2,
        "mset" | "msetnx" | "hmget" | "hdel" | "lpush" | "rpush" | "lpushx" | "rpushx" | "sadd" | "srem" | "zrem" => -3,
        "hset" | "hmset" | "zadd" | "zrange" => -4,
        "keys" => 2,
        "scan" => -2,
        "dbsize" => 1,
        "flushdb" => -1,
        _ => return None,
    })
}

impl Cmd {
    /// Parses a data command: `None` when `args[0]` names none (the driver may know it: a
    /// connection or server command), else the command or the error to answer.
    pub fn parse(args: &[Bytes]) -> Option<Result<Cmd, Resp>> {
        let name = String::from_utf8_lossy(args.first()?).to_ascii_lowercase();
        let spec = arity_of(&name)?;
        if !arity_ok(spec, args.len()) {
            return Some(Err(arity_error(&name)));
        }
        Some(parse_known(&name, &args[1..]))
    }
}

fn parse_known(name: &str, a: &[Bytes]) -> Parsed {
    let k = || a[0].clone();
    let even_pairs = |from: usize| {
        if (a.len() - from) % 2 != 0 {
            Err(arity_error(name))
        } else {
            Ok(pairs(&a[from..]))
        }
    };
    Ok(match name {
        "get" => Cmd::Get { key: k() },
        "set" => parse_set(a)?,
        "setnx" => Cmd::SetNx { key: k(), value: a[1].clone() },
        "getset" => Cmd::GetSet { key: k(), value: a[1].clone() },
        "getdel" => Cmd::GetDel { key: k() },
        "getex" => parse_getex(a)?,
        "setex" | "psetex" => {
            let n = int(&a[1])?;
            let invalid = || Resp::Error(format!("ERR invalid expire time in '{name}' command"));
            if n <= 0 {
                return Err(invalid());
            }
            let ms = if name == "setex" { n.checked_mul(1000).ok_or_else(invalid)? } else { n };
            Cmd::Set { key: k(), value: a[2].clone(), cond: Cond::Always, get: false, ttl: SetTtl::After(ms as u64) }
        }
        "mget" => Cmd::MGet { keys: a.to_vec() },
        "mset" | "msetnx" => Cmd::MSet { pairs: even_pairs(0)?, nx: name == "msetnx" },
        "incr" => Cmd::IncrBy { key: k(), by: 1 },
        "decr" => Cmd::IncrBy { key: k(), by: -1 },
        "incrby" => Cmd::IncrBy { key: k(), by: int(&a[1])? },
        "decrby" => {
            let by = int(&a[1])?;
            Cmd::IncrBy { key: k(), by: by.checked_neg().ok_or_else(|| Resp::error("ERR decrement would overflow"))? }
        }
        "incrbyfloat" => Cmd::IncrByFloat { key: k(), by: float(&a[1])? },
        "append" => Cmd::Append { key: k(), value: a[1].clone() },
        "strlen" => Cmd::Strlen { key: k() },
        "getrange" => Cmd::GetRange { key: k(), start: int(&a[1])?, end: int(&a[2])? },
        "setrange" => {
            let offset = int(&a[1])?;
            if offset < 0 {
                return Err(Resp::error(errors::OFFSET_RANGE));
            }
            Cmd::SetRange { key: k(), offset: offset as u64, value: a[2].clone() }
        }
        "del" | "unlink" => Cmd::Del { keys: a.to_vec() },
        "exists" => Cmd::Exists { keys: a.to_vec() },
        "type" => Cmd::Type { key: k() },
        "rename" | "renamenx" => Cmd::Rename { from: k(), to: a[1].clone(), nx: name == "renamenx" },
        "keys" => Cmd::Keys { pattern: k() },
        "scan" => parse_scan(a)?,
        "dbsize" => Cmd::DbSize,
        "flushdb" | "flushall" => match a {
            [] => Cmd::FlushDb,
            [mode] if matches!(upper(mode).as_str(), "SYNC" | "ASYNC") => Cmd::FlushDb,
            _ => return Err(Resp::error(errors::SYNTAX)),
        },
        "expire" | "pexpire" | "expireat" | "pexpireat" => parse_expire(name, a)?,
        "ttl" | "pttl" => Cmd::Ttl { key: k(), millis: name == "pttl" },
        "persist" => Cmd::Persist { key: k() },
        "expiretime" | "pexpiretime" => Cmd::ExpireTime { key: k(), millis: name == "pexpiretime" },
        "hset" | "hmset" => Cmd::HSet { key: k(), pairs: even_pairs(1)?, ok: name == "hmset" },
        "hsetnx" => Cmd::HSetNx { key: k(), field: a[1].clone(), value: a[2].clone() },
        "hget" => Cmd::HGet { key: k(), field: a[1].clone() },
        "hmget" => Cmd::HMGet { key: k(), fields: a[1..].to_vec() },
        "hdel" => Cmd::HDel { key: k(), fields: a[1..].to_vec() },
        "hgetall" => Cmd::HGetAll { key: k() },
        "hkeys" => Cmd::HKeys { key: k() },
        "hvals" => Cmd::HVals { key: k() },
        "hlen" => Cmd::HLen { key: k() },
        "hexists" => Cmd::HExists { key: k(), field: a[1].clone() },
        "hstrlen" => Cmd::HStrlen { key: k(), field: a[1].clone() },
        "hincrby" => Cmd::HIncrBy { key: k(), field: a[1].clone(), by: int(&a[2])? },
        "hincrbyfloat" => Cmd::HIncrByFloat { key: k(), field: a[1].clone(), by: float(&a[2])? },
        "lpush" | "rpush" | "lpushx" | "rpushx" => {
            Cmd::Push { key: k(), values: a[1..].to_vec(), left: name.starts_with('l'), existing: name.ends_with('x') }
        }
        "lpop" | "rpop" => Cmd::Pop { key: k(), left: name == "lpop", count: count_arg(name, a)? },
        "llen" => Cmd::LLen { key: k() },
        "lrange" => Cmd::LRange { key: k(), start: int(&a[1])?, stop: int(&a[2])? },
        "lindex" => Cmd::LIndex { key: k(), index: int(&a[1])? },
        "lset" => Cmd::LSet { key: k(), index: int(&a[1])?, value: a[2].clone() },
        "sadd" => Cmd::SAdd { key: k(), members: a[1..].to_vec() },
        "srem" => Cmd::SRem { key: k(), members: a[1..].to_vec() },
        "smembers" => Cmd::SMembers { key: k() },
        "sismember" => Cmd::SIsMember { key: k(), member: a[1].clone() },
        "scard" => Cmd::SCard { key: k() },
        "spop" => Cmd::SPop { key: k(), count: count_arg(name, a)? },
        "zadd" => parse_zadd(a)?,
        "zincrby" => Cmd::ZIncrBy { key: k(), by: float(&a[1])?, member: a[2].clone() },
        "zrem" => Cmd::ZRem { key: k(), members: a[1..].to_vec() },
        "zscore" => Cmd::ZScore { key: k(), member: a[1].clone() },
        "zrank" | "zrevrank" => Cmd::ZRank { key: k(), member: a[1].clone(), rev: name == "zrevrank" },
        "zrange" => parse_zrange(a)?,
        "zrevrange" => {
            let scores = match &a[3..] {
                [] => false,
                [w] if upper(w) == "WITHSCORES" => true,
                _ => return Err(Resp::error(errors::SYNTAX)),
            };
            Cmd::ZRange { key: k(), start: int(&a[1])?, stop: int(&a[2])?, rev: true, scores }
        }
        "zcard" => Cmd::ZCard { key: k() },
        "zpopmin" | "zpopmax" => Cmd::ZPopMin { key: k(), count: count_arg(name, a)?, max: name == "zpopmax" },
        _ => unreachable!("arity_of knows every name parse_known does: {name}"),
    })
}

/// The optional count of `LPOP`, `RPOP`, `SPOP`, `ZPOPMIN` (after the key).
fn count_arg(name: &str, a: &[Bytes]) -> Result<Option<u64>, Resp> {
    match a {
        [_] => Ok(None),
        [_, n] => {
            let n = parse_int(n).filter(|n| *n >= 0).ok_or_else(|| Resp::error(errors::NOT_POSITIVE))?;
            Ok(Some(n as u64))
        }
        _ => Err(if name.starts_with('z') { Resp::error(errors::SYNTAX) } else { arity_error(name) }),
    }
}

fn parse_set(a: &[Bytes]) -> Parsed {
    let (mut cond, mut get, mut ttl) = (Cond::Always, false, SetTtl::Clear);
    let mut i = 2;
    let invalid = || Resp::error("ERR invalid expire time in 'set' command");
    while i < a.len() {
        let opt = upper(&a[i]);
        let timed = matches!(opt.as_str(), "EX" | "PX" | "EXAT" | "PXAT");
        match opt.as_str() {
            "NX" if cond == Cond::Always => cond = Cond::IfMissing,
            "XX" if cond == Cond::Always => cond = Cond::IfPresent,
            "GET" if !get => get = true,
            "KEEPTTL" if ttl == SetTtl::Clear => ttl = SetTtl::Keep,
            _ if timed && ttl == SetTtl::Clear && i + 1 < a.len() => {
                i += 1;
                let n = int(&a[i])?;
                if n <= 0 {
                    return Err(invalid());
                }
                let ms = if opt.starts_with('E') { n.checked_mul(1000).ok_or_else(invalid)? } else { n };
                ttl = if opt.ends_with("AT") { SetTtl::At(ms as u64) } else { SetTtl::After(ms as u64) };
            }
            _ => return Err(Resp::error(errors::SYNTAX)),
        }
        i += 1;
    }
    Ok(Cmd::Set { key: a[0].clone(), value: a[1].clone(), cond, get, ttl })
}

fn parse_getex(a: &[Bytes]) -> Parsed {
    let invalid = || Resp::error("ERR invalid expire time in 'getex' command");
    let ttl = match &a[1..] {
        [] => None,
        [w] if upper(w) == "PERSIST" => Some(SetTtl::Clear),
        [w, n] => {
            let opt = upper(w);
            if !matches!(opt.as_str(), "EX" | "PX" | "EXAT" | "PXAT") {
                return Err(Resp::error(errors::SYNTAX));
            }
            let n = int(n)?;
            if n <= 0 {
                return Err(invalid());
            }
            let ms = if opt.starts_with('E') { n.checked_mul(1000).ok_or_else(invalid)? } else { n } as u64;
            Some(if opt.ends_with("AT") { SetTtl::At(ms) } else { SetTtl::After(ms) })
        }
        _ => return Err(Resp::error(errors::SYNTAX)),
    };
    Ok(Cmd::GetEx { key: a[0].clone(), ttl })
}

fn parse_expire(name: &str, a: &[Bytes]) -> Parsed {
    let n = int(&a[1])?;
    let invalid = || Resp::Error(format!("ERR invalid expire time in '{name}' command"));
    let ms = if name.starts_with('p') { n } else { n.checked_mul(1000).ok_or_else(invalid)? };
    let when = if name.ends_with("at") { When::At(ms) } else { When::After(ms) };
    let mut cond = ExpireCond::Always;
    for opt in &a[2..] {
        let next = match upper(opt).as_str() {
            "NX" => ExpireCond::NoTtl,
            "XX" => ExpireCond::HasTtl,
            "GT" => ExpireCond::Later,
            "LT" => ExpireCond::Sooner,
            _ => return Err(Resp::Error(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)))),
        };
        cond = match (cond, next) {
            (ExpireCond::Always, c) => c,
            (a, b) if a == b => a,
            (ExpireCond::Later, ExpireCond::Sooner) | (ExpireCond::Sooner, ExpireCond::Later) => {
                return Err(Resp::error("ERR GT and LT options at the same time are not compatible"))
            }
            _ => return Err(Resp::error("ERR NX and XX, GT or LT options at the same time are not compatible")),
        };
    }
    Ok(Cmd::Expire { key: a[0].clone(), when, cond })
}

fn parse_scan(a: &[Bytes]) -> Parsed {
    let cursor = core::str::from_utf8(&a[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Resp::error("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut kind) = (None, 10, None);
    let mut i = 1;
    while i < a.len() {
        let Some(arg) = a.get(i + 1) else { return Err(Resp::error(errors::SYNTAX)) };
        match upper(&a[i]).as_str() {
            "MATCH" => pattern = Some(arg.clone()),
            "COUNT" => {
                count = int(arg)?;
                if count < 1 {
                    return Err(Resp::error(errors::SYNTAX));
                }
            }
            "TYPE" => kind = Some(String::from_utf8_lossy(arg).to_ascii_lowercase()),
            _ => return Err(Resp::error(errors::SYNTAX)),
        }
        i += 2;
    }
    Ok(Cmd::Scan { cursor, pattern, count: count as u64, kind })
}

fn parse_zadd(a: &[Bytes]) -> Parsed {
    let mut flags = ZAddFlags { cond: Cond::Always, greater: None, changed: false, incr: false };
    let mut i = 1;
    while i < a.len() {
        match upper(&a[i]).as_str() {
            "NX" => flags.cond = Cond::IfMissing,
            "XX" => flags.cond = Cond::IfPresent,
            "GT" => flags.greater = Some(true),
            "LT" => flags.greater = Some(false),
            "CH" => flags.changed = true,
            "INCR" => flags.incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(Resp::error(errors::SYNTAX));
    }
    let nx_and_xx = a[1..i].iter().any(|o| upper(o) == "NX") && a[1..i].iter().any(|o| upper(o) == "XX");
    if nx_and_xx {
        return Err(Resp::error("ERR XX and NX options at the same time are not compatible"));
    }
    let gt_and_lt = a[1..i].iter().any(|o| upper(o) == "GT") && a[1..i].iter().any(|o| upper(o) == "LT");
    if gt_and_lt || (flags.greater.is_some() && flags.cond == Cond::IfMissing) {
        return Err(Resp::error("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if flags.incr && rest.len() > 2 {
        return Err(Resp::error("ERR INCR option supports a single increment-element pair"));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((float(&p[0])?, p[1].clone()));
    }
    Ok(Cmd::ZAdd { key: a[0].clone(), flags, pairs })
}

fn parse_zrange(a: &[Bytes]) -> Parsed {
    let (start, stop) = (int(&a[1])?, int(&a[2])?);
    let (mut rev, mut scores) = (false, false);
    for opt in &a[3..] {
        match upper(opt).as_str() {
            "REV" => rev = true,
            "WITHSCORES" => scores = true,
            "BYSCORE" | "BYLEX" | "LIMIT" => {
                return Err(Resp::error("ERR ZRANGE BYSCORE, BYLEX and LIMIT are not supported by skiff"))
            }
            _ => return Err(Resp::error(errors::SYNTAX)),
        }
    }
    Ok(Cmd::ZRange { key: a[0].clone(), start, stop, rev, scores })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn p(words: &str) -> Option<Result<Cmd, Resp>> {
        let args: Vec<Bytes> = words.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        Cmd::parse(&args)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn integers_parse_as_strictly_as_redis() {
        for ok in ["0", "-1", "9223372036854775807", "-9223372036854775808", "120"] {
            assert!(parse_int(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", "+1", "01", "-0", " 1", "1 ", "9223372036854775808", "1.0", "-", "abc"] {
            assert_eq!(parse_int(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b"-inf"), Some(Float(f64::NEG_INFINITY)));
        assert_eq!(parse_float(b"1e3"), Some(Float(1000.0)));
    }

    #[test]
    fn set_takes_its_options_once_each() {
        assert_eq!(
            p("SET k v NX PX 50 GET"),
            Some(Ok(Cmd::Set { key: b("k"), value: b("v"), cond: Cond::IfMissing, get: true, ttl: SetTtl::After(50) }))
        );
        assert_eq!(
            p("set k v exat 7").unwrap().unwrap(),
            Cmd::Set { key: b("k"), value: b("v"), cond: Cond::Always, get: false, ttl: SetTtl::At(7000) }
        );
        assert_eq!(p("SET k v NX XX"), Some(Err(Resp::error(errors::SYNTAX))));
        assert_eq!(p("SET k v EX 1 PX 2"), Some(Err(Resp::error(errors::SYNTAX))));
        assert_eq!(p("SET k v EX"), Some(Err(Resp::error(errors::SYNTAX))));
        assert_eq!(p("SET k v EX x"), Some(Err(Resp::error(errors::NOT_INTEGER))));
        assert_eq!(p("SET k v EX 0"), Some(Err(Resp::error("ERR invalid expire time in 'set' command"))));
        assert_eq!(p("SET k"), Some(Err(arity_error("set"))));
        assert_eq!(p("FROB k"), None, "not a data command");
    }

    #[test]
    fn arity_and_pairs_are_checked() {
        assert_eq!(p("MSET a 1 b"), Some(Err(arity_error("mset"))));
        assert_eq!(p("HSET h f"), Some(Err(arity_error("hset"))));
        assert_eq!(p("HSET h f v g"), Some(Err(arity_error("hset"))));
        assert_eq!(p("INCRBY k 1.5"), Some(Err(Resp::error(errors::NOT_INTEGER))));
        assert_eq!(p("DECRBY k -9223372036854775808"), Some(Err(Resp::error("ERR decrement would overflow"))));
        assert_eq!(p("LPOP k -1"), Some(Err(Resp::error(errors::NOT_POSITIVE))));
        assert_eq!(p("DEL a b").unwrap().unwrap(), Cmd::Del { keys: vec![b("a"), b("b")] });
    }

    #[test]
    fn zadd_and_expire_flags_conflict_as_in_redis() {
        assert!(matches!(p("ZADD z NX XX 1 a"), Some(Err(Resp::Error(e))) if e.contains("XX and NX")));
        assert!(matches!(p("ZADD z GT LT 1 a"), Some(Err(Resp::Error(e))) if e.contains("GT, LT")));
        assert!(matches!(p("ZADD z INCR 1 a 2 b"), Some(Err(Resp::Error(e))) if e.contains("single")));
        assert_eq!(p("ZADD z 1 a 2"), Some(Err(Resp::error(errors::SYNTAX))));
        assert_eq!(p("ZADD z nan a"), Some(Err(Resp::error(errors::NOT_FLOAT))));
        assert!(matches!(p("EXPIRE k 10 GT LT"), Some(Err(Resp::Error(e))) if e.contains("GT and LT")));
        assert!(matches!(p("EXPIRE k 10 NX GT"), Some(Err(Resp::Error(e))) if e.contains("NX and XX")));
        assert_eq!(
            p("PEXPIREAT k 5 XX").unwrap().unwrap(),
            Cmd::Expire { key: b("k"), when: When::At(5), cond: ExpireCond::HasTtl }
        );
        assert_eq!(
            p("EXPIRE k 99999999999999999"),
            Some(Err(Resp::error("ERR invalid expire time in 'expire' command")))
        );
    }
}
