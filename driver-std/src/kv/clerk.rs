//! [`KvClerk`]: a blocking client on top of the pure `skiff_core::kv::Clerk`: it keeps one
//! connection per server, resends with the same sequence number on timeouts and refusals,
//! follows leader hints and backs off when no server leads.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skiff_core::codec::{encode_frame, LEN_PREFIX};
use skiff_core::kv::{Clerk, ClerkStep, Op, Resp};
use skiff_core::wire::{ClientRequest, ClientResponse};
use skiff_core::NodeId;

use crate::tls::ClientStream;

/// Wall time of one backoff tick.
const TICK: Duration = Duration::from_millis(10);
/// Largest response accepted from a server.
const MAX_RESPONSE: u64 = 64 << 20;

/// Why an operation failed for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkError {
    /// The servers refused the request (over a limit, malformed): it did not take effect.
    Invalid(String),
    /// The write may or may not have taken effect (its session expired while it was in
    /// doubt): read the state to find out.
    InDoubt(String),
}

impl fmt::Display for ClerkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClerkError::Invalid(r) => write!(f, "request refused: {r}"),
            ClerkError::InDoubt(r) => write!(f, "outcome unknown: {r}"),
        }
    }
}

impl std::error::Error for ClerkError {}

/// A blocking KV client. Operations retry until they succeed (as the lab's clerk does).
#[derive(Debug)]
pub struct KvClerk {
    clerk: Clerk,
    servers: Vec<(NodeId, SocketAddr)>,
    conns: Vec<Option<BufReader<ClientStream>>>,
    timeout: Duration,
    /// Speak TLS to the servers, trusting this configuration's CA; each server's certificate
    /// must name the address it is dialled at.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Sent with every request (a node with users configured requires it).
    token: Option<skiff_core::wire::Token>,
}

static CLERKS: AtomicU64 = AtomicU64::new(0);

/// A number to spread clerks over the servers they try first (not an id: sessions get theirs
/// from the log).
fn spread() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()) ^ CLERKS.fetch_add(1, Ordering::Relaxed)
}

impl KvClerk {
    /// A clerk for the nodes `servers` (each node's id and native client address), waiting
    /// up to `timeout` for each answer.
    pub fn new(servers: Vec<(NodeId, SocketAddr)>, timeout: Duration) -> KvClerk {
        let n = servers.len();
        KvClerk {
            clerk: Clerk::new(spread(), servers.iter().map(|(id, _)| *id).collect()),
            conns: (0..n).map(|_| None).collect(),
            servers,
            timeout,
            token: None,
            tls: None,
        }
    }

    /// The clerk, speaking TLS with `config` (see [`crate::tls::client_config`]).
    pub fn with_tls(self, config: std::sync::Arc<rustls::ClientConfig>) -> KvClerk {
        KvClerk { tls: Some(config), ..self }
    }

    /// The clerk, authenticating as `user` with `password` in every request.
    pub fn with_credentials(self, user: &str, password: &str) -> KvClerk {
        let token = skiff_core::wire::Token { user: user.to_string(), password: password.as_bytes().to_vec().into() };
        KvClerk { token: Some(token), ..self }
    }

    /// The value of string `key` (`""` when missing; the UTF-8 of it, lossily: use
    /// [`KvClerk::run`] for bytes).
    pub fn get(&mut self, key: &str) -> Result<String, ClerkError> {
        self.run(Op::get(key.to_string())).map(|r| r.to_text())
    }

    pub fn put(&mut self, key: &str, value: &str) -> Result<(), ClerkError> {
        self.run(Op::put(key.to_string(), value.to_string())).map(drop)
    }

    /// Appends `value`; returns the value's new length in bytes.
    pub fn append(&mut self, key: &str, value: &str) -> Result<u64, ClerkError> {
        match self.run(Op::append(key.to_string(), value.to_string()))? {
            Resp::Int(len) => Ok(len as u64),
            other => Err(ClerkError::Invalid(other.to_text())),
        }
    }

    /// Runs any operation: Redis's reply (an error reply such as `WRONGTYPE` included).
    pub fn run(&mut self, op: Op) -> Result<Resp, ClerkError> {
        let mut step = self.clerk.start(op);
        loop {
            let (to, attempt, command) = match step {
                ClerkStep::Done(v) => return Ok(v),
                ClerkStep::Failed(reason) => return Err(ClerkError::Invalid(reason)),
                ClerkStep::InDoubt(reason) => return Err(ClerkError::InDoubt(reason)),
                ClerkStep::Send { to, attempt, command } => (to, attempt, command),
                ClerkStep::Backoff { ticks, to, attempt, command } => {
                    std::thread::sleep(TICK * ticks);
                    (to, attempt, command)
                }
            };
            let server = self.servers.iter().position(|(id, _)| *id == to).expect("the clerk names our servers");
            // The request id is the attempt: an answer to an earlier attempt is skipped.
            let req = ClientRequest::new(attempt, command).with_token(self.token.clone());
            let answered = match self.call(server, &req) {
                Ok(reply) => self.clerk.on_reply(attempt, reply),
                Err(_) => {
                    self.conns[server] = None;
                    None
                }
            };
            step = match answered {
                Some(s) => s,
                None => self.clerk.on_timeout(attempt).expect("the attempt in flight"),
            };
        }
    }

    /// One request to one server; an error means no usable answer.
    fn call(&mut self, server: usize, req: &ClientRequest) -> io::Result<skiff_core::kv::Reply> {
        if self.conns[server].is_none() {
            let conn = ClientStream::dial(self.servers[server].1, self.timeout, self.tls.as_ref())?;
            self.conns[server] = Some(BufReader::new(conn));
        }
        let r = self.conns[server].as_mut().expect("connected above");
        let mut buf = Vec::new();
        encode_frame(req, &mut buf).map_err(|e| io::Error::other(e.to_string()))?;
        r.get_mut().write_all(&buf)?;
        r.get_mut().flush()?;
        loop {
            let mut len = [0u8; LEN_PREFIX];
            r.read_exact(&mut len)?;
            let len = u64::from(u32::from_be_bytes(len));
            if len > MAX_RESPONSE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "response over the limit"));
            }
            let mut payload = vec![0u8; len as usize];
            r.read_exact(&mut payload)?;
            let resp: ClientResponse = postcard::from_bytes(&payload)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad response"))?;
            // An answer to an earlier request that timed out on our side: skip it.
            if resp.id == req.id || resp.id == 0 {
                return Ok(resp.reply);
            }
        }
    }
}
