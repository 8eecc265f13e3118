//! [`KvServer`]: the client port of a [`KvService`]: TCP, `len: u32 BE | postcard` frames,
//! one [`ClientRequest`] answered by one [`ClientResponse`] with the same id. A frame over the
//! limit or one that does not decode gets an `Invalid` answer (id 0) and the connection is
//! closed; other connections are unaffected.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use serde::{Deserialize, Serialize};
use skiff_core::codec::{encode_frame, LEN_PREFIX};
use skiff_core::kv::{Command, Reply};

use super::KvService;

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub id: u64,
    pub command: Command,
}

/// The server's answer to request `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    pub id: u64,
    pub reply: Reply,
}

/// A running client port.
#[derive(Debug)]
pub struct KvServer {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Open connections by number, to close them at shutdown.
    conns: Arc<Mutex<BTreeMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl KvServer {
    /// Serves `service` on `listener`; frames over `max_frame` bytes are refused.
    pub fn start(service: KvService, listener: TcpListener, max_frame: u64) -> io::Result<KvServer> {
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, c) = (stop.clone(), conns.clone());
        let acceptor = thread::Builder::new().name("skiff-kv-accept".into()).spawn(move || {
            let mut handlers: Vec<JoinHandle<()>> = Vec::new();
            let mut next = 0u64;
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let Ok(clone) = stream.try_clone() else { continue };
                next += 1;
                let conn = next;
                c.lock().expect("conns").insert(conn, clone);
                let (service, c) = (service.clone(), c.clone());
                if let Ok(h) = thread::Builder::new().name("skiff-kv-conn".into()).spawn(move || {
                    if let Err(why) = serve(&service, &stream, max_frame) {
                        tracing::debug!("closing client connection: {why}");
                    }
                    let _ = stream.shutdown(Shutdown::Both);
                    c.lock().expect("conns").remove(&conn);
                }) {
                    handlers.push(h);
                }
                handlers.retain(|h| !h.is_finished());
            }
            for h in handlers {
                let _ = h.join();
            }
        })?;
        Ok(KvServer { local, stop, conns, acceptor: Some(acceptor) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, closes every connection and joins the threads.
    pub fn shutdown(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = TcpStream::connect(self.local);
        for c in self.conns.lock().expect("conns").values() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn respond(w: &mut TcpStream, id: u64, reply: Reply) -> io::Result<()> {
    let mut buf = Vec::new();
    encode_frame(&ClientResponse { id, reply }, &mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    w.write_all(&buf)
}

fn serve(service: &KvService, stream: &TcpStream, max_frame: u64) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    loop {
        let mut len = [0u8; LEN_PREFIX];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = u64::from(u32::from_be_bytes(len));
        if len > max_frame {
            let reason = format!("request of {len} bytes over the limit of {max_frame}");
            let _ = respond(&mut w, 0, Reply::Invalid { reason: reason.clone() });
            return Err(reason);
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).map_err(|e| e.to_string())?;
        let Ok(req) = postcard::from_bytes::<ClientRequest>(&payload) else {
            let _ = respond(&mut w, 0, Reply::Invalid { reason: "malformed request".into() });
            return Err("malformed request".into());
        };
        let reply = service.execute(req.command);
        respond(&mut w, req.id, reply).map_err(|e| e.to_string())?;
    }
}
