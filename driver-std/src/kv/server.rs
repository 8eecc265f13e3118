//! [`KvServer`]: the client port of a [`KvService`]: TCP, `len: u32 BE | postcard` frames,
//! one `ClientRequest` answered by one `ClientResponse` (`skiff_core::wire`) with the same id. A frame over the
//! limit or one that does not decode gets an `Invalid` answer (id 0) and the connection is
//! closed; other connections are unaffected.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use skiff_core::codec::{encode_frame, LEN_PREFIX};
use skiff_core::kv::Reply;
use skiff_core::wire::{ClientRequest, ClientResponse};

use super::KvService;
use crate::accept::Acceptor;

/// A running client port.
#[derive(Debug)]
pub struct KvServer {
    acceptor: Acceptor,
}

impl KvServer {
    /// Serves `service` on `listener`; frames over `max_frame` bytes are refused.
    pub fn start(service: KvService, listener: TcpListener, max_frame: u64) -> io::Result<KvServer> {
        let acceptor = Acceptor::start("skiff-kv", listener, move |stream| {
            if let Err(why) = serve(&service, stream, max_frame) {
                tracing::debug!("closing client connection: {why}");
            }
        })?;
        Ok(KvServer { acceptor })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// Stops accepting, closes every connection and joins the threads.
    pub fn shutdown(&mut self) {
        self.acceptor.shutdown();
    }
}

fn respond(w: &mut TcpStream, id: u64, reply: Reply) -> io::Result<()> {
    let mut buf = Vec::new();
    encode_frame(&ClientResponse::new(id, reply), &mut buf).map_err(|e| io::Error::other(e.to_string()))?;
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
