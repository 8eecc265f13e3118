//! The RESP2 port: `GET`, `SET`, `APPEND` (answers the new length), `PING`, `INFO` (with a
//! `raft` section), `QUIT`; errors in Redis form for unknown commands and wrong arity. Each
//! connection is one client session: its writes carry one client id and increasing sequence
//! numbers, so a write retried after a leader change is applied once. Requests go through a
//! clerk to whichever node leads, so a client may talk to any node.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use skiff_std::accept::Acceptor;
use skiff_std::kv::{ClerkError, KvClerk, KvService};

use crate::resp::{encode, parse_command, Frame, Limits};

/// A running RESP port.
#[derive(Debug)]
pub struct RespServer {
    acceptor: Acceptor,
}

impl RespServer {
    /// Serves RESP on `listener`, forwarding through the cluster's native client ports
    /// `clients` (in node id order); `service` is the local node (for `INFO`).
    pub fn start(
        listener: TcpListener,
        clients: Vec<SocketAddr>,
        service: KvService,
        max_value: usize,
    ) -> io::Result<RespServer> {
        let limits = Limits { max_bulk: max_value + 1024, ..Limits::default() };
        let acceptor = Acceptor::start("skiff-resp", listener, move |stream| {
            let mut session =
                Session { clerk: KvClerk::new(clients.clone(), Duration::from_secs(1)), service: service.clone() };
            if let Err(e) = session.serve(stream, &limits) {
                tracing::debug!("RESP connection closed: {e}");
            }
        })?;
        Ok(RespServer { acceptor })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// Stops accepting, closes every connection, joins the threads.
    pub fn shutdown(&mut self) {
        self.acceptor.shutdown();
    }
}

struct Session {
    clerk: KvClerk,
    service: KvService,
}

fn arity(name: &str) -> Frame {
    Frame::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

fn text(b: &[u8]) -> Result<String, Frame> {
    String::from_utf8(b.to_vec()).map_err(|_| Frame::Error("ERR keys and values must be UTF-8".into()))
}

impl Session {
    fn serve(&mut self, stream: &TcpStream, limits: &Limits) -> io::Result<()> {
        let mut r = stream.try_clone()?;
        let mut w = stream.try_clone()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        let mut out = Vec::new();
        loop {
            let n = r.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut used = 0;
            loop {
                match parse_command(&buf[used..], limits) {
                    Ok(Some((args, n))) => {
                        used += n;
                        if args.is_empty() {
                            continue;
                        }
                        let (reply, quit) = self.execute(&args);
                        encode(&reply, &mut out);
                        if quit {
                            w.write_all(&out)?;
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        encode(&Frame::Error(format!("ERR {e}")), &mut out);
                        w.write_all(&out)?;
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                    }
                }
            }
            buf.drain(..used);
            if !out.is_empty() {
                w.write_all(&out)?;
                out.clear();
            }
        }
    }

    /// One command: its reply, and whether the connection should close.
    fn execute(&mut self, args: &[Vec<u8>]) -> (Frame, bool) {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let reply = match (name.as_str(), args.len()) {
            ("ping", 1) => Frame::Simple("PONG".into()),
            ("ping", 2) => Frame::Bulk(Some(args[1].clone())),
            ("ping", _) => arity("ping"),
            ("quit", _) => return (Frame::Simple("OK".into()), true),
            ("get", 2) => self.kv(|ck| {
                let key = text(&args[1])?;
                Ok(match ck.get(&key).map_err(clerk_err)? {
                    v if v.is_empty() => Frame::Bulk(None),
                    v => Frame::Bulk(Some(v.into_bytes())),
                })
            }),
            ("set", 3) => self.kv(|ck| {
                ck.put(&text(&args[1])?, &text(&args[2])?).map_err(clerk_err)?;
                Ok(Frame::Simple("OK".into()))
            }),
            ("append", 3) => self.kv(|ck| {
                let len = ck.append(&text(&args[1])?, &text(&args[2])?).map_err(clerk_err)?;
                Ok(Frame::Integer(len as i64))
            }),
            ("get", _) | ("set", _) | ("append", _) => arity(&name),
            ("info", _) => Frame::Bulk(Some(self.info().into_bytes())),
            _ => {
                let shown: String = String::from_utf8_lossy(&args[0]).chars().take(64).collect();
                Frame::Error(format!("ERR unknown command '{shown}'"))
            }
        };
        (reply, false)
    }

    fn kv(&mut self, f: impl FnOnce(&mut KvClerk) -> Result<Frame, Frame>) -> Frame {
        f(&mut self.clerk).unwrap_or_else(|e| e)
    }

    fn info(&self) -> String {
        let Some(v) = self.service.raft().status() else { return "# Raft\r\nstate:stopped\r\n".into() };
        format!(
            "# Raft\r\nnode_id:{}\r\nrole:{:?}\r\nterm:{}\r\nleader:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\n",
            v.id.0,
            v.role,
            v.term.0,
            v.leader.map_or("none".to_string(), |l| l.0.to_string()),
            v.commit.0,
            v.applied.0,
            v.last_index.0,
            v.snapshot_index.0
        )
    }
}

fn clerk_err(e: ClerkError) -> Frame {
    match e {
        ClerkError::Invalid(reason) => Frame::Error(format!("ERR {reason}")),
    }
}
