//! The first phase: connect and log in every connection, at most `--ramp` in flight at once so
//! that the server's listen backlog never overflows (an overflow costs a SYN retry, a second
//! or more, and would be measured as the server's slowness).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::Token;

use super::driver::Driver;

impl Driver {
    /// Connects and logs in all connections, or as many as can be before the deadline.
    /// Returns how long it took.
    pub fn connect_all(&mut self) -> io::Result<Duration> {
        let started = Instant::now();
        let mut next = 0;
        loop {
            while self.in_flight < self.plan.ramp && next < self.plan.conns {
                self.start_connect(next, Instant::now());
                next += 1;
            }
            if self.in_flight == 0 && next == self.plan.conns {
                break;
            }
            if Instant::now() >= self.deadline {
                log::warn!(
                    "timed out connecting: {} logged in, {} in flight, {} not started",
                    self.logged_in,
                    self.in_flight,
                    self.plan.conns - next
                );
                break;
            }
            self.turn(Some(Instant::now() + Duration::from_secs(1)), |_, _| {})?;
            self.show_progress("connecting");
        }
        Ok(started.elapsed())
    }

    fn start_connect(&mut self, index: usize, now: Instant) {
        let ((node, addr), registry) = (self.plan.node_of(index), self.poll.registry());
        let source = source_address(addr, index);
        let tls = self.plan.tls.as_ref().map(|targets| &targets[node]);
        match self.conns[index].connect(
            registry,
            Token(index),
            (addr, source),
            tls,
            self.plan.ws,
            now,
        ) {
            Ok(()) => self.in_flight += 1,
            // Counted as failed; the rest still try (the report says how many held).
            Err(e) => self.fail(index, "connect", &e),
        }
    }
}

/// How many loopback source addresses the connections to an IPv4 loopback server are spread
/// over (see `conn::open_stream`): about 1,250 connections each at 20,000.
const LOOPBACK_SOURCES: u32 = 16;

/// The source address of connection `index`: for an IPv4 loopback server, one of
/// 127.0.0.1 ..= 127.0.0.16 in turn (all of 127.0.0.0/8 is this machine); otherwise whatever
/// the system picks (IPv6 has one loopback address, and a remote server is routed).
fn source_address(server: SocketAddr, index: usize) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let host = 1 + (index as u32 % LOOPBACK_SOURCES);
            Some(IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(127, 0, 0, 0)) + host,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_loopback_connections_take_turns_over_sources() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let sources: Vec<_> = (0..17)
            .map(|i| source_address(server, i).unwrap())
            .collect();
        assert_eq!(sources[0], IpAddr::from([127, 0, 0, 1]));
        assert_eq!(sources[15], IpAddr::from([127, 0, 0, 16]));
        assert_eq!(sources[16], sources[0]);
        assert_eq!(source_address("[::1]:8080".parse().unwrap(), 3), None);
        assert_eq!(source_address("10.1.2.3:8080".parse().unwrap(), 3), None);
    }
}
