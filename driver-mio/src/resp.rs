//! RESP, the Redis protocol: requests are arrays of bulk strings (or inline command lines);
//! replies ([`Resp`], built by the state machine or the session) are encoded in RESP2 or,
//! once a client said `HELLO 3`, in RESP3 (maps, sets, doubles and one null).
//!
//! The parser is incremental (call it again when more bytes arrive) and bounded: a bulk
//! string, an array or an inline line over the limits is a protocol error before anything is
//! allocated for it, so a 4 GiB length costs nothing.

use std::fmt;

pub use skiff_core::kv::Resp;

/// The protocol a connection speaks: RESP2 (the default) or RESP3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
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
    /// Most bytes of one command on the wire (headers included): an unfinished command is
    /// refused as soon as what it declares passes this.
    pub max_command: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk: 1 << 20, max_args: 1024, max_inline: 64 << 10, max_command: (1 << 20) + (64 << 10) }
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

/// What one [`Parser::parse`] call gives: the command if it completed, and the bytes
/// consumed either way.
pub type Step = (Option<Vec<Vec<u8>>>, usize);

/// Longest integer line (`*N` or `$N`) accepted.
const MAX_INT_LINE: usize = 32;

/// Parses an integer line (after its type byte) starting at `at`; returns it and where the
/// next line starts. `Ok(None)` if the line is incomplete. Looks at no more than a line's
/// worth of bytes, however long `buf` is.
fn int_line(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window = &buf[at..buf.len().min(at + MAX_INT_LINE + 2)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n").map(|p| at + p) else {
        if buf.len() - at > MAX_INT_LINE {
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

/// An incremental command parser: the arguments of a command whose bytes arrive over many
/// reads are taken out of the buffer as each one completes, so every byte is looked at a
/// bounded number of times (linear in the input, however the command is cut), and the bytes
/// one unfinished command holds never pass [`Limits::max_command`].
#[derive(Debug, Default)]
pub struct Parser {
    /// The command being read: its argument count, the arguments complete so far, and the
    /// wire bytes they took.
    partial: Option<(usize, Vec<Vec<u8>>, usize)>,
    /// Bytes of an inline line already searched for its end.
    inline_scanned: usize,
}

impl Parser {
    /// Whether a command is partly read.
    pub fn in_command(&self) -> bool {
        self.partial.is_some()
    }

    /// Wire bytes of the partly read command's complete arguments (held here, out of the
    /// caller's buffer).
    pub fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.2)
    }

    /// Takes what it can of one command from the front of `buf`. Returns the command when
    /// complete (`None` when more bytes are needed) and how many bytes of `buf` it consumed
    /// either way: the caller drops them and gives the rest, with what arrives after, next
    /// time.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Step, ProtocolError> {
        let mut at = 0;
        let (count, mut args, mut bytes) = match self.partial.take() {
            Some(p) => p,
            None => {
                if buf.is_empty() {
                    return Ok((None, 0));
                }
                if buf[0] != b'*' {
                    let from = self.inline_scanned.min(buf.len());
                    return match parse_inline(buf, from, limits)? {
                        Some((args, used)) => {
                            self.inline_scanned = 0;
                            Ok((Some(args), used))
                        }
                        None => {
                            self.inline_scanned = buf.len();
                            Ok((None, 0))
                        }
                    };
                }
                let Some((count, next)) = int_line(buf, 1, "multibulk length")? else { return Ok((None, 0)) };
                if count <= 0 {
                    return Ok((Some(Vec::new()), next));
                }
                if count as u64 > limits.max_args as u64 {
                    return Err(ProtocolError("invalid multibulk length".into()));
                }
                at = next;
                (count as usize, Vec::with_capacity((count as usize).min(64)), next)
            }
        };
        while args.len() < count {
            let complete = self.bulk(buf, at, bytes, limits)?;
            let Some((arg, next)) = complete else {
                self.partial = Some((count, args, bytes));
                return Ok((None, at));
            };
            bytes += next - at;
            args.push(arg);
            at = next;
        }
        Ok((Some(args), at))
    }

    /// One bulk string at `at`, if complete: it and where the next one starts.
    fn bulk(
        &self,
        buf: &[u8],
        at: usize,
        bytes: usize,
        limits: &Limits,
    ) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
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
        let len = len as usize;
        if bytes + (start - at) + len + 2 > limits.max_command {
            return Err(ProtocolError(format!("command over the limit of {} bytes", limits.max_command)));
        }
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        Ok(Some((buf[start..end].to_vec(), end + 2)))
    }
}

/// Takes one whole command from the front of `buf`: its arguments and the bytes it used, or
/// `Ok(None)` if more bytes are needed (a fresh [`Parser`] that consumes nothing until the
/// command is complete).
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let mut p = Parser::default();
    let mut at = 0;
    loop {
        let (args, used) = p.parse(&buf[at..], limits)?;
        at += used;
        match args {
            Some(args) => return Ok(Some((args, at))),
            None if used == 0 || at >= buf.len() => return Ok(None),
            None => {}
        }
    }
}

/// An inline command: a line of space-separated words (what `telnet` sends).
/// `from` bytes are known to hold no line end (searched by an earlier call).
fn parse_inline(buf: &[u8], from: usize, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let window = &buf[..buf.len().min(limits.max_inline + 1)];
    let Some(nl) = window.iter().skip(from).position(|b| *b == b'\n').map(|p| p + from) else {
        if buf.len() > limits.max_inline {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args: Vec<Vec<u8>> = line.split(|b| *b == b' ').filter(|w| !w.is_empty()).map(<[u8]>::to_vec).collect();
    if args.len() > limits.max_args {
        return Err(ProtocolError("too many arguments".into()));
    }
    Ok(Some((args, nl + 1)))
}

fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    // A line must not break: a CR or LF in an error or status text becomes a space.
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// Appends the encoding of `reply` in protocol `proto` to `out`.
pub fn encode(reply: &Resp, proto: Proto, out: &mut Vec<u8>) {
    let v3 = proto == Proto::Resp3;
    match reply {
        Resp::Ok => out.extend_from_slice(b"+OK\r\n"),
        Resp::Simple(s) => line(out, b'+', s),
        Resp::Error(e) => line(out, b'-', e),
        Resp::Int(n) => line(out, b':', &n.to_string()),
        Resp::Bulk(b) => {
            header(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Resp::Nil | Resp::NilArray if v3 => out.extend_from_slice(b"_\r\n"),
        Resp::Nil => out.extend_from_slice(b"$-1\r\n"),
        Resp::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Resp::Double(d) if v3 => line(out, b',', d),
        Resp::Double(d) => encode(&Resp::Bulk(d.clone().into_bytes().into()), proto, out),
        Resp::Array(items) => {
            header(out, b'*', items.len());
            items.iter().for_each(|i| encode(i, proto, out));
        }
        Resp::Set(items) => {
            header(out, if v3 { b'~' } else { b'*' }, items.len());
            items.iter().for_each(|i| encode(i, proto, out));
        }
        Resp::Map(pairs) => {
            if v3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Resp::Pairs(pairs) => {
            header(out, b'*', if v3 { pairs.len() } else { pairs.len() * 2 });
            for (k, v) in pairs {
                if v3 {
                    header(out, b'*', 2);
                }
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
    }
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
    fn a_command_cut_anywhere_parses_the_same_consuming_each_argument_once() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";
        let limits = Limits::default();
        for step in 1..wire.len() {
            // Bytes arrive `step` at a time; consumed bytes are dropped from the buffer.
            let (mut p, mut buf, mut got) = (Parser::default(), Vec::new(), Vec::new());
            for chunk in wire.chunks(step) {
                buf.extend_from_slice(chunk);
                loop {
                    let (args, used) = p.parse(&buf, &limits).unwrap();
                    buf.drain(..used);
                    match args {
                        Some(a) => got.push(a),
                        None => break,
                    }
                }
            }
            assert_eq!(got.len(), 2, "step {step}");
            assert_eq!(got[0], vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]);
            assert!(buf.is_empty() && !p.in_command());
        }
        // A big argument arriving in pieces is not copied until it is whole, and the
        // arguments before it are not parsed again.
        let mut p = Parser::default();
        let mut big = b"*2\r\n$3\r\nGET\r\n$100000\r\n".to_vec();
        let (args, used) = p.parse(&big, &Limits::default()).unwrap();
        assert_eq!((args, used), (None, 13), "GET taken, the big bulk's header left");
        big.drain(..used);
        big.extend(std::iter::repeat_n(b'x', 100_000));
        big.extend_from_slice(b"\r\n");
        let (args, used) = p.parse(&big, &Limits::default()).unwrap();
        assert_eq!((args.map(|a| a[1].len()), used), (Some(100_000), big.len()));
    }

    #[test]
    fn a_command_over_the_limit_is_refused_before_its_bytes_arrive() {
        let limits = Limits { max_bulk: 100, max_command: 250, ..Limits::default() };
        let mut p = Parser::default();
        // Three bulks of 100: each fits, all three do not.
        let mut wire = b"*3\r\n".to_vec();
        for _ in 0..2 {
            wire.extend_from_slice(b"$100\r\n");
            wire.extend(std::iter::repeat_n(b'a', 100));
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"$100\r\n");
        let e = p.parse(&wire, &limits).unwrap_err();
        assert_eq!(e.to_string(), "Protocol error: command over the limit of 250 bytes");
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
    fn replies_encode_as_redis_does_in_both_protocols() {
        let b = |s: &'static str| Resp::Bulk(s.into());
        let replies = [
            Resp::Ok,
            Resp::Error("ERR no\r\nway".into()),
            Resp::Int(5),
            b("v"),
            Resp::Nil,
            Resp::NilArray,
            Resp::Array(vec![Resp::Int(1), b("x")]),
            Resp::Map(vec![(b("f"), b("v"))]),
            Resp::Set(vec![b("m")]),
            Resp::Pairs(vec![(b("m"), Resp::Double("1.5".into()))]),
            Resp::Double("inf".into()),
        ];
        let wire = |proto| {
            let mut out = Vec::new();
            replies.iter().for_each(|r| encode(r, proto, &mut out));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            wire(Proto::Resp2),
            "+OK\r\n-ERR no  way\r\n:5\r\n$1\r\nv\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n$1\r\nx\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n\
             *1\r\n$1\r\nm\r\n*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n$3\r\ninf\r\n"
        );
        assert_eq!(
            wire(Proto::Resp3),
            "+OK\r\n-ERR no  way\r\n:5\r\n$1\r\nv\r\n_\r\n_\r\n*2\r\n:1\r\n$1\r\nx\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n\
             ~1\r\n$1\r\nm\r\n*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n,inf\r\n"
        );
    }
}
