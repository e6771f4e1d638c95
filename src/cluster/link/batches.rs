//! The turn's work for Redis: releases, claims, routed records and bounces gathered during
//! the turn, then encoded into one write in bounded batches (each a request waiting for its
//! reply), and the driver's taking of that write.

use std::rc::Rc;

use super::ClusterLink;
use super::requests::Request;
use crate::cluster::events::Who;
use crate::cluster::{records, resp, scripts};

/// Names or records per `EVALSHA` at most (one write may hold several).
pub(super) const BATCH: usize = 512;

/// Bytes of records per route `EVALSHA` at most (a record is never split, so one record may
/// pass it alone): the script publishes a node's records in one message, which must stay far
/// under the largest reply the receiving node accepts (16 MiB, `resp::MAX_REPLY`).
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// Route batches sent and not answered at most. Each turn's records go at the end of the turn
/// (no wait for an earlier batch's answer at low load); past this, they wait and join into
/// larger batches (fewer script runs when Redis is the bottleneck).
const MAX_ROUTES_IN_FLIGHT: usize = 16;

impl ClusterLink {
    /// Asks for `name` for the login `who`; `false` if Redis cannot be asked now. While the
    /// node is starting (its first attempt at Redis under way, rule 6.8) the claim waits for
    /// it: sent once the node has joined, or answered "unavailable" when the attempt fails.
    pub(crate) fn claim(&mut self, who: Who, name: Rc<str>) -> bool {
        if self.state.is_leaving() || !(self.is_available() || self.is_starting()) {
            return false;
        }
        self.claims.push((who, name));
        true
    }

    /// Claims `names` again, for the peers logged in here under them (after a reconnect, or
    /// when Redis lost this node's key); a name another node holds now comes back as
    /// [`crate::cluster::Event::NameLost`].
    pub(crate) fn reclaim(&mut self, names: &[(Who, Rc<str>)]) {
        if !self.state.is_connected() {
            return; // the next connection reclaims them all
        }
        for chunk in names.chunks(BATCH) {
            self.encode_claims(chunk, b"again");
            self.pending.push_back(Request::Reclaim {
                names: chunk.to_vec(),
            });
        }
    }

    /// Gives `name` back: its peer `who` left (Redis deletes the name only if `who` holds it
    /// there). While disconnected, it is given back after the next connect.
    pub(crate) fn release(&mut self, who: Who, name: Rc<str>) {
        self.releases.push((who, name));
    }

    /// Routes TEXT from `sender` (connection `who`) to `dest` on another node; `false` if Redis
    /// cannot be asked now.
    pub(crate) fn route(&mut self, who: Who, sender: &str, dest: &str, text: &str) -> bool {
        if !self.is_available() {
            return false;
        }
        self.routes.push(&self.node, who, sender, dest, text);
        true
    }

    /// Tells node `origin` that the message of its connection `sender` to `dest` did not find
    /// here the connection it was routed to.
    pub(crate) fn bounce(&mut self, origin: &str, sender: records::Sender<'_>, dest: &str) {
        if !self.state.is_connected() {
            return;
        }
        let index = match self.bounces.iter().position(|(node, _)| node == origin) {
            Some(index) => index,
            None => {
                self.bounces.push((origin.to_string(), Vec::new()));
                self.bounces.len() - 1
            }
        };
        records::write_bounce(&mut self.bounces[index].1, sender, dest);
    }

    /// Encodes the turn's batches; what it writes is [`ClusterLink::output`].
    pub(crate) fn flush(&mut self) {
        if !self.state.is_connected() {
            return;
        }
        // Releases first: a name given up and taken again in one turn ends taken.
        self.encode_releases();
        // While starting, the claims wait for the hold's first answer (the node joined).
        let claims = if self.is_starting() {
            Vec::new()
        } else {
            std::mem::take(&mut self.claims)
        };
        for chunk in claims.chunks(BATCH) {
            self.encode_claims(chunk, b"new");
            self.pending.push_back(Request::Claim {
                names: chunk.to_vec(),
            });
        }
        self.encode_routes();
        for (origin, payload) in std::mem::take(&mut self.bounces) {
            let channel = format!("{}{origin}", scripts::NODE_CHANNEL);
            resp::encode_command(&mut self.out, &[b"PUBLISH", channel.as_bytes(), &payload]);
            self.pending.push_back(Request::Publish);
        }
        self.stats.connected = self.is_available();
        self.start_waiting();
    }

    /// Requests were queued (by the turn, at the link's `clock`): if none waited, Redis
    /// owes an answer from now on.
    pub(super) fn start_waiting(&mut self) {
        if self.waiting_since.is_none() && self.state.is_connected() && !self.pending.is_empty() {
            self.waiting_since = Some(self.clock);
        }
    }

    pub(super) fn encode_releases(&mut self) {
        if !self.state.is_connected() || self.releases.is_empty() {
            return;
        }
        let releases = std::mem::take(&mut self.releases);
        for chunk in releases.chunks(BATCH) {
            self.encode_names(scripts::RELEASE_INDEX, chunk, &[]);
            self.pending.push_back(Request::Release);
        }
    }

    fn encode_claims(&mut self, names: &[(Who, Rc<str>)], mode: &[u8]) {
        let ttl = self.ttl.as_millis().max(1).to_string();
        self.encode_names(scripts::CLAIM_INDEX, names, &[mode, ttl.as_bytes()]);
    }

    /// `EVALSHA` of script `index` with the keys of `names`, the node's ID, `extra`, then the
    /// CONN of each name's connection.
    fn encode_names(&mut self, index: usize, names: &[(Who, Rc<str>)], extra: &[&[u8]]) {
        let keys: Vec<String> = names
            .iter()
            .map(|(_, name)| format!("{}{name}", scripts::NAME_KEY))
            .collect();
        let conns: Vec<String> = names
            .iter()
            .map(|(who, _)| who.generation.to_string())
            .collect();
        let count = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", self.shas[index].as_bytes(), count.as_bytes()];
        args.extend(keys.iter().map(|key| key.as_bytes()));
        args.push(self.node.as_bytes());
        args.extend_from_slice(extra);
        args.extend(conns.iter().map(|conn| conn.as_bytes()));
        resp::encode_command(&mut self.out, &args);
    }

    /// Sends the records routed this turn (and those that waited), in `EVALSHA`s of about
    /// [`BATCH`] destinations and at most [`BATCH_BYTES`] of records each (or one record),
    /// unless [`MAX_ROUTES_IN_FLIGHT`] batches are unanswered.
    fn encode_routes(&mut self) {
        if self.routes_in_flight >= MAX_ROUTES_IN_FLIGHT || self.routes.is_empty() {
            return;
        }
        for batch in std::mem::take(&mut self.routes).into_chunks(BATCH, BATCH_BYTES) {
            batch.encode(self.shas[scripts::ROUTE_INDEX], &mut self.out);
            self.pending.push_back(Request::Route(batch));
            self.routes_in_flight += 1;
        }
    }

    /// Encoded requests for Redis, not written yet.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }

    /// The driver wrote the first `n` bytes of [`ClusterLink::output`].
    pub(crate) fn consumed(&mut self, n: usize) {
        self.out.drain(..n);
        if self.out.is_empty() && self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
    }
}
