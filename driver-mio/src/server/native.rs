//! [`NativeSession`]: one connection of the native client protocol (`len | postcard` frames,
//! a [`ClientRequest`] answered by a [`ClientResponse`] with the same id). Requests may be
//! pipelined; answers go out as they are ready, each naming its request. A frame over the
//! limit or one that does not decode is answered `Invalid` (id 0) at once, and the
//! connection closes once the requests before it are answered; nothing after it is read.

use skiff_core::codec::{decode_frame, encode_frame, CodecError};
use skiff_core::kv::Reply;
use skiff_core::wire::{ClientRequest, ClientResponse};

use super::conn::Conn;
use super::peers::frame_error;

#[derive(Debug)]
pub(crate) struct NativeSession {
    pub(crate) conn: Conn,
    /// Requests taken and not answered yet.
    pub(crate) in_flight: usize,
}

impl NativeSession {
    pub(crate) fn new(conn: Conn) -> NativeSession {
        NativeSession { conn, in_flight: 0 }
    }

    /// The requests in what was read, in order (each counted in flight). A bad frame is
    /// answered at once and ends reading.
    pub(crate) fn parse(&mut self, max_frame: u64, out: &mut Vec<ClientRequest>) {
        let mut used = 0;
        while !self.conn.stop_reading {
            match decode_frame::<ClientRequest>(&self.conn.rbuf[used..], max_frame) {
                Ok(Some((req, n))) => {
                    used += n;
                    self.in_flight += 1;
                    out.push(req);
                }
                Ok(None) => break,
                Err(e) => {
                    let reason = match e {
                        CodecError::Malformed => "malformed request".to_string(),
                        other => format!("request refused: {}", frame_error(&other)),
                    };
                    tracing::debug!("closing a client connection: {reason}");
                    self.write(0, Reply::Invalid { reason });
                    self.conn.closing = true;
                    self.conn.stop_reading = true;
                    used = self.conn.rbuf.len();
                }
            }
        }
        self.conn.rbuf.drain(..used);
    }

    /// The answer to request `id`.
    pub(crate) fn respond(&mut self, id: u64, reply: Reply) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.write(id, reply);
    }

    fn write(&mut self, id: u64, reply: Reply) {
        if encode_frame(&ClientResponse::new(id, reply), &mut self.conn.wbuf).is_err() {
            tracing::warn!("an answer did not encode");
        }
    }
}
