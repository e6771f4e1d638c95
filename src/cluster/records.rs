//! What nodes send each other through their channels: records, one per line.
//!
//! - `M,ORIGIN,SENDER,DEST,TEXT`: a message from SENDER on node ORIGIN to DEST.
//! - `B,SENDER,DEST`: a bounce, back to the origin node: DEST was not there any more.
//!
//! Names hold no `,` and TEXT no newline, so the fields split without escaping.

use crate::parse::is_valid_name;

/// One record, borrowed from a channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Message {
        origin: &'a str,
        sender: &'a str,
        dest: &'a str,
        text: &'a str,
    },
    Bounce {
        sender: &'a str,
        dest: &'a str,
    },
}

/// Appends a message record.
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
            let (origin, sender, dest, text) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            Record::Message {
                origin,
                sender,
                dest,
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
            dest,
            ..
        } => !origin.is_empty() && is_valid_name(sender) && is_valid_name(dest),
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
        out.extend_from_slice(b"X,what\nM,n1,bad:name,bob,hi\n\xff\n");
        let records: Vec<_> = parse_records(&out).collect();
        assert_eq!(
            records[0],
            Ok(Record::Message {
                origin: "n1",
                sender: "alice smith",
                dest: "bob",
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
        assert!(records[2..].iter().all(Result::is_err));
        assert_eq!(records.len(), 5);
    }
}
