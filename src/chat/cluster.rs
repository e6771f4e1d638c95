//! The core's side of cluster mode: the link to Redis (`src/cluster/`) is fed by the driver
//! through these calls, and what it reports is applied to the connections here: logins
//! answered, messages from other nodes queued (or bounced), notices for messages that could
//! not be handed to a node, and the peers a lost hold or a lost name sends away. Without the
//! `cluster` feature, the hooks the rest of the core calls are no-ops.

#[cfg(feature = "cluster")]
use std::rc::Rc;
use std::time::Instant;

use super::{Chat, Transport};

/// How a login's claim started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(super) enum ClaimStart {
    /// A single node: the name is free once no local peer holds it.
    NoCluster,
    /// Redis was asked; its answer comes as an event.
    Sent,
    /// Redis cannot be asked now.
    Unavailable,
}

#[cfg(not(feature = "cluster"))]
impl<T: Transport> Chat<T> {
    pub(super) fn start_claim(&mut self, _key: usize, _name: &str) -> ClaimStart {
        ClaimStart::NoCluster
    }

    pub(super) fn in_cluster(&self) -> bool {
        false
    }

    pub(super) fn cluster_congested(&self) -> bool {
        false
    }

    pub(super) fn route_remote(&mut self, _: usize, _: &str, _: &str, _: &str) -> bool {
        false
    }

    pub(super) fn release_name(&mut self, _key: usize, _generation: u64, _name: &str) {}

    pub(super) fn cluster_end_turn(&mut self, _now: Instant) {}

    pub(super) fn cluster_flush(&mut self) {}

    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        None
    }

    pub(super) fn cluster_stats(&self, stats: &mut crate::stats::Stats) {
        let _ = stats;
    }
}

#[cfg(feature = "cluster")]
use super::peer::{CloseReason, Phase};
#[cfg(feature = "cluster")]
use crate::cluster::records::{self, Record, Sender};
#[cfg(feature = "cluster")]
use crate::cluster::{ClusterLink, Event, LinkError, Undelivered, Who};
#[cfg(feature = "cluster")]
use crate::parse::LineError;

#[cfg(feature = "cluster")]
impl<T: Transport> Chat<T> {
    /// Claims `name` for the login `key`.
    pub(super) fn start_claim(&mut self, key: usize, name: &str) -> ClaimStart {
        let who = Who {
            key,
            generation: self.peers[key].generation,
        };
        match &mut self.cluster {
            None => ClaimStart::NoCluster,
            Some(link) => {
                if link.claim(who, Rc::from(name)) {
                    ClaimStart::Sent
                } else {
                    ClaimStart::Unavailable
                }
            }
        }
    }

    /// Whether this is a node of a cluster.
    pub(super) fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Whether Redis is behind: peers' input is left unread until it catches up.
    pub(super) fn cluster_congested(&self) -> bool {
        self.cluster.as_ref().is_some_and(ClusterLink::is_congested)
    }

    /// The link's timers, at the end of a turn.
    pub(super) fn cluster_end_turn(&mut self, now: Instant) {
        let has_names = !self.directory.is_empty();
        if let Some(link) = &mut self.cluster {
            link.on_timer(now, has_names);
        }
        self.apply_cluster_events(now);
    }

    /// What this turn has for Redis, encoded: the driver writes it in one write.
    pub(super) fn cluster_flush(&mut self) {
        if let Some(link) = &mut self.cluster {
            link.flush();
        }
    }

    /// When the link has something to do.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        self.cluster.as_ref().and_then(ClusterLink::next_deadline)
    }

    /// The cluster's counters into `stats`: the link's and the core's.
    pub(super) fn cluster_stats(&self, stats: &mut crate::stats::Stats) {
        if let Some(link) = &self.cluster {
            let core = self.stats.cluster;
            stats.cluster = crate::stats::ClusterStats {
                messages_received: core.messages_received,
                destinations_unavailable: core.destinations_unavailable,
                logins_unavailable: core.logins_unavailable,
                ..link.stats
            };
        }
    }

    /// Joins a cluster through `link` (before any connection is accepted).
    pub(crate) fn join_cluster(&mut self, link: ClusterLink) {
        self.cluster = Some(link);
    }

    /// The link to Redis, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&ClusterLink> {
        self.cluster.as_ref()
    }

    /// The link to Redis, in cluster mode.
    pub(crate) fn cluster_mut(&mut self) -> Option<&mut ClusterLink> {
        self.cluster.as_mut()
    }

    /// The driver connected to Redis: the link queues its first requests, the names of every
    /// peer logged in here among them.
    pub(crate) fn on_cluster_connected(&mut self, now: Instant) {
        let names = self.held_names();
        if let Some(link) = &mut self.cluster {
            link.on_connected(now, names.into_iter());
        }
    }

    /// The names of the peers logged in here, each with its connection.
    fn held_names(&self) -> Vec<(Who, Rc<str>)> {
        self.directory
            .keys()
            .filter_map(|key| {
                let peer = &self.peers[key];
                let who = Who {
                    key,
                    generation: peer.generation,
                };
                Some((who, Rc::from(&*peer.name?)))
            })
            .collect()
    }

    /// Bytes from Redis; an error means the driver must drop the connection.
    pub(crate) fn on_cluster_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), LinkError> {
        let Some(link) = &mut self.cluster else {
            return Ok(());
        };
        link.check_lapse(now);
        let result = link.on_input(bytes, now);
        self.apply_cluster_events(now);
        result
    }

    /// The connection to Redis broke (or could not be made).
    pub(crate) fn on_cluster_disconnected(&mut self, now: Instant) {
        if let Some(link) = &mut self.cluster {
            link.on_disconnected(now);
        }
        self.apply_cluster_events(now);
    }

    /// Routes TEXT from the logged-in `sender` to `dest`, a valid name not held here. Returns
    /// whether Redis could be asked; the answer comes as an event if it is news for the
    /// sender, and [`Event::Answered`] in any case (one lookup of its budget in flight until
    /// then).
    pub(super) fn route_remote(
        &mut self,
        sender: usize,
        name: &str,
        dest: &str,
        text: &str,
    ) -> bool {
        let who = Who {
            key: sender,
            generation: self.peers[sender].generation,
        };
        let routed = self
            .cluster
            .as_mut()
            .is_some_and(|link| link.route(who, name, dest, text));
        if routed {
            self.lookups.entry(sender).count += 1;
        }
        routed
    }

    /// Gives the name of a peer that leaves (connection `generation`, at `key` until now) back
    /// to the cluster.
    pub(super) fn release_name(&mut self, key: usize, generation: u64, name: &str) {
        if let Some(link) = &mut self.cluster {
            link.release(Who { key, generation }, Rc::from(name));
        }
    }

    fn apply_cluster_events(&mut self, now: Instant) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        for event in link.take_events() {
            match event {
                Event::Claim { who, name, outcome } => self.on_claimed(who, name, outcome, now),
                Event::NameLost { who, name } => {
                    // The peer the reclaim was for, if it is still here: a later holder of
                    // the name here claimed it for itself.
                    let current = self.peers.get(who.key).is_some_and(|peer| {
                        peer.generation == who.generation
                            && matches!(peer.phase, Phase::Chatting)
                            && peer.name.as_deref() == Some(&*name)
                    });
                    if current {
                        let key = who.key;
                        log::warn!(
                            "#{key} {name}: another node took this name while Redis was away"
                        );
                        self.stats.lines_rejected[LineError::NameTaken.index()] += 1;
                        if self.queue_text(key, LineError::NameTaken.notice()) {
                            self.begin_close(key, CloseReason::Rejected(LineError::NameTaken), now);
                        }
                    }
                }
                Event::Route { who, dest, outcome } => {
                    // A connection closing (its peer half-closed, most often) is kept open
                    // for these notices, until its lookups are answered (`on_flushed`).
                    let current = self.peers.get(who.key).is_some_and(|peer| {
                        peer.generation == who.generation
                            && matches!(peer.phase, Phase::Chatting | Phase::Closing { .. })
                    });
                    if current {
                        self.undelivered(who.key, &dest, outcome);
                    }
                }
                Event::Answered { who, count } => {
                    self.on_answered(who.key, who.generation, count);
                }
                Event::Records(payload) => self.on_records(&payload),
                Event::Reclaim => {
                    let names = self.held_names();
                    if let Some(link) = &mut self.cluster {
                        link.reclaim(&names);
                    }
                }
                Event::HoldLost => {
                    for key in self.active_keys() {
                        if self.queue_text(key, "error: cluster unavailable\n") {
                            self.begin_close(key, CloseReason::ClusterUnavailable, now);
                        }
                    }
                }
            }
        }
    }

    /// Records from other nodes: messages for peers here (queued as local ones are, one buffer
    /// shared by a record's receivers, or bounced back when the peer is gone), and bounces of
    /// messages from peers here.
    fn on_records(&mut self, payload: &[u8]) {
        for record in records::parse_records(payload) {
            match record {
                Ok(Record::Message {
                    origin,
                    sender,
                    dests,
                    conns,
                    text,
                }) => self.deliver_record(origin, sender, dests, conns, text),
                // For the connection that sent the message only: not a later holder of its
                // name, here or anywhere (rule 6.9).
                Ok(Record::Bounce { sender, dest }) => {
                    if let Some(key) = self.logged_in_conn(sender.name, sender.conn) {
                        self.undelivered(key, dest, Undelivered::NoSuchPeer);
                    }
                }
                Err(refused) => log::warn!(
                    "cluster: dropped a record from another node ({}): {:?}",
                    refused.why,
                    String::from_utf8_lossy(refused.line)
                ),
            }
        }
    }

    /// Queues TEXT from `sender` (on node `origin`) for each of `dests` here, each to the
    /// connection its name was routed to (`conns`), or bounces it: a name that connection
    /// no longer holds here (it left, and a later login may hold the name now) gets nothing.
    ///
    /// A record from this very node was routed through Redis because its destination was not
    /// logged in here then (its login was still claiming the name): it is answered as a local
    /// line to a name not logged in is, `error: no such peer`, never delivered late, where a
    /// later line of the same sender, routed locally since, would overtake it.
    fn deliver_record(
        &mut self,
        origin: &str,
        sender: Sender<'_>,
        dests: &str,
        conns: &str,
        text: &str,
    ) {
        if self
            .cluster
            .as_ref()
            .is_some_and(|link| link.node() == origin)
        {
            if let Some(key) = self.sender_here(sender) {
                for dest in records::dest_names(dests) {
                    self.undelivered(key, dest, Undelivered::NoSuchPeer);
                }
            }
            return;
        }
        let mut shared: Option<Rc<[u8]>> = None;
        // Whether the buffer is counted in the queues' memory: from its first receiver on.
        let mut charged = false;
        for (dest, conn) in records::dest_conns(dests, conns) {
            let Some(key) = self.logged_in_conn(dest, conn) else {
                if let Some(link) = &mut self.cluster {
                    link.bounce(origin, sender, dest);
                }
                continue;
            };
            let bytes = match &shared {
                Some(bytes) => bytes.clone(),
                None => shared.insert(self.route.format(sender.name, text)).clone(),
            };
            if self.queue(key, bytes, charged) {
                charged = true;
                self.stats.messages_routed += 1;
                self.stats.cluster.messages_received += 1;
            }
        }
        self.release_unqueued(shared, charged);
    }

    /// The peer logged in here as `name`, if it is connection `conn`.
    fn logged_in_conn(&self, name: &str, conn: u64) -> Option<usize> {
        self.directory
            .look_up(&self.peers, name)
            .filter(|&key| self.peers[key].generation == conn)
    }

    /// The connection here that sent a record routed back to this node: the peer logged in
    /// under the sender's name, if it is the sender's connection, or else a closing one of
    /// that name and connection whose lookups are not all answered (it half-closed after its
    /// line: the record, published while the route script ran, comes before the script's
    /// answer). The second is looked for through every connection, but only on this rare path
    /// (a line to a name whose login here was still claiming it, from a sender closing since).
    fn sender_here(&self, sender: Sender<'_>) -> Option<usize> {
        self.logged_in_conn(sender.name, sender.conn).or_else(|| {
            self.peers
                .iter()
                .find(|(key, peer)| {
                    peer.generation == sender.conn
                        && self.lookups.count(*key) > 0
                        && matches!(peer.phase, Phase::Closing { .. })
                        && peer.name.as_deref() == Some(sender.name)
                })
                .map(|(key, _)| key)
        })
    }

    /// Tells `sender` that its message to `dest` was not handed to anyone.
    fn undelivered(&mut self, sender: usize, dest: &str, outcome: Undelivered) {
        let notice = match outcome {
            Undelivered::NoSuchPeer => {
                self.stats.unknown_destinations += 1;
                format!("error: no such peer: {dest}\n")
            }
            Undelivered::Unavailable => {
                self.stats.cluster.destinations_unavailable += 1;
                format!("error: cluster unavailable: {dest}\n")
            }
        };
        self.queue_text(sender, &notice);
    }
}
