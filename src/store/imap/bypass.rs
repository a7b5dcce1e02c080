//! Message bodies past the response parser.
//!
//! The sans-I/O client (imap-next, with imap-codec's fragmentizer) moves every byte it
//! receives through a byte queue one byte at a time; for a first download that was a third of
//! the CPU. Message bodies do not need parsing, so this filter, between the socket and the
//! client, takes the body literals of FETCH responses (`BODY[…] {n}`, `BODY[]<o> {n}`,
//! `RFC822 {n}`) out of the byte stream as they arrive, with one copy, and hands the client
//! a short stand-in literal (a token) in their place. When the client delivers the parsed
//! FETCH response, [`LiteralBypass::restore`] puts each body back where its token is.
//!
//! Everything else passes unchanged: lines, other literals (they are passed through, never
//! scanned for line ends), responses that are not FETCH. The filter holds back at most the
//! current unfinished line.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use imap_next::imap_types::core::{IString, Literal, NString, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::response::Data;

/// Literals shorter than this go through the parser: taking them out would save nothing.
const SMALLEST_BYPASSED: u64 = 512;
/// Tokens start with this (a control byte, then a name), then the connection's secret and
/// the body's number (16 hex digits each): a message cannot pose as a token.
const TOKEN_MAGIC: &[u8] = b"\x01mailsync-body-";
const TOKEN_LEN: usize = TOKEN_MAGIC.len() + 32;
/// A body's buffer is reserved up to this size at once; beyond, it grows as data arrives
/// (a server's announcement alone never makes us allocate much).
const MOST_RESERVED: u64 = 4 * 1024 * 1024;

/// Where the filter is in the byte stream.
#[derive(Debug)]
enum Position {
    /// In a line (or at the start of one).
    Line,
    /// In a literal that goes to the parser as it is.
    PassedLiteral { left: u64 },
    /// In a body literal taken out; the token is sent when it is complete.
    TakenLiteral { left: u64, body: Vec<u8> },
}

#[derive(Debug)]
pub struct LiteralBypass {
    position: Position,
    /// The current line's bytes not passed on yet.
    line: Vec<u8>,
    /// The current response is a FETCH (`* <n> FETCH`), seen at its first line.
    in_fetch: bool,
    /// The next fragment starts a new response (the previous one ended with a line end not
    /// announcing a literal).
    at_response_start: bool,
    /// A random number in every token of this connection.
    secret: u64,
    next_token: u64,
    /// Bodies taken out, by token number, until their response is restored.
    bodies: HashMap<u64, Vec<u8>>,
}

impl Default for LiteralBypass {
    fn default() -> Self {
        LiteralBypass {
            position: Position::Line,
            line: Vec::new(),
            in_fetch: false,
            at_response_start: true,
            secret: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            next_token: 0,
            bodies: HashMap::new(),
        }
    }
}

impl LiteralBypass {
    /// Filters bytes read from the server: appends to `out` what the parser is to get.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match &mut self.position {
                Position::PassedLiteral { left } => {
                    let take = chunk_len(*left, input.len());
                    out.extend_from_slice(&input[..take]);
                    *left -= take as u64;
                    input = &input[take..];
                    if *left == 0 {
                        self.position = Position::Line;
                    }
                }
                Position::TakenLiteral { left, body } => {
                    let take = chunk_len(*left, input.len());
                    body.extend_from_slice(&input[..take]);
                    *left -= take as u64;
                    input = &input[take..];
                    if *left == 0 {
                        let Position::TakenLiteral { body, .. } =
                            std::mem::replace(&mut self.position, Position::Line)
                        else {
                            unreachable!("matched above");
                        };
                        let number = self.next_token;
                        self.next_token += 1;
                        out.extend_from_slice(&self.token(number));
                        self.bodies.insert(number, body);
                    }
                }
                Position::Line => match memchr::memchr(b'\n', input) {
                    None => {
                        self.line.extend_from_slice(input);
                        input = &[];
                    }
                    Some(end) => {
                        self.line.extend_from_slice(&input[..=end]);
                        input = &input[end + 1..];
                        self.end_of_line(out);
                    }
                },
            }
        }
    }

    /// The held line is complete (it ends in LF): passes it on, with a body literal's
    /// announcement replaced by the token's.
    fn end_of_line(&mut self, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if self.at_response_start {
            self.in_fetch = is_fetch_response(&line);
        }
        match announcement(&line) {
            None => {
                self.at_response_start = true;
                out.extend_from_slice(&line);
            }
            Some(announced) => {
                self.at_response_start = false;
                if self.in_fetch
                    && announced.size >= SMALLEST_BYPASSED
                    && is_body_item(&line[..announced.start])
                {
                    out.extend_from_slice(&line[..announced.start]);
                    out.extend_from_slice(format!("{{{TOKEN_LEN}}}\r\n").as_bytes());
                    self.position = Position::TakenLiteral {
                        left: announced.size,
                        body: Vec::with_capacity(announced.size.min(MOST_RESERVED) as usize),
                    };
                } else {
                    out.extend_from_slice(&line);
                    if announced.size > 0 {
                        self.position = Position::PassedLiteral {
                            left: announced.size,
                        };
                    }
                }
            }
        }
        self.line = line;
        self.line.clear();
    }

    fn token(&self, number: u64) -> Vec<u8> {
        let mut bytes = TOKEN_MAGIC.to_vec();
        bytes.extend_from_slice(format!("{:016x}{number:016x}", self.secret).as_bytes());
        bytes
    }

    /// The body number in a token of this connection.
    fn token_number(&self, bytes: &[u8]) -> Option<u64> {
        if bytes.len() != TOKEN_LEN {
            return None;
        }
        let hex = std::str::from_utf8(bytes.strip_prefix(TOKEN_MAGIC)?).ok()?;
        let (secret, number) = hex.split_at(16);
        if u64::from_str_radix(secret, 16).ok()? != self.secret {
            return None;
        }
        u64::from_str_radix(number, 16).ok()
    }

    /// Puts the bodies taken out back into a parsed FETCH response. Fails (the connection
    /// cannot go on) if a body cannot be a literal, which the NUL replacement before this
    /// filter rules out.
    pub fn restore(&mut self, data: Data<'static>) -> Result<Data<'static>, String> {
        let Data::Fetch { seq, items } = data else {
            return Ok(data);
        };
        if self.bodies.is_empty() {
            return Ok(Data::Fetch { seq, items });
        }
        let mut items = items.into_inner();
        for item in &mut items {
            let data = match item {
                MessageDataItem::BodyExt { data, .. } | MessageDataItem::Rfc822(data) => data,
                _ => continue,
            };
            let Some(IString::Literal(literal)) = &data.0 else {
                continue;
            };
            let Some(number) = self.token_number(literal.as_ref()) else {
                continue;
            };
            let Some(body) = self.bodies.remove(&number) else {
                return Err(format!("message {seq}: its body was taken twice"));
            };
            let literal = Literal::try_from(body)
                .map_err(|error| format!("message {seq}: body not a literal: {error}"))?;
            *data = NString(Some(IString::Literal(literal)));
        }
        Vec1::try_from(items)
            .map(|items| Data::Fetch { seq, items })
            .map_err(|_| format!("message {seq}: no data items"))
    }
}

fn chunk_len(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

/// A literal announced at the end of a line: where `{` is, and the size.
pub(super) struct Announcement {
    pub start: usize,
    pub size: u64,
}

/// The literal a line (ending in LF) announces: `…{123}\r\n`, `{123+}`, `~{123}`.
pub(super) fn announcement(line: &[u8]) -> Option<Announcement> {
    let text = line.strip_suffix(b"\n")?;
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let inner = text.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(Announcement { start: open, size })
}

/// `* <number> FETCH …`
fn is_fetch_response(line: &[u8]) -> bool {
    let mut words = line.splitn(4, |b| *b == b' ');
    let (Some(star), Some(number), Some(name)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    star == b"*"
        && !number.is_empty()
        && number.iter().all(u8::is_ascii_digit)
        && name.eq_ignore_ascii_case(b"FETCH")
}

/// The text before a literal announcement names a body item: `BODY[…] `, `BODY[…]<o> `,
/// `RFC822 `.
fn is_body_item(before: &[u8]) -> bool {
    let Some(before) = before.strip_suffix(b" ") else {
        return false;
    };
    let before = match before.strip_suffix(b">") {
        Some(origin) => {
            let Some(open) = origin.iter().rposition(|b| *b == b'<') else {
                return false;
            };
            if !origin[open + 1..].iter().all(u8::is_ascii_digit) {
                return false;
            }
            &origin[..open]
        }
        None => before,
    };
    if ends_with_item_name(before, b"RFC822") {
        return true;
    }
    let Some(section) = before.strip_suffix(b"]") else {
        return false;
    };
    let Some(open) = section.iter().rposition(|b| *b == b'[') else {
        return false;
    };
    ends_with_item_name(&section[..open], b"BODY")
}

/// `text` ends with the item name `name` (any case), after a space or the opening `(`.
fn ends_with_item_name(text: &[u8], name: &[u8]) -> bool {
    text.len() > name.len()
        && text[text.len() - name.len()..].eq_ignore_ascii_case(name)
        && matches!(text[text.len() - name.len() - 1], b' ' | b'(')
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_next::imap_types::core::Vec1;
    use std::num::NonZeroU32;

    fn body(size: usize) -> Vec<u8> {
        (0..size).map(|i| b"abcdefghij\r\n"[i % 12]).collect()
    }

    /// Feeds `stream` cut at `cuts`, returns what the parser gets.
    fn feed_in_pieces(bypass: &mut LiteralBypass, stream: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            bypass.feed(&stream[start..cut], &mut out);
            start = cut;
        }
        out
    }

    fn fetch_stream(message: &[u8]) -> Vec<u8> {
        let mut stream = b"* OK [UNSEEN 4] x\r\n* 7 FETCH (UID 9 BODY[] {".to_vec();
        stream.extend_from_slice(format!("{}}}\r\n", message.len()).as_bytes());
        stream.extend_from_slice(message);
        stream.extend_from_slice(b" FLAGS (\\Seen))\r\n3 OK done\r\n");
        stream
    }

    #[test]
    fn a_body_is_replaced_by_a_token_and_restored_at_any_cut() {
        let message = body(2000);
        let stream = fetch_stream(&message);
        for cut in 0..stream.len() {
            let mut bypass = LiteralBypass::default();
            let out = feed_in_pieces(&mut bypass, &stream, &[cut]);
            let expected = format!(
                "* OK [UNSEEN 4] x\r\n* 7 FETCH (UID 9 BODY[] {{{TOKEN_LEN}}}\r\n{} FLAGS (\\Seen))\r\n3 OK done\r\n",
                String::from_utf8_lossy(&bypass.token(0))
            );
            assert_eq!(out, expected.as_bytes(), "cut at {cut}");
            let parsed = Data::Fetch {
                seq: NonZeroU32::new(7).unwrap(),
                items: Vec1::from(MessageDataItem::BodyExt {
                    section: None,
                    origin: None,
                    data: NString(Some(IString::Literal(
                        Literal::try_from(bypass.token(0)).unwrap(),
                    ))),
                }),
            };
            let Ok(Data::Fetch { items, .. }) = bypass.restore(parsed) else {
                panic!("not a fetch");
            };
            let MessageDataItem::BodyExt { data, .. } = &items.as_ref()[0] else {
                panic!("not a body");
            };
            let Some(IString::Literal(literal)) = &data.0 else {
                panic!("not a literal");
            };
            assert_eq!(literal.as_ref(), &message[..], "cut at {cut}");
            assert!(bypass.bodies.is_empty());
        }
    }

    #[test]
    fn a_stream_split_byte_by_byte_gives_the_same_output() {
        let message = body(700);
        let stream = fetch_stream(&message);
        let mut one = LiteralBypass::default();
        let whole = feed_in_pieces(&mut one, &stream, &[]);
        let mut other = LiteralBypass {
            secret: one.secret,
            ..LiteralBypass::default()
        };
        let cuts: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(feed_in_pieces(&mut other, &stream, &cuts), whole);
        assert_eq!(one.bodies, other.bodies);
    }

    #[test]
    fn other_literals_and_small_bodies_pass_unchanged() {
        let big_name = body(1000);
        let mut stream = b"* LIST () \"/\" {1000}\r\n".to_vec();
        stream.extend_from_slice(&big_name);
        stream.extend_from_slice(b"\r\n* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n");
        // A header item at the start of a FETCH (small) and a literal inside a literal-like
        // text that must not be read as a line.
        stream.extend_from_slice(b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (X-TUID)] {600}\r\n");
        let header = body(600);
        stream.extend_from_slice(&header);
        stream.extend_from_slice(b")\r\n");
        let mut bypass = LiteralBypass::default();
        let out = feed_in_pieces(&mut bypass, &stream, &[10, 30, 1030]);
        let mut expected = b"* LIST () \"/\" {1000}\r\n".to_vec();
        expected.extend_from_slice(&big_name);
        expected.extend_from_slice(b"\r\n* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n");
        expected.extend_from_slice(
            format!("* 2 FETCH (UID 2 BODY[HEADER.FIELDS (X-TUID)] {{{TOKEN_LEN}}}\r\n").as_bytes(),
        );
        expected.extend_from_slice(&bypass.token(0));
        expected.extend_from_slice(b")\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn a_literal_whose_bytes_look_like_an_announcement_is_not_read_as_lines() {
        // The passed literal (a LIST name) contains "{9999}\r\n": not an announcement.
        let mut stream = b"* LIST () \"/\" {10}\r\nab{9999}\r\n\r\n".to_vec();
        stream.extend_from_slice(b"* 3 FETCH (BODY[]<0> {600}\r\n");
        stream.extend_from_slice(&body(600));
        stream.extend_from_slice(b" UID 3)\r\n");
        let mut bypass = LiteralBypass::default();
        let out = feed_in_pieces(&mut bypass, &stream, &[]);
        assert!(
            out.ends_with(
                format!(
                    "{{{TOKEN_LEN}}}\r\n{} UID 3)\r\n",
                    String::from_utf8_lossy(&bypass.token(0))
                )
                .as_bytes()
            ),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(bypass.bodies[&0], body(600));
    }

    #[test]
    fn body_items_are_recognised() {
        assert!(is_body_item(b"* 1 FETCH (UID 5 BODY[] "));
        assert!(is_body_item(b" BODY[]<1048576> "));
        assert!(is_body_item(b"* 1 FETCH (RFC822 "));
        assert!(is_body_item(b"(body[text] "));
        assert!(!is_body_item(b"* LIST () \"/\" "));
        assert!(!is_body_item(b"* 1 FETCH (UID 5 BODY[]"));
        assert!(!is_body_item(b"* 1 FETCH (UID 5 RFC822.HEADER "));
        assert!(!is_body_item(b"]"));
        assert!(!is_body_item(b"XBODY[] "));
        assert!(!is_body_item(b"(NOTRFC822 "));
        assert!(is_fetch_response(b"* 12 FETCH (UID 1)\r\n"));
        assert!(is_fetch_response(b"* 12 fetch (UID 1)\r\n"));
        assert!(!is_fetch_response(b"* OK FETCH\r\n"));
        assert!(!is_fetch_response(b"1 FETCH (UID 1)\r\n"));
    }

    fn fetch_of(literal: Vec<u8>) -> Data<'static> {
        Data::Fetch {
            seq: NonZeroU32::new(1).unwrap(),
            items: Vec1::from(MessageDataItem::BodyExt {
                section: None,
                origin: None,
                data: NString(Some(IString::Literal(Literal::try_from(literal).unwrap()))),
            }),
        }
    }

    #[test]
    fn a_message_posing_as_a_token_is_left_as_it_is() {
        let mut bypass = LiteralBypass::default();
        bypass.bodies.insert(4, b"x".repeat(600));
        // A token of another connection: the secret differs.
        let posing = LiteralBypass::default().token(4);
        assert_ne!(posing, bypass.token(4));
        let Ok(Data::Fetch { items, .. }) = bypass.restore(fetch_of(posing.clone())) else {
            panic!("not a fetch");
        };
        let MessageDataItem::BodyExt { data, .. } = &items.as_ref()[0] else {
            panic!("not a body");
        };
        let Some(IString::Literal(literal)) = &data.0 else {
            panic!("not a literal");
        };
        assert_eq!(literal.as_ref(), &posing[..]);
        assert_eq!(bypass.bodies.len(), 1);
    }

    #[test]
    fn a_token_without_its_body_is_an_error() {
        let mut bypass = LiteralBypass::default();
        bypass.bodies.insert(5, b"x".repeat(600));
        let error = bypass.restore(fetch_of(bypass.token(4))).unwrap_err();
        assert!(error.contains("message 1"), "{error}");
    }
}
