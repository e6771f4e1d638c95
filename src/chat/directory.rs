//! The directory of names: who is logged in here under which name, and which names a login here
//! is claiming from the cluster.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use slab::Slab;

use super::peer::Peer;

/// The names of this node: the logged-in peers' names to their keys, and the cluster claims in
/// progress. The core keeps it in step with its peers' phases; the directory keeps the two maps
/// apart.
///
/// A logged-in name is not stored here: the table holds the peer's key beside 32 bits of the
/// hash of its name, and a lookup compares the name the peer holds inline (`Peer::name`). A
/// lookup thus reads one 8-byte slot (and its neighbours, in the same cache line but for the
/// rare cluster that crosses one), then the receiver's own state, which routing reads anyway:
/// one cache line of the table, no name behind a pointer.
#[derive(Debug)]
pub(super) struct Directory {
    /// Open addressing with linear probing: `tag << 32 | (key + 1)`, 0 for an empty slot; `tag`
    /// is the high half of the name's hash, and its top `bits` bits are the slot the entry
    /// would rather be in (its home).
    /// Invariant: holds exactly the keys of the peers in `Phase::Chatting`, once each, each
    /// with the tag of its peer's `name` (set while it is listed), at its home or after it
    /// with no empty slot between; its length is `1 << bits`, with at most three quarters full.
    /// Sized once for `max_conns` names, so that it never grows while peers log in.
    slots: Vec<u64>,
    /// Invariant: between 4 and 32.
    bits: u32,
    /// Invariant: the number of non-empty slots.
    len: usize,
    /// Keyed with random keys (SipHash-1-3, the standard library's): names come from clients,
    /// who must not be able to pick names that collide.
    hasher: RandomState,
    /// Cluster mode: names being claimed for logins here, to their connections' keys.
    /// Invariant: maps exactly the names of the peers in `Phase::Claiming`; no name is in both
    /// maps.
    claims: HashMap<Rc<str>, usize>,
}

/// The name of the logged-in peer `key` (listed in the directory: it has one).
fn name_of<T>(peers: &Slab<Peer<T>>, key: usize) -> &[u8] {
    peers[key]
        .name
        .as_ref()
        .expect("a listed peer has a name")
        .as_bytes()
}

fn tag_of(slot: u64) -> u32 {
    // The high half: it fits.
    (slot >> 32) as u32
}

/// The key in a non-empty slot.
fn key_of(slot: u64) -> usize {
    // The low half, the key plus one.
    (slot & u64::from(u32::MAX)) as usize - 1
}

impl Directory {
    /// An empty directory with room for `max_conns` names at once (16 Mi at most): at a million
    /// peers, growing it (moving every name in one go) would stall the loop. Its slots are
    /// reserved (zeroed pages of the system's), not touched, until used: 8 bytes each, 1⅓ to
    /// 2⅔ per name of `max_conns`.
    pub(super) fn new(max_conns: usize) -> Self {
        Directory::with_bits(slots_for(max_conns.min(1 << 24)))
    }

    fn with_bits(bits: u32) -> Self {
        Directory {
            slots: vec![0; 1 << bits],
            bits,
            len: 0,
            hasher: RandomState::new(),
            claims: HashMap::new(),
        }
    }

    /// The tag of `name`: the high half of its keyed hash.
    fn tag(&self, name: &[u8]) -> u32 {
        // The high half: it fits.
        (self.hasher.hash_one(name) >> 32) as u32
    }

    /// The slot an entry with `tag` would rather be in.
    fn home(&self, tag: u32) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The key of the peer logged in here as `name`.
    #[inline]
    pub(super) fn look_up<T>(&self, peers: &Slab<Peer<T>>, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        let at = self.find(self.tag(name), |key| name_of(peers, key) == name)?;
        Some(key_of(self.slots[at]))
    }

    /// Where `key`, listed with `tag`, is.
    fn position(&self, tag: u32, key: usize) -> Option<usize> {
        self.find(tag, |listed| listed == key)
    }

    /// The slot, from the home of `tag` on up to the first empty one, whose entry has `tag`
    /// and a key that `is_it` accepts.
    fn find(&self, tag: u32, mut is_it: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut at = self.home(tag);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if tag_of(slot) == tag && is_it(key_of(slot)) {
                return Some(at);
            }
            at = (at + 1) & self.mask();
        }
    }

    /// Puts a slot in the first empty place from its home on (the table has room).
    fn place(&mut self, slot: u64) {
        let mut at = self.home(tag_of(slot));
        while self.slots[at] != 0 {
            at = (at + 1) & self.mask();
        }
        self.slots[at] = slot;
        self.len += 1;
    }

    /// Whether a login here is claiming `name` from the cluster.
    pub(super) fn is_claimed(&self, name: &str) -> bool {
        self.claims.contains_key(name)
    }

    /// How many peers are logged in here.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether nobody is logged in here.
    #[cfg(any(test, feature = "cluster"))]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys of the peers logged in here.
    pub(super) fn keys(&self) -> impl Iterator<Item = usize> {
        self.slots
            .iter()
            .filter(|&&slot| slot != 0)
            .map(|&slot| key_of(slot))
    }

    /// `key`, named already, logs in under its name (free here: neither logged in nor
    /// claimed).
    pub(super) fn log_in<T>(&mut self, peers: &Slab<Peer<T>>, key: usize) {
        let name = name_of(peers, key);
        debug_assert!(std::str::from_utf8(name).is_ok_and(|name| {
            self.look_up(peers, name).is_none() && !self.claims.contains_key(name)
        }));
        let stored = u32::try_from(key + 1).expect("fewer than 4 Gi connections");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let slot = u64::from(self.tag(name)) << 32 | u64::from(stored);
        self.place(slot);
    }

    /// Twice the slots, every entry placed again from its tag (past `max_conns`, or 16 Mi).
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.bits += 1;
        self.slots = vec![0; 1 << self.bits];
        self.len = 0;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            self.place(slot);
        }
    }

    /// The logged-in peer `key` logs out (still named: its name finds its slot).
    pub(super) fn log_out<T>(&mut self, peers: &Slab<Peer<T>>, key: usize) {
        let tag = self.tag(name_of(peers, key));
        let Some(mut hole) = self.position(tag, key) else {
            return;
        };
        // Backward shift: each entry after the hole, up to an empty slot, moves into it unless
        // that would put it before its home.
        self.slots[hole] = 0;
        self.len -= 1;
        let mask = self.mask();
        let mut at = (hole + 1) & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return;
            }
            let home = self.home(tag_of(slot));
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                self.slots[at] = 0;
                hole = at;
            }
            at = (at + 1) & mask;
        }
    }

    /// A login of `key` asked the cluster for `name`.
    pub(super) fn claim_started(&mut self, name: Rc<str>, key: usize) {
        self.claims.insert(name, key);
    }

    /// The claim of `name` was answered, or its login went away: the name is no longer being
    /// claimed here.
    pub(super) fn claim_ended(&mut self, name: &str) {
        self.claims.remove(name);
    }
}

/// The table's size (as a power of two) for `names` at once: at most three quarters full.
fn slots_for(names: usize) -> u32 {
    let slots = (names.saturating_mul(4) / 3 + 1)
        .next_power_of_two()
        .max(16);
    slots.trailing_zeros().min(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::peer::{Name, Phase};

    /// A table of peers, each named.
    fn peers(names: &[&str]) -> Slab<Peer<()>> {
        let mut peers = Slab::new();
        for (generation, name) in names.iter().enumerate() {
            let key = peers.insert(Peer::new((), Phase::Chatting, generation as u64));
            peers[key].name = Name::new(name);
        }
        peers
    }

    #[test]
    fn log_in_look_up_log_out() {
        let peers = peers(&["x", "y", "z", "alice"]);
        let mut directory = Directory::new(4);
        assert!(directory.is_empty());
        directory.log_in(&peers, 3);
        assert_eq!(directory.look_up(&peers, "alice"), Some(3));
        assert_eq!(directory.look_up(&peers, "bob"), None);
        assert_eq!(directory.look_up(&peers, "alic"), None);
        assert_eq!(directory.len(), 1);
        assert_eq!(directory.keys().collect::<Vec<_>>(), [3]);
        directory.log_out(&peers, 3);
        assert_eq!(directory.look_up(&peers, "alice"), None);
        assert!(directory.is_empty());
    }

    #[test]
    fn many_names_each_found_under_its_own() {
        let names: Vec<String> = (0..2000).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let peers = peers(&refs);
        // Sized for fewer: it grows, each entry placed again from its tag.
        let mut directory = Directory::new(10);
        for key in 0..names.len() {
            directory.log_in(&peers, key);
        }
        for (key, name) in names.iter().enumerate() {
            assert_eq!(directory.look_up(&peers, name), Some(key));
        }
        for key in (0..names.len()).step_by(2) {
            directory.log_out(&peers, key);
        }
        for (key, name) in names.iter().enumerate() {
            let expected = (key % 2 == 1).then_some(key);
            assert_eq!(directory.look_up(&peers, name), expected);
        }
        assert_eq!(directory.len(), 1000);
    }

    #[test]
    fn log_outs_in_any_order_leave_every_other_name_found() {
        // Twelve names in sixteen slots: runs of entries, some past their home, some wrapping
        // around the end; each removal shifts the run behind it back.
        let names: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let peers = peers(&refs);
        for seed in 1..50u64 {
            let mut directory = Directory::with_bits(4);
            let mut listed: Vec<usize> = (0..12).collect();
            for &key in &listed {
                directory.log_in(&peers, key);
            }
            let mut rng = crate::sim::XorShift::new(seed);
            while !listed.is_empty() {
                let key = listed.swap_remove(rng.index(listed.len()));
                directory.log_out(&peers, key);
                for (other, name) in names.iter().enumerate() {
                    let expected = listed.contains(&other).then_some(other);
                    assert_eq!(directory.look_up(&peers, name), expected, "seed {seed}");
                }
                assert_eq!(directory.len(), listed.len());
            }
        }
    }

    #[test]
    fn a_claim_is_not_a_login() {
        let peers = peers(&["a", "bob"]);
        let mut directory = Directory::new(4);
        directory.claim_started(Rc::from("bob"), 1);
        assert!(directory.is_claimed("bob"));
        assert_eq!(directory.look_up(&peers, "bob"), None);
        assert!(directory.is_empty());
        directory.claim_ended("bob");
        assert!(!directory.is_claimed("bob"));
        directory.log_in(&peers, 1);
        assert_eq!(directory.look_up(&peers, "bob"), Some(1));
    }

    #[test]
    fn sized_for_max_conns_up_front() {
        let directory = Directory::new(1000);
        assert!(directory.slots.len() * 3 / 4 >= 1000);
        assert_eq!(slots_for(1_001_024), 21);
        assert_eq!(slots_for(0), 4);
    }
}
