//! The node's hold on its names: its renewals (a third of the TTL apart), their answers, its
//! lapse by the node's own clock, and the recovery windows the answers tell of.

use std::time::{Duration, Instant};

use log::{info, warn};

use super::requests::Request;
use super::state::{Hold, Recovery};
use super::{ClusterLink, to_millis};
use crate::cluster::events::Event;
use crate::cluster::{resp, scripts};

impl ClusterLink {
    /// Runs the link's timers: the hold's renewal, its lapse, and the recovery window's end.
    pub(crate) fn on_timer(&mut self, now: Instant, has_names: bool) {
        self.clock = now;
        if self.recovery.is_some_and(|window| window.until <= now) {
            self.end_recovery(now);
        }
        if self.state.renew_at().is_some_and(|at| at <= now) {
            self.send_hold(now, has_names);
        }
        self.check_lapse(now);
    }

    /// Whether the hold lapsed by the node's clock: then [`Event::HoldLost`]. Checked by the
    /// timers, and before Redis's bytes are read (a renewal's reply read late must not hide
    /// a lapse that came before it).
    pub(crate) fn check_lapse(&mut self, now: Instant) {
        if self.hold.until().is_some_and(|until| until <= now) {
            warn!(
                "cluster: the hold on this node's names lapsed ({:?} without a renewal)",
                self.ttl
            );
            self.hold = Hold::Lapsed;
            self.events.push(Event::HoldLost);
        }
    }

    /// Queues a renewal of the hold, sent at `now`; the next is due a third of the TTL later.
    pub(super) fn send_hold(&mut self, now: Instant, has_names: bool) {
        let key = format!("{}{}", scripts::NODE_KEY, self.node);
        let ttl = self.ttl.as_millis().max(1).to_string();
        let flag = |on: bool| -> &'static [u8] { if on { b"1" } else { b"0" } };
        let args: [&[u8]; 7] = [
            b"EVALSHA",
            self.shas[scripts::HOLD_INDEX].as_bytes(),
            b"1",
            key.as_bytes(),
            ttl.as_bytes(),
            flag(has_names),
            flag(self.hold.was_granted()),
        ];
        resp::encode_command(&mut self.out, &args);
        self.pending.push_back(Request::Hold {
            sent_at: now,
            has_names,
            first: false,
        });
        self.state.set_renew_at(now + self.ttl / 3);
    }

    /// The renewal sent at `sent_at` was granted: whether the node's key `existed` (1) and how
    /// long the recovery window has left (ms). A key gone while `may_lose_names` (the node's
    /// peers had names, and it is not the connection's first hold, whose reclaim follows
    /// anyway) means Redis lost its data: [`Event::Reclaim`].
    pub(super) fn on_hold_answer(
        &mut self,
        sent_at: Instant,
        may_lose_names: bool,
        existed: i64,
        recovering_ms: i64,
    ) {
        self.on_recovery_news(recovering_ms);
        if existed == 0 && may_lose_names {
            // Redis lost this node's key while the node held names (its own clock says the
            // hold never lapsed): Redis lost its data, and the recovery window the script
            // opened is for claiming them again.
            warn!("cluster: Redis had lost this node's key: claiming its names again");
            self.events.push(Event::Reclaim);
        }
        if !self.hold.is_held() {
            info!(
                "cluster: joined as node {} ({} hold)",
                self.node,
                if existed == 1 { "kept its" } else { "a new" }
            );
        }
        if self.state.on_hold_answered() && self.connections > 1 {
            info!("cluster: reconnected to Redis");
        }
        self.hold = Hold::Until(sent_at + self.ttl);
    }

    /// The hold's answer said how long the recovery window has left (in ms; 0 or less: none
    /// is open). A window is logged and counted once when it opens and once when it ends,
    /// whichever node opened it; it ends by the node's clock (or at an answer that finds it
    /// gone).
    fn on_recovery_news(&mut self, left_ms: i64) {
        let now = self.clock;
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        if left.is_zero() {
            self.end_recovery(now);
            return;
        }
        match &mut self.recovery {
            Some(window) => window.until = now + left,
            None => {
                info!(
                    "cluster: a recovery window is open for {left:?}: Redis lost its data, and \
                     until the nodes have claimed their peers' names again, new logins get \
                     `error: cluster unavailable`"
                );
                self.stats.recovery_windows += 1;
                self.recovery = Some(Recovery {
                    since: now,
                    until: now + left,
                });
            }
        }
        self.stats.recovering = true;
    }

    /// The recovery window, if one was open, is over.
    fn end_recovery(&mut self, now: Instant) {
        if let Some(window) = self.recovery.take() {
            info!(
                "cluster: the recovery window ended after {:?}: logins are accepted again",
                to_millis(now.saturating_duration_since(window.since))
            );
            self.stats.recovering = false;
        }
    }
}
