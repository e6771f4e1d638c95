//! Parsing of one framed line: the login name and `DESTS: TEXT` messages, borrowing the input.

use std::fmt;

/// The longest valid name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Why a line was refused. Each reason has the `error:` notice the sender is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineError {
    /// The line is not valid UTF-8 (it is dropped; the connection stays open).
    InvalidUtf8,
    /// The login line is not a valid name (the connection is closed).
    InvalidName,
    /// The name is held by a connected peer (the connection is closed).
    NameTaken,
    /// A non-empty message line has no `:` (the connection stays open).
    ExpectedDestMessage,
    /// The line exceeds `--max-line` (the connection is closed).
    LineTooLong,
}

impl LineError {
    /// Every reason, in a fixed order (the order of [`LineError::index`]).
    pub const ALL: [LineError; 5] = [
        LineError::InvalidUtf8,
        LineError::InvalidName,
        LineError::NameTaken,
        LineError::ExpectedDestMessage,
        LineError::LineTooLong,
    ];

    /// The notice line sent to the peer, with its `\n`.
    pub fn notice(self) -> &'static str {
        match self {
            LineError::InvalidUtf8 => "error: invalid utf-8\n",
            LineError::InvalidName => "error: invalid name\n",
            LineError::NameTaken => "error: name taken\n",
            LineError::ExpectedDestMessage => "error: expected 'dest: message'\n",
            LineError::LineTooLong => "error: line too long\n",
        }
    }

    /// Whether the connection is closed after the notice.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            LineError::InvalidName | LineError::NameTaken | LineError::LineTooLong
        )
    }

    /// The reason as a metric label: `invalid_utf8`, `invalid_name`, `name_taken`,
    /// `expected_dest_message`, `line_too_long`.
    pub fn metric_label(self) -> &'static str {
        match self {
            LineError::InvalidUtf8 => "invalid_utf8",
            LineError::InvalidName => "invalid_name",
            LineError::NameTaken => "name_taken",
            LineError::ExpectedDestMessage => "expected_dest_message",
            LineError::LineTooLong => "line_too_long",
        }
    }

    /// The position of this reason in [`LineError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let notice = self.notice();
        f.write_str(&notice["error: ".len()..notice.len() - 1])
    }
}

impl std::error::Error for LineError {}

/// Parses a login line: ASCII whitespace trimmed, 1 to 32 bytes, no `,`, `:`, and no character
/// that [`is_forbidden_in_name`] refuses.
pub fn parse_name(line: &[u8]) -> Result<&str, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::InvalidUtf8)?;
    let name = text.trim_ascii();
    if is_valid_name(name) {
        Ok(name)
    } else {
        Err(LineError::InvalidName)
    }
}

/// Whether `name` (already trimmed) may be a peer's name.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name == name.trim_ascii()
        && !name
            .chars()
            .any(|c| c == ',' || c == ':' || is_forbidden_in_name(c))
}

/// Whether `c` may not appear in a name because a screen shows it as nothing, so that a name
/// holding it could pass for another (`\u{200b}bob` for `bob`), as IRC servers and XMPP's
/// nameprep refuse them:
/// - control characters (Unicode category Cc);
/// - format characters (Cf: zero-width spaces and joiners, U+FEFF, bidirectional controls,
///   the soft hyphen, tag characters);
/// - line and paragraph separators (Zl, Zp);
/// - every space but the ASCII one (Zs: U+00A0, U+2000 to U+200A, U+3000, ...), which cannot
///   be told from a plain space, or from nothing at a name's end;
/// - the other code points Unicode calls default-ignorable (`Default_Ignorable_Code_Point`,
///   which a renderer shows as nothing): the Hangul fillers, variation selectors, the
///   combining grapheme joiner, Mongolian free variation selectors, and the unassigned ones
///   reserved as ignorable; and U+2800 BRAILLE PATTERN BLANK, which renders as a blank.
pub fn is_forbidden_in_name(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    match c.general_category() {
        GeneralCategory::Control
        | GeneralCategory::Format
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator
        | GeneralCategory::SpaceSeparator => true,
        _ => matches!(
            c,
            '\u{034f}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{2065}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fff8}'
                | '\u{e0000}'..='\u{e0fff}'
        ),
    }
}

/// A `DESTS: TEXT` line, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Everything before the first `:`, not yet split.
    dests: &'a str,
    /// Everything after the first `:`, trimmed.
    pub text: &'a str,
}

impl<'a> Message<'a> {
    /// The destinations in the order written: split at `,`, trimmed, empty ones skipped.
    /// Repeats are kept; the router sends to each distinct peer once.
    pub fn destinations(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.dests
            .split(',')
            .map(str::trim_ascii)
            .filter(|dest| !dest.is_empty())
    }
}

/// Parses a line sent after login. `Ok(None)` is a line that is empty after trimming (ignored).
pub fn parse_message(line: &[u8]) -> Result<Option<Message<'_>>, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::InvalidUtf8)?;
    if text.trim_ascii().is_empty() {
        return Ok(None);
    }
    let (dests, text) = text.split_once(':').ok_or(LineError::ExpectedDestMessage)?;
    Ok(Some(Message {
        dests,
        text: text.trim_ascii(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `#[test]` per row: `name: input => expected`.
    macro_rules! name_cases {
        ($($test:ident: $input:expr => $expected:expr;)*) => {$(
            #[test]
            fn $test() {
                assert_eq!(parse_name($input), $expected);
            }
        )*};
    }

    name_cases! {
        name_plain: b"alice" => Ok("alice");
        name_trimmed: b" \t alice \x0c" => Ok("alice");
        name_inner_space: b"alice smith" => Ok("alice smith");
        name_unicode: "zoë".as_bytes() => Ok("zoë");
        name_one_byte: b"a" => Ok("a");
        name_32_bytes: &[b'a'; 32] => Ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        name_33_bytes: &[b'a'; 33] => Err(LineError::InvalidName);
        name_32_bytes_of_multibyte: "éééééééééééééééé".as_bytes() => Ok("éééééééééééééééé");
        name_33_bytes_of_multibyte: "éééééééééééééééé!".as_bytes() => Err(LineError::InvalidName);
        name_empty: b"" => Err(LineError::InvalidName);
        name_only_spaces: b"   " => Err(LineError::InvalidName);
        name_comma: b"a,b" => Err(LineError::InvalidName);
        name_colon: b"a:b" => Err(LineError::InvalidName);
        name_tab_inside: b"a\tb" => Err(LineError::InvalidName);
        name_nul: b"a\0b" => Err(LineError::InvalidName);
        name_del: b"a\x7fb" => Err(LineError::InvalidName);
        name_c1_control: "a\u{85}b".as_bytes() => Err(LineError::InvalidName);
        name_bad_utf8: b"\xffalice" => Err(LineError::InvalidUtf8);
        name_byte_order_mark: "\u{feff}bob".as_bytes() => Err(LineError::InvalidName);
        name_zero_width_space: "\u{200b}bob".as_bytes() => Err(LineError::InvalidName);
        name_zero_width_joiner: "b\u{200d}ob".as_bytes() => Err(LineError::InvalidName);
        name_right_to_left_override: "\u{202e}bob".as_bytes() => Err(LineError::InvalidName);
        name_soft_hyphen: "bo\u{ad}b".as_bytes() => Err(LineError::InvalidName);
        name_tag_character: "bob\u{e0062}".as_bytes() => Err(LineError::InvalidName);
        name_line_separator: "bob\u{2028}".as_bytes() => Err(LineError::InvalidName);
        name_paragraph_separator: "bob\u{2029}".as_bytes() => Err(LineError::InvalidName);
        name_no_break_space: "bob\u{a0}".as_bytes() => Err(LineError::InvalidName);
        name_ideographic_space: "bob\u{3000}".as_bytes() => Err(LineError::InvalidName);
        name_hangul_filler: "\u{3164}".as_bytes() => Err(LineError::InvalidName);
        name_variation_selector: "bob\u{fe0f}".as_bytes() => Err(LineError::InvalidName);
        name_combining_grapheme_joiner: "bo\u{34f}b".as_bytes() => Err(LineError::InvalidName);
        name_braille_blank: "bob\u{2800}".as_bytes() => Err(LineError::InvalidName);
        name_combining_accent: "zoe\u{301}".as_bytes() => Ok("zoe\u{301}");
        name_cjk: "张伟".as_bytes() => Ok("张伟");
        name_emoji: "bob🙂".as_bytes() => Ok("bob🙂");
    }

    fn dests(line: &str) -> Vec<&str> {
        parse_message(line.as_bytes())
            .unwrap()
            .unwrap()
            .destinations()
            .collect()
    }

    #[test]
    fn message_splits_at_first_colon_and_trims() {
        let msg = parse_message(b" bob : hi: there ").unwrap().unwrap();
        assert_eq!(msg.text, "hi: there");
        assert_eq!(msg.destinations().collect::<Vec<_>>(), ["bob"]);
    }

    #[test]
    fn destinations_split_trim_and_skip_empty() {
        assert_eq!(dests("alice, bob ,, ,carol: x"), ["alice", "bob", "carol"]);
        assert_eq!(dests("bob, bob: x"), ["bob", "bob"]);
        assert!(dests(" , : x").is_empty());
    }

    #[test]
    fn empty_text_is_allowed() {
        assert_eq!(parse_message(b"bob:").unwrap().unwrap().text, "");
    }

    #[test]
    fn blank_lines_are_ignored() {
        assert_eq!(parse_message(b""), Ok(None));
        assert_eq!(parse_message(b" \t "), Ok(None));
    }

    #[test]
    fn line_without_colon_is_refused() {
        assert_eq!(parse_message(b"hello"), Err(LineError::ExpectedDestMessage));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(parse_message(b"bob: \xc3"), Err(LineError::InvalidUtf8));
    }

    #[test]
    fn notices_and_display() {
        assert_eq!(LineError::InvalidName.notice(), "error: invalid name\n");
        assert_eq!(
            LineError::ExpectedDestMessage.to_string(),
            "expected 'dest: message'"
        );
        for (i, reason) in LineError::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            assert!(reason.notice().starts_with("error: ") && reason.notice().ends_with('\n'));
        }
    }
}
