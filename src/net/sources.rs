//! The optional sources under one name each, whatever the features: the real one when its
//! feature is on, a stand-in with the same methods when it is off, so that `server.rs` reads as
//! the same loop in every build. The stand-in metrics endpoint and Redis socket are
//! uninhabited (the server's `Option` of one is always `None`); the stand-in handshake queue is
//! empty and hands every read straight to the core.

#[cfg(not(feature = "tls"))]
use std::time::Instant;

#[cfg(not(feature = "tls"))]
use super::connection::Connection;
#[cfg(not(feature = "tls"))]
use crate::chat::Chat;

#[cfg(feature = "tls")]
pub(super) use super::handshakes::Handshakes;
#[cfg(feature = "metrics")]
pub(super) use super::metrics::MetricsEndpoint;
#[cfg(feature = "cluster")]
pub(super) use super::redis::RedisSocket;
#[cfg(not(feature = "metrics"))]
pub(super) use no_metrics::MetricsEndpoint;
#[cfg(not(feature = "cluster"))]
pub(super) use no_redis::RedisSocket;

/// Without TLS no connection has a handshake: nothing is queued or deferred.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Default)]
pub(super) struct Handshakes {}

#[cfg(not(feature = "tls"))]
impl Handshakes {
    pub(super) fn begin_turn(&mut self, _: &mut Chat<Connection>, _: Instant) {}

    pub(super) fn is_pending(&self) -> bool {
        false
    }

    pub(super) fn on_readable(&mut self, chat: &mut Chat<Connection>, key: usize, now: Instant) {
        chat.on_readable(key, now);
    }
}

#[cfg(not(feature = "metrics"))]
mod no_metrics {
    use std::io;
    use std::net::SocketAddr;
    use std::time::Instant;

    use mio::Registry;

    use crate::net::layout::Layout;
    use crate::stats::Stats;

    /// No metrics endpoint can exist.
    #[derive(Debug)]
    pub(in crate::net) enum MetricsEndpoint {}

    impl MetricsEndpoint {
        pub(in crate::net) fn local_addr(&self) -> SocketAddr {
            match *self {}
        }
        pub(in crate::net) fn counts(&self) -> (u64, u64) {
            match *self {}
        }
        pub(in crate::net) fn register(&mut self, _: &Registry, _: &Layout) -> io::Result<()> {
            match *self {}
        }
        pub(in crate::net) fn on_listener(
            &mut self,
            _: &Registry,
            _: &Layout,
            _: Instant,
            _: &Stats,
        ) {
            match *self {}
        }
        pub(in crate::net) fn on_connection(&mut self, _: &Registry, _: usize, _: &Stats) {
            match *self {}
        }
        pub(in crate::net) fn end_turn(&mut self, _: &Registry, _: &Layout, _: Instant, _: &Stats) {
            match *self {}
        }
        pub(in crate::net) fn next_deadline(&self, _: Instant) -> Option<Instant> {
            match *self {}
        }
        pub(in crate::net) fn close_all(&mut self, _: &Registry) {
            match *self {}
        }
    }
}

#[cfg(not(feature = "cluster"))]
mod no_redis {
    use std::time::Instant;

    use mio::Registry;
    use mio::event::Event;

    use crate::chat::Chat;
    use crate::net::connection::Connection;
    use crate::net::layout::Layout;

    /// No Redis socket can exist.
    #[derive(Debug)]
    pub(in crate::net) enum RedisSocket {}

    impl RedisSocket {
        pub(in crate::net) fn has_unread_input(&self) -> bool {
            match *self {}
        }
        pub(in crate::net) fn on_event(
            &mut self,
            _: &Registry,
            _: &Event,
            _: &mut Chat<Connection>,
            _: Instant,
        ) {
            match *self {}
        }
        pub(in crate::net) fn before_turn_end(
            &mut self,
            _: &Registry,
            _: &Layout,
            _: &mut Chat<Connection>,
            _: Instant,
        ) {
            match *self {}
        }
        pub(in crate::net) fn after_turn_end(
            &mut self,
            _: &Registry,
            _: &Layout,
            _: &mut Chat<Connection>,
            _: Instant,
        ) {
            match *self {}
        }
        pub(in crate::net) fn close(&mut self, _: &Registry) {
            match *self {}
        }
        pub(in crate::net) fn next_deadline(&self) -> Option<Instant> {
            match *self {}
        }
        pub(in crate::net) fn on_sentinel_event(
            &mut self,
            _: &Registry,
            _: &Layout,
            _: &Event,
            _: &mut Chat<Connection>,
            _: Instant,
        ) {
            match *self {}
        }
    }
}
