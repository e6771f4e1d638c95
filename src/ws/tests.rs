//! The transport over memory: the upgrade, lines both ways, control frames, closes.

use std::io::{Read, Write};
use std::sync::Arc;

use super::*;
use crate::sim::MemoryTransport;

const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    out.extend_from_slice(payload);
    out
}

fn transport(origins: &[&str]) -> WsTransport<MemoryTransport> {
    let config = WsConfig {
        allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
    };
    WsTransport::server(Arc::new(config), 100, MemoryTransport::default())
}

fn read_all(ws: &mut WsTransport<MemoryTransport>) -> (Vec<u8>, bool) {
    let mut text = Vec::new();
    let mut buf = [0; 256];
    loop {
        match ws.read(&mut buf) {
            Ok(0) => return (text, true),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => return (text, false),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn frames_that_arrive_with_the_request_are_read() {
    let mut ws = transport(&[]);
    let mut input = UPGRADE.to_vec();
    input.extend(masked(0x81, b"alice"));
    ws.get_mut().send(&input);
    assert_eq!(read_all(&mut ws), (b"alice\n".to_vec(), false));
    assert!(ws.wants_write(), "the 101 waits");
    ws.flush().unwrap();
    let out = ws.get_mut().take_output();
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
}

#[test]
fn writes_wait_for_the_upgrade_then_go_out_as_frames() {
    let mut ws = transport(&[]);
    let error = ws.write(b"error: server full\n").unwrap_err();
    assert!(would_block(&error));
    ws.get_mut().send(UPGRADE);
    assert_eq!(ws.write(b"error: server full\n").unwrap(), 19);
    let out = ws.get_mut().take_output();
    assert!(out.ends_with(b"\r\n\r\n\x81\x12error: server full"));
}

#[test]
fn a_ping_is_answered_and_a_binary_message_gets_a_notice() {
    let mut ws = transport(&[]);
    ws.get_mut().send(UPGRADE);
    let mut input = masked(0x89, b"p");
    input.extend(masked(0x82, b"b"));
    ws.get_mut().send(&input);
    read_all(&mut ws);
    ws.flush().unwrap();
    let out = ws.get_mut().take_output();
    assert!(
        out.ends_with(b"\x8a\x01p\x81\x14error: expected text"),
        "{out:?}"
    );
}

#[test]
fn the_clients_close_ends_the_input_and_is_answered_with_its_code() {
    let mut ws = transport(&[]);
    ws.get_mut().send(UPGRADE);
    ws.get_mut().send(&masked(0x88, &1000u16.to_be_bytes()));
    assert_eq!(read_all(&mut ws), (Vec::new(), true));
    ws.shutdown_write().unwrap();
    let out = ws.get_mut().take_output();
    assert!(out.ends_with(b"\x88\x02\x03\xe8"));
    assert!(ws.get_ref().write_shut);
    assert!(!ws.lingers());
}

#[test]
fn a_violation_closes_with_its_code_and_lingers_for_the_clients_close() {
    let mut ws = transport(&[]);
    ws.get_mut().send(UPGRADE);
    ws.get_mut().send(&[0x81, 0x01, b'x']);
    assert_eq!(read_all(&mut ws), (Vec::new(), true));
    assert_eq!(ws.write(b"dropped\n").unwrap(), 8);
    ws.shutdown_write().unwrap();
    assert!(ws.lingers());
    let out = ws.get_mut().take_output();
    assert!(out.ends_with(b"\x88\x02\x03\xea"), "1002, nothing after it");
    assert!(matches!(
        ws.take_failure(),
        Some(WsError::Violation(Violation::Unmasked))
    ));
}

#[test]
fn the_page_ends_the_input_once_answered() {
    let mut ws = transport(&[]);
    ws.get_mut().send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(read_all(&mut ws), (Vec::new(), true));
    ws.flush().unwrap();
    let out = ws.get_mut().take_output();
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(ws.take_failure().is_none());
}

#[test]
fn the_origin_is_checked() {
    let mut ws = transport(&["http://ok.example"]);
    ws.get_mut().send(UPGRADE);
    assert_eq!(read_all(&mut ws), (Vec::new(), true));
    ws.flush().unwrap();
    assert!(ws.get_mut().take_output().starts_with(b"HTTP/1.1 403 "));
    assert!(matches!(
        ws.take_failure(),
        Some(WsError::Refused(Refusal::Origin(_)))
    ));
}
