//! Closing: one connection's orderly close (notice, flush, write side shut, input drained until
//! the peer closes), and the graceful shutdown of every connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::peer::{CloseReason, Phase, ReadMode};
use super::{Chat, Transport};

/// Bytes read from one connection once the shutdown began ("what has already arrived"): the
/// kernel's receive buffer holds less, so this only stops a peer that sends faster than we read.
const SHUTDOWN_READ_CAP: usize = 16 << 20;

/// A graceful shutdown under way.
///
/// It has two stages. While `draining` is not empty, the connections in it are read, within
/// the read budget of each turn, until `WouldBlock` (or [`SHUTDOWN_READ_CAP`]), and their lines
/// are routed to everyone still there; the others read no more. Once it is empty, every
/// connection logging in or logged in is closed, and queues are flushed as usual.
#[derive(Debug)]
pub(super) struct Shutdown {
    /// Connections still to be read to `WouldBlock`, with the bytes read from each so far.
    draining: HashMap<usize, usize>,
    /// The reading stage is over and the connections were closed.
    drained: bool,
}

impl<T: Transport> Chat<T> {
    /// Starts a graceful shutdown: reads what already arrived on every connection and routes
    /// its complete lines, then stops reading; queues are flushed as usual, each connection's
    /// write side is shut once its queue is empty, and it is closed when the peer closes. A
    /// connection whose input outlasts one read budget is read on at the following turns
    /// ([`Chat::has_unread_input`]) before the others are closed. Calling it again does nothing.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        // Cluster mode: the peers leave the cluster at once; messages from other nodes find
        // their names free.
        let keys: Vec<usize> = self.directory.keys().collect();
        for key in keys {
            let peer = &self.peers[key];
            if let Some(name) = peer.name {
                self.release_name(key, peer.generation, &name);
            }
        }
        let reading: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.phase.read_mode() == ReadMode::Process)
            .map(|(key, _)| key)
            .collect();
        self.shutdown = Some(Shutdown {
            draining: reading.iter().map(|&key| (key, 0)).collect(),
            drained: false,
        });
        // A login waiting for a contended name is not logged in yet: it goes without a word.
        let waiting: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, peer)| matches!(peer.phase, Phase::Contending(_) | Phase::Claiming(_)))
            .map(|(key, _)| key)
            .collect();
        for key in waiting {
            self.begin_close(key, CloseReason::Shutdown, now);
        }
        for key in reading {
            self.read(key, now);
        }
        self.finish_draining(now);
    }

    /// Closes every connection at once, dropping what is still queued (counted in
    /// [`crate::Stats::bytes_unsent_at_shutdown`] during a shutdown). Their transports are
    /// handed back at the next [`Chat::end_turn`].
    pub fn force_close_all(&mut self) {
        let keys: Vec<usize> = self.peers.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_now(key, CloseReason::Forced);
        }
    }

    /// Whether a shutdown was begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// How `key`'s input is treated now: as its phase says, except that during a shutdown only
    /// the connections still being drained are read.
    pub(super) fn read_mode(&self, key: usize) -> ReadMode {
        let Some(peer) = self.peers.get(key) else {
            return ReadMode::Stop;
        };
        let mode = peer.phase.read_mode();
        match &self.shutdown {
            Some(shutdown)
                if mode == ReadMode::Process && !shutdown.draining.contains_key(&key) =>
            {
                ReadMode::Stop
            }
            _ => mode,
        }
    }

    /// After a read of `key` during a shutdown: it is drained once a read ends at `WouldBlock`
    /// or a drained short read (not at the budget), or once it has sent [`SHUTDOWN_READ_CAP`] bytes.
    pub(super) fn note_shutdown_read(&mut self, key: usize, bytes: usize, budget_spent: bool) {
        let Some(shutdown) = &mut self.shutdown else {
            return;
        };
        if let Some(read) = shutdown.draining.get_mut(&key) {
            *read += bytes;
            if !budget_spent || *read >= SHUTDOWN_READ_CAP {
                shutdown.draining.remove(&key);
            }
        }
    }

    /// Ends the shutdown's reading stage once every connection is drained: every connection
    /// logging in or logged in is closed.
    pub(super) fn finish_draining(&mut self, now: Instant) {
        let Some(shutdown) = &mut self.shutdown else {
            return;
        };
        if shutdown.drained || !shutdown.draining.is_empty() {
            return;
        }
        shutdown.drained = true;
        for key in self.active_keys() {
            self.begin_close(key, CloseReason::Shutdown, now);
        }
    }

    /// Stops processing `key`'s input; its queue is flushed, then its write side shut.
    pub(super) fn begin_close(&mut self, key: usize, reason: CloseReason, now: Instant) {
        self.retire(key);
        let deadline = self.close_deadline(now, self.config.linger);
        self.set_deadline_phase(
            key,
            Phase::Closing {
                reason,
                deadline,
                input_ended: false,
            },
        );
        self.mark_dirty(key);
    }

    /// The peer closed its side: it is logged out, and what is queued for it still goes out.
    pub(super) fn on_end_of_input(&mut self, key: usize, now: Instant) {
        match &self.peers[key].phase {
            Phase::AwaitingName { .. }
            | Phase::Contending(_)
            | Phase::Claiming(_)
            | Phase::Chatting => {
                self.retire(key);
                let deadline = self.close_deadline(now, self.config.shutdown_timeout);
                self.set_deadline_phase(
                    key,
                    Phase::Closing {
                        reason: CloseReason::PeerClosed,
                        deadline,
                        input_ended: true,
                    },
                );
                self.mark_dirty(key);
            }
            Phase::Lingering { reason, .. } => {
                let reason = reason.clone();
                self.close_now(key, reason);
            }
            Phase::Closing { .. } | Phase::Closed { .. } => {}
        }
    }

    /// `key`'s queue is empty: a closing connection has its write side shut, then lingers,
    /// reading and dropping its input until the peer closes (or is closed at once if the peer
    /// already has, unless the transport [`Transport::lingers`]). In cluster mode, not before its lookups in flight are answered.
    pub(super) fn on_flushed(&mut self, key: usize, now: Instant) {
        let peer = &mut self.peers[key];
        let Phase::Closing {
            reason,
            input_ended,
            ..
        } = &peer.phase
        else {
            return;
        };
        let (reason, input_ended) = (reason.clone(), *input_ended);
        if self.lookups.count(key) > 0 {
            // Cluster mode: the answers to its lines are still to come (contract 6.3); its
            // write side stays open for their notices until they are in
            // (`Chat::on_answered`), or its close deadline passes.
            return;
        }
        if let Err(e) = peer.io.shutdown_write() {
            self.close_now(key, CloseReason::Io(e.kind()));
        } else if input_ended && !peer.io.lingers() {
            self.close_now(key, reason);
        } else {
            let deadline = self.close_deadline(now, self.config.linger);
            self.set_deadline_phase(key, Phase::Lingering { reason, deadline });
            self.read(key, now);
        }
    }

    /// Closes `key` now, dropping what is queued for it. Its transport is handed back at the
    /// end of the turn.
    pub(super) fn close_now(&mut self, key: usize, reason: CloseReason) {
        if self.peers[key].phase.is_closed() {
            return;
        }
        self.retire(key);
        let peer = &mut self.peers[key];
        let dropped = peer.outbox.clear();
        peer.phase = Phase::Closed { reason };
        self.take_released(key);
        self.reindex(key);
        self.ledger.written(dropped);
        if self.is_shutting_down() {
            self.stats.bytes_unsent_at_shutdown += dropped as u64;
        }
        self.work.closed(key);
    }

    /// Leaves the logged-in or logging-in state: frees the name at once.
    fn retire(&mut self, key: usize) {
        let peer = &self.peers[key];
        if !peer.phase.is_active() {
            return;
        }
        self.active -= 1;
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.draining.remove(&key);
        }
        let Some(name) = peer.name else {
            return;
        };
        match peer.phase {
            Phase::Chatting => {
                self.directory.log_out(&self.peers, key);
                // If it got the line being routed: see `route`.
                self.route.receiver_gone(peer.last_route, &name);
                self.release_name(key, peer.generation, &name);
            }
            // Its claim's answer finds it gone and gives the name back.
            Phase::Claiming(_) => {
                self.directory.claim_ended(&name);
            }
            _ => {}
        }
    }

    /// During a shutdown the host's deadline bounds every close; otherwise `after` from now.
    fn close_deadline(&self, now: Instant, after: Duration) -> Option<Instant> {
        (!self.is_shutting_down()).then(|| now + after)
    }

    fn set_deadline_phase(&mut self, key: usize, phase: Phase) {
        let peer = &mut self.peers[key];
        if let Some(at) = phase.deadline() {
            self.timers.push(at, key, peer.generation);
        }
        peer.phase = phase;
    }

    /// Runs the expired timers: logins, contention retries, closes.
    pub(super) fn handle_timeouts(&mut self, now: Instant) {
        while let Some((at, key, generation)) = self.timers.pop_due(now) {
            let Some(peer) = self.peers.get(key) else {
                continue;
            };
            if peer.generation != generation || peer.phase.deadline() != Some(at) {
                continue;
            }
            match &peer.phase {
                // No notice: the contract names none for a login timeout. The close is the
                // same orderly one (write side shut, input drained) as after a notice.
                Phase::AwaitingName { .. } | Phase::Claiming(_) => {
                    self.stats.login_timeouts += 1;
                    self.begin_close(key, CloseReason::LoginTimeout, now);
                }
                Phase::Contending(_) => self.retry_login(key, now),
                Phase::Closing { reason, .. } | Phase::Lingering { reason, .. } => {
                    let reason = match reason {
                        CloseReason::PeerClosed => CloseReason::TimedOut,
                        other => other.clone(),
                    };
                    self.close_now(key, reason);
                }
                Phase::Chatting | Phase::Closed { .. } => {}
            }
        }
    }

    /// Removes the closed connections, handing each transport to `release`. Logs one
    /// disconnect line per connection: at `debug` when the peer closed, at `info` otherwise.
    pub(super) fn reap(&mut self, release: &mut impl FnMut(usize, T, CloseReason)) {
        for key in self.work.take_closed() {
            let peer = self.peers.remove(key);
            self.lookups.forget(key);
            let Phase::Closed { reason } = peer.phase else {
                unreachable!("only closed connections are on the list");
            };
            // The ordinary end at `debug`, every other at `info`: one line is one `write` to
            // standard error, and a line per connection would cost as much as its messages.
            let level = match reason {
                CloseReason::PeerClosed => log::Level::Debug,
                _ => log::Level::Info,
            };
            match &peer.name {
                Some(name) => log::log!(level, "#{key} {name} disconnected: {reason}"),
                None => log::log!(level, "#{key} disconnected: {reason}"),
            }
            release(key, peer.io, reason);
        }
        if self.peers.is_empty() {
            // Give back the table's memory after a burst of connections.
            self.peers.shrink_to_fit();
        }
    }
}
