//! A server and a client session driven against each other in memory: handshakes, records,
//! closes and failures, without sockets.

use super::*;
use crate::sim::MemoryTransport;
use rustls::pki_types::PrivateKeyDer;

/// A server configuration with a certificate for `localhost`, and a client configuration
/// that trusts it.
fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let server = server_config(
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    (server, client_config(roots).unwrap())
}

type End = TlsTransport<MemoryTransport>;

fn pair() -> (End, End) {
    let (server, client) = configs();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    (
        TlsTransport::server(server, MemoryTransport::default()).unwrap(),
        TlsTransport::client(client, name, MemoryTransport::default()).unwrap(),
    )
}

/// Moves what each side wrote to the other, and has each read, a few times over (the
/// handshake's flights); returns what each side read.
fn shuttle(a: &mut End, b: &mut End) -> (Vec<u8>, Vec<u8>) {
    let (mut read_by_a, mut read_by_b) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let _ = a.flush();
        let _ = b.flush();
        let to_b = a.get_mut().take_output();
        let to_a = b.get_mut().take_output();
        b.get_mut().send(&to_b);
        a.get_mut().send(&to_a);
        read_by_a.extend(read_all(a));
        read_by_b.extend(read_all(b));
    }
    (read_by_a, read_by_b)
}

/// Moves what `from` wrote to `to`, without flushing either.
fn deliver(from: &mut End, to: &mut End) {
    let bytes = from.get_mut().take_output();
    to.get_mut().send(&bytes);
}

fn read_all(end: &mut End) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 100];
    loop {
        match end.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_session_carries_bytes_both_ways_and_closes_with_close_notify() {
    let (mut server, mut client) = pair();
    shuttle(&mut server, &mut client);
    assert!(!server.is_handshaking() && !client.is_handshaking());
    assert_eq!(client.write(b"alice\nalice: hi\n").unwrap(), 16);
    // The reader's buffer is small (100 bytes): it reads on, record by record.
    let (read, _) = shuttle(&mut server, &mut client);
    assert_eq!(read, b"alice\nalice: hi\n");
    let written = server
        .write_vectored(&[IoSlice::new(b"from alice: "), IoSlice::new(b"hi\n")])
        .unwrap();
    assert_eq!(written, 15);
    Transport::shutdown_write(&mut server).unwrap();
    assert!(
        server.get_ref().write_shut,
        "close_notify, then the stream's FIN"
    );
    deliver(&mut server, &mut client);
    client.get_mut().input_closed = true;
    assert_eq!(read_all(&mut client), b"from alice: hi\n");
    assert!(client.peer_closed);
}

#[test]
fn an_idle_session_holds_no_buffers() {
    let (mut server, mut client) = pair();
    shuttle(&mut server, &mut client);
    client.write_all(&[b'x'; 40_000]).unwrap();
    let (read, _) = shuttle(&mut server, &mut client);
    assert_eq!(read.len(), 40_000);
    for end in [&server, &client] {
        assert_eq!(end.incoming.capacity(), 0);
        assert_eq!(end.outgoing.capacity(), 0);
        assert_eq!(end.stash.capacity(), 0);
    }
}

#[test]
fn writes_during_the_handshake_wait_for_it() {
    let (mut server, mut client) = pair();
    let err = server.write(b"error: server full\n").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(!server.wants_write());
    // ClientHello; the server's flight; the client's Finished.
    client.flush().unwrap();
    deliver(&mut client, &mut server);
    assert!(read_all(&mut server).is_empty());
    deliver(&mut server, &mut client);
    assert!(read_all(&mut client).is_empty());
    deliver(&mut client, &mut server);
    assert!(read_all(&mut server).is_empty());
    // The handshake is over: the transport asks for the write again.
    assert!(!server.is_handshaking());
    assert!(server.wants_write());
    assert_eq!(server.write(b"error: server full\n").unwrap(), 19);
    server.flush().unwrap();
    assert!(!server.wants_write());
    deliver(&mut server, &mut client);
    assert_eq!(read_all(&mut client), b"error: server full\n");
}

#[test]
fn garbage_instead_of_a_client_hello_is_an_invalid_data_error() {
    let (mut server, _) = pair();
    server.get_mut().send(b"GET / HTTP/1.1\r\n\r\n");
    let err = server.read(&mut [0; 64]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_stream_that_ends_mid_handshake_reads_as_end_of_stream() {
    let (mut server, mut client) = pair();
    client.flush().unwrap();
    let hello = client.get_mut().take_output();
    server.get_mut().send(&hello[..hello.len() / 2]);
    server.get_mut().input_closed = true;
    assert_eq!(server.read(&mut [0; 64]).unwrap(), 0);
}
