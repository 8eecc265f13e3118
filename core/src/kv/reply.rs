//! [`Resp`]: what a Redis command answers, as a tree the drivers encode in RESP2 or RESP3.
//! The state machine builds it once, on every replica alike; a session keeps the last one for
//! a retried write.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A command's answer. RESP3 types fall back to their RESP2 forms when the connection speaks
/// RESP2 (a map to a flat array, a set to an array, a double to a bulk string, both nulls to
/// their RESP2 nulls).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resp {
    /// `+OK`.
    Ok,
    /// A status line (`+PONG`, `+string`).
    Simple(String),
    /// An error reply: its whole text, code first (`WRONGTYPE ...`, `ERR ...`).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// The null bulk string: a missing key.
    Nil,
    /// The null array: an `EXEC` whose watched keys changed.
    NilArray,
    Array(Vec<Resp>),
    /// Field-value pairs (`HGETALL`): a flat array in RESP2.
    Map(Vec<(Resp, Resp)>),
    /// Members without order (`SMEMBERS`): an array in RESP2.
    Set(Vec<Resp>),
    /// Member-score pairs (`ZRANGE .. WITHSCORES`): an array of two-element arrays in RESP3,
    /// a flat array in RESP2.
    Pairs(Vec<(Resp, Resp)>),
    /// A floating point number, as Redis prints it (`1.5`, `inf`): a bulk string in RESP2.
    Double(String),
}

/// Redis's error texts, word for word where clients match on them.
pub mod errors {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
    pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
    pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
    pub const OFFSET_RANGE: &str = "ERR offset is out of range";
    pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
    pub const ZSET_NAN: &str = "ERR resulting score is not a number (NaN)";
}

impl Resp {
    pub fn error(text: impl Into<String>) -> Resp {
        Resp::Error(text.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Resp {
        Resp::Bulk(b.into())
    }

    /// `Bulk`, or `Nil` for `None`.
    pub fn bulk_or_nil(b: Option<Bytes>) -> Resp {
        b.map_or(Resp::Nil, Resp::Bulk)
    }

    /// An array of bulk strings.
    pub fn bulks<I: IntoIterator<Item = Bytes>>(items: I) -> Resp {
        Resp::Array(items.into_iter().map(Resp::Bulk).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// The bytes of a bulk or status answer (`None` for the nulls): what the lab's `Get`
    /// reads.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Resp::Bulk(b) => Some(b),
            Resp::Simple(s) | Resp::Double(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The answer as the MIT lab's text: a value (`""` for a missing key or `OK`), a
    /// number, an error's text; an aggregate as its elements' texts joined by spaces.
    pub fn to_text(&self) -> String {
        use alloc::string::ToString;
        match self {
            Resp::Ok | Resp::Nil | Resp::NilArray => String::new(),
            Resp::Simple(s) | Resp::Error(s) | Resp::Double(s) => s.clone(),
            Resp::Int(n) => n.to_string(),
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Resp::Array(v) | Resp::Set(v) => v.iter().map(Resp::to_text).collect::<Vec<_>>().join(" "),
            Resp::Map(v) | Resp::Pairs(v) => {
                v.iter().flat_map(|(a, b)| [a.to_text(), b.to_text()]).collect::<Vec<_>>().join(" ")
            }
        }
    }

    /// Bytes the answer holds, about (what a session table bound counts).
    pub fn weight(&self) -> usize {
        match self {
            Resp::Simple(s) | Resp::Error(s) | Resp::Double(s) => s.len() + 8,
            Resp::Bulk(b) => b.len() + 8,
            Resp::Array(v) | Resp::Set(v) => v.iter().map(Resp::weight).sum::<usize>() + 8,
            Resp::Map(v) | Resp::Pairs(v) => v.iter().map(|(k, x)| k.weight() + x.weight()).sum::<usize>() + 8,
            Resp::Ok | Resp::Int(_) | Resp::Nil | Resp::NilArray => 8,
        }
    }
}

/// A double as Redis prints it: the shortest digits that read back the same number, in
/// exponent form (`1e+20`, `1.5e-07`) outside 1e-4..1e17 as `%g` would, `inf`, `-inf`
/// (Redis never answers a NaN), `-0`.
pub fn format_double(x: f64) -> String {
    use alloc::format;
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let a = x.abs();
    if !(1e-4..1e17).contains(&a) {
        let e = format!("{x:e}");
        let (mantissa, exp) = e.split_once('e').expect("an exponent");
        let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if x == (x as i64) as f64 {
        return format!("{}", x as i64);
    }
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::format_double;

    #[test]
    fn doubles_print_as_redis_prints_them() {
        for (x, text) in [
            (1.5, "1.5"),
            (3.0, "3"),
            (-0.0, "-0"),
            (1e20, "1e+20"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789.25, "123456789.25"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(format_double(x), text, "{x}");
        }
    }
}
