//! The records routed to other nodes in one batch: their bytes back to back, ready to be the
//! route script's argument, and per destination its sender and where its name lies (for the
//! notice, if one comes back). A line's destinations on other nodes travel in one record, the
//! way a local line's receivers share one buffer. Positions and lengths are `usize`: no name or
//! record is cut short, whatever its length (the core routes only valid names here, but this
//! file does not rely on it).

use super::events::Who;
use super::records;
use super::resp;
use super::scripts;

/// Destinations one record names at most (a line naming more takes several records).
const MAX_DESTS_PER_RECORD: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct RouteBatch {
    records: Vec<u8>,
    /// Per record: where it ends in `records`, and how many destinations it names.
    ends: Vec<(usize, usize)>,
    /// Per destination, in the records' order.
    dests: Vec<RouteDest>,
    /// The last record, while more destinations of the same line may join it: its sender, and
    /// where its destinations end (at the `,` before the text).
    open: Option<(Who, usize)>,
}

#[derive(Debug, Clone, Copy)]
struct RouteDest {
    who: Who,
    /// Where the destination's name begins in `records`, and its length.
    name: (usize, usize),
}

impl RouteBatch {
    /// Adds TEXT from `sender` (connection `who`, on node `node`: the record names it by its
    /// number) to `dest`. When the last record has the same sender and text (the line's
    /// previous destination), `dest` joins it.
    pub(crate) fn push(&mut self, node: &str, who: Who, sender: &str, dest: &str, text: &str) {
        if let Some((open_who, dests_end)) = self.open
            && open_who == who
            && let Some(last) = self.ends.last_mut()
            && last.1 < MAX_DESTS_PER_RECORD
            && self.records[dests_end + 1..last.0 - 1] == *text.as_bytes()
        {
            let at = dests_end;
            let joined = 1 + dest.len();
            self.records
                .splice(at..at, std::iter::once(b':').chain(dest.bytes()));
            last.0 += joined;
            last.1 += 1;
            self.open = Some((who, dests_end + joined));
            self.dests.push(RouteDest {
                who,
                name: (dests_end + 1, dest.len()),
            });
            return;
        }
        let sender = records::Sender {
            conn: who.generation,
            name: sender,
        };
        let dest_start = records::write_message(&mut self.records, node, sender, dest, text);
        self.ends.push((self.records.len(), 1));
        self.dests.push(RouteDest {
            who,
            name: (dest_start, dest.len()),
        });
        self.open = Some((who, dest_start + dest.len()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records' bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.records.len()
    }

    /// How many destinations the batch names.
    pub(crate) fn dest_count(&self) -> usize {
        self.dests.len()
    }

    /// Each destination's sender, in order.
    pub(crate) fn senders(&self) -> impl Iterator<Item = Who> {
        self.dests.iter().map(|dest| dest.who)
    }

    /// Each destination with its sender, in order.
    pub(crate) fn dests(&self) -> impl Iterator<Item = (Who, &str)> {
        self.dests.iter().map(|dest| {
            let (start, len) = dest.name;
            let name = std::str::from_utf8(&self.records[start..start + len]).unwrap_or("");
            (dest.who, name)
        })
    }

    /// Cuts the batch into batches of about `max` destinations and at most `max_bytes` of
    /// records (never splitting a record: a record alone may pass `max_bytes`), each copied
    /// once.
    pub(crate) fn into_chunks(self, max: usize, max_bytes: usize) -> Vec<RouteBatch> {
        if self.dests.len() <= max && self.records.len() <= max_bytes {
            return vec![RouteBatch { open: None, ..self }];
        }
        let mut chunks = Vec::new();
        let (mut record, mut dest, mut base) = (0, 0, 0);
        while record < self.ends.len() {
            let (first_record, first_dest) = (record, dest);
            while record < self.ends.len()
                && dest - first_dest < max
                && (record == first_record || self.ends[record].0 - base <= max_bytes)
            {
                dest += self.ends[record].1;
                record += 1;
            }
            let end = self.ends[record - 1].0;
            chunks.push(RouteBatch {
                records: self.records[base..end].to_vec(),
                ends: self.ends[first_record..record]
                    .iter()
                    .map(|&(end, count)| (end - base, count))
                    .collect(),
                dests: self.dests[first_dest..dest]
                    .iter()
                    .map(|dest| RouteDest {
                        name: (dest.name.0 - base, dest.name.1),
                        ..*dest
                    })
                    .collect(),
                open: None,
            });
            base = end;
        }
        chunks
    }

    /// Appends the `EVALSHA` of the route script (whose SHA1 is `sha`) for this batch to `out`:
    /// the destinations' name keys, then the records and, per record, where it ends and how
    /// many destinations it names.
    pub(crate) fn encode(&self, sha: &str, out: &mut Vec<u8>) {
        let mut keys = String::new();
        let mut key_ends = Vec::with_capacity(self.dests.len());
        for (_, name) in self.dests() {
            keys.push_str(scripts::NAME_KEY);
            keys.push_str(name);
            key_ends.push(keys.len());
        }
        let mut ends = String::new();
        for (end, count) in &self.ends {
            if !ends.is_empty() {
                ends.push(',');
            }
            ends.push_str(&format!("{end},{count}"));
        }
        let count = self.dests.len().to_string();
        let mut args: Vec<&[u8]> = Vec::with_capacity(self.dests.len() + 5);
        args.extend([b"EVALSHA".as_slice(), sha.as_bytes(), count.as_bytes()]);
        let mut start = 0;
        for &end in &key_ends {
            args.push(&keys.as_bytes()[start..end]);
            start = end;
        }
        args.push(&self.records);
        args.push(ends.as_bytes());
        resp::encode_command(out, &args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connection `key`, numbered as its key.
    fn who(key: usize) -> Who {
        Who {
            key,
            generation: u64::try_from(key).expect("a small key"),
        }
    }

    #[test]
    fn a_lines_destinations_share_one_record() {
        let mut batch = RouteBatch::default();
        batch.push("n1", who(1), "alice", "bob", "hi, all");
        batch.push("n1", who(1), "alice", "carol", "hi, all");
        batch.push("n1", who(1), "alice", "dave", "other");
        batch.push("n1", who(2), "erin", "bob", "other");
        assert_eq!(
            batch.records,
            b"M,n1,1,alice,bob:carol,hi, all\nM,n1,1,alice,dave,other\nM,n1,2,erin,bob,other\n"
        );
        assert_eq!(batch.ends, [(31, 2), (55, 1), (77, 1)]);
        let dests: Vec<_> = batch.dests().collect();
        assert_eq!(
            dests,
            [
                (who(1), "bob"),
                (who(1), "carol"),
                (who(1), "dave"),
                (who(2), "bob")
            ]
        );
    }

    #[test]
    fn names_of_any_length_come_back_whole() {
        let mut batch = RouteBatch::default();
        let names: Vec<String> = [255, 256, 257, 259, 70_000]
            .iter()
            .map(|&len| format!("bob{}", "x".repeat(len - 3)))
            .collect();
        for name in &names {
            batch.push("n1", who(1), "alice", name, "same text");
        }
        batch.push("n1", who(2), "erin", &names[2], "other");
        let dests: Vec<(Who, &str)> = batch.dests().collect();
        let expected: Vec<(Who, &str)> = names
            .iter()
            .map(|name| (who(1), name.as_str()))
            .chain([(who(2), names[2].as_str())])
            .collect();
        assert_eq!(dests, expected);
        let chunks = batch.into_chunks(2, usize::MAX);
        let again: Vec<String> = chunks
            .iter()
            .flat_map(|chunk| chunk.dests().map(|(_, name)| name.to_string()))
            .collect();
        assert_eq!(again.len(), 6);
        assert_eq!(again[5], names[2]);
    }

    #[test]
    fn records_name_a_bounded_number_of_destinations() {
        let mut batch = RouteBatch::default();
        let names: Vec<String> = (0..MAX_DESTS_PER_RECORD + 1)
            .map(|i| format!("p{i}"))
            .collect();
        for name in &names {
            batch.push("n1", who(1), "alice", name, "hi");
        }
        assert_eq!(batch.ends.len(), 2);
        assert_eq!(batch.ends[0].1, MAX_DESTS_PER_RECORD);
        assert_eq!(batch.dest_count(), names.len());
    }

    #[test]
    fn chunks_keep_records_whole_and_names_in_place() {
        let mut batch = RouteBatch::default();
        for line in 0..10 {
            for dest in ["bob", "carol", "dave"] {
                batch.push("n1", who(line), "alice", dest, &format!("line {line}"));
            }
        }
        let all: Vec<_> = batch
            .dests()
            .map(|(who, name)| (who, name.to_string()))
            .collect();
        let chunks = batch.into_chunks(7, usize::MAX);
        // 7 destinations do not end a record: a chunk takes the whole of its last record.
        assert_eq!(
            chunks
                .iter()
                .map(RouteBatch::dest_count)
                .collect::<Vec<_>>(),
            [9, 9, 9, 3]
        );
        let again: Vec<_> = chunks
            .iter()
            .flat_map(|chunk| chunk.dests().map(|(who, name)| (who, name.to_string())))
            .collect();
        assert_eq!(again, all);
        assert!(
            chunks[1]
                .records
                .starts_with(b"M,n1,3,alice,bob:carol:dave,line 3\n")
        );
        assert_eq!(chunks[3].ends, [(35, 3)]);
    }

    #[test]
    fn chunks_are_cut_by_bytes_too_never_inside_a_record() {
        let mut batch = RouteBatch::default();
        for line in 0..10 {
            let text = format!("{line}{}", "x".repeat(99));
            batch.push("n1", who(line), "alice", "bob", &text);
        }
        let all: Vec<_> = batch
            .dests()
            .map(|(who, name)| (who, name.to_string()))
            .collect();
        // Records of 118 bytes, at most 300 bytes a chunk: two records each.
        let chunks = batch.into_chunks(512, 300);
        assert_eq!(chunks.len(), 5);
        for chunk in &chunks {
            assert_eq!(chunk.bytes(), 2 * 118);
            assert!(chunk.records.ends_with(b"\n"));
        }
        let again: Vec<_> = chunks
            .iter()
            .flat_map(|chunk| chunk.dests().map(|(who, name)| (who, name.to_string())))
            .collect();
        assert_eq!(again, all);
        // A record larger than the bound goes alone.
        let mut batch = RouteBatch::default();
        batch.push("n1", who(1), "alice", "bob", &"y".repeat(500));
        batch.push("n1", who(2), "erin", "bob", "hi");
        let chunks = batch.into_chunks(512, 300);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].dest_count(), 1);
    }
}
