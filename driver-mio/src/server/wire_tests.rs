//! [`Wire`] driven by hand: a rustls client on one side, the loop's wire on the other, bytes
//! carried in memory.

use std::io::{Read, Write};

use super::*;
use crate::certs::{local_hosts, CertDir, Validity};

fn port(mode: TlsMode) -> (PortTls, tempfile::TempDir, CertDir) {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertDir(dir.path().join("c"));
    certs.ensure_ca().unwrap();
    certs.issue(1, 1, &local_hosts(), Validity::days(1)).unwrap();
    let id = skiff_std::tls::Identity::load(&certs.files(1)).unwrap();
    let counted = Counted { port: "resp", metrics: Metrics::new() };
    (PortTls { mode, config: id.server_config(false).unwrap(), counted }, dir, certs)
}

/// Carries what `from` has to send into `to` (the wire's `take_in`), returning its answer.
fn client_to_wire(client: &mut rustls::ClientConnection, wire: &mut Wire, rbuf: &mut Vec<u8>) -> bool {
    let mut bytes = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut bytes).unwrap();
    }
    wire.take_in(&bytes, rbuf).unwrap()
}

/// Carries what the wire writes to the client; returns the plaintext the client got.
fn wire_to_client(wire: &mut Wire, out: &[u8], pos: &mut usize, client: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire.write_out(&mut bytes, out, pos).unwrap();
    let (mut rest, mut got) = (&bytes[..], Vec::new());
    while !rest.is_empty() {
        client.read_tls(&mut rest).unwrap();
        let n = client.process_new_packets().unwrap().plaintext_bytes_to_read();
        let start = got.len();
        got.resize(start + n, 0);
        client.reader().read_exact(&mut got[start..]).unwrap();
    }
    got
}

#[test]
fn the_first_byte_decides_and_plaintext_is_refused_where_tls_is_required() {
    let (required, _d, _c) = port(TlsMode::Required);
    let mut w = Wire::Undecided(required);
    let mut rbuf = Vec::new();
    assert!(matches!(w.take_in(b"*1\r\n$4\r\nPING\r\n", &mut rbuf), Err(TlsFailure::Plaintext)));
    assert!(rbuf.is_empty(), "nothing of it reaches a parser");
    let (optional, _d, _c) = port(TlsMode::Optional);
    let mut w = Wire::Undecided(optional);
    assert!(!w.take_in(b"*1\r\n", &mut rbuf).unwrap());
    assert!(matches!(w, Wire::Plain) && rbuf == b"*1\r\n");
}

#[test]
fn plaintext_waits_for_the_handshake_then_flows_both_ways_until_close_notify() {
    let (p, _d, certs) = port(TlsMode::Required);
    let config = skiff_std::tls::client_config(&certs.ca_cert()).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(config, name).unwrap();
    let mut w = Wire::Undecided(p);
    let (mut rbuf, mut pos) = (Vec::new(), 0);
    let answer = vec![7u8; 200_000];
    assert!(!client_to_wire(&mut client, &mut w, &mut rbuf)); // ClientHello
    assert!(w.handshaking());
    assert!(wire_to_client(&mut w, &answer, &mut pos, &mut client).is_empty());
    assert_eq!(pos, 0, "no plaintext is handed to rustls before the handshake is done");
    client.writer().write_all(b"GET k").unwrap();
    assert!(!client_to_wire(&mut client, &mut w, &mut rbuf)); // Finished, then data
    assert!(!w.handshaking());
    assert_eq!(rbuf, b"GET k");
    // Larger than a record and than a chunk: it goes out over several rounds.
    let mut got = Vec::new();
    let mut rounds = 0;
    while got.len() < answer.len() {
        got.extend(wire_to_client(&mut w, &answer, &mut pos, &mut client));
        rounds += 1;
        assert!(rounds < 100, "the answer stalls at {} of {} bytes", got.len(), answer.len());
    }
    assert_eq!(got, answer);
    assert!(!w.wants_write());
    client.send_close_notify();
    assert!(client_to_wire(&mut client, &mut w, &mut rbuf), "close_notify ends the stream");
}
