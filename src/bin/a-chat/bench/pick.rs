//! The random choice of receivers: `k` distinct peers other than the sender, from the
//! library's seeded stream (a run is reproducible from its `--seed`).

use a_chat::sim::XorShift;

/// Picks `k` distinct receivers among `conns` connections, never the sender (and, with
/// `cross_nodes`, never a connection of the sender's node), in O(k) time and without allocating
/// per message.
#[derive(Debug)]
pub struct ReceiverPicker {
    /// `marks[v] == epoch` when candidate `v` was picked for the current message.
    marks: Vec<u32>,
    epoch: u32,
    conns: usize,
    /// With `Some(n)`: connection `i` is on node `i mod n`, and receivers are on other nodes
    /// (`conns` is then a multiple of `n`).
    cross_nodes: Option<usize>,
}

impl ReceiverPicker {
    /// A picker for connections `0..conns`.
    pub fn new(conns: usize, cross_nodes: Option<usize>) -> Self {
        let candidates = match cross_nodes {
            Some(nodes) => conns - conns / nodes,
            None => conns - 1,
        };
        ReceiverPicker {
            marks: vec![0; candidates],
            epoch: 0,
            conns,
            cross_nodes,
        }
    }

    /// Fills `out` with `k` distinct receivers (`k` at most the candidates: the connections
    /// less the sender, or less the sender's node):
    /// Floyd's sampling of `k` candidates, a uniformly random subset.
    pub fn pick(&mut self, rng: &mut XorShift, sender: u32, k: usize, out: &mut Vec<u32>) {
        out.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
        let candidates = self.marks.len();
        debug_assert!(k <= candidates);
        for j in candidates - k..candidates {
            let t = rng.index(j + 1);
            let chosen = if self.marks[t] == self.epoch { j } else { t };
            self.marks[chosen] = self.epoch;
            out.push(self.receiver(sender, chosen) as u32);
        }
        debug_assert!(out.iter().all(|&r| (r as usize) < self.conns));
    }

    /// The connection of candidate `t` for `sender`.
    fn receiver(&self, sender: u32, t: usize) -> usize {
        let sender = sender as usize;
        match self.cross_nodes {
            // Candidates are numbered without the sender: those at or above it shift by one.
            None if t >= sender => t + 1,
            None => t,
            // Each block of `nodes` connections has one on the sender's node, skipped.
            Some(nodes) => {
                let (block, within) = (t / (nodes - 1), t % (nodes - 1));
                let skip = sender % nodes;
                block * nodes + if within >= skip { within + 1 } else { within }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_distinct_in_range_and_never_the_sender() {
        let mut rng = XorShift::new(3);
        let mut picker = ReceiverPicker::new(9, None);
        let mut out = Vec::new();
        for round in 0..2000u32 {
            let sender = round % 9;
            let k = 1 + (round as usize % 8);
            picker.pick(&mut rng, sender, k, &mut out);
            assert_eq!(out.len(), k);
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), k, "distinct: {out:?}");
            assert!(
                out.iter().all(|&r| r < 9 && r != sender),
                "{out:?} from {sender}"
            );
        }
    }

    #[test]
    fn every_other_peer_gets_picked() {
        let mut rng = XorShift::new(11);
        let mut picker = ReceiverPicker::new(50, None);
        let mut hits = [0u32; 50];
        let mut out = Vec::new();
        for _ in 0..5000 {
            picker.pick(&mut rng, 0, 1, &mut out);
            hits[out[0] as usize] += 1;
        }
        assert_eq!(hits[0], 0);
        assert!(hits[1..].iter().all(|&h| h > 0));
    }

    #[test]
    fn across_nodes_a_receiver_is_never_on_the_senders_node() {
        let mut rng = XorShift::new(5);
        let mut picker = ReceiverPicker::new(12, Some(3));
        assert_eq!(picker.marks.len(), 8);
        let mut out = Vec::new();
        let mut seen = [false; 12];
        for round in 0..3000u32 {
            let sender = round % 12;
            picker.pick(&mut rng, sender, 1 + round as usize % 8, &mut out);
            for &r in &out {
                assert_ne!(r % 3, sender % 3, "{r} is on the node of {sender}");
                seen[r as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }
}
