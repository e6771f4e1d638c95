//! What nodes send each other through their channels: records, one per line.
//!
//! A connection is named across the cluster by its node and its number there, CONN: decimal,
//! at most 20 digits (a `u64`), never reused for the node's life (the core numbers its
//! connections in order). What is addressed to a connection goes to that one or to nobody,
//! never to a later holder of its name (contract rule 6.9).
//!
//! - `R,CONNS`: the first line of what the route script publishes: per destination of the
//!   message records after it, in their order, the connection that held its name when the
//!   script ran (CONNs joined by `:`).
//! - `M,ORIGIN,CONN,SENDER,DESTS,TEXT`: a message from SENDER, connection CONN of node ORIGIN,
//!   to each of DESTS (names joined by `:`, in the order the line named them; one name may come
//!   twice, from two lines with the same text).
//! - `B,CONN,SENDER,DEST`: a bounce, back to the origin node: the connection a message to DEST
//!   was routed to was not there any more; the notice is for connection CONN (named SENDER)
//!   only.
//!
//! Names hold no `,` or `:`, CONNs are digits and TEXT has no newline, so the fields split
//! without escaping. A record whose fields do not parse (not from an a-chat node of this
//! version, or damaged) is refused, with the reason, and the others still come.

use crate::parse::is_valid_name;

/// One record, borrowed from a channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Message {
        origin: &'a str,
        sender: Sender<'a>,
        /// Names joined by `:`, each with its connection in `conns`: see [`dest_conns`].
        dests: &'a str,
        /// The route line's CONNs for these destinations, joined by `:` (each checked).
        conns: &'a str,
        text: &'a str,
    },
    Bounce {
        sender: Sender<'a>,
        dest: &'a str,
    },
}

/// The connection that sent a message: its number on its node, and its name then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sender<'a> {
    pub(crate) conn: u64,
    pub(crate) name: &'a str,
}

/// A line refused: the line, and why in a few words (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused<'a> {
    pub(crate) line: &'a [u8],
    pub(crate) why: &'static str,
}

/// The names of a message record's DESTS.
pub(crate) fn dest_names(dests: &str) -> impl Iterator<Item = &str> {
    dests.split(':')
}

/// A message record's destinations, each with the connection it was routed to.
pub(crate) fn dest_conns<'a>(
    dests: &'a str,
    conns: &'a str,
) -> impl Iterator<Item = (&'a str, u64)> {
    dest_names(dests).zip(conns.split(':').filter_map(parse_conn))
}

/// A CONN: 1 to 20 ASCII digits that fit a `u64` (no sign, no space).
pub(crate) fn parse_conn(field: &str) -> Option<u64> {
    if field.is_empty() || field.len() > 20 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// Appends a message record to one destination (more join it in
/// [`super::route_batch::RouteBatch::push`]); returns where the destination begins in `out`.
pub(crate) fn write_message(
    out: &mut Vec<u8>,
    origin: &str,
    sender: Sender<'_>,
    dest: &str,
    text: &str,
) -> usize {
    let conn = sender.conn.to_string();
    for part in [
        b"M,".as_slice(),
        origin.as_bytes(),
        b",",
        conn.as_bytes(),
        b",",
        sender.name.as_bytes(),
        b",",
    ] {
        out.extend_from_slice(part);
    }
    let dest_start = out.len();
    for part in [dest.as_bytes(), b",", text.as_bytes(), b"\n"] {
        out.extend_from_slice(part);
    }
    dest_start
}

/// Appends a bounce record.
pub(crate) fn write_bounce(out: &mut Vec<u8>, sender: Sender<'_>, dest: &str) {
    let conn = sender.conn.to_string();
    for part in [
        b"B,".as_slice(),
        conn.as_bytes(),
        b",",
        sender.name.as_bytes(),
        b",",
        dest.as_bytes(),
        b"\n",
    ] {
        out.extend_from_slice(part);
    }
}

/// The records of a channel message, in order; a line refused is an `Err`, and the others
/// still come. The route line is not a record: it gives the message records after it their
/// connections.
pub(crate) fn parse_records(payload: &[u8]) -> Records<'_> {
    Records {
        lines: payload.split(is_newline),
        conns: None,
    }
}

fn is_newline(b: &u8) -> bool {
    *b == b'\n'
}

/// The records of a channel message: see [`parse_records`].
pub(crate) struct Records<'a> {
    lines: std::slice::Split<'a, u8, fn(&u8) -> bool>,
    /// What the route line has left for the next message records, if there was one.
    conns: Option<&'a str>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Refused<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            if line.is_empty() {
                continue;
            }
            if let Some(conns) = line.strip_prefix(b"R,") {
                match std::str::from_utf8(conns) {
                    Ok(conns) => self.conns = Some(conns),
                    Err(_) => {
                        self.conns = None;
                        return Some(Err(Refused {
                            line,
                            why: "a route line that is not text",
                        }));
                    }
                }
                continue;
            }
            return Some(self.parse_record(line).map_err(|why| Refused { line, why }));
        }
    }
}

impl<'a> Records<'a> {
    fn parse_record(&mut self, line: &'a [u8]) -> Result<Record<'a>, &'static str> {
        let line = std::str::from_utf8(line).map_err(|_| "not text")?;
        let (kind, rest) = line.split_once(',').ok_or("not a record")?;
        match kind {
            "M" => {
                let mut fields = rest.splitn(5, ',');
                let mut field = || fields.next().ok_or("too few fields");
                let (origin, conn, name, dests, text) =
                    (field()?, field()?, field()?, field()?, field()?);
                let sender = sender(conn, name)?;
                if origin.is_empty() || !dest_names(dests).all(is_valid_name) {
                    return Err("a node or destination that is no name");
                }
                let count = dest_names(dests).count();
                let conns = take_conns(&mut self.conns, count)
                    .ok_or("more destinations than its route line names")?;
                if !conns.split(':').all(|conn| parse_conn(conn).is_some()) {
                    return Err("a destination's connection that is no number");
                }
                Ok(Record::Message {
                    origin,
                    sender,
                    dests,
                    conns,
                    text,
                })
            }
            "B" => {
                let mut fields = rest.splitn(3, ',');
                let mut field = || fields.next().ok_or("too few fields");
                let (conn, name, dest) = (field()?, field()?, field()?);
                let sender = sender(conn, name)?;
                if !is_valid_name(dest) {
                    return Err("a destination that is no name");
                }
                Ok(Record::Bounce { sender, dest })
            }
            _ => Err("an unknown kind of record"),
        }
    }
}

/// The sender of CONN,NAME, checked.
fn sender<'a>(conn: &str, name: &'a str) -> Result<Sender<'a>, &'static str> {
    let conn = parse_conn(conn).ok_or("a sender's connection that is no number")?;
    if !is_valid_name(name) {
        return Err("a sender that is no name");
    }
    Ok(Sender { conn, name })
}

/// The next `count` (at least one) CONNs of what the route line has left, joined by `:`;
/// `None` if it has fewer (then nothing is left of it).
fn take_conns<'a>(left: &mut Option<&'a str>, count: usize) -> Option<&'a str> {
    let all = left.take()?;
    let mut end = 0;
    for i in 0..count {
        let start = if i == 0 { 0 } else { end + 1 };
        if start > all.len() {
            return None;
        }
        end = all[start..].find(':').map_or(all.len(), |at| start + at);
    }
    *left = all.get(end + 1..);
    Some(&all[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Sender<'static> {
        Sender {
            conn: 7,
            name: "alice smith",
        }
    }

    #[test]
    fn records_round_trip_and_bad_lines_are_told_apart() {
        let mut out = b"R,4:18446744073709551615:5:6\n".to_vec();
        let at = write_message(&mut out, "n1", alice(), "bob", "a, b: c");
        assert_eq!(&out[at..at + 3], b"bob");
        write_bounce(&mut out, alice(), "ghost");
        out.extend_from_slice(b"M,n2,3,carol,bob:dave:bob,hi\n");
        out.extend_from_slice(b"X,what\nM,n1,1,bad:name,bob,hi\nM,n1,1,al,bob::dave,hi\n\xff\n");
        let records: Vec<_> = parse_records(&out).collect();
        assert_eq!(
            records[0],
            Ok(Record::Message {
                origin: "n1",
                sender: alice(),
                dests: "bob",
                conns: "4",
                text: "a, b: c"
            })
        );
        assert_eq!(
            records[1],
            Ok(Record::Bounce {
                sender: alice(),
                dest: "ghost"
            })
        );
        let Ok(Record::Message { dests, conns, .. }) = records[2] else {
            panic!("{:?}", records[2]);
        };
        assert_eq!(
            dest_conns(dests, conns).collect::<Vec<_>>(),
            [("bob", u64::MAX), ("dave", 5), ("bob", 6)]
        );
        assert!(records[3..].iter().all(Result::is_err));
        assert_eq!(records.len(), 7);
    }

    #[test]
    fn a_connection_that_is_no_number_is_refused_with_its_reason() {
        let why = |payload: &[u8]| -> Vec<Result<(), &'static str>> {
            parse_records(payload)
                .map(|record| record.map(|_| ()).map_err(|refused| refused.why))
                .collect()
        };
        // Too long for a u64, signed, empty, not digits: refused, nothing cut short.
        for conn in ["18446744073709551616", "+5", "-1", "", " 5", "5x", "0x10"] {
            let bounce = format!("B,{conn},alice,bob\n");
            assert_eq!(
                why(bounce.as_bytes()),
                [Err("a sender's connection that is no number")],
                "{conn:?}"
            );
            let message = format!("R,{conn}\nM,n1,1,alice,bob,hi\n");
            assert_eq!(
                why(message.as_bytes()),
                [Err("a destination's connection that is no number")],
                "{conn:?}"
            );
        }
        // A message without its route line, or with too short a one; the line is used up in
        // order, and what is left over of it is ignored.
        assert_eq!(
            why(b"M,n1,1,alice,bob,hi\n"),
            [Err("more destinations than its route line names")]
        );
        assert_eq!(
            why(b"R,1\nM,n1,1,alice,bob:carol,hi\nM,n1,1,alice,bob,hi\n"),
            [
                Err("more destinations than its route line names"),
                Err("more destinations than its route line names")
            ]
        );
        assert_eq!(
            why(b"R,1:2:3\nM,n1,1,alice,bob:carol,hi\nM,n1,1,alice,bob,hi\n"),
            [Ok(()), Ok(())]
        );
        assert_eq!(
            why(b"R,\nM,n1,1,alice,bob,hi\n"),
            [Err("a destination's connection that is no number")]
        );
        assert_eq!(why(b"R,\xff\n"), [Err("a route line that is not text")]);
    }

    #[test]
    fn conns_are_taken_in_order() {
        let mut left = Some("1:22:333");
        assert_eq!(take_conns(&mut left, 2), Some("1:22"));
        assert_eq!(left, Some("333"));
        assert_eq!(take_conns(&mut left, 1), Some("333"));
        assert_eq!(left, None);
        assert_eq!(take_conns(&mut left, 1), None);
        let mut left = Some("1:2");
        assert_eq!(take_conns(&mut left, 3), None);
        assert_eq!(left, None);
        let mut left = Some("");
        assert_eq!(take_conns(&mut left, 1), Some(""));
        assert_eq!(left, None);
        let mut left = Some("1:");
        assert_eq!(take_conns(&mut left, 1), Some("1"));
        assert_eq!(take_conns(&mut left, 1), Some(""));
    }
}
