//! Routing: one parsed `DESTS: TEXT` line from one peer into its receivers' outbound queues.

use std::collections::HashSet;
use std::rc::Rc;

use log::debug;

use super::peer::Phase;
use super::{Chat, Transport};
use crate::parse::{Message, is_valid_name};

impl<T: Transport> Chat<T> {
    /// Routes `message` from the logged-in peer `sender`.
    ///
    /// For each distinct destination, in the order first named: a connected peer (the sender
    /// included) is queued `from NAME: TEXT`, formatted once and shared by every receiver; an
    /// unknown one gets the sender `error: no such peer: DEST`. A receiver whose queue would
    /// overflow is disconnected as a slow consumer; the other receivers are not affected.
    pub(super) fn route(&mut self, sender: usize, message: Message<'_>) {
        // Copied out (inline, no allocation): the sender may be closed mid-line.
        let Some(name) = self.peers[sender].name else {
            return;
        };
        let stamp = self.route.begin_line();
        let mut shared: Option<Rc<[u8]>> = None;
        // Whether the message's buffer is counted in the queues' memory: from its first
        // receiver on.
        let mut charged = false;
        let mut unknown = UnknownNames::default();
        for dest in message.destinations() {
            if !matches!(self.peers[sender].phase, Phase::Chatting) {
                // The sender itself was disconnected as a slow consumer (by its own notices,
                // or to make room): the rest of its line goes nowhere.
                break;
            }
            let Some(key) = self.directory.look_up(&self.peers, dest) else {
                // A receiver that got this line and was then disconnected (to make room) is
                // named again: it was handled where first named.
                let handled = self.route.was_gone(dest);
                if handled || !unknown.insert(dest) {
                    continue;
                }
                // A destination that cannot be a name is held by no node: Redis is not asked.
                if !self.in_cluster() || !is_valid_name(dest) {
                    self.stats.unknown_destinations += 1;
                    self.queue_text(sender, &format!("error: no such peer: {dest}\n"));
                } else if !self.route_remote(sender, &name, dest, message.text) {
                    self.stats.cluster.destinations_unavailable += 1;
                    self.queue_text(sender, &format!("error: cluster unavailable: {dest}\n"));
                }
                continue;
            };
            let receiver = &mut self.peers[key];
            if receiver.last_route == stamp {
                continue;
            }
            receiver.last_route = stamp;
            let bytes = match &shared {
                Some(bytes) => bytes.clone(),
                None => shared
                    .insert(self.route.format(&name, message.text))
                    .clone(),
            };
            if self.queue(key, bytes, charged) {
                charged = true;
                self.stats.messages_routed += 1;
                debug!(
                    "#{sender} {name} -> #{key} {dest}: {} bytes",
                    message.text.len()
                );
            }
        }
        self.route.end_line();
        self.release_unqueued(shared, charged);
    }
}

/// The unknown destinations already answered in one line: a short list, or a set once the list
/// would make the check quadratic (a line may name thousands of destinations).
#[derive(Default)]
struct UnknownNames<'a> {
    list: Vec<&'a str>,
    set: HashSet<&'a str>,
}

impl<'a> UnknownNames<'a> {
    const LIST_MAX: usize = 16;

    /// Whether `name` is new.
    fn insert(&mut self, name: &'a str) -> bool {
        if self.list.len() < Self::LIST_MAX {
            if self.list.contains(&name) {
                return false;
            }
            self.list.push(name);
            return true;
        }
        if self.set.is_empty() {
            self.set.extend(self.list.iter().copied());
        }
        self.set.insert(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_stay_distinct_past_the_list() {
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let mut unknown = UnknownNames::default();
        for name in &names {
            assert!(unknown.insert(name));
        }
        for name in &names {
            assert!(!unknown.insert(name));
        }
    }
}

#[cfg(test)]
mod routing_tests {
    use crate::Config;
    use crate::sim::MemoryServer;

    fn chat_with(names: &[&str], config: Config) -> (MemoryServer, Vec<u64>) {
        let mut s = MemoryServer::new(config);
        let ids = s.connect_as(names);
        (s, ids)
    }

    #[test]
    fn fan_out_shares_one_buffer_and_keeps_order_of_first_naming() {
        let (mut s, ids) = chat_with(&["a", "b", "c"], Config::default());
        s.send(ids[0], b"c, ghost, b, a, c, ghost, nobody: hi\n");
        s.turn();
        assert_eq!(
            s.take_output(ids[0]),
            "error: no such peer: ghost\nfrom a: hi\nerror: no such peer: nobody\n"
        );
        assert_eq!(s.take_output(ids[1]), "from a: hi\n");
        assert_eq!(s.take_output(ids[2]), "from a: hi\n");
        let stats = s.chat.stats();
        assert_eq!((stats.messages_routed, stats.unknown_destinations), (3, 2));
    }

    #[test]
    fn thousands_of_unknown_destinations_are_answered_once_each() {
        let (mut s, ids) = chat_with(&["a"], Config::default());
        let dests: Vec<String> = (0..1000).map(|i| format!("n{}", i % 500)).collect();
        s.send(ids[0], format!("{}: x\n", dests.join(",")).as_bytes());
        s.turn();
        assert_eq!(s.take_output(ids[0]).lines().count(), 500);
    }

    #[test]
    fn slow_consumer_is_evicted_and_the_others_still_get_the_message() {
        // A message of 49 bytes costs 160 in a queue (an 80-byte chunk and four slots); two
        // cost 240, three 320.
        let config = Config {
            max_queue: 300,
            ..Config::default()
        };
        let (mut s, ids) = chat_with(&["a", "slow", "c"], config);
        s.transport(ids[1]).write_window = 0;
        let line = format!("slow, c: {}\n", "x".repeat(40));
        s.send(ids[0], line.repeat(3).as_bytes());
        s.turn();
        assert!(!s.is_open(ids[1]));
        assert_eq!(s.take_output(ids[2]).lines().count(), 3);
        assert_eq!(s.chat.stats().slow_consumers_evicted, 1);
        // Its name is free at once.
        s.send(ids[0], b"slow: gone?\n");
        s.turn();
        assert_eq!(s.take_output(ids[0]), "error: no such peer: slow\n");
    }

    #[test]
    fn sender_drowned_in_its_own_notices_is_evicted_mid_line() {
        // Each notice costs a 48-byte chunk, the first also four slots (80 bytes): the
        // third goes past 200.
        let config = Config {
            max_queue: 200,
            ..Config::default()
        };
        let (mut s, ids) = chat_with(&["a", "b"], config);
        s.transport(ids[0]).write_window = 0;
        s.send(ids[0], b"x1, x2, x3, x4, x5, b: hi\nb: never\n");
        s.turn();
        assert!(!s.is_open(ids[0]));
        // The line stopped where its sender was evicted: b got nothing.
        assert_eq!(s.take_output(ids[1]), "");
    }
}
