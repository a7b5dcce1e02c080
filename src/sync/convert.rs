//! What a copied message looks like in its target (spec sync-semantics §4.10.1): the
//! `X-TUID` header, line-end conversion between LF and CRLF stores, and the placeholder that
//! stands in for a message over the target's MaxSize. Also the generation of TUIDs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use crate::store::Tuid;

/// The 64 characters a TUID is made of; each character carries 6 random bits.
const TUID_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A fresh temporary UID: 12 characters from `A-Z a-z 0-9 + /`, drawn from the operating
/// system's random source.
pub fn new_tuid() -> Tuid {
    let mut random = [0u8; 12];
    if !fill_from_os(&mut random) {
        fill_from_hasher(&mut random);
    }
    random.map(|byte| TUID_ALPHABET[usize::from(byte & 63)])
}

/// Fills `buf` from `getrandom(2)`, falling back to `/dev/urandom`.
fn fill_from_os(buf: &mut [u8; 12]) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: the pointer and length describe `buf`, which is valid for writes.
        let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if usize::try_from(got).is_ok_and(|n| n == buf.len()) {
            return true;
        }
    }
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(buf))
        .is_ok()
}

/// Last resort when no OS random source answers: the standard library's randomly keyed
/// hasher over a counter and the clock.
fn fill_from_hasher(buf: &mut [u8; 12]) {
    let keys = RandomState::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for (round, chunk) in buf.chunks_mut(8).enumerate() {
        let mut hasher = keys.build_hasher();
        hasher.write_u128(now);
        hasher.write_usize(round);
        hasher.write_u32(std::process::id());
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// The size as shown in a placeholder's body: whole KiB below 1024000 bytes, else MiB with
/// one decimal rounded to nearest (ties to even, like C's `printf`).
pub fn placeholder_size_text(size: u64) -> String {
    if size < 1_024_000 {
        return format!("{}KiB", size / 1024);
    }
    const MIB: u128 = 1_048_576;
    let scaled = u128::from(size) * 10;
    let mut tenths = scaled / MIB;
    let remainder = scaled % MIB;
    if remainder * 2 > MIB || (remainder * 2 == MIB && tenths % 2 == 1) {
        tenths += 1;
    }
    format!("{}.{}MiB", tenths / 10, tenths % 10)
}

/// One header line of the source: where it starts, where its content ends (before `\r\n` or
/// `\n`), and where the next line starts.
struct HeaderLine {
    start: usize,
    content_end: usize,
    end: usize,
}

/// What the header scan found.
struct HeaderScan {
    lines: Vec<HeaderLine>,
    /// Start of the empty line that ends the header, if there is one.
    empty_line: Option<usize>,
    /// End of the header area: the empty line's start, or the end of the data.
    header_end: usize,
    /// Some complete header line ends in CRLF.
    has_crlf_line: bool,
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn scan_header(data: &[u8]) -> HeaderScan {
    let mut lines = Vec::new();
    let mut has_crlf_line = false;
    let mut pos = 0;
    while pos < data.len() {
        let (content_end, end) = match data[pos..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let newline = pos + offset;
                if newline > pos && data[newline - 1] == b'\r' {
                    (newline - 1, newline + 1)
                } else {
                    (newline, newline + 1)
                }
            }
            None => (data.len(), data.len()),
        };
        let complete = end > content_end;
        if complete && content_end == pos {
            return HeaderScan {
                lines,
                empty_line: Some(pos),
                header_end: pos,
                has_crlf_line,
            };
        }
        if complete && end - content_end == 2 {
            has_crlf_line = true;
        }
        lines.push(HeaderLine {
            start: pos,
            content_end,
            end,
        });
        pos = end;
    }
    HeaderScan {
        lines,
        empty_line: None,
        header_end: data.len(),
        has_crlf_line,
    }
}

/// Builds the converted message: copies source ranges with line-end conversion and inserts
/// generated text as is.
struct Output<'a> {
    source: &'a [u8],
    source_crlf: bool,
    target_crlf: bool,
    out: Vec<u8>,
}

impl Output<'_> {
    fn copy(&mut self, from: usize, to: usize) {
        let segment = &self.source[from..to];
        match (self.source_crlf, self.target_crlf) {
            (false, true) => {
                for (offset, &byte) in segment.iter().enumerate() {
                    let index = from + offset;
                    if byte == b'\n' && (index == 0 || self.source[index - 1] != b'\r') {
                        self.out.push(b'\r');
                    }
                    self.out.push(byte);
                }
            }
            (true, false) => {
                for (offset, &byte) in segment.iter().enumerate() {
                    let index = from + offset;
                    if byte == b'\r' && self.source.get(index + 1) == Some(&b'\n') {
                        continue;
                    }
                    self.out.push(byte);
                }
            }
            _ => self.out.extend_from_slice(segment),
        }
    }

    fn insert(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
    }
}

/// Converts only the line ends of a message (LF store ↔ CRLF-capable store), as for a remote
/// trash copy (spec §4.9): no X-TUID, nothing else changes.
pub fn convert_line_ends(data: &[u8], source_crlf: bool, target_crlf: bool) -> Vec<u8> {
    let mut output = Output {
        source: data,
        source_crlf,
        target_crlf,
        out: Vec::with_capacity(data.len()),
    };
    output.copy(0, data.len());
    output.out
}

/// Converts a message for storing into the target (spec §4.10.1): the `X-TUID` header is
/// replaced or inserted, line ends are converted between LF and CRLF stores, and with
/// `placeholder_of_size` (the source's size) the placeholder for an over-sized message is
/// produced instead of the full copy.
pub fn convert_message(
    source: &[u8],
    source_crlf: bool,
    target_crlf: bool,
    tuid: &Tuid,
    placeholder_of_size: Option<u64>,
) -> Vec<u8> {
    let scan = scan_header(source);
    let newline: &[u8] = if target_crlf
        && (!source_crlf || scan.has_crlf_line || !scan.lines.iter().any(|l| l.end > l.content_end))
    {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut tuid_line = b"X-TUID: ".to_vec();
    tuid_line.extend_from_slice(tuid);
    let existing_tuid = scan
        .lines
        .iter()
        .find(|line| starts_with_ignore_case(&source[line.start..], b"X-TUID: "));
    let last_line_incomplete = scan.empty_line.is_none()
        && scan
            .lines
            .last()
            .is_some_and(|line| line.end == line.content_end);
    let mut output = Output {
        source,
        source_crlf,
        target_crlf,
        out: Vec::with_capacity(source.len() + 64),
    };

    let Some(size) = placeholder_of_size else {
        match existing_tuid {
            Some(line) => {
                output.copy(0, line.start);
                output.insert(&tuid_line);
                output.copy(line.content_end, source.len());
            }
            None => {
                output.copy(0, scan.header_end);
                if last_line_incomplete {
                    output.insert(newline);
                }
                output.insert(&tuid_line);
                output.insert(newline);
                output.copy(scan.header_end, source.len());
            }
        }
        return output.out;
    };

    // Placeholder: the header with its edits, then the fixed body.
    let subject_insert = scan.lines.iter().find_map(|line| {
        let text = &source[line.start..line.content_end];
        starts_with_ignore_case(text, b"Subject:").then(|| {
            let after_colon = line.start + b"Subject:".len();
            if source.get(after_colon) == Some(&b' ') && after_colon < line.content_end {
                after_colon + 1
            } else {
                after_colon
            }
        })
    });
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    if let Some(line) = existing_tuid {
        edits.push((line.start, line.content_end, tuid_line.clone()));
    }
    if let Some(at) = subject_insert {
        edits.push((at, at, b"[placeholder] ".to_vec()));
    }
    edits.sort_by_key(|edit| edit.0);
    let mut pos = 0;
    for (from, to, text) in edits {
        output.copy(pos, from);
        output.insert(&text);
        pos = to;
    }
    output.copy(pos, scan.header_end);

    let mut appended: Vec<Vec<u8>> = Vec::new();
    if existing_tuid.is_none() {
        appended.push(tuid_line);
    }
    if subject_insert.is_none() {
        appended.push(b"Subject: [placeholder] (No Subject)".to_vec());
    }
    if last_line_incomplete {
        output.insert(newline);
    }
    for line in appended {
        output.insert(&line);
        output.insert(newline);
    }
    match scan.empty_line {
        Some(start) => {
            let end = source[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(source.len(), |offset| start + offset + 1);
            output.copy(start, end);
        }
        None => output.insert(newline),
    }
    let size_text = placeholder_size_text(size);
    output.insert(
        format!("Having a size of {size_text}, this message is over the MaxSize limit.").as_bytes(),
    );
    output.insert(newline);
    output.insert(b"Flag it and sync again (Sync mode Upgrade) to fetch its real contents.");
    output.insert(newline);
    output.out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUID: &Tuid = b"Abc+/0123xyz";

    fn full(source: &str) -> String {
        String::from_utf8(convert_message(source.as_bytes(), false, false, TUID, None)).unwrap()
    }

    fn placeholder(source: &str, size: u64) -> String {
        String::from_utf8(convert_message(
            source.as_bytes(),
            false,
            false,
            TUID,
            Some(size),
        ))
        .unwrap()
    }

    #[test]
    fn tuids_use_the_alphabet_and_differ() {
        let first = new_tuid();
        let second = new_tuid();
        assert!(first.iter().all(|c| TUID_ALPHABET.contains(c)));
        assert!(second.iter().all(|c| TUID_ALPHABET.contains(c)));
        assert_ne!(first, second);
        let mut fallback = [0u8; 12];
        fill_from_hasher(&mut fallback);
        assert_ne!(fallback, [0u8; 12]);
    }

    #[test]
    fn size_texts() {
        assert_eq!(placeholder_size_text(2932), "2KiB");
        assert_eq!(placeholder_size_text(142052), "138KiB");
        assert_eq!(placeholder_size_text(1023), "0KiB");
        assert_eq!(placeholder_size_text(1_023_999), "999KiB");
        assert_eq!(placeholder_size_text(1_024_000), "1.0MiB");
        assert_eq!(placeholder_size_text(1_572_864), "1.5MiB");
        // 1.25 MiB exactly: ties go to even, as printf does.
        assert_eq!(placeholder_size_text(1_310_720), "1.2MiB");
        assert_eq!(placeholder_size_text(1_415_578), "1.4MiB");
        assert_eq!(placeholder_size_text(10 * 1_048_576 - 1), "10.0MiB");
    }

    #[test]
    fn full_copy_inserts_tuid_before_empty_line() {
        let source = "From: sender@example.org\nTo: rcpt@example.org\nSubject: c\nMessage-ID: <c@example.org>\n\nBody of c\n";
        assert_eq!(
            full(source),
            "From: sender@example.org\nTo: rcpt@example.org\nSubject: c\nMessage-ID: <c@example.org>\nX-TUID: Abc+/0123xyz\n\nBody of c\n"
        );
    }

    #[test]
    fn full_copy_replaces_existing_tuid_in_place() {
        let source =
            "From: a\nx-tuid: AAAAAAAAAAAA\nSubject: s\nX-TUID: BBBBBBBBBBBB\n\nX-TUID: body\n";
        assert_eq!(
            full(source),
            "From: a\nX-TUID: Abc+/0123xyz\nSubject: s\nX-TUID: BBBBBBBBBBBB\n\nX-TUID: body\n"
        );
        // `X-TUID:` without the space is not the header.
        assert_eq!(
            full("X-TUID:old\n\nb\n"),
            "X-TUID:old\nX-TUID: Abc+/0123xyz\n\nb\n"
        );
    }

    #[test]
    fn full_copy_without_empty_line() {
        assert_eq!(
            full("From: a\nTo: b\n"),
            "From: a\nTo: b\nX-TUID: Abc+/0123xyz\n"
        );
        assert_eq!(
            full("From: a\nTo: b"),
            "From: a\nTo: b\nX-TUID: Abc+/0123xyz\n"
        );
        assert_eq!(full(""), "X-TUID: Abc+/0123xyz\n");
    }

    #[test]
    fn empty_line_may_be_a_lone_cr() {
        assert_eq!(
            full("From: a\n\r\nbody\n"),
            "From: a\nX-TUID: Abc+/0123xyz\n\r\nbody\n"
        );
    }

    #[test]
    fn maildir_to_maildir_keeps_crlf_and_inserts_lf() {
        let source = b"From: a\r\nSubject: s\r\n\r\nbody\r\n";
        assert_eq!(
            convert_message(source, false, false, TUID, None),
            b"From: a\r\nSubject: s\r\nX-TUID: Abc+/0123xyz\n\r\nbody\r\n"
        );
    }

    #[test]
    fn lf_to_crlf_target() {
        let source = b"From: a\nSubject: s\r\n\nbody\nline\n";
        assert_eq!(
            convert_message(source, false, true, TUID, None),
            b"From: a\r\nSubject: s\r\nX-TUID: Abc+/0123xyz\r\n\r\nbody\r\nline\r\n"
        );
    }

    #[test]
    fn crlf_to_lf_target() {
        let source = b"From: a\r\nSubject: s\r\n\r\nbody\r\nbare\rcr\r\n";
        assert_eq!(
            convert_message(source, true, false, TUID, None),
            b"From: a\nSubject: s\nX-TUID: Abc+/0123xyz\n\nbody\nbare\rcr\n"
        );
    }

    #[test]
    fn line_ends_only() {
        let data = b"A: 1\nB: 2\r\n\nbody\rx\n";
        assert_eq!(convert_line_ends(data, false, false), data);
        assert_eq!(convert_line_ends(data, true, true), data);
        assert_eq!(
            convert_line_ends(data, false, true),
            b"A: 1\r\nB: 2\r\n\r\nbody\rx\r\n"
        );
        assert_eq!(
            convert_line_ends(data, true, false),
            b"A: 1\nB: 2\n\nbody\rx\n"
        );
    }

    #[test]
    fn crlf_to_crlf_terminator_follows_header() {
        // A header with CRLF lines: inserted lines use CRLF.
        assert_eq!(
            convert_message(b"A: 1\r\n\r\nb\n", true, true, TUID, None),
            b"A: 1\r\nX-TUID: Abc+/0123xyz\r\n\r\nb\n"
        );
        // A header with LF lines only: LF.
        assert_eq!(
            convert_message(b"A: 1\n\nb\r\n", true, true, TUID, None),
            b"A: 1\nX-TUID: Abc+/0123xyz\n\nb\r\n"
        );
        // No complete header line: CRLF.
        assert_eq!(
            convert_message(b"A: 1", true, true, TUID, None),
            b"A: 1\r\nX-TUID: Abc+/0123xyz\r\n"
        );
    }

    /// Example 5, message big1 (2932 bytes, flagged): byte for byte.
    #[test]
    fn example_5_placeholder_with_subject() {
        let mut source = String::from(
            "From: sender@example.org\nTo: rcpt@example.org\nSubject: big1\nMessage-ID: <big1@example.org>\n\n",
        );
        for _ in 0..40 {
            source.push_str(&"x".repeat(70));
            source.push('\n');
        }
        assert_eq!(source.len(), 2932);
        assert_eq!(
            placeholder(&source, source.len() as u64),
            "From: sender@example.org\nTo: rcpt@example.org\nSubject: [placeholder] big1\nMessage-ID: <big1@example.org>\nX-TUID: Abc+/0123xyz\n\nHaving a size of 2KiB, this message is over the MaxSize limit.\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\n"
        );
    }

    /// Example 5, message big2 (142052 bytes, no Subject): byte for byte.
    #[test]
    fn example_5_placeholder_without_subject() {
        let mut source = String::from("From: a@example.org\nMessage-ID: <big2@example.org>\n\n");
        for _ in 0..2000 {
            source.push_str(&"x".repeat(70));
            source.push('\n');
        }
        assert_eq!(source.len(), 142052);
        assert_eq!(
            placeholder(&source, source.len() as u64),
            "From: a@example.org\nMessage-ID: <big2@example.org>\nX-TUID: Abc+/0123xyz\nSubject: [placeholder] (No Subject)\n\nHaving a size of 138KiB, this message is over the MaxSize limit.\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\n"
        );
    }

    #[test]
    fn placeholder_subject_forms() {
        let body = "Having a size of 1.0MiB, this message is over the MaxSize limit.\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\n";
        assert_eq!(
            placeholder("subject:x\nX-Tuid: old\n\nbody\n", 1_024_000),
            format!("subject:[placeholder] x\nX-TUID: Abc+/0123xyz\n\n{body}")
        );
        // Only the first Subject line; one space skipped.
        assert_eq!(
            placeholder("Subject:  two\nSubject: again\n\n", 1_024_000),
            format!("Subject: [placeholder]  two\nSubject: again\nX-TUID: Abc+/0123xyz\n\n{body}")
        );
    }

    #[test]
    fn placeholder_of_unterminated_header() {
        let body = "Having a size of 0KiB, this message is over the MaxSize limit.\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\n";
        assert_eq!(
            placeholder("From: a\nSubject: s", 10),
            format!("From: a\nSubject: [placeholder] s\nX-TUID: Abc+/0123xyz\n\n{body}")
        );
        assert_eq!(
            placeholder("From: a\n", 10),
            format!("From: a\nX-TUID: Abc+/0123xyz\nSubject: [placeholder] (No Subject)\n\n{body}")
        );
        // The X-TUID replaced on an incomplete last line still gets its newline.
        assert_eq!(
            placeholder("Subject: s\nX-TUID: old", 10),
            format!("Subject: [placeholder] s\nX-TUID: Abc+/0123xyz\n\n{body}")
        );
    }

    #[test]
    fn placeholder_for_crlf_target() {
        let converted = convert_message(b"Subject: s\n\nbody\n", false, true, TUID, Some(5000));
        assert_eq!(
            converted,
            b"Subject: [placeholder] s\r\nX-TUID: Abc+/0123xyz\r\n\r\nHaving a size of 4KiB, this message is over the MaxSize limit.\r\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\r\n"
        );
    }
}
