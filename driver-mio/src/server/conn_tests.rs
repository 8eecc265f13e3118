//! [`Conn::fill`] over a real loopback connection and a real `Poll`: where a short read ends
//! the reading (the socket is empty, a later byte raises a new edge) and where it must not
//! (a FIN queued behind the data).

use std::io::Write;
use std::net::{Shutdown, TcpStream as StdStream};
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Poll};

use super::*;

/// A connection accepted and registered with `poll`, and the client's end of it.
fn pair(poll: &Poll) -> (Conn, StdStream) {
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("accept: {e}"),
        }
    };
    (Conn::register(stream, Token(7), poll.registry(), Wire::Plain, None).unwrap(), client)
}

/// Waits for the connection's next readiness event and notes it; panics after 10 s.
fn next_event(poll: &mut Poll, events: &mut Events, conn: &mut Conn) {
    poll.poll(events, Some(Duration::from_secs(10))).unwrap();
    let event = events.iter().find(|e| e.token() == Token(7)).expect("no readiness event within 10 s");
    conn.saw(event);
}

#[test]
fn a_short_read_ends_the_fill_and_later_bytes_raise_a_new_edge() {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let (mut conn, mut client) = pair(&poll);
    client.write_all(b"first").unwrap();
    next_event(&mut poll, &mut events, &mut conn);
    assert_eq!(conn.fill(), ReadState::Drained);
    assert_eq!(conn.rbuf, b"first");
    // The read that would have found the socket empty was skipped: bytes sent now must be
    // reported by a new event, or a reader trusting short reads would stall.
    client.write_all(b", second").unwrap();
    next_event(&mut poll, &mut events, &mut conn);
    assert_eq!(conn.fill(), ReadState::Drained);
    assert_eq!(conn.rbuf, b"first, second");
}

#[test]
fn a_fin_behind_the_data_in_the_same_event_is_read() {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let (mut conn, mut client) = pair(&poll);
    client.write_all(b"last words").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // Both are queued before the first event is taken (loopback delivers within the send):
    // one edge covers them, and no later one will come for the FIN.
    std::thread::sleep(Duration::from_millis(50));
    next_event(&mut poll, &mut events, &mut conn);
    assert_eq!(conn.fill(), ReadState::Closed, "the end of stream behind a short read was missed");
    assert_eq!(conn.rbuf, b"last words");
}

#[test]
fn before_any_event_reads_go_on_until_the_socket_would_block() {
    let poll = Poll::new().unwrap();
    let (mut conn, mut client) = pair(&poll);
    client.write_all(b"came with the connection").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // An accepted connection is read once before its first event (see `Clients::accept`).
    assert_eq!(conn.fill(), ReadState::Closed);
    assert_eq!(conn.rbuf, b"came with the connection");
}
