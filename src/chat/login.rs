//! The name line: a login, a refusal, or a wait for the name: for a holder that may be
//! closing (contention), or, in cluster mode, for Redis's answer to the claim.

use std::rc::Rc;
use std::time::{Duration, Instant};

use log::debug;

use super::cluster::ClaimStart;
use super::peer::{CloseReason, Contender, Name, Phase, ReadMode};
use super::{Chat, Transport};
#[cfg(feature = "cluster")]
use crate::cluster::{Claimed, Who};
use crate::parse::{LineError, parse_name};

/// How long a login waits when its name is held by a connection that may be closing: a
/// client that reconnects at once can beat its old connection's close to the server (or, in a
/// cluster, its old node's release of the name to Redis).
pub(crate) const CONTENTION_WAIT: Duration = Duration::from_millis(50);

/// What a login waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A holder that may be closing: the name is asked for again after [`CONTENTION_WAIT`].
    Contention,
    /// Redis's answer to the claim.
    Claim,
}

impl<T: Transport> Chat<T> {
    /// Handles the first line of `key`, which is waiting for its name.
    pub(super) fn on_name_line(
        &mut self,
        key: usize,
        line: &[u8],
        login_deadline: Instant,
        contended: bool,
        now: Instant,
    ) {
        let name = match parse_name(line) {
            Ok(name) => name,
            Err(error) => return self.reject(key, error, now),
        };
        if self.name_is_held(name, now) {
            if contended {
                self.reject(key, LineError::NameTaken, now);
            } else {
                self.wait_for_name(key, line, login_deadline, Wait::Contention, now);
            }
            return;
        }
        match self.start_claim(key, name) {
            ClaimStart::NoCluster => self.log_in(key, name),
            ClaimStart::Sent => {
                self.directory.claim_started(Rc::from(name), key);
                // Named already, for its disconnect line and for `retire`.
                self.peers[key].name = Name::new(name);
                self.wait_for_name(key, line, login_deadline, Wait::Claim, now);
                if let Phase::Claiming(contender) = &mut self.peers[key].phase {
                    contender.contended = contended;
                }
            }
            ClaimStart::Unavailable => self.refuse_unavailable(key, now),
        }
    }

    /// Whether a connected peer holds `name` here (or a login here is claiming it). A holder
    /// that has already hung up is logged out first: its name is free at once.
    fn name_is_held(&mut self, name: &str, now: Instant) -> bool {
        if self.directory.is_claimed(name) {
            return true;
        }
        let Some(holder) = self.directory.look_up(&self.peers, name) else {
            return false;
        };
        // Lines it sent while waiting for the cluster's answers are still to be routed.
        if !self.peers[holder].io.is_closed_by_peer() || self.lookups.holds_lines(holder) {
            return true;
        }
        self.on_end_of_input(holder, now);
        false
    }

    /// Holds the login of `key`, whose name line is `line`, until its name is decided; its
    /// later lines wait with it.
    fn wait_for_name(
        &mut self,
        key: usize,
        line: &[u8],
        login_deadline: Instant,
        wait: Wait,
        now: Instant,
    ) {
        let mut input = Vec::with_capacity(line.len() + 1);
        input.extend_from_slice(line);
        input.push(b'\n');
        let contender = Box::new(Contender {
            retry_at: login_deadline,
            login_deadline,
            input,
            too_long: false,
            contended: false,
        });
        match wait {
            Wait::Contention => self.contend(key, contender, now),
            // The login deadline's timer is already set.
            Wait::Claim => self.peers[key].phase = Phase::Claiming(contender),
        }
    }

    /// Holds a login for [`CONTENTION_WAIT`], after which its name is asked for once more.
    fn contend(&mut self, key: usize, mut contender: Box<Contender>, now: Instant) {
        contender.retry_at = now + CONTENTION_WAIT;
        contender.contended = true;
        self.timers
            .push(contender.retry_at, key, self.peers[key].generation);
        self.peers[key].phase = Phase::Contending(contender);
    }

    /// A contention's wait is over: asks for the name again, this time for good, and catches
    /// up with the input.
    pub(super) fn retry_login(&mut self, key: usize, now: Instant) {
        // The login deadline's timer is still in the heap: it was never due.
        let Some(contender) = self.peers[key].phase.end_wait() else {
            return;
        };
        self.catch_up(key, &contender.input, contender.too_long, now);
    }

    /// Redis answered the claim of `name` for `who`.
    #[cfg(feature = "cluster")]
    pub(super) fn on_claimed(&mut self, who: Who, name: Rc<str>, outcome: Claimed, now: Instant) {
        let waiting = self.peers.get(who.key).is_some_and(|peer| {
            peer.generation == who.generation && matches!(peer.phase, Phase::Claiming(_))
        });
        if !waiting {
            // The login went away meanwhile: a name claimed for it goes back.
            if outcome == Claimed::Yes {
                self.release_name(who.key, who.generation, &name);
            }
            return;
        }
        self.directory.claim_ended(&name);
        let key = who.key;
        let Some(contender) = self.peers[key].phase.end_wait() else {
            return;
        };
        match outcome {
            Claimed::Yes => {
                self.log_in(key, &name);
                // The name line is done; what followed it is handled now.
                let after_name = contender
                    .input
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(contender.input.len(), |end| end + 1);
                self.catch_up(key, &contender.input[after_name..], contender.too_long, now);
            }
            // Its holder elsewhere may be on its way out: ask again in a moment.
            Claimed::Taken if !contender.contended => self.contend(key, contender, now),
            Claimed::Taken => self.reject(key, LineError::NameTaken, now),
            Claimed::Unavailable => self.refuse_unavailable(key, now),
        }
    }

    /// Feeds the input that waited with a login, then reads what came meanwhile.
    fn catch_up(&mut self, key: usize, input: &[u8], too_long: bool, now: Instant) {
        self.on_bytes(key, input, now);
        if too_long && self.peers[key].phase.read_mode() == ReadMode::Process {
            self.reject(key, LineError::LineTooLong, now);
        }
        // Edge-triggered readiness was spent while it waited: read what came meanwhile.
        self.read(key, now);
    }

    /// A login that Redis cannot be asked about: `error: cluster unavailable`, then closed.
    pub(super) fn refuse_unavailable(&mut self, key: usize, now: Instant) {
        self.stats.cluster.logins_unavailable += 1;
        if self.queue_text(key, "error: cluster unavailable\n") {
            self.begin_close(key, CloseReason::ClusterUnavailable, now);
        }
    }

    /// `key` logs in as `name` (a valid name, free here).
    pub(super) fn log_in(&mut self, key: usize, name: &str) {
        let peer = &mut self.peers[key];
        peer.name = Name::new(name);
        peer.phase = Phase::Chatting;
        self.directory.log_in(&self.peers, key);
        self.stats.logins += 1;
        debug!("#{key} logged in as {name}");
    }
}
