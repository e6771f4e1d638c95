//! Accepting: taking connections from the listeners until they would block, admitting each
//! to the core with a token of the share, and pausing accepts when descriptors, memory or
//! tokens run out.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};

use super::Server;
use crate::io_errors::{interrupted, would_block};
use crate::net::connection::Connection;
use crate::net::layout::Source;

/// How long accepting pauses after the process or system ran out of file descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Server {
    pub(super) fn accept_all(&mut self, registry: &Registry, now: Instant) {
        for index in 0..self.listeners.len() {
            while let Some(socket) = &self.listeners[index].socket {
                if self.accept_paused_until.is_some() {
                    return;
                }
                match socket.accept() {
                    Ok((stream, addr)) => {
                        if std::mem::take(&mut self.accept_starved) {
                            info!("accepting again");
                        }
                        self.admit(registry, index, stream, addr, now);
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                    Err(e) if out_of_resources(&e) => {
                        if !std::mem::replace(&mut self.accept_starved, true) {
                            warn!(
                                "accept failed ({e}): pausing accepts, retrying every {ACCEPT_BACKOFF:?}"
                            );
                        }
                        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                        self.counters.accept_pauses += 1;
                        return;
                    }
                    Err(e) => {
                        warn!("accept failed: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn admit(
        &mut self,
        registry: &Registry,
        listener: usize,
        mut stream: TcpStream,
        addr: SocketAddr,
        now: Instant,
    ) {
        let key = self.chat.vacant_key();
        let Some(token) = self.layout.token(Source::Connection(key)) else {
            // Cannot happen while `max_conns` is below the share; the connection is refused,
            // and accepting pauses so that the rest wait in the backlog.
            warn!("token share full: refusing a connection from {addr}, pausing accepts");
            let _ = io::Write::write(&mut stream, b"error: server full\n");
            self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
            self.counters.accept_pauses += 1;
            return;
        };
        // Messages are batched in user space: one vectored write per connection per turn.
        let _ = stream.set_nodelay(true);
        let mut connection = match self.listeners[listener].stream(stream) {
            Ok(stream) => Connection::new(stream),
            Err(e) => {
                warn!("cannot start a session for {addr}: {e}");
                return;
            }
        };
        if let Err(e) = registry.register(connection.socket(), token, Interest::READABLE) {
            warn!("cannot register a connection from {addr}: {e}");
            return;
        }
        debug!("#{key} connected from {addr}");
        // Its first read, or its TLS handshake's first step, waits for the readable event that
        // the registration above yields if bytes are already there.
        let accepted = self.chat.accept_registered(connection, now);
        debug_assert_eq!(accepted, key);
    }
}

/// Accept errors that mean "no descriptors or memory now": back off instead of spinning.
fn out_of_resources(error: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = error.raw_os_error() else {
        return false;
    };
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| errno.raw_os_error() == code)
}
