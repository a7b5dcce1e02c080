//! What a copied message looks like in its target (spec sync-semantics §4.10.1): the
//! `X-TUID` header, line-end conversion between LF and CRLF stores, and the placeholder that
//! stands in for a message over the target's MaxSize. Also the generation of TUIDs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use crate::store::body::READ_CHUNK;
use crate::store::{BodySource, MessageBody, MessageData, Tuid};

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

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// What the header scan found; positions are byte offsets into the source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct HeaderScan {
    /// The first `X-TUID: ` line: its start and the end of its content.
    existing_tuid: Option<(u64, u64)>,
    /// Where `[placeholder] ` goes into the first `Subject:` line.
    subject_insert: Option<u64>,
    /// The empty line that ends the header: its start and the start of what follows it.
    empty_line: Option<(u64, u64)>,
    /// End of the header area: the empty line's start, or the end of the data.
    header_end: u64,
    /// Some complete header line ends in CRLF.
    has_crlf_line: bool,
    /// Some header line is complete (ends in a newline).
    any_complete_line: bool,
    /// There is no empty line and the last header line has no newline.
    last_line_incomplete: bool,
}

/// Scans a message's header as the source comes in, a chunk at a time (chunks may split a
/// line anywhere, also between CR and LF); it keeps only the state of the current line.
struct HeaderScanner {
    scan: HeaderScan,
    /// Offset of the next byte.
    pos: u64,
    /// Start of the current line.
    line_start: u64,
    /// The first bytes of the current line (enough for `Subject: ` and `X-TUID: `).
    prefix: Vec<u8>,
    /// The byte before `pos`.
    prev: Option<u8>,
    done: bool,
}

const LINE_PREFIX: usize = 9;

impl HeaderScanner {
    fn new() -> HeaderScanner {
        HeaderScanner {
            scan: HeaderScan::default(),
            pos: 0,
            line_start: 0,
            prefix: Vec::with_capacity(LINE_PREFIX),
            prev: None,
            done: false,
        }
    }

    /// Feeds the next bytes; true once the header's end was found (more input is ignored).
    fn feed(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            if self.done {
                break;
            }
            if byte == b'\n' {
                let newline = self.pos;
                let content_end = if newline > self.line_start && self.prev == Some(b'\r') {
                    newline - 1
                } else {
                    newline
                };
                if content_end == self.line_start {
                    self.scan.empty_line = Some((self.line_start, newline + 1));
                    self.scan.header_end = self.line_start;
                    self.done = true;
                } else {
                    if newline - content_end == 1 {
                        self.scan.has_crlf_line = true;
                    }
                    self.scan.any_complete_line = true;
                    self.end_line(content_end);
                    self.line_start = newline + 1;
                    self.prefix.clear();
                }
            } else if self.prefix.len() < LINE_PREFIX {
                self.prefix.push(byte);
            }
            self.prev = Some(byte);
            self.pos += 1;
        }
        self.done
    }

    /// Notes what a finished header line (content up to `content_end`) holds.
    fn end_line(&mut self, content_end: u64) {
        let start = self.line_start;
        if self.scan.existing_tuid.is_none() && starts_with_ignore_case(&self.prefix, b"X-TUID: ") {
            self.scan.existing_tuid = Some((start, content_end));
        }
        if self.scan.subject_insert.is_none()
            && content_end - start >= 8
            && starts_with_ignore_case(&self.prefix, b"Subject:")
        {
            let after_colon = start + 8;
            let space = self.prefix.get(8) == Some(&b' ') && after_colon < content_end;
            self.scan.subject_insert = Some(after_colon + u64::from(space));
        }
    }

    /// The scan of the whole header (at the end of the data if no empty line was found).
    fn finish(mut self) -> HeaderScan {
        if !self.done {
            if self.pos > self.line_start {
                self.scan.last_line_incomplete = true;
                self.end_line(self.pos);
            }
            self.scan.header_end = self.pos;
        }
        self.scan
    }
}

fn scan_header(data: &[u8]) -> HeaderScan {
    let mut scanner = HeaderScanner::new();
    scanner.feed(data);
    scanner.finish()
}

/// One change of the copy: at source offset `at`, `text` is inserted and the source up to
/// `skip_to` is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Edit {
    at: u64,
    skip_to: u64,
    text: Vec<u8>,
}

/// How a message is turned into its copy: line-end conversion plus edits at source offsets.
/// Made from the header alone, so the body can then stream through a [`Converter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    source_crlf: bool,
    target_crlf: bool,
    /// In ascending order of `at` (edits at one offset apply in list order).
    edits: Vec<Edit>,
}

impl Conversion {
    /// Line ends only (remote trash copies, spec §4.9).
    pub fn line_ends(source_crlf: bool, target_crlf: bool) -> Conversion {
        Conversion {
            source_crlf,
            target_crlf,
            edits: Vec::new(),
        }
    }

    /// Nothing changes.
    pub fn is_identity(&self) -> bool {
        self.edits.is_empty() && self.source_crlf == self.target_crlf
    }

    /// The copy of a message (spec §4.10.1) whose header `scan` describes.
    fn for_message(
        scan: &HeaderScan,
        source_crlf: bool,
        target_crlf: bool,
        tuid: &Tuid,
        placeholder_of_size: Option<u64>,
    ) -> Conversion {
        let newline: &[u8] =
            if target_crlf && (!source_crlf || scan.has_crlf_line || !scan.any_complete_line) {
                b"\r\n"
            } else {
                b"\n"
            };
        let mut tuid_line = b"X-TUID: ".to_vec();
        tuid_line.extend_from_slice(tuid);
        let mut edits = Vec::new();
        let Some(size) = placeholder_of_size else {
            match scan.existing_tuid {
                Some((start, content_end)) => edits.push(Edit {
                    at: start,
                    skip_to: content_end,
                    text: tuid_line,
                }),
                None => {
                    let mut text = Vec::new();
                    if scan.last_line_incomplete {
                        text.extend_from_slice(newline);
                    }
                    text.extend_from_slice(&tuid_line);
                    text.extend_from_slice(newline);
                    edits.push(Edit {
                        at: scan.header_end,
                        skip_to: scan.header_end,
                        text,
                    });
                }
            }
            return Conversion {
                source_crlf,
                target_crlf,
                edits,
            };
        };

        // Placeholder: the header with its edits, then the fixed body.
        if let Some((start, content_end)) = scan.existing_tuid {
            edits.push(Edit {
                at: start,
                skip_to: content_end,
                text: tuid_line.clone(),
            });
        }
        if let Some(at) = scan.subject_insert {
            edits.push(Edit {
                at,
                skip_to: at,
                text: b"[placeholder] ".to_vec(),
            });
        }
        edits.sort_by_key(|edit| edit.at);
        let mut appended = Vec::new();
        if scan.last_line_incomplete {
            appended.extend_from_slice(newline);
        }
        if scan.existing_tuid.is_none() {
            appended.extend_from_slice(&tuid_line);
            appended.extend_from_slice(newline);
        }
        if scan.subject_insert.is_none() {
            appended.extend_from_slice(b"Subject: [placeholder] (No Subject)");
            appended.extend_from_slice(newline);
        }
        let mut body = Vec::new();
        let size_text = placeholder_size_text(size);
        body.extend_from_slice(
            format!("Having a size of {size_text}, this message is over the MaxSize limit.")
                .as_bytes(),
        );
        body.extend_from_slice(newline);
        body.extend_from_slice(
            b"Flag it and sync again (Sync mode Upgrade) to fetch its real contents.",
        );
        body.extend_from_slice(newline);
        match scan.empty_line {
            // The empty line is copied (converted) between the header and the body text.
            Some((_, after)) => {
                edits.push(Edit {
                    at: scan.header_end,
                    skip_to: scan.header_end,
                    text: appended,
                });
                edits.push(Edit {
                    at: after,
                    skip_to: u64::MAX,
                    text: body,
                });
            }
            None => {
                appended.extend_from_slice(newline);
                appended.extend_from_slice(&body);
                edits.push(Edit {
                    at: scan.header_end,
                    skip_to: u64::MAX,
                    text: appended,
                });
            }
        }
        Conversion {
            source_crlf,
            target_crlf,
            edits,
        }
    }
}

/// Applies a [`Conversion`] to the source as it comes in, a chunk at a time; the output does
/// not depend on where the chunks split the source. Line ends are decided on the source's
/// bytes: LF gains a CR unless the source byte before it is CR; CR is dropped when the source
/// byte after it is LF (the decision waits for the next chunk if need be).
pub struct Converter<'a> {
    conversion: &'a Conversion,
    /// Offset of the next source byte.
    pos: u64,
    /// The source byte before `pos`.
    prev: Option<u8>,
    /// A CR is held back until the next source byte shows whether an LF follows.
    pending_cr: bool,
    /// Inserted text that goes after the held-back CR.
    deferred: Vec<u8>,
    /// The next edit to apply.
    next_edit: usize,
    /// Source bytes before this offset are left out.
    skip_to: u64,
}

impl<'a> Converter<'a> {
    pub fn new(conversion: &'a Conversion) -> Converter<'a> {
        Converter {
            conversion,
            pos: 0,
            prev: None,
            pending_cr: false,
            deferred: Vec::new(),
            next_edit: 0,
            skip_to: 0,
        }
    }

    fn insert(&mut self, text: &[u8], out: &mut Vec<u8>) {
        if self.pending_cr {
            self.deferred.extend_from_slice(text);
        } else {
            out.extend_from_slice(text);
        }
    }

    /// Applies the edits that start at the current offset.
    fn apply_edits(&mut self, out: &mut Vec<u8>) {
        let edits = &self.conversion.edits;
        while let Some(edit) = edits.get(self.next_edit).filter(|e| e.at <= self.pos) {
            self.next_edit += 1;
            self.insert(&edit.text, out);
            self.skip_to = self.skip_to.max(edit.skip_to);
        }
    }

    /// Settles a held-back CR now that the next source byte is known.
    fn settle_cr(&mut self, next: u8, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            if next != b'\n' {
                out.push(b'\r');
            }
            out.append(&mut self.deferred);
        }
    }

    /// Converts the next source bytes into `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            self.apply_edits(out);
            let next_at = self
                .conversion
                .edits
                .get(self.next_edit)
                .map_or(u64::MAX, |e| e.at);
            let skipping = self.pos < self.skip_to;
            let boundary = if skipping {
                self.skip_to.min(next_at)
            } else {
                next_at
            };
            let take = usize::try_from(boundary - self.pos)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let (segment, rest) = chunk.split_at(take);
            chunk = rest;
            self.settle_cr(segment[0], out);
            if !skipping {
                self.copy(segment, out);
            }
            self.prev = segment.last().copied();
            self.pos += take as u64;
        }
    }

    /// Copies a segment that is not left out, converting line ends.
    fn copy(&mut self, segment: &[u8], out: &mut Vec<u8>) {
        match (self.conversion.source_crlf, self.conversion.target_crlf) {
            (false, true) => {
                let mut before = self.prev;
                let mut rest = segment;
                while let Some(at) = memchr::memchr(b'\n', rest) {
                    let previous = if at > 0 { Some(rest[at - 1]) } else { before };
                    out.extend_from_slice(&rest[..at]);
                    if previous != Some(b'\r') {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    before = Some(b'\n');
                    rest = &rest[at + 1..];
                }
                out.extend_from_slice(rest);
            }
            (true, false) => {
                let mut rest = segment;
                while let Some(at) = memchr::memchr(b'\r', rest) {
                    out.extend_from_slice(&rest[..at]);
                    match rest.get(at + 1) {
                        Some(b'\n') => {}
                        Some(_) => out.push(b'\r'),
                        None => self.pending_cr = true,
                    }
                    rest = &rest[at + 1..];
                }
                out.extend_from_slice(rest);
            }
            _ => out.extend_from_slice(segment),
        }
    }

    /// Ends the source: a held-back CR is kept, edits at the end are applied.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.push(b'\r');
            out.append(&mut self.deferred);
        }
        let edits = &self.conversion.edits;
        while let Some(edit) = edits.get(self.next_edit) {
            self.next_edit += 1;
            if edit.at <= self.pos {
                out.extend_from_slice(&edit.text);
            }
        }
    }
}

/// Converts only the line ends of a message (LF store ↔ CRLF-capable store), as for a remote
/// trash copy (spec §4.9): no X-TUID, nothing else changes.
pub fn convert_line_ends(data: &[u8], source_crlf: bool, target_crlf: bool) -> Vec<u8> {
    apply(&Conversion::line_ends(source_crlf, target_crlf), data)
}

fn apply(conversion: &Conversion, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut converter = Converter::new(conversion);
    converter.feed(data, &mut out);
    converter.finish(&mut out);
    out
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
    let conversion =
        Conversion::for_message(&scan, source_crlf, target_crlf, tuid, placeholder_of_size);
    apply(&conversion, source)
}

/// The copy of a message in a file, produced a chunk at a time as it is read. Its size (and
/// whether it holds NUL bytes) is learnt by one more pass over the source when first asked
/// (an IMAP target needs it before the literal; a Maildir target never asks).
pub struct ConvertedBody {
    source: MessageBody,
    conversion: Conversion,
    /// The copy's size and whether it contains NUL, once measured.
    measured: std::cell::OnceCell<(u64, bool)>,
}

impl ConvertedBody {
    /// Prepares the copy of `source` (spec §4.10.1, as [`convert_message`]).
    pub fn message(
        source: MessageBody,
        source_crlf: bool,
        target_crlf: bool,
        tuid: &Tuid,
        placeholder_of_size: Option<u64>,
    ) -> std::io::Result<ConvertedBody> {
        let mut scanner = HeaderScanner::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut offset = 0;
        loop {
            let got = source.read_at(offset, &mut buf)?;
            if got == 0 || scanner.feed(&buf[..got]) {
                break;
            }
            offset += got as u64;
        }
        let scan = scanner.finish();
        let conversion =
            Conversion::for_message(&scan, source_crlf, target_crlf, tuid, placeholder_of_size);
        ConvertedBody::new(source, conversion)
    }

    /// Prepares `source` with its line ends converted only.
    pub fn line_ends(
        source: MessageBody,
        source_crlf: bool,
        target_crlf: bool,
    ) -> std::io::Result<ConvertedBody> {
        ConvertedBody::new(source, Conversion::line_ends(source_crlf, target_crlf))
    }

    fn new(source: MessageBody, conversion: Conversion) -> std::io::Result<ConvertedBody> {
        Ok(ConvertedBody {
            source,
            conversion,
            measured: std::cell::OnceCell::new(),
        })
    }

    /// The size of the source (the copy's size up to line ends and inserted headers).
    pub fn source_len(&self) -> u64 {
        self.source.len()
    }

    /// Reads the copy once through: its size and whether it contains NUL.
    fn measure(&self) -> std::io::Result<(u64, bool)> {
        let mut reader = self.reader();
        let mut buf = vec![0u8; READ_CHUNK];
        let (mut len, mut nul) = (0u64, false);
        loop {
            let got = reader.read(&mut buf)?;
            if got == 0 {
                return Ok((len, nul));
            }
            len += got as u64;
            nul |= buf[..got].contains(&0);
        }
    }

    /// The measurement, made once.
    fn measured(&self) -> std::io::Result<(u64, bool)> {
        if let Some(measured) = self.measured.get() {
            return Ok(*measured);
        }
        let measured = self.measure()?;
        Ok(*self.measured.get_or_init(|| measured))
    }
}

impl BodySource for ConvertedBody {
    fn len(&self) -> std::io::Result<u64> {
        self.measured().map(|m| m.0)
    }
    fn contains_nul(&self) -> std::io::Result<bool> {
        self.measured().map(|m| m.1)
    }
    fn reader(&self) -> Box<dyn Read + '_> {
        Box::new(ConvertingReader {
            source: &self.source,
            offset: 0,
            converter: Converter::new(&self.conversion),
            input: vec![0u8; READ_CHUNK],
            output: Vec::with_capacity(READ_CHUNK + READ_CHUNK / 4),
            output_pos: 0,
            finished: false,
        })
    }
}

/// Reads a [`ConvertedBody`]: source chunks go through the converter.
struct ConvertingReader<'a> {
    source: &'a MessageBody,
    offset: u64,
    converter: Converter<'a>,
    input: Vec<u8>,
    output: Vec<u8>,
    output_pos: usize,
    finished: bool,
}

impl Read for ConvertingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.output_pos < self.output.len() {
                let n = buf.len().min(self.output.len() - self.output_pos);
                buf[..n].copy_from_slice(&self.output[self.output_pos..self.output_pos + n]);
                self.output_pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            self.output.clear();
            self.output_pos = 0;
            let got = self.source.read_at(self.offset, &mut self.input)?;
            if got == 0 {
                self.converter.finish(&mut self.output);
                self.finished = true;
            } else {
                self.offset += got as u64;
                self.converter.feed(&self.input[..got], &mut self.output);
            }
        }
    }
}

/// A copy ready to store: converted in memory (small messages), or converted as it is read
/// from its file (big ones).
pub enum PreparedCopy {
    Bytes(Vec<u8>),
    Stream(ConvertedBody),
}

impl PreparedCopy {
    /// The copy of a fetched message (spec §4.10.1, as [`convert_message`]).
    pub fn message(
        source: MessageBody,
        source_crlf: bool,
        target_crlf: bool,
        tuid: &Tuid,
        placeholder_of_size: Option<u64>,
    ) -> std::io::Result<PreparedCopy> {
        Ok(match source {
            MessageBody::Memory(data) => PreparedCopy::Bytes(convert_message(
                &data,
                source_crlf,
                target_crlf,
                tuid,
                placeholder_of_size,
            )),
            file => PreparedCopy::Stream(ConvertedBody::message(
                file,
                source_crlf,
                target_crlf,
                tuid,
                placeholder_of_size,
            )?),
        })
    }

    /// A message with its line ends converted only (a remote trash copy).
    pub fn line_ends(
        source: MessageBody,
        source_crlf: bool,
        target_crlf: bool,
    ) -> std::io::Result<PreparedCopy> {
        Ok(match source {
            MessageBody::Memory(data) => {
                PreparedCopy::Bytes(convert_line_ends(&data, source_crlf, target_crlf))
            }
            file => PreparedCopy::Stream(ConvertedBody::line_ends(file, source_crlf, target_crlf)?),
        })
    }

    /// About the copy's size, without reading a streamed source (for batch limits).
    pub fn size_hint(&self) -> u64 {
        match self {
            PreparedCopy::Bytes(bytes) => bytes.len() as u64,
            PreparedCopy::Stream(body) => body.source_len(),
        }
    }

    /// The bytes to hand to the target store.
    pub fn data(&self) -> MessageData<'_> {
        match self {
            PreparedCopy::Bytes(bytes) => MessageData::Bytes(bytes),
            PreparedCopy::Stream(body) => MessageData::Stream(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUID: &Tuid = b"Abc+/0123xyz";

    /// Feeds `source` split into the given chunks.
    fn chunked(conversion: &Conversion, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut converter = Converter::new(conversion);
        for chunk in chunks {
            converter.feed(chunk, &mut out);
        }
        converter.finish(&mut out);
        out
    }

    /// The header scan of `source` fed in the given chunks.
    fn scanned(chunks: &[&[u8]]) -> HeaderScan {
        let mut scanner = HeaderScanner::new();
        for chunk in chunks {
            if scanner.feed(chunk) {
                break;
            }
        }
        scanner.finish()
    }

    /// Converts `source` whole, and checks that the streaming conversion gives the same bytes
    /// whatever the chunks: split once at every offset, split twice at every pair of offsets
    /// of short sources, one byte at a time, and read from a spool file.
    fn converted(
        source: &[u8],
        source_crlf: bool,
        target_crlf: bool,
        tuid: &Tuid,
        placeholder: Option<u64>,
    ) -> Vec<u8> {
        let whole = convert_message(source, source_crlf, target_crlf, tuid, placeholder);
        let scan = scan_header(source);
        let conversion =
            Conversion::for_message(&scan, source_crlf, target_crlf, tuid, placeholder);
        // Long sources: every split in the header area and near the end, a sample between.
        let len = source.len();
        let splits = (0..=len).filter(|s| len <= 4096 || *s < 512 || s % 4099 == 0 || s + 8 > len);
        for split in splits {
            let (a, b) = source.split_at(split);
            assert_eq!(scanned(&[a, b]), scan, "header scan split at {split}");
            assert_eq!(chunked(&conversion, &[a, b]), whole, "split at {split}");
            if source.len() <= 200 {
                for second in split..=source.len() {
                    let (b1, b2) = b.split_at(second - split);
                    assert_eq!(
                        chunked(&conversion, &[a, b1, b2]),
                        whole,
                        "split at {split} and {second}"
                    );
                }
            }
        }
        let bytes: Vec<&[u8]> = source.chunks(1).collect();
        assert_eq!(scanned(&bytes), scan, "header scan byte by byte");
        if len <= 4096 {
            assert_eq!(chunked(&conversion, &bytes), whole, "byte by byte");
        }
        let mut spool = crate::store::body::Spool::create(&std::env::temp_dir()).unwrap();
        spool.write_at(0, source).unwrap();
        let body = spool.into_body(source.len() as u64);
        let streamed =
            ConvertedBody::message(body, source_crlf, target_crlf, tuid, placeholder).unwrap();
        let mut read = Vec::new();
        streamed.reader().read_to_end(&mut read).unwrap();
        assert_eq!(read, whole, "read from a file");
        assert_eq!(streamed.len().unwrap(), whole.len() as u64);
        assert_eq!(streamed.contains_nul().unwrap(), whole.contains(&0));
        whole
    }

    fn line_ends_converted(data: &[u8], source_crlf: bool, target_crlf: bool) -> Vec<u8> {
        let whole = convert_line_ends(data, source_crlf, target_crlf);
        let conversion = Conversion::line_ends(source_crlf, target_crlf);
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(chunked(&conversion, &[a, b]), whole, "split at {split}");
        }
        whole
    }

    /// CR LF pairs, lone CRs and LFs, and header ends at chunk boundaries: every split of
    /// messages made of them converts as the whole message does, in all four directions.
    #[test]
    fn streaming_conversion_ignores_chunk_boundaries() {
        let sources: [&[u8]; 8] = [
            b"From: a\r\nSubject: s\r\n\r\nbody\r\nbare\rcr\r\n\r",
            b"From: a\nX-TUID: AAAAAAAAAAAA\nSubject: s\n\nbody\n\r\r\n",
            b"Subject: x\r\nX-TUID: BBBBBBBBBBBB\r\n\r\n\r\n",
            b"A: 1\r\r\n\nb\r",
            b"X-TUID: CCCCCCCCCCCC",
            b"Subject:\r",
            b"\r\n\r\nbody",
            b"",
        ];
        for source in sources {
            for (source_crlf, target_crlf) in
                [(false, false), (false, true), (true, false), (true, true)]
            {
                converted(source, source_crlf, target_crlf, TUID, None);
                converted(source, source_crlf, target_crlf, TUID, Some(5000));
                line_ends_converted(source, source_crlf, target_crlf);
            }
        }
        // A CR held back at a chunk boundary right before an inserted header.
        let conversion = Conversion {
            source_crlf: true,
            target_crlf: false,
            edits: vec![Edit {
                at: 2,
                skip_to: 2,
                text: b"<x>".to_vec(),
            }],
        };
        assert_eq!(chunked(&conversion, &[b"a\r", b"\nb"]), b"a<x>\nb");
        assert_eq!(chunked(&conversion, &[b"a\r", b"cb"]), b"a\r<x>cb");
        assert_eq!(chunked(&conversion, &[b"a\r"]), b"a\r<x>");
    }

    fn full(source: &str) -> String {
        String::from_utf8(converted(source.as_bytes(), false, false, TUID, None)).unwrap()
    }

    fn placeholder(source: &str, size: u64) -> String {
        String::from_utf8(converted(source.as_bytes(), false, false, TUID, Some(size))).unwrap()
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
            converted(source, false, false, TUID, None),
            b"From: a\r\nSubject: s\r\nX-TUID: Abc+/0123xyz\n\r\nbody\r\n"
        );
    }

    #[test]
    fn lf_to_crlf_target() {
        let source = b"From: a\nSubject: s\r\n\nbody\nline\n";
        assert_eq!(
            converted(source, false, true, TUID, None),
            b"From: a\r\nSubject: s\r\nX-TUID: Abc+/0123xyz\r\n\r\nbody\r\nline\r\n"
        );
    }

    #[test]
    fn crlf_to_lf_target() {
        let source = b"From: a\r\nSubject: s\r\n\r\nbody\r\nbare\rcr\r\n";
        assert_eq!(
            converted(source, true, false, TUID, None),
            b"From: a\nSubject: s\nX-TUID: Abc+/0123xyz\n\nbody\nbare\rcr\n"
        );
    }

    #[test]
    fn line_ends_only() {
        let data = b"A: 1\nB: 2\r\n\nbody\rx\n";
        assert_eq!(line_ends_converted(data, false, false), data);
        assert_eq!(line_ends_converted(data, true, true), data);
        assert_eq!(
            line_ends_converted(data, false, true),
            b"A: 1\r\nB: 2\r\n\r\nbody\rx\r\n"
        );
        assert_eq!(
            line_ends_converted(data, true, false),
            b"A: 1\nB: 2\n\nbody\rx\n"
        );
    }

    #[test]
    fn crlf_to_crlf_terminator_follows_header() {
        // A header with CRLF lines: inserted lines use CRLF.
        assert_eq!(
            converted(b"A: 1\r\n\r\nb\n", true, true, TUID, None),
            b"A: 1\r\nX-TUID: Abc+/0123xyz\r\n\r\nb\n"
        );
        // A header with LF lines only: LF.
        assert_eq!(
            converted(b"A: 1\n\nb\r\n", true, true, TUID, None),
            b"A: 1\nX-TUID: Abc+/0123xyz\n\nb\r\n"
        );
        // No complete header line: CRLF.
        assert_eq!(
            converted(b"A: 1", true, true, TUID, None),
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
        let converted = converted(b"Subject: s\n\nbody\n", false, true, TUID, Some(5000));
        assert_eq!(
            converted,
            b"Subject: [placeholder] s\r\nX-TUID: Abc+/0123xyz\r\n\r\nHaving a size of 4KiB, this message is over the MaxSize limit.\r\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\r\n"
        );
    }
}
