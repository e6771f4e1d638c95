//! The metrics endpoint on the server's loop: its listener and a fixed number of HTTP
//! connections, each one request and one response (`src/metrics/http.rs`), bounded in size and
//! time. It never counts against `max_conns`, and a flood of connections costs the chat at most
//! a bounded number of accepts per turn. When every slot is taken, a newcomer takes the slot of
//! the connection that has waited longest without a complete request, so that stalled
//! connections cannot keep a scraper out.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use slab::Slab;

use super::layout::{Layout, METRICS_CONNECTIONS, Source};
use crate::io_errors::{interrupted, would_block};
use crate::metrics::http::{Request, RequestReader, respond};
use crate::metrics::{ProcessFigures, render};
use crate::stats::Stats;

/// How long one exchange may take from accept to close: a slow (or silent) client is cut off.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// Connections accepted per turn at most; the rest wait for the next turn.
const ACCEPTS_PER_TURN: usize = 64;

/// Bytes read from one exchange per event at most (a client that keeps sending after its
/// request is only read until its deadline).
const READ_BUDGET: usize = 64 * 1024;

/// An HTTP connection's stage.
#[derive(Debug)]
enum Stage {
    /// Reading the request head.
    Reading(RequestReader),
    /// Writing the response, `written` bytes of it so far.
    Writing { response: Vec<u8>, written: usize },
    /// Response written and write side shut: reading and dropping until the client closes
    /// (closing with unread input would reset the connection, which can destroy the response).
    Draining,
}

#[derive(Debug)]
struct Exchange {
    stream: TcpStream,
    stage: Stage,
    /// When it was accepted, plus [`EXCHANGE_DEADLINE`]: the earliest deadline is the
    /// connection that has waited longest.
    deadline: Instant,
    /// The accepting call that took it (`MetricsEndpoint::round` then).
    round: u64,
}

/// How a newcomer finds room when every slot is taken.
enum Room {
    /// By closing this slot's connection.
    Evict(usize),
    /// Not before the next turn: it waits in the backlog.
    NextTurn,
    /// Not at all: every slot is writing a response; the newcomer is closed.
    None,
}

/// What happened to an exchange after some IO.
enum Next {
    Continue,
    Close,
}

/// The endpoint: `None` listener once the server shut down.
#[derive(Debug)]
pub(super) struct MetricsEndpoint {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    exchanges: Slab<Exchange>,
    /// The last accept stopped at [`ACCEPTS_PER_TURN`], not at `WouldBlock`.
    accept_pending: bool,
    /// Requests answered.
    pub(super) requests: u64,
    /// Connections closed to make room for a newcomer.
    pub(super) evicted: u64,
    /// Counts the calls that accept: a connection is never evicted by the call that took it.
    round: u64,
}

impl MetricsEndpoint {
    /// Requests answered, and connections evicted.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.requests, self.evicted)
    }

    pub(super) fn new(listener: TcpListener) -> io::Result<Self> {
        Ok(MetricsEndpoint {
            addr: listener.local_addr()?,
            listener: Some(listener),
            exchanges: Slab::with_capacity(METRICS_CONNECTIONS),
            accept_pending: false,
            requests: 0,
            evicted: 0,
            round: 0,
        })
    }

    pub(super) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn register(&mut self, registry: &Registry, layout: &Layout) -> io::Result<()> {
        let token = layout
            .token(Source::MetricsListener)
            .expect("the layout holds the metrics listener");
        if let Some(listener) = &mut self.listener {
            registry.register(listener, token, Interest::READABLE)?;
        }
        Ok(())
    }

    /// The listener is readable: accepts, and reads the requests that came with the
    /// connections (`stats` answers them).
    pub(super) fn on_listener(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        now: Instant,
        stats: &Stats,
    ) {
        self.accept(registry, layout, now, stats);
    }

    /// An event of exchange `slot`.
    pub(super) fn on_connection(&mut self, registry: &Registry, slot: usize, stats: &Stats) {
        let Some(exchange) = self.exchanges.get_mut(slot) else {
            return;
        };
        if let Next::Close = exchange.advance(stats, &mut self.requests) {
            self.close(registry, slot);
        }
    }

    /// The turn's end: accepts left over, and exchanges past their deadline.
    pub(super) fn end_turn(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        now: Instant,
        stats: &Stats,
    ) {
        if self.accept_pending {
            self.accept(registry, layout, now, stats);
        }
        let late: Vec<usize> = self
            .exchanges
            .iter()
            .filter(|(_, exchange)| exchange.deadline <= now)
            .map(|(slot, _)| slot)
            .collect();
        for slot in late {
            debug!("metrics connection {slot}: deadline passed, closing");
            self.close(registry, slot);
        }
    }

    /// When the endpoint next needs a turn: now if accepts are pending, else the earliest
    /// exchange deadline.
    pub(super) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.accept_pending {
            return Some(now);
        }
        self.exchanges.iter().map(|(_, e)| e.deadline).min()
    }

    /// Closes the listener and every exchange (the server is shutting down).
    pub(super) fn close_all(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
        }
        self.accept_pending = false;
        let slots: Vec<usize> = self.exchanges.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.close(registry, slot);
        }
    }

    fn accept(&mut self, registry: &Registry, layout: &Layout, now: Instant, stats: &Stats) {
        self.accept_pending = false;
        self.round += 1;
        let mut caught_up = false;
        for _ in 0..ACCEPTS_PER_TURN {
            let mut refuse = false;
            if self.exchanges.len() >= METRICS_CONNECTIONS
                && !std::mem::replace(&mut caught_up, true)
            {
                // Requests that arrived since they were accepted are read first, so that no
                // connection with a complete request is taken for a stalled one.
                self.read_all_waiting(registry, stats);
            }
            if self.exchanges.len() >= METRICS_CONNECTIONS {
                match self.longest_waiting() {
                    Room::Evict(victim) => {
                        debug!("metrics: every slot taken, closing connection {victim}");
                        self.evicted += 1;
                        self.close(registry, victim);
                    }
                    Room::NextTurn => {
                        // Every slot that could go was filled by this very call: the rest wait
                        // in the backlog until the next turn.
                        self.accept_pending = true;
                        return;
                    }
                    Room::None => refuse = true,
                }
            }
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut stream, addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of descriptors, most likely: the chat's back-off covers the process;
                    // here the rest waits for the next turn.
                    warn!("metrics: accept failed: {e}");
                    return;
                }
            };
            if refuse {
                debug!(
                    "metrics: {METRICS_CONNECTIONS} responses being written, closing a \
                     connection from {addr}"
                );
                continue;
            }
            let slot = self.exchanges.vacant_key();
            let token = layout
                .token(Source::MetricsConnection(slot))
                .expect("the layout holds every metrics slot");
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = registry.register(&mut stream, token, interest) {
                warn!("metrics: cannot register a connection from {addr}: {e}");
                continue;
            }
            self.exchanges.insert(Exchange {
                stream,
                stage: Stage::Reading(RequestReader::default()),
                deadline: now + EXCHANGE_DEADLINE,
                round: self.round,
            });
            // The request often comes with the connection: read now.
            self.on_connection(registry, slot, stats);
        }
        self.accept_pending = true;
    }

    /// Reads what arrived on every connection still waiting for its request.
    fn read_all_waiting(&mut self, registry: &Registry, stats: &Stats) {
        let waiting: Vec<usize> = self
            .exchanges
            .iter()
            .filter(|(_, e)| matches!(e.stage, Stage::Reading(_)))
            .map(|(slot, _)| slot)
            .collect();
        for slot in waiting {
            self.on_connection(registry, slot, stats);
        }
    }

    /// How to make room for a newcomer when all slots are taken: close the connection that has
    /// waited longest without a complete request, or else the one that has waited longest for
    /// its client to close after its response; never one accepted by this same call (a
    /// newcomer whose request is on its way would be taken for a stalled one).
    fn longest_waiting(&self) -> Room {
        let oldest = |reading: bool| {
            self.exchanges
                .iter()
                .filter(|(_, e)| match e.stage {
                    Stage::Reading(_) => reading,
                    Stage::Draining => !reading,
                    Stage::Writing { .. } => false,
                })
                .min_by_key(|(_, e)| e.deadline)
                .map(|(slot, e)| (slot, e.round))
        };
        match oldest(true).or_else(|| oldest(false)) {
            Some((slot, round)) if round < self.round => Room::Evict(slot),
            Some(_) => Room::NextTurn,
            None => Room::None,
        }
    }

    fn close(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut exchange) = self.exchanges.try_remove(slot) {
            let _ = registry.deregister(&mut exchange.stream);
        }
    }
}

impl Exchange {
    /// Does all the IO the socket allows now, moving through the stages.
    fn advance(&mut self, stats: &Stats, requests: &mut u64) -> Next {
        let mut buf = [0; 1024];
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                return Next::Continue;
            }
            match &mut self.stage {
                Stage::Reading(reader) => match self.stream.read(&mut buf) {
                    Ok(0) => return Next::Close,
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        if let Some(request) = reader.feed(&buf[..n]) {
                            *requests += 1;
                            // This request counts in its own answer.
                            let stats = Stats {
                                metrics_requests: *requests,
                                ..*stats
                            };
                            let response =
                                respond(request, || render(&stats, ProcessFigures::now()));
                            if request != Request::Metrics {
                                debug!("metrics: answered {request:?}");
                            }
                            self.stage = Stage::Writing {
                                response,
                                written: 0,
                            };
                        }
                    }
                    Err(e) if would_block(&e) => return Next::Continue,
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return Next::Close,
                },
                Stage::Writing { response, written } => {
                    if *written == response.len() {
                        if self.stream.shutdown(std::net::Shutdown::Write).is_err() {
                            return Next::Close;
                        }
                        self.stage = Stage::Draining;
                        continue;
                    }
                    match self.stream.write(&response[*written..]) {
                        Ok(0) => return Next::Close,
                        Ok(n) => *written += n,
                        Err(e) if would_block(&e) => return Next::Continue,
                        Err(e) if interrupted(&e) => {}
                        Err(_) => return Next::Close,
                    }
                }
                Stage::Draining => match self.stream.read(&mut buf) {
                    Ok(0) => return Next::Close,
                    Ok(n) => budget = budget.saturating_sub(n),
                    Err(e) if would_block(&e) => return Next::Continue,
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return Next::Close,
                },
            }
        }
    }
}
