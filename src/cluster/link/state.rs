//! The link's lifecycles as enums: its connection to Redis ([`State`], from the first attempt
//! to the node's leave), the node's hold on its names ([`Hold`], which outlives connections),
//! and a recovery window Redis told of ([`Recovery`]).

use std::time::{Duration, Instant};

/// The first wait before connecting again; it doubles up to [`MAX_BACKOFF`].
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The connection's life. The wait before the next attempt after a failure (`backoff`) lives
/// in the states a failure can come from before the hold is answered; a joined connection
/// has it back at [`MIN_BACKOFF`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// No connection; the next attempt at `retry_at`.
    Down {
        retry_at: Instant,
        backoff: Duration,
    },
    /// The driver is connecting, since then.
    Connecting { since: Instant, backoff: Duration },
    /// Connected, the handshake (HELLO, the scripts, SUBSCRIBE, the hold) sent and the hold
    /// not answered yet on this connection; the hold's next renewal at `renew_at`.
    Handshaking {
        renew_at: Instant,
        backoff: Duration,
    },
    /// Connected, and the hold answered on this connection; its next renewal at `renew_at`.
    Joined { renew_at: Instant },
    /// Connected, the node's key being deleted (the leave sent): no more renewals.
    Leaving,
    /// Out of the cluster: its key deleted, or Redis out of reach when it left or since.
    /// `connected` while the last connection is still up (the driver closes it).
    Left { connected: bool },
}

impl State {
    /// The state of a new link: its first attempt at once.
    pub(super) fn new(now: Instant) -> State {
        State::Down {
            retry_at: now,
            backoff: MIN_BACKOFF,
        }
    }

    /// Whether a connection to Redis is up (requests can be written).
    pub(super) fn is_connected(&self) -> bool {
        matches!(
            self,
            State::Handshaking { .. }
                | State::Joined { .. }
                | State::Leaving
                | State::Left { connected: true }
        )
    }

    /// Whether the node leaves, or has left.
    pub(super) fn is_leaving(&self) -> bool {
        matches!(self, State::Leaving | State::Left { .. })
    }

    /// Whether the node is out of the cluster.
    pub(super) fn has_left(&self) -> bool {
        matches!(self, State::Left { .. })
    }

    /// When the next connection attempt is due, while down.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        match *self {
            State::Down { retry_at, .. } => Some(retry_at),
            _ => None,
        }
    }

    /// When the hold's next renewal is due, while connected and not leaving.
    pub(super) fn renew_at(&self) -> Option<Instant> {
        match *self {
            State::Handshaking { renew_at, .. } | State::Joined { renew_at } => Some(renew_at),
            _ => None,
        }
    }

    /// The next renewal is due at `at` (a renewal was sent); nothing while leaving.
    pub(super) fn set_renew_at(&mut self, at: Instant) {
        if let State::Handshaking { renew_at, .. } | State::Joined { renew_at } = self {
            *renew_at = at;
        }
    }

    /// The wait after the next failure.
    fn backoff(&self) -> Duration {
        match *self {
            State::Down { backoff, .. }
            | State::Connecting { backoff, .. }
            | State::Handshaking { backoff, .. } => backoff,
            State::Joined { .. } | State::Leaving | State::Left { .. } => MIN_BACKOFF,
        }
    }

    /// While down: the next attempt at `now` at the latest, and the back-off back at its
    /// minimum (a sentinel named a new master).
    pub(super) fn retry_now(&mut self, now: Instant) {
        if let State::Down { retry_at, backoff } = self {
            *retry_at = (*retry_at).min(now);
            *backoff = MIN_BACKOFF;
        }
    }

    /// The driver started connecting at `now`.
    pub(super) fn on_connecting(&mut self, now: Instant) {
        if !self.has_left() {
            *self = State::Connecting {
                since: now,
                backoff: self.backoff(),
            };
        }
    }

    /// The connection is up; the hold's first renewal after this is due at `renew_at`.
    pub(super) fn on_connected(&mut self, renew_at: Instant) {
        *self = match *self {
            State::Left { .. } => State::Left { connected: true },
            _ => State::Handshaking {
                renew_at,
                backoff: self.backoff(),
            },
        };
    }

    /// The hold was answered: `true` if this connection joined with it (the first answer).
    pub(super) fn on_hold_answered(&mut self) -> bool {
        match *self {
            State::Handshaking { renew_at, .. } => {
                *self = State::Joined { renew_at };
                true
            }
            _ => false,
        }
    }

    /// The connection broke (or was not made) at `now`: down until the back-off passed, and
    /// the back-off doubled; out of the cluster if the node was leaving.
    pub(super) fn on_disconnected(&mut self, now: Instant) {
        if self.is_leaving() {
            *self = State::Left { connected: false };
            return;
        }
        let backoff = self.backoff();
        *self = State::Down {
            retry_at: now + backoff,
            backoff: (backoff * 2).min(MAX_BACKOFF),
        };
    }

    /// The node leaves: `true` if its key's deletion is to be sent (connected), else it has
    /// left at once.
    pub(super) fn on_leave(&mut self) -> bool {
        if self.is_connected() {
            *self = State::Leaving;
            true
        } else {
            *self = State::Left { connected: false };
            false
        }
    }

    /// Redis answered the leave: the key is gone.
    pub(super) fn on_left(&mut self) {
        *self = State::Left {
            connected: self.is_connected(),
        };
    }
}

/// The node's hold on its names, by its own clock; it outlives connections (a hold granted
/// on one connection lasts through a reconnect until its TTL passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Never granted: the node was never in the cluster.
    Never,
    /// Granted: the names are held until then (the last granted renewal's send time plus the
    /// TTL).
    Until(Instant),
    /// Granted once, and lapsed since: the node was in the cluster (Redis missing
    /// `a-chat:cluster` then means Redis lost its data).
    Lapsed,
}

impl Hold {
    pub(super) fn is_held(&self) -> bool {
        matches!(self, Hold::Until(_))
    }

    /// Whether a hold was ever granted.
    pub(super) fn was_granted(&self) -> bool {
        !matches!(self, Hold::Never)
    }

    pub(super) fn until(&self) -> Option<Instant> {
        match *self {
            Hold::Until(at) => Some(at),
            _ => None,
        }
    }
}

/// A recovery window the node knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovery {
    pub(super) since: Instant,
    pub(super) until: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_until_a_connection_joins() {
        let now = Instant::now();
        let mut state = State::new(now);
        state.on_connecting(now);
        state.on_disconnected(now);
        assert_eq!(state.retry_at(), Some(now + MIN_BACKOFF));
        state.on_connecting(now);
        state.on_connected(now);
        state.on_disconnected(now);
        assert_eq!(state.retry_at(), Some(now + MIN_BACKOFF * 2));
        state.on_connecting(now);
        state.on_connected(now);
        assert!(state.on_hold_answered());
        assert!(!state.on_hold_answered());
        state.on_disconnected(now);
        assert_eq!(state.retry_at(), Some(now + MIN_BACKOFF));
        for _ in 0..10 {
            state.on_connecting(now);
            state.on_disconnected(now);
        }
        assert_eq!(state.retry_at(), Some(now + MAX_BACKOFF));
    }

    #[test]
    fn a_leave_ends_in_left_whether_connected_or_not() {
        let now = Instant::now();
        let mut state = State::new(now);
        assert!(!state.on_leave());
        assert_eq!(state, State::Left { connected: false });
        state.on_connecting(now);
        assert!(state.has_left());
        let mut state = State::new(now);
        state.on_connecting(now);
        state.on_connected(now);
        assert!(state.on_leave());
        assert!(state.is_connected() && state.is_leaving() && state.renew_at().is_none());
        state.on_left();
        assert_eq!(state, State::Left { connected: true });
        state.on_disconnected(now);
        assert_eq!(state, State::Left { connected: false });
    }
}
