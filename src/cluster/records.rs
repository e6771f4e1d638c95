//! What nodes send each other through their channels: records, one per line.
//!
//! - `M,ORIGIN,SENDER,DESTS,TEXT`: a message from SENDER on node ORIGIN to each of DESTS
//!   (names joined by `:`, in the order the line named them; one name may come twice, from
//!   two lines with the same text).
//! - `B,SENDER,DEST`: a bounce, back to the origin node: DEST was not there any more.
//!
//! Names hold no `,` or `:` and TEXT no newline, so the fields split without escaping.

use crate::parse::is_valid_name;

/// One record, borrowed from a channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Message {
        origin: &'a str,
        sender: &'a str,
        /// Names joined by `:`: see [`dest_names`].
        dests: &'a str,
        text: &'a str,
    },
    Bounce {
        sender: &'a str,
        dest: &'a str,
    },
}

/// The names of a message record's DESTS.
pub(crate) fn dest_names(dests: &str) -> impl Iterator<Item = &str> {
    dests.split(':')
}

/// Appends a message record to one destination (more join it in
/// [`super::route_batch::RouteBatch::push`]).
pub(crate) fn write_message(out: &mut Vec<u8>, origin: &str, sender: &str, dest: &str, text: &str) {
    for part in [
        b"M,".as_slice(),
        origin.as_bytes(),
        b",",
        sender.as_bytes(),
        b",",
        dest.as_bytes(),
        b",",
        text.as_bytes(),
        b"\n",
    ] {
        out.extend_from_slice(part);
    }
}

/// Appends a bounce record.
pub(crate) fn write_bounce(out: &mut Vec<u8>, sender: &str, dest: &str) {
    for part in [
        b"B,".as_slice(),
        sender.as_bytes(),
        b",",
        dest.as_bytes(),
        b"\n",
    ] {
        out.extend_from_slice(part);
    }
}

/// The records of a channel message; one that does not parse (not from an a-chat node, or
/// damaged) is an `Err` with the line, and the others still come.
pub(crate) fn parse_records(payload: &[u8]) -> impl Iterator<Item = Result<Record<'_>, &[u8]>> {
    payload
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| parse_record(line).ok_or(line))
}

fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let line = std::str::from_utf8(line).ok()?;
    let record = match line.split_once(',')? {
        ("M", rest) => {
            let mut fields = rest.splitn(4, ',');
            let (origin, sender, dests, text) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            Record::Message {
                origin,
                sender,
                dests,
                text,
            }
        }
        ("B", rest) => {
            let (sender, dest) = rest.split_once(',')?;
            Record::Bounce { sender, dest }
        }
        _ => return None,
    };
    let names_ok = match record {
        Record::Message {
            origin,
            sender,
            dests,
            ..
        } => !origin.is_empty() && is_valid_name(sender) && dest_names(dests).all(is_valid_name),
        Record::Bounce { sender, dest } => is_valid_name(sender) && is_valid_name(dest),
    };
    names_ok.then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_lines_are_told_apart() {
        let mut out = Vec::new();
        write_message(&mut out, "n1", "alice smith", "bob", "a, b: c");
        write_bounce(&mut out, "alice smith", "ghost");
        out.extend_from_slice(b"M,n2,carol,bob:dave:bob,hi\n");
        out.extend_from_slice(b"X,what\nM,n1,bad:name,bob,hi\nM,n1,al,bob::dave,hi\n\xff\n");
        let records: Vec<_> = parse_records(&out).collect();
        assert_eq!(
            records[0],
            Ok(Record::Message {
                origin: "n1",
                sender: "alice smith",
                dests: "bob",
                text: "a, b: c"
            })
        );
        assert_eq!(
            records[1],
            Ok(Record::Bounce {
                sender: "alice smith",
                dest: "ghost"
            })
        );
        let Ok(Record::Message { dests, .. }) = records[2] else {
            panic!("{:?}", records[2]);
        };
        assert_eq!(
            dest_names(dests).collect::<Vec<_>>(),
            ["bob", "dave", "bob"]
        );
        assert!(records[3..].iter().all(Result::is_err));
        assert_eq!(records.len(), 7);
    }
}
