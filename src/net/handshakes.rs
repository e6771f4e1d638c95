//! The TLS handshakes waiting for their turn: a bounded number of handshake steps per loop
//! turn, the rest queued in arrival order, so that a flood of `ClientHello`s cannot stall the
//! peers already chatting (each step may cost a key exchange and a signature).
//!
//! A handshake step is one read of a TLS connection whose handshake is not over: the core's
//! [`Chat::on_readable`] with the connection's gate open. While the gate is shut (the default)
//! a handshaking connection reads as `WouldBlock` without touching its socket, so the core's
//! own reads (the one in [`Chat::accept`], those after a spent read budget) do no handshake
//! work behind the queue's back. A queued connection stays in the core meanwhile, so the login
//! timeout covers it; one closed while queued is skipped when its turn comes.

use std::collections::VecDeque;
use std::time::Instant;

use super::connection::Connection;
use crate::chat::Chat;

/// Handshake steps done per loop turn at most; the rest wait for later turns.
pub const HANDSHAKE_STEPS_PER_TURN: usize = 2;

/// The queue of handshakes with input waiting, and the turn's budget.
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    /// Keys of connections whose handshake has input (or has not started), oldest first.
    /// Invariant: a connection is in it at most once while its `handshake_queued` is set; an
    /// entry whose connection is gone, or whose key now belongs to another connection that is
    /// not queued, is skipped.
    queue: VecDeque<usize>,
    /// Steps done this turn. Invariant: at most [`HANDSHAKE_STEPS_PER_TURN`].
    steps: usize,
    /// Steps put off to a later turn.
    pub(super) deferred: u64,
    /// The most steps done in one turn.
    pub(super) max_steps: usize,
}

impl Handshakes {
    /// The turn begins: a fresh budget, spent first on the queue, oldest first.
    pub(super) fn begin_turn(&mut self, chat: &mut Chat<Connection>, now: Instant) {
        self.steps = 0;
        while self.steps < HANDSHAKE_STEPS_PER_TURN {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            let Some(connection) = chat.transport_mut(key) else {
                continue;
            };
            if !std::mem::take(&mut connection.handshake_queued) {
                continue;
            }
            if connection.is_handshaking() {
                self.step(chat, key, now);
            } else {
                chat.on_readable(key, now);
            }
        }
    }

    /// Whether handshakes wait for a turn: the host must not sleep.
    pub(super) fn is_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// `key` is readable. A connection in its handshake gets a step now if the turn's
    /// budget allows, or else waits in the queue; any other is read as usual.
    pub(super) fn on_readable(&mut self, chat: &mut Chat<Connection>, key: usize, now: Instant) {
        let Some(connection) = chat.transport_mut(key) else {
            return;
        };
        if !connection.is_handshaking() {
            chat.on_readable(key, now);
        } else if connection.handshake_queued {
            // Its turn in the queue will read what arrived.
        } else if self.steps < HANDSHAKE_STEPS_PER_TURN {
            self.step(chat, key, now);
        } else {
            connection.handshake_queued = true;
            self.queue.push_back(key);
            self.deferred += 1;
        }
    }

    /// One handshake step of `key`: a read with its gate open.
    fn step(&mut self, chat: &mut Chat<Connection>, key: usize, now: Instant) {
        self.steps += 1;
        self.max_steps = self.max_steps.max(self.steps);
        let Some(connection) = chat.transport_mut(key) else {
            return;
        };
        connection.handshake_gate_open = true;
        chat.on_readable(key, now);
        if let Some(connection) = chat.transport_mut(key) {
            connection.handshake_gate_open = false;
        }
    }
}
