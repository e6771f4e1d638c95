//! The name line: a login, a refusal, or a wait for a name whose holder may be closing.

use std::rc::Rc;
use std::time::{Duration, Instant};

use log::info;

use super::peer::{Contender, Phase, ReadMode};
use super::{Chat, Transport};
use crate::parse::{LineError, parse_name};

/// How long a login waits when its name is held by a connection that may be closing: a
/// client that reconnects at once can beat its old connection's close to the server.
pub(crate) const CONTENTION_WAIT: Duration = Duration::from_millis(50);

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
        match parse_name(line) {
            Ok(name) if !self.name_is_held(name, now) => self.log_in(key, name),
            Ok(_) if !contended => self.contend(key, line, login_deadline, now),
            Ok(_) => self.reject(key, LineError::NameTaken, now),
            Err(error) => self.reject(key, error, now),
        }
    }

    /// Whether a connected peer holds `name`. A holder that has already hung up is logged out
    /// first: its name is free at once.
    fn name_is_held(&mut self, name: &str, now: Instant) -> bool {
        let Some(&holder) = self.directory.get(name) else {
            return false;
        };
        if !self.peers[holder].io.is_closed_by_peer() {
            return true;
        }
        self.on_end_of_input(holder, now);
        false
    }

    /// Holds the login of `key`, whose name line is `line`, for [`CONTENTION_WAIT`]: the
    /// holder's close may be on its way. Its later lines wait with it.
    fn contend(&mut self, key: usize, line: &[u8], login_deadline: Instant, now: Instant) {
        let mut input = Vec::with_capacity(line.len() + 1);
        input.extend_from_slice(line);
        input.push(b'\n');
        let retry_at = now + CONTENTION_WAIT;
        self.timers.push(retry_at, key, self.peers[key].generation);
        self.peers[key].phase = Phase::Contending(Box::new(Contender {
            retry_at,
            login_deadline,
            input,
            too_long: false,
        }));
    }

    /// Asks for the name again, this time for good, and catches up with the input.
    pub(super) fn retry_login(&mut self, key: usize, now: Instant) {
        // The login deadline's timer is still in the heap: it was never due.
        let Some(contender) = self.peers[key].phase.end_contention() else {
            return;
        };
        self.on_bytes(key, &contender.input, now);
        if contender.too_long && self.peers[key].phase.read_mode() == ReadMode::Process {
            self.reject(key, LineError::LineTooLong, now);
        }
        // Edge-triggered readiness was spent while it waited: read what came meanwhile.
        self.read(key, now);
    }

    fn log_in(&mut self, key: usize, name: &str) {
        let name: Rc<str> = Rc::from(name);
        self.directory.insert(name.clone(), key);
        self.stats.logins += 1;
        let peer = &mut self.peers[key];
        peer.phase = Phase::Chatting;
        info!("#{key} logged in as {name}");
        peer.name = Some(name);
    }
}
