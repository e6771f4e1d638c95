//! The random choice of receivers: `k` distinct peers other than the sender, from the
//! library's seeded stream (a run is reproducible from its `--seed`).

use a_chat::memory::XorShift;

/// Picks `k` distinct receivers among `conns` connections, never the sender, in O(k) time and
/// without allocating per message.
#[derive(Debug)]
pub struct ReceiverPicker {
    /// `marks[v] == epoch` when `v` was picked for the current message.
    marks: Vec<u32>,
    epoch: u32,
}

impl ReceiverPicker {
    /// A picker for connections `0..conns`.
    pub fn new(conns: usize) -> Self {
        ReceiverPicker {
            marks: vec![0; conns],
            epoch: 0,
        }
    }

    /// Fills `out` with `k` distinct receivers other than `sender` (`k < conns`): Floyd's
    /// sampling of `k` of the `conns - 1` others, a uniformly random subset.
    pub fn pick(&mut self, rng: &mut XorShift, sender: u32, k: usize, out: &mut Vec<u32>) {
        out.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
        let others = self.marks.len() - 1;
        debug_assert!(k <= others);
        for j in others - k..others {
            let t = rng.index(j + 1);
            let chosen = if self.marks[t] == self.epoch { j } else { t };
            self.marks[chosen] = self.epoch;
            // Others are numbered without the sender: shift those at or above it by one.
            let receiver = chosen as u32;
            out.push(if receiver >= sender {
                receiver + 1
            } else {
                receiver
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_distinct_in_range_and_never_the_sender() {
        let mut rng = XorShift::new(3);
        let mut picker = ReceiverPicker::new(9);
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
        let mut picker = ReceiverPicker::new(50);
        let mut hits = [0u32; 50];
        let mut out = Vec::new();
        for _ in 0..5000 {
            picker.pick(&mut rng, 0, 1, &mut out);
            hits[out[0] as usize] += 1;
        }
        assert_eq!(hits[0], 0);
        assert!(hits[1..].iter().all(|&h| h > 0));
    }
}
