//! The directory of names: who is logged in here under which name, and which names a login here
//! is claiming from the cluster.

use std::collections::HashMap;
use std::rc::Rc;

/// The names of this node: the logged-in peers' names to their keys, and the cluster claims in
/// progress. The core keeps it in step with its peers' phases; the directory keeps the two maps
/// apart.
#[derive(Debug)]
pub(super) struct Directory {
    /// Invariant: maps exactly the names of the peers in `Phase::Chatting` to their keys.
    /// Sized once for `max_conns` names, so that it never rehashes while peers log in.
    names: HashMap<Rc<str>, usize>,
    /// Cluster mode: names being claimed for logins here, to their connections' keys.
    /// Invariant: maps exactly the names of the peers in `Phase::Claiming`; no name is in both
    /// maps.
    claims: HashMap<Rc<str>, usize>,
}

impl Directory {
    /// An empty directory with room for `max_conns` names at once (16 Mi at most): at a million
    /// peers, growing it (rehashing every name in one go) stalled the loop for 0.2-0.4 s. Its
    /// buckets are reserved, not touched, until used.
    pub(super) fn new(max_conns: usize) -> Self {
        Directory {
            names: HashMap::with_capacity(max_conns.min(1 << 24)),
            claims: HashMap::new(),
        }
    }

    /// The key of the peer logged in here as `name`.
    #[inline]
    pub(super) fn look_up(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    /// Whether a login here is claiming `name` from the cluster.
    pub(super) fn is_claimed(&self, name: &str) -> bool {
        self.claims.contains_key(name)
    }

    /// How many peers are logged in here.
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nobody is logged in here.
    #[cfg(any(test, feature = "cluster"))]
    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names logged in here, each with its peer's key.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&Rc<str>, usize)> {
        self.names.iter().map(|(name, &key)| (name, key))
    }

    /// `key` logs in as `name` (free here: neither logged in nor claimed).
    pub(super) fn log_in(&mut self, name: Rc<str>, key: usize) {
        debug_assert!(!self.claims.contains_key(&name));
        let old = self.names.insert(name, key);
        debug_assert!(old.is_none(), "a name is logged in once");
    }

    /// The peer logged in as `name` logs out.
    pub(super) fn log_out(&mut self, name: &str) {
        self.names.remove(name);
    }

    /// A login of `key` asked the cluster for `name`.
    pub(super) fn claim_started(&mut self, name: Rc<str>, key: usize) {
        debug_assert!(!self.names.contains_key(&name));
        self.claims.insert(name, key);
    }

    /// The claim of `name` was answered, or its login went away: the name is no longer being
    /// claimed here.
    pub(super) fn claim_ended(&mut self, name: &str) {
        self.claims.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_in_look_up_log_out() {
        let mut directory = Directory::new(4);
        let alice: Rc<str> = Rc::from("alice");
        assert!(directory.is_empty());
        directory.log_in(alice.clone(), 3);
        assert_eq!(directory.look_up("alice"), Some(3));
        assert_eq!(directory.look_up("bob"), None);
        assert_eq!(directory.len(), 1);
        assert_eq!(directory.entries().collect::<Vec<_>>(), [(&alice, 3)]);
        directory.log_out("alice");
        assert_eq!(directory.look_up("alice"), None);
        assert!(directory.is_empty());
    }

    #[test]
    fn a_claim_is_not_a_login() {
        let mut directory = Directory::new(4);
        directory.claim_started(Rc::from("bob"), 1);
        assert!(directory.is_claimed("bob"));
        assert_eq!(directory.look_up("bob"), None);
        assert!(directory.is_empty());
        directory.claim_ended("bob");
        assert!(!directory.is_claimed("bob"));
        directory.log_in(Rc::from("bob"), 1);
        assert_eq!(directory.look_up("bob"), Some(1));
    }

    #[test]
    fn sized_for_max_conns_up_front() {
        let directory = Directory::new(1000);
        assert!(directory.names.capacity() >= 1000);
    }
}
