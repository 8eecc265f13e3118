//! [`Acceptor`]: a listener served by one thread per connection, whose connections can all be
//! closed and joined at shutdown. The client ports (native KV, RESP) run on it.

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// A running listener.
#[derive(Debug)]
pub struct Acceptor {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Open connections by number, to close them at shutdown.
    conns: Arc<Mutex<BTreeMap<u64, TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Accepts on `listener` and runs `serve` on a thread of its own for each connection;
    /// the connection is closed when `serve` returns.
    pub fn start<F>(name: &str, listener: TcpListener, serve: F) -> io::Result<Acceptor>
    where
        F: Fn(&TcpStream) + Send + Sync + 'static,
    {
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<BTreeMap<u64, TcpStream>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, c, serve) = (stop.clone(), conns.clone(), Arc::new(serve));
        let conn_name = format!("{name}-conn");
        let thread = thread::Builder::new().name(name.to_string()).spawn(move || {
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
                let (mine, serve) = (c.clone(), serve.clone());
                let spawned = thread::Builder::new().name(conn_name.clone()).spawn(move || {
                    serve(&stream);
                    let _ = stream.shutdown(Shutdown::Both);
                    mine.lock().expect("conns").remove(&conn);
                });
                match spawned {
                    Ok(h) => handlers.push(h),
                    Err(_) => {
                        c.lock().expect("conns").remove(&conn);
                    }
                }
                handlers.retain(|h| !h.is_finished());
            }
            for h in handlers {
                let _ = h.join();
            }
        })?;
        Ok(Acceptor { local, stop, conns, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, closes every connection and joins the threads.
    pub fn shutdown(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = TcpStream::connect(self.local); // wake the accept call
        for c in self.conns.lock().expect("conns").values() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
