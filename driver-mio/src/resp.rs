//! RESP2, the Redis protocol: requests are arrays of bulk strings (or inline command lines),
//! replies are simple strings, errors, integers, bulk strings or arrays.
//!
//! The parser is incremental (call it again when more bytes arrive) and bounded: a bulk
//! string, an array or an inline line over the limits is a protocol error before anything is
//! allocated for it, so a 4 GiB length costs nothing.

use std::fmt;

/// A reply (or any RESP2 value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    Array(Vec<Frame>),
}

/// Bounds on what a client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk string.
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk: 1 << 20, max_args: 1024, max_inline: 64 << 10 }
    }
}

/// A request that cannot be parsed: the connection answers with it and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

/// A parsed command (its arguments, and the bytes it took), or `None` when more are needed.
pub type Parsed = Option<(Vec<Vec<u8>>, usize)>;

/// Finds the end of the line starting at `at` (the index of its `\r`), if complete.
fn line_end(buf: &[u8], at: usize) -> Option<usize> {
    buf[at..].windows(2).position(|w| w == b"\r\n").map(|p| at + p)
}

/// Parses an integer line (after its type byte) starting at `at`; returns it and where the
/// next line starts. `Ok(None)` if the line is incomplete.
fn int_line(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(end) = line_end(buf, at) else {
        if buf.len() - at > 32 {
            return Err(ProtocolError(format!("invalid {what}")));
        }
        return Ok(None);
    };
    let n = std::str::from_utf8(&buf[at..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what}")))?;
    Ok(Some((n, end + 2)))
}

/// Takes one command from the front of `buf`: its arguments and the bytes it used, or
/// `Ok(None)` if more bytes are needed.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf, limits);
    }
    let Some((count, mut at)) = int_line(buf, 1, "multibulk length")? else { return Ok(None) };
    if count <= 0 {
        return Ok(Some((Vec::new(), at)));
    }
    if count as u64 > limits.max_args as u64 {
        return Err(ProtocolError("invalid multibulk length".into()));
    }
    let mut args = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err(ProtocolError(format!("expected '$', got '{}'", buf[at] as char)));
        }
        let Some((len, start)) = int_line(buf, at + 1, "bulk length")? else { return Ok(None) };
        if len < 0 || len as u64 > limits.max_bulk as u64 {
            return Err(ProtocolError("invalid bulk length".into()));
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

/// An inline command: a line of space-separated words (what `telnet` sends).
fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() > limits.max_inline {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    if nl > limits.max_inline {
        return Err(ProtocolError("too big inline request".into()));
    }
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args: Vec<Vec<u8>> = line.split(|b| *b == b' ').filter(|w| !w.is_empty()).map(<[u8]>::to_vec).collect();
    if args.len() > limits.max_args {
        return Err(ProtocolError("too many arguments".into()));
    }
    Ok(Some((args, nl + 1)))
}

/// Appends the encoding of `frame` to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Simple(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
        }
        Frame::Error(e) => {
            out.push(b'-');
            out.extend_from_slice(e.replace(['\r', '\n'], " ").as_bytes());
        }
        Frame::Integer(n) => {
            out.push(b':');
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Frame::Bulk(None) => out.extend_from_slice(b"$-1"),
        Frame::Bulk(Some(b)) => {
            out.push(b'$');
            out.extend_from_slice(b.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
        }
        Frame::Array(items) => {
            out.push(b'*');
            out.extend_from_slice(items.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            for f in items {
                encode(f, out);
            }
            return;
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Parsed, ProtocolError> {
        parse_command(b, &Limits::default())
    }

    #[test]
    fn commands_parse_whole_and_wait_for_more_when_cut_anywhere() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let (args, used) = parse(wire).unwrap().unwrap();
        assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]);
        assert_eq!(used, wire.len());
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (args, used) = parse(b"PING\r\nGET x").unwrap().unwrap();
        assert_eq!((args, used), (vec![b"PING".to_vec()], 6));
    }

    #[test]
    fn oversized_and_malformed_requests_are_errors_without_allocation() {
        assert!(parse(b"*1\r\n$4294967296\r\n").is_err(), "a 4 GiB bulk");
        assert!(parse(b"*99999999999\r\n").is_err(), "too many arguments");
        assert!(parse(b"*1\r\n:5\r\n").is_err(), "not a bulk string");
        assert!(parse(b"*1\r\n$3\r\nabcde\r\n").is_err(), "bulk not terminated");
        assert!(parse(b"*x\r\n").is_err());
        assert!(parse(&[b'*'; 100]).is_err(), "a length line that never ends");
        assert!(parse(&vec![b'a'; 70 << 10]).is_err(), "an inline line that never ends");
    }

    #[test]
    fn replies_encode_as_redis_does() {
        let mut out = Vec::new();
        for f in [
            Frame::Simple("OK".into()),
            Frame::Error("ERR no".into()),
            Frame::Integer(5),
            Frame::Bulk(Some(b"v".to_vec())),
            Frame::Bulk(None),
            Frame::Array(vec![Frame::Integer(1), Frame::Bulk(Some(b"x".to_vec()))]),
        ] {
            encode(&f, &mut out);
        }
        assert_eq!(out, b"+OK\r\n-ERR no\r\n:5\r\n$1\r\nv\r\n$-1\r\n*2\r\n:1\r\n$1\r\nx\r\n".to_vec());
    }
}
