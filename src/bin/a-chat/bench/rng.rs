//! The random choice of receivers: a tiny xorshift generator (a run is reproducible from its
//! `--seed`, and no `rand` crate is needed) and distinct-receiver sampling.

/// xorshift64*: small, fast and good enough to spread messages over peers.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from any seed, zero included (the state never becomes zero).
    pub fn new(seed: u64) -> Self {
        // One splitmix64 step spreads nearby seeds apart and maps 0 to a non-zero state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (multiply-shift: the bias is below 2^-32 for any n of a run).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

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
            let t = rng.below(j as u64 + 1) as usize;
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
    fn same_seed_same_numbers_and_zero_seed_works() {
        let (mut a, mut b) = (XorShift::new(0), XorShift::new(0));
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert!(first.iter().all(|&x| x != 0));
        assert_ne!(XorShift::new(1).next_u64(), XorShift::new(2).next_u64());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = XorShift::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = rng.below(10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

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
