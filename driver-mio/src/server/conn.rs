//! [`Conn`]: one non-blocking TCP connection of the event loop, with its read and write
//! buffers (plaintext: under TLS, [`Wire`] encrypts and decrypts between them and the
//! socket). mio reports readiness edge-triggered, so writes go on until the socket would
//! block, and reads until it would block or, once the connection's readiness events are
//! known, until a read comes back shorter than asked (see [`Conn::saw`]).

use std::cell::RefCell;
use std::io::{self, Read};
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::wire::{TlsFailure, Wire};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 << 10;
/// Bytes read before the caller parses them (see [`ReadState::More`]).
pub(crate) const READ_BUDGET: usize = 1 << 20;
/// Bytes of output waiting for a client to read before the node stops reading from it and
/// stops answering its queued commands.
pub(crate) const MAX_OUTPUT: usize = 8 << 20;

thread_local! {
    /// What [`Conn::fill`] reads into before taking the bytes in: one per thread (the event
    /// loop's), zeroed once rather than at every read (64 KiB of memset per readiness event).
    static CHUNK: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// Gives back most of a buffer's capacity when it holds little of it.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 2 * READ_BUDGET && buf.len() < buf.capacity() / 4 {
        buf.shrink_to(buf.len().max(READ_CHUNK));
    }
}

/// A connection and its buffers. Invariant: `wbuf[wpos..]` is what is still to be written;
/// the registered interest includes `WRITABLE` exactly when that is not empty.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) token: Token,
    /// Received bytes not yet consumed by a parser.
    pub(crate) rbuf: Vec<u8>,
    pub(crate) wbuf: Vec<u8>,
    wpos: usize,
    writable_registered: bool,
    /// Close once everything queued is written and nothing is in progress (after an error
    /// answer, `QUIT`, or the client's end of stream).
    pub(crate) closing: bool,
    /// Read nothing more (what follows a protocol error is not looked at).
    pub(crate) stop_reading: bool,
    /// Plaintext or TLS.
    pub(crate) wire: Wire,
    /// An accepted connection's TLS handshake must be complete by then.
    handshake_by: Option<Instant>,
    /// Why TLS ended the connection, once it did (the read that found it said `Closed`).
    pub(crate) failure: Option<TlsFailure>,
    /// Whether a read shorter than the chunk ends a [`Conn::fill`] (see [`Conn::saw`]).
    short_read_drains: bool,
    /// Set for good once an event reported the peer's end of stream or an error.
    end_reported: bool,
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// Everything available was read; the next readiness event says when there is more.
    Drained,
    /// Stopped at the budget with more possibly waiting: consume `rbuf`, then read again
    /// (edge-triggered readiness will not report these bytes again).
    More,
    /// The peer closed its side (or the connection failed).
    Closed,
}

impl Conn {
    /// Registers `stream` for reading under `token`, speaking `wire`; a TLS handshake it
    /// accepts must be done by `handshake_by`.
    pub(crate) fn register(
        mut stream: TcpStream,
        token: Token,
        registry: &Registry,
        wire: Wire,
        handshake_by: Option<Instant>,
    ) -> io::Result<Conn> {
        registry.register(&mut stream, token, Interest::READABLE)?;
        let handshake_by = handshake_by.filter(|_| wire.handshaking());
        Ok(Conn {
            wire,
            handshake_by,
            failure: None,
            stream,
            token,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            writable_registered: false,
            closing: false,
            stop_reading: false,
            short_read_drains: false,
            end_reported: false,
        })
    }

    /// Notes a readiness event of this connection; call it before reading for the event.
    ///
    /// A read that returns fewer bytes than asked emptied the socket's receive queue, and any
    /// byte that arrives later raises a new edge, so the read that would find the socket
    /// empty (one `recv` per event, returning `EAGAIN`) can be skipped. Except for the end of
    /// stream: a FIN queued behind data is only seen by a further read, and if it arrived
    /// before the event was taken, it raises no later edge. The event then says so
    /// (`EPOLLRDHUP` or `EPOLLHUP`), so once one does, and before any event was seen (bytes
    /// may have come with an accepted connection), reads go on until the socket would block.
    pub(crate) fn saw(&mut self, event: &Event) {
        self.end_reported |= event.is_read_closed() || event.is_error();
        self.short_read_drains = !self.end_reported;
    }

    /// Reads what is available into `rbuf`, stopping after [`READ_BUDGET`] bytes so that a
    /// fast sender cannot make the buffer grow without its contents being parsed. `Drained`
    /// means the socket would block, or a read came back short and [`Conn::saw`] allows
    /// taking that as the same.
    pub(crate) fn fill(&mut self) -> ReadState {
        CHUNK.with_borrow_mut(|chunk| self.fill_through(chunk))
    }

    fn fill_through(&mut self, chunk: &mut [u8]) -> ReadState {
        let mut read = 0;
        loop {
            if read >= READ_BUDGET {
                return ReadState::More;
            }
            match self.stream.read(chunk) {
                Ok(0) => return ReadState::Closed,
                Ok(n) => {
                    read += n;
                    let handshaking = self.wire.handshaking();
                    match self.wire.take_in(&chunk[..n], &mut self.rbuf) {
                        Ok(false) => {}
                        // close_notify: what came before it is in `rbuf`.
                        Ok(true) => return ReadState::Closed,
                        Err(f) => {
                            // A refusal while the connection is set up; a failure later is
                            // only a lost connection.
                            match self.wire.counted() {
                                Some(c) if handshaking => c.refused(f.reason(), &f.to_string()),
                                _ => tracing::debug!("TLS connection failed: {f}"),
                            }
                            self.failure = Some(f);
                            // The alert TLS queued, if any, as far as the socket takes it now.
                            let _ = self.wire.write_out(&mut self.stream, &[], &mut 0);
                            return ReadState::Closed;
                        }
                    }
                    if self.handshake_by.is_some() && !self.wire.handshaking() {
                        self.handshake_by = None;
                    }
                    if n < chunk.len() && self.short_read_drains {
                        return ReadState::Drained;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadState::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadState::Closed,
            }
        }
    }

    /// Whether part of the output queued was written (the rest of a frame is pending).
    pub(crate) fn mid_frame(&self) -> bool {
        self.wpos > 0
    }

    /// Bytes queued and not yet written (at least 1 while TLS holds ciphertext to write).
    pub(crate) fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos + usize::from(self.wire.wants_write())
    }

    /// Whether the connection's TLS handshake did not complete in time; if so, the refusal
    /// is counted (once) and the owner must close it.
    pub(crate) fn handshake_late(&mut self, now: Instant) -> bool {
        if !self.handshake_by.is_some_and(|by| by <= now) {
            return false;
        }
        self.handshake_by = None;
        if let Some(c) = self.wire.counted() {
            c.refused("timeout", "its TLS handshake did not complete in time");
        }
        self.failure = Some(TlsFailure::Timeout);
        true
    }

    /// Whether the connection speaks plaintext (a message may be written to it raw).
    pub(crate) fn plaintext(&self) -> bool {
        matches!(self.wire, Wire::Plain)
    }

    /// Writes what the socket takes now and keeps the `WRITABLE` interest in step with what
    /// is left. An error means the connection is lost.
    pub(crate) fn flush(&mut self, registry: &Registry) -> io::Result<()> {
        self.wire.write_out(&mut self.stream, &self.wbuf, &mut self.wpos)?;
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > 1 << 20 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        // Memory a burst took is given back once the burst is over.
        shrink(&mut self.wbuf);
        shrink(&mut self.rbuf);
        let want_write = self.pending() > 0;
        if want_write != self.writable_registered {
            let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            registry.reregister(&mut self.stream, self.token, interest)?;
            self.writable_registered = want_write;
        }
        Ok(())
    }

    /// Whether the connection is done as far as output goes: closing and everything written
    /// (its owner also checks that no request is still in progress).
    pub(crate) fn finished(&self) -> bool {
        self.closing && self.pending() == 0
    }

    /// Stops watching the connection (it closes when dropped); a TLS connection is ended
    /// with close_notify as far as the socket takes it now.
    pub(crate) fn deregister(&mut self, registry: &Registry) {
        self.wire.close_notify();
        let _ = self.wire.write_out(&mut self.stream, &[], &mut 0);
        self.rbuf = Vec::new();
        self.wbuf = Vec::new();
        self.wpos = 0;
        let _ = registry.deregister(&mut self.stream);
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
