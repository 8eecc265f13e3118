//! A TCP relay in front of one node's peer port, which a test can make black-hole traffic:
//! while cut, whatever arrives is read and thrown away (the connections stay up, the node
//! hears nothing, as behind a broken switch). Healing closes the connections that lost data
//! (their byte streams are no longer whole), so the senders dial again.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    /// Bumped at every heal: connections older than it are closed.
    generation: AtomicU64,
    stop: AtomicBool,
}

/// Listens on `port` and forwards every connection to `target` (both on loopback).
pub struct Relay {
    pub port: u16,
    state: Arc<State>,
}

impl Relay {
    /// A relay on `listener` (bound by the caller, so its port is known and kept) to `target`.
    pub fn start(listener: TcpListener, target: u16) -> Relay {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let s = state.clone();
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                        inbound.set_nonblocking(false).unwrap();
                        let generation = s.generation.load(Ordering::Relaxed);
                        pump(inbound.try_clone().unwrap(), outbound.try_clone().unwrap(), s.clone(), generation);
                        pump(outbound, inbound, s.clone(), generation);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Relay { port, state }
    }

    /// From now on, traffic through the relay (both ways) is read and dropped.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Relaxed);
    }

    /// Traffic flows again, over new connections.
    pub fn heal(&self) {
        self.state.generation.fetch_add(1, Ordering::Relaxed);
        self.state.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes, the relay stops,
/// or a heal makes this connection stale; drops what it reads while the relay is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, state: Arc<State>, generation: u64) {
    from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut lost = false;
        loop {
            if state.stop.load(Ordering::Relaxed) || (lost && state.generation.load(Ordering::Relaxed) != generation) {
                break;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if state.cut.load(Ordering::Relaxed) {
                        lost = true;
                    } else if lost || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
