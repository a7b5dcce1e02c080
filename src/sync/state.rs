//! The sync state file: reading every form mbsync ever wrote (spec sync-semantics §2.3),
//! writing the current form byte for byte (§2.1, §2.2), and the two entry operations that
//! replay and the live run share: the UID "assign" rule (§3.2) and the upgrade split (§4.5).

use std::io;

use super::entry::{Entry, PairState, Status};
use super::error::os_error_text;
use crate::config::Side;
use crate::store::Flags;

/// The UIDVALIDITY value that stands for "unknown" in files.
pub const UNKNOWN_UID_VALIDITY: u32 = u32::MAX;

/// Errors of reading and writing the state file and the journal. The Display texts are the
/// exact messages of the reference (spec §1.4, §1.5, §2.3, §3.3).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("Error: invalid sync state header in {path}")]
    InvalidHeader { path: String },
    #[error("Error: incomplete sync state header entry at {path}:{line}")]
    IncompleteHeaderEntry { path: String, line: usize },
    #[error("Error: malformed sync state header entry at {path}:{line}")]
    MalformedHeaderEntry { path: String, line: usize },
    #[error("Error: unrecognized sync state header entry at {path}:{line}")]
    UnrecognizedHeaderEntry { path: String, line: usize },
    #[error("Error: unterminated sync state header in {path}")]
    UnterminatedHeader { path: String },
    #[error("Error: state file {path} does not match ExpireSide setting")]
    ExpireSideMismatch { path: String },
    #[error("Error: invalid sync state entry at {path}:{line}")]
    InvalidEntry { path: String, line: usize },
    #[error("Error: incomplete sync state entry at {path}:{line}")]
    IncompleteEntry { path: String, line: usize },
    #[error("Error: incomplete journal header in {path}")]
    IncompleteJournalHeader { path: String },
    #[error("Error: incompatible journal version (got {got}, expected 5)")]
    JournalVersion { got: String },
    #[error("Error: incomplete journal entry at {path}:{line}")]
    IncompleteJournalEntry { path: String, line: usize },
    #[error("Error: unrecognized journal entry at {path}:{line}")]
    UnrecognizedJournalEntry { path: String, line: usize },
    #[error("Error: malformed journal entry at {path}:{line}")]
    MalformedJournalEntry { path: String, line: usize },
    #[error("Error: journal entry at {path}:{line} refers to non-existing sync state entry")]
    NoSuchEntry { path: String, line: usize },
    #[error("Error: cannot read sync state {path}: {}", os_error_text(.source))]
    ReadState { path: String, source: io::Error },
    #[error("Error: cannot read journal {path}: {}", os_error_text(.source))]
    ReadJournal { path: String, source: io::Error },
    #[error("Error: cannot create new sync state {path}: {}", os_error_text(.source))]
    CreateNew { path: String, source: io::Error },
    #[error("Error: cannot create journal {path}: {}", os_error_text(.source))]
    CreateJournal { path: String, source: io::Error },
    /// mbsync prints no file name here (`Error: cannot write file: …`); naming it tells the
    /// user which file system is full.
    #[error("Error: cannot write file {path}: {}", os_error_text(.source))]
    Write { path: String, source: io::Error },
    #[error("Error: cannot close file {path}: {}", os_error_text(.source))]
    Close { path: String, source: io::Error },
}

impl StateError {
    /// Errors that end the whole process (spec §1.4) rather than only the mailbox pair.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StateError::CreateNew { .. }
                | StateError::CreateJournal { .. }
                | StateError::Write { .. }
                | StateError::Close { .. }
        )
    }
}

impl From<StateError> for super::error::SyncError {
    fn from(err: StateError) -> Self {
        if err.is_fatal() {
            super::error::SyncError::Fatal(err.to_string())
        } else {
            super::error::SyncError::Pair(err.to_string())
        }
    }
}

/// Size of the reference's line buffer: a line is read in pieces of at most 127 bytes.
const LINE_BUFFER: usize = 128;

/// Splits file data into the pieces a 128-byte `fgets` buffer would return: each piece ends
/// after a newline, after 127 bytes, or at the end of the data. A piece that does not end in
/// a newline is an incomplete line.
pub(crate) struct LineReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> LineReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> LineReader<'a> {
        LineReader { data, pos: 0 }
    }
}

impl<'a> Iterator for LineReader<'a> {
    /// The piece without its newline, and whether it had one.
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let window = &rest[..rest.len().min(LINE_BUFFER - 1)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.pos += end + 1;
                Some((&window[..end], true))
            }
            None => {
                self.pos += window.len();
                Some((window, false))
            }
        }
    }
}

/// Reads numbers and words from a line the way C's `sscanf` conversions `%u` and `%Ns` do:
/// leading white space is skipped, `%u` accepts a sign (`-1` reads as 4294967295).
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, pos: 0 }
    }

    pub(crate) fn skip_space(&mut self) {
        while self.pos < self.bytes.len() && is_c_space(self.bytes[self.pos]) {
            self.pos += 1;
        }
    }

    /// A `%u` conversion; `None` if no digits follow (the position is then unspecified).
    pub(crate) fn unsigned(&mut self) -> Option<u32> {
        self.skip_space();
        let mut negative = false;
        if let Some(&sign @ (b'+' | b'-')) = self.bytes.get(self.pos) {
            negative = sign == b'-';
            self.pos += 1;
        }
        let start = self.pos;
        let mut value: u64 = 0;
        let mut overflow = false;
        while let Some(&digit) = self.bytes.get(self.pos) {
            if !digit.is_ascii_digit() {
                break;
            }
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        // strtoul saturates on overflow and negates modulo 2^64; sscanf then keeps the low
        // 32 bits.
        let value = if overflow {
            u64::MAX
        } else if negative {
            value.wrapping_neg()
        } else {
            value
        };
        Some(value as u32)
    }

    /// A `%<max>s` conversion: up to `max` non-space bytes after skipping space.
    pub(crate) fn word(&mut self, max: usize) -> Option<&'a [u8]> {
        self.skip_space();
        let start = self.pos;
        while self.pos < self.bytes.len()
            && self.pos - start < max
            && !is_c_space(self.bytes[self.pos])
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.bytes[start..self.pos])
    }

    /// Matches one literal byte (no space skipping).
    pub(crate) fn literal(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Everything not consumed yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos.min(self.bytes.len())..]
    }
}

/// UIDVALIDITY as read from a file: the all-ones value means "unknown".
pub(crate) fn uid_validity_from_file(value: u32) -> Option<u32> {
    (value != UNKNOWN_UID_VALIDITY).then_some(value)
}

fn uid_validity_to_file(value: Option<u32>) -> u32 {
    value.unwrap_or(UNKNOWN_UID_VALIDITY)
}

/// Parses a state file (spec §2.3). `path` is used in error messages; `expire_side` decides
/// which MaxExpired header is allowed. The result has `existed` set and `newmaxuid` equal to
/// `maxuid`.
pub fn parse_state(data: &[u8], path: &str, expire_side: Side) -> Result<PairState, StateError> {
    let mut state = PairState::default();
    let mut lines = LineReader::new(data);
    let mut line_no = 0usize;
    // MaxExpiredSlaveUid (pre-1.3) or the middle number of a pre-1.1 header: converted once
    // all entries are known.
    let mut legacy_max_expired_near = 0u32;
    let mismatch = || StateError::ExpireSideMismatch {
        path: path.to_string(),
    };

    loop {
        let Some((text, complete)) = lines.next() else {
            return Err(StateError::UnterminatedHeader {
                path: path.to_string(),
            });
        };
        line_no += 1;
        if !complete {
            return Err(StateError::IncompleteHeaderEntry {
                path: path.to_string(),
                line: line_no,
            });
        }
        if text.is_empty() {
            break;
        }
        if line_no == 1 && text[0].is_ascii_digit() {
            let header = parse_pre_1_1_header(text).ok_or_else(|| StateError::InvalidHeader {
                path: path.to_string(),
            })?;
            state.uid_validity = [
                uid_validity_from_file(header.far_uid_validity),
                uid_validity_from_file(header.near_uid_validity),
            ];
            state.maxuid = [header.max_pulled, header.max_pushed];
            if header.max_expired_near != 0 && expire_side != Side::Near {
                return Err(mismatch());
            }
            legacy_max_expired_near = header.max_expired_near;
            break;
        }
        let mut scanner = Scanner::new(text);
        let (Some(name), Some(value)) = (scanner.word(63), scanner.unsigned()) else {
            return Err(StateError::MalformedHeaderEntry {
                path: path.to_string(),
                line: line_no,
            });
        };
        match name {
            b"FarUidValidity" | b"MasterUidValidity" => {
                state.uid_validity[0] = uid_validity_from_file(value)
            }
            b"NearUidValidity" | b"SlaveUidValidity" => {
                state.uid_validity[1] = uid_validity_from_file(value)
            }
            b"MaxPulledUid" => state.maxuid[0] = value,
            b"MaxPushedUid" => state.maxuid[1] = value,
            b"MaxExpiredFarUid" | b"MaxExpiredMasterUid" => {
                if expire_side != Side::Near {
                    return Err(mismatch());
                }
                state.max_expired = value;
            }
            b"MaxExpiredNearUid" => {
                if expire_side != Side::Far {
                    return Err(mismatch());
                }
                state.max_expired = value;
            }
            b"MaxExpiredSlaveUid" => {
                if expire_side != Side::Near {
                    return Err(mismatch());
                }
                legacy_max_expired_near = value;
            }
            _ => {
                return Err(StateError::UnrecognizedHeaderEntry {
                    path: path.to_string(),
                    line: line_no,
                });
            }
        }
    }

    for (text, complete) in lines {
        line_no += 1;
        if !complete {
            return Err(StateError::IncompleteEntry {
                path: path.to_string(),
                line: line_no,
            });
        }
        let entry = parse_entry_line(text).ok_or_else(|| StateError::InvalidEntry {
            path: path.to_string(),
            line: line_no,
        })?;
        state.entries.push(entry);
    }

    if legacy_max_expired_near != 0 {
        state.max_expired = converted_max_expired_far(&state.entries, legacy_max_expired_near);
    }
    state.newmaxuid = state.maxuid;
    state.existed = true;
    Ok(state)
}

/// The five numbers of a pre-1.1 header line `<farUV>:<maxPulled> <nearUV>:<mx>:<maxPushed>`.
struct Pre11Header {
    far_uid_validity: u32,
    max_pulled: u32,
    near_uid_validity: u32,
    max_expired_near: u32,
    max_pushed: u32,
}

fn parse_pre_1_1_header(text: &[u8]) -> Option<Pre11Header> {
    let mut line = Scanner::new(text);
    let far_word = line.word(63)?;
    let near_word = line.word(63)?;
    let mut far = Scanner::new(far_word);
    let far_uid_validity = far.unsigned()?;
    if !far.literal(b':') {
        return None;
    }
    let max_pulled = far.unsigned()?;
    let mut near = Scanner::new(near_word);
    let near_uid_validity = near.unsigned()?;
    if !near.literal(b':') {
        return None;
    }
    let max_expired_near = near.unsigned()?;
    if !near.literal(b':') {
        return None;
    }
    let max_pushed = near.unsigned()?;
    Some(Pre11Header {
        far_uid_validity,
        max_pulled,
        near_uid_validity,
        max_expired_near,
        max_pushed,
    })
}

/// Decodes one entry line (without its newline); `None` if it lacks the two UIDs.
fn parse_entry_line(text: &[u8]) -> Option<Entry> {
    let mut scanner = Scanner::new(text);
    let far = scanner.unsigned()?;
    let near = scanner.unsigned()?;
    let token = scanner.word(15).unwrap_or(b"");

    let mut uid = [far, near];
    let mut status = Status::EMPTY;
    let mut rest = token;
    match rest.first() {
        Some(b'<') => {
            status = Status::DUMMY_F;
            rest = &rest[1..];
        }
        Some(b'>') => {
            status = Status::DUMMY_N;
            rest = &rest[1..];
        }
        _ => {}
    }
    // These assign rather than add: `>~` loses its placeholder marker (Quirk, Example 17).
    match rest.first() {
        Some(b'^') => {
            status = Status::SKIPPED;
            rest = &rest[1..];
        }
        Some(b'~' | b'X') => {
            status = Status::EXPIRE.with(Status::EXPIRED);
            rest = &rest[1..];
        }
        _ => {
            if uid[0] == u32::MAX {
                uid[0] = 0;
                status = Status::SKIPPED;
            } else if uid[1] == u32::MAX {
                uid[1] = 0;
                status = Status::SKIPPED;
            }
        }
    }
    let mut flags = Flags::EMPTY;
    let mut next = 0;
    for (letter, flag) in Flags::LETTERS {
        if rest.get(next) == Some(&(letter as u8)) {
            flags |= flag;
            next += 1;
        }
    }
    Some(Entry {
        uid,
        flags,
        status,
        ..Entry::default()
    })
}

/// The MaxExpiredFarUid that replaces a legacy near-side value `legacy` (spec §2.3): one below
/// the smallest far UID that is still wanted on the near side, or 4294967294 if none is.
fn converted_max_expired_far(entries: &[Entry], legacy: u32) -> u32 {
    let excluded = Status::DEAD.with(Status::SKIPPED).with(Status::PENDING);
    let smallest = entries
        .iter()
        .filter(|e| !e.status.has(excluded) && e.uid[0] != 0)
        .filter(|e| {
            if e.status.has(Status::EXPIRED) {
                e.uid[1] != 0
            } else {
                e.uid[1] == 0 || e.uid[1] > legacy
            }
        })
        .map(|e| e.uid[0])
        .min()
        .unwrap_or(u32::MAX);
    smallest - 1
}

/// The header name of the MaxExpired value for an expire side.
fn max_expired_header(expire_side: Side) -> &'static str {
    match expire_side {
        Side::Near => "MaxExpiredFarUid",
        Side::Far => "MaxExpiredNearUid",
    }
}

/// Writes a state file exactly as the reference does (spec §2.1, §2.2). DEAD entries are
/// left out; PENDING and a lone EXPIRE are not representable and vanish.
pub fn format_state(state: &PairState, expire_side: Side) -> Vec<u8> {
    let mut out = format!(
        "FarUidValidity {}\nNearUidValidity {}\nMaxPulledUid {}\nMaxPushedUid {}\n",
        uid_validity_to_file(state.uid_validity[0]),
        uid_validity_to_file(state.uid_validity[1]),
        state.maxuid[0],
        state.maxuid[1],
    );
    if state.max_expired != 0 {
        out.push_str(&format!(
            "{} {}\n",
            max_expired_header(expire_side),
            state.max_expired
        ));
    }
    out.push('\n');
    for entry in state.entries.iter().filter(|e| !e.is_dead()) {
        out.push_str(&format!("{} {} ", entry.uid[0], entry.uid[1]));
        if entry.status.has(Status::DUMMY_F) {
            out.push('<');
        } else if entry.status.has(Status::DUMMY_N) {
            out.push('>');
        }
        if entry.status.has(Status::SKIPPED) {
            out.push('^');
        } else if entry.status.has(Status::EXPIRED) {
            out.push('~');
        }
        out.push_str(&entry.flags.letters());
        out.push('\n');
    }
    out.into_bytes()
}

impl PairState {
    /// The "assign" rule (spec §3.2), used by replay and by the run: entry `index` gets
    /// `uid` on `side`. A UID right above the candidate high-water mark raises it; a real UID
    /// sets the baseline flags (from the upgrade deltas or from `pflags`); the entry stops
    /// being pending or upgraded and forgets its TUID.
    pub fn assign(&mut self, index: usize, side: Side, uid: u32) {
        let t = side.index();
        if self.newmaxuid[t].checked_add(1) == Some(uid) {
            self.newmaxuid[t] = uid;
        }
        let entry = &mut self.entries[index];
        entry.uid[t] = uid;
        if uid != 0 {
            if entry.status.has(Status::UPGRADE) {
                entry.flags = entry.flags.union(entry.add[t]).minus(entry.del[t]);
                entry.add[t] = Flags::EMPTY;
                entry.del[t] = Flags::EMPTY;
            } else {
                entry.flags = entry.pflags;
            }
        }
        entry.status.clear(Status::PENDING.with(Status::UPGRADE));
        entry.tuid = None;
    }

    /// The upgrade split (spec §4.5): a new entry inserted right after entry `index` takes
    /// over the placeholder on `side`; the original loses its placeholder marker and becomes
    /// a pending upgrade. Returns the index of the new (placeholder) entry.
    pub fn upgrade_split(&mut self, index: usize, side: Side) -> usize {
        let t = side.index();
        let original = &mut self.entries[index];
        let mut placeholder = Entry::default();
        placeholder.uid[t] = original.uid[t];
        placeholder.status =
            Status::PURGE.with(original.status.only(Status::DEL_F.with(Status::DEL_N)));
        placeholder.add[t] = Flags::TRASHED;
        original.uid[t] = 0;
        original.status.clear(Status::DUMMY_F.with(Status::DUMMY_N));
        original.status.set(Status::PENDING.with(Status::UPGRADE));
        self.entries.insert(index + 1, placeholder);
        index + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEAR: Side = Side::Near;

    fn parse(text: &str) -> Result<PairState, StateError> {
        parse_state(text.as_bytes(), "P", NEAR)
    }

    fn parse_err(text: &str, expire_side: Side) -> String {
        match parse_state(text.as_bytes(), "P", expire_side) {
            Ok(state) => panic!("expected an error, parsed {state:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn round_trip(text: &str, expire_side: Side) {
        let state = parse_state(text.as_bytes(), "P", expire_side).unwrap();
        assert_eq!(
            String::from_utf8(format_state(&state, expire_side)).unwrap(),
            text
        );
    }

    /// State files of the spec's examples (§9): each reads and writes back byte for byte.
    #[test]
    fn example_state_files_round_trip() {
        let near_expire = [
            // Example 1
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 FR\n1 2 S\n2 3 \n",
            // Example 2
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 F\n2 2 DS\n3 3 RS\n",
            // Example 3, 4
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 3\n\n2 2 S\n",
            // Example 5
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 >S\n3 3 >\n",
            // Example 6
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 3\n\n1 1 S\n2 3 FS\n0 2 \n",
            // Example 7, 8
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 7\nMaxPushedUid 5\nMaxExpiredFarUid 3\n\n2 1 FS\n4 2 \n5 3 S\n6 4 S\n7 5 S\n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 9\nMaxPushedUid 7\nMaxExpiredFarUid 6\n\n2 1 FS\n4 2 \n7 5 S\n8 6 S\n9 7 S\n",
            // Example 15 (result), 16
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 7\nMaxPushedUid 4\n\n1 1 S\n5 2 >S\n6 3 >S\n7 4 S\n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 5\n\n2 2 ST\n3 3 ST\n6 4 ST\n5 5 T\n",
            // Example 17 (run 2), 23
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 4\nMaxExpiredFarUid 4\n\n3 1 FS\n4 2 ~S\n5 3 S\n6 4 S\n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\nMaxExpiredFarUid 1\n\n1 1 ~S\n2 2 S\n3 3 S\n",
            // Example 24, 25, 26
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n0 1 T\n2 2 \n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 1\n\n1 1 S\n2 0 \n",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 0 T\n2 0 FT\n",
        ];
        for text in near_expire {
            round_trip(text, Side::Near);
        }
        // Example 21: ExpireSide Far.
        round_trip(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 0\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n",
            Side::Far,
        );
    }

    #[test]
    fn parse_reads_fields() {
        let state = parse(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 7\nMaxPushedUid 5\nMaxExpiredFarUid 3\n\n2 1 FS\n4 2 \n5 0 <\n",
        )
        .unwrap();
        assert_eq!(state.uid_validity, [Some(1000), Some(2000)]);
        assert_eq!(state.maxuid, [7, 5]);
        assert_eq!(state.newmaxuid, [7, 5]);
        assert_eq!(state.max_expired, 3);
        assert!(state.existed);
        assert!(!state.replayed);
        assert_eq!(state.entries.len(), 3);
        assert_eq!(state.entries[0].uid, [2, 1]);
        assert_eq!(state.entries[0].flags, Flags::FLAGGED | Flags::SEEN);
        assert_eq!(state.entries[1].flags, Flags::EMPTY);
        assert_eq!(state.entries[2].uid, [5, 0]);
        assert_eq!(state.entries[2].status, Status::DUMMY_F);
    }

    #[test]
    fn missing_headers_keep_defaults_and_order_is_free() {
        let state = parse("MaxPushedUid 4\nNearUidValidity 9\n\n").unwrap();
        assert_eq!(state.uid_validity, [None, Some(9)]);
        assert_eq!(state.maxuid, [0, 4]);
        // Unknown UIDVALIDITY is written as all ones.
        assert_eq!(
            String::from_utf8(format_state(&state, NEAR)).unwrap(),
            "FarUidValidity 4294967295\nNearUidValidity 9\nMaxPulledUid 0\nMaxPushedUid 4\n\n"
        );
    }

    /// Example 15: Master/Slave names, out-of-order letters, `^` and `-1`.
    #[test]
    fn legacy_state_of_example_15() {
        let state = parse(
            "MasterUidValidity 1000\nSlaveUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 1\n\n1 1 SF\n5 0 ^\n6 -1 S\n",
        )
        .unwrap();
        assert_eq!(state.uid_validity, [Some(1000), Some(2000)]);
        assert_eq!(state.maxuid, [6, 1]);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
        assert_eq!(state.entries[1].uid, [5, 0]);
        assert_eq!(state.entries[1].status, Status::SKIPPED);
        assert_eq!(state.entries[2].uid, [6, 0]);
        assert_eq!(state.entries[2].status, Status::SKIPPED);
        assert_eq!(state.entries[2].flags, Flags::SEEN);
        assert_eq!(
            String::from_utf8(format_state(&state, NEAR)).unwrap(),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 1\n\n1 1 S\n5 0 ^\n6 0 ^S\n"
        );
    }

    #[test]
    fn legacy_far_minus_one_and_x_marker() {
        let state = parse("MaxPulledUid 1\n\n-1 3 D\n4 4 XS\n4 5 <XS\n").unwrap();
        assert_eq!(state.entries[0].uid, [0, 3]);
        assert_eq!(state.entries[0].status, Status::SKIPPED);
        assert_eq!(state.entries[0].flags, Flags::DRAFT);
        assert_eq!(
            state.entries[1].status,
            Status::EXPIRE.with(Status::EXPIRED)
        );
        // The expiry marker replaces the placeholder status.
        assert_eq!(
            state.entries[2].status,
            Status::EXPIRE.with(Status::EXPIRED)
        );
    }

    /// Example 17: `>~S` is read back as expired, without the placeholder marker.
    #[test]
    fn placeholder_and_expired_marker_quirk() {
        let state = parse(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 4\nMaxExpiredFarUid 4\n\n3 1 >~S\n4 2 >~S\n5 3 S\n6 4 S\n",
        )
        .unwrap();
        assert_eq!(
            state.entries[0].status,
            Status::EXPIRE.with(Status::EXPIRED)
        );
        assert_eq!(state.entries[0].flags, Flags::SEEN);
        // Written by the run from an in-memory entry that has both bits.
        let mut state = state;
        state.entries[0].status.set(Status::DUMMY_N);
        let text = String::from_utf8(format_state(&state, NEAR)).unwrap();
        assert!(
            text.ends_with("\n\n3 1 >~S\n4 2 ~S\n5 3 S\n6 4 S\n"),
            "{text}"
        );
    }

    #[test]
    fn flag_letters_only_in_canonical_order() {
        let state = parse("\n1 1 DFPRST\n2 2 TSRPFD\n3 3 DSx\n4 4 FxS\n").unwrap();
        assert_eq!(state.entries[0].flags, Flags::ALL);
        assert_eq!(state.entries[1].flags, Flags::TRASHED);
        assert_eq!(state.entries[2].flags, Flags::DRAFT | Flags::SEEN);
        assert_eq!(state.entries[3].flags, Flags::FLAGGED);
    }

    #[test]
    fn pre_1_1_header() {
        let state = parse("1000:1 2000:0:3\n1 1 S\n").unwrap();
        assert_eq!(state.uid_validity, [Some(1000), Some(2000)]);
        assert_eq!(state.maxuid, [1, 3]);
        assert_eq!(state.max_expired, 0);
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].uid, [1, 1]);
        assert_eq!(
            parse_err("1000:1 2000:0\n", NEAR),
            "Error: invalid sync state header in P"
        );
        assert_eq!(
            parse_err("1000 2000:0:3\n", NEAR),
            "Error: invalid sync state header in P"
        );
        assert_eq!(
            parse_err("1000:1\n", NEAR),
            "Error: invalid sync state header in P"
        );
        assert_eq!(
            parse_err("1000:1 2000:4:3\n", Side::Far),
            "Error: state file P does not match ExpireSide setting"
        );
        // A zero middle value is fine with ExpireSide Far.
        assert!(parse_state(b"1000:1 2000:0:3\n", "P", Side::Far).is_ok());
    }

    #[test]
    fn legacy_max_expired_near_is_converted() {
        // m = 4: entry 2 5 (near UID above m) and 3 0 (no near UID) are wanted; 1 4 is not.
        let state = parse("MaxExpiredSlaveUid 4\n\n1 4 S\n3 0 S\n2 5 S\n").unwrap();
        assert_eq!(state.max_expired, 1);
        // Expired entries count only while they still have a near UID.
        let state = parse("MaxExpiredSlaveUid 4\n\n7 0 ~S\n8 2 ~S\n9 9 S\n").unwrap();
        assert_eq!(state.max_expired, 7);
        // Skipped entries do not count; with none left the value is 4294967294.
        let state = parse("MaxExpiredSlaveUid 4\n\n5 0 ^\n1 2 S\n").unwrap();
        assert_eq!(state.max_expired, 4294967294);
        // The pre-1.1 middle value is converted the same way.
        let state = parse("1000:9 2000:4:6\n1 4 S\n6 6 S\n").unwrap();
        assert_eq!(state.max_expired, 5);
        // Zero means nothing to convert.
        let state = parse("MaxExpiredSlaveUid 0\n\n1 4 S\n").unwrap();
        assert_eq!(state.max_expired, 0);
    }

    #[test]
    fn max_expired_headers_must_match_expire_side() {
        let mismatch = "Error: state file P does not match ExpireSide setting";
        assert_eq!(parse_err("MaxExpiredFarUid 3\n\n", Side::Far), mismatch);
        assert_eq!(parse_err("MaxExpiredMasterUid 3\n\n", Side::Far), mismatch);
        assert_eq!(parse_err("MaxExpiredNearUid 3\n\n", Side::Near), mismatch);
        assert_eq!(parse_err("MaxExpiredSlaveUid 3\n\n", Side::Far), mismatch);
        let state = parse_state(b"MaxExpiredNearUid 3\n\n", "P", Side::Far).unwrap();
        assert_eq!(state.max_expired, 3);
        let state = parse_state(b"MaxExpiredMasterUid 5\n\n", "P", Side::Near).unwrap();
        assert_eq!(state.max_expired, 5);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            parse_err("FarUidValidity 1000", NEAR),
            "Error: incomplete sync state header entry at P:1"
        );
        assert_eq!(
            parse_err("FarUidValidity 1000\nMaxPulledUid x\n\n", NEAR),
            "Error: malformed sync state header entry at P:2"
        );
        assert_eq!(
            parse_err("FarUidValidity\n\n", NEAR),
            "Error: malformed sync state header entry at P:1"
        );
        assert_eq!(
            parse_err("FarUidValidity 1\nfaruidvalidity 1\n\n", NEAR),
            "Error: unrecognized sync state header entry at P:2"
        );
        assert_eq!(
            parse_err("FarUidValidity 1000\nNearUidValidity 2000\n", NEAR),
            "Error: unterminated sync state header in P"
        );
        assert_eq!(
            parse_err("", NEAR),
            "Error: unterminated sync state header in P"
        );
        // A line longer than the reference's buffer is incomplete.
        let long = format!("FarUidValidity {}\n\n", "1".repeat(130));
        assert_eq!(
            parse_err(&long, NEAR),
            "Error: incomplete sync state header entry at P:1"
        );
    }

    /// Leniencies of the reference's `sscanf` parsing (checked against mbsync 1.4.4).
    #[test]
    fn scanf_leniencies() {
        let state = parse("FarUidValidity 1000 junk\nMaxPulledUid  1\n\n1 1Sx\n -1 2\n").unwrap();
        assert_eq!(state.uid_validity[0], Some(1000));
        assert_eq!(state.maxuid[0], 1);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
        assert_eq!(state.entries[1].uid, [0, 2]);
        assert_eq!(state.entries[1].status, Status::SKIPPED);
    }

    #[test]
    fn entry_errors() {
        // The pre-1.1 header has no empty line after it: an empty line is an entry.
        assert_eq!(
            parse_err("1000:1 2000:0:1\n\n1 1 S\n", NEAR),
            "Error: invalid sync state entry at P:2"
        );
        let long = format!("\n1 1 {}\n", "S".repeat(130));
        assert_eq!(
            parse_err(&long, NEAR),
            "Error: incomplete sync state entry at P:2"
        );
        assert_eq!(
            parse_err("MaxPulledUid 1\n\n1 1 S\n2\n", NEAR),
            "Error: invalid sync state entry at P:4"
        );
        assert_eq!(
            parse_err("MaxPulledUid 1\n\nx y\n", NEAR),
            "Error: invalid sync state entry at P:3"
        );
        assert_eq!(
            parse_err("MaxPulledUid 1\n\n1 1 S\n2 2 S", NEAR),
            "Error: incomplete sync state entry at P:4"
        );
    }

    #[test]
    fn format_markers_and_omissions() {
        let mut state = PairState {
            uid_validity: [Some(1), Some(2)],
            maxuid: [5, 6],
            ..PairState::default()
        };
        let entry = |far, near, status: Status, flags| Entry {
            uid: [far, near],
            status,
            flags,
            ..Entry::default()
        };
        state.entries = vec![
            entry(1, 0, Status::DUMMY_F.with(Status::DUMMY_N), Flags::SEEN),
            entry(2, 0, Status::DEAD, Flags::SEEN),
            entry(3, 0, Status::PENDING, Flags::EMPTY),
            entry(4, 4, Status::EXPIRE, Flags::SEEN),
            entry(5, 0, Status::SKIPPED.with(Status::EXPIRED), Flags::EMPTY),
            entry(
                6,
                6,
                Status::EXPIRE.with(Status::EXPIRED).with(Status::DUMMY_N),
                Flags::FLAGGED,
            ),
        ];
        assert_eq!(
            String::from_utf8(format_state(&state, NEAR)).unwrap(),
            "FarUidValidity 1\nNearUidValidity 2\nMaxPulledUid 5\nMaxPushedUid 6\n\n\
             1 0 <S\n3 0 \n4 4 S\n5 0 ^\n6 6 >~F\n"
        );
        state.max_expired = 9;
        let text = String::from_utf8(format_state(&state, Side::Far)).unwrap();
        assert!(
            text.contains("MaxPushedUid 6\nMaxExpiredNearUid 9\n\n"),
            "{text}"
        );
    }

    #[test]
    fn assign_rules() {
        let mut state = PairState {
            newmaxuid: [3, 7],
            ..PairState::default()
        };
        state.entries.push(Entry {
            uid: [0, 2],
            status: Status::PENDING.with(Status::DUMMY_F),
            pflags: Flags::SEEN,
            flags: Flags::DRAFT,
            tuid: Some(*b"AAAAAAAAAAAA"),
            ..Entry::default()
        });
        state.assign(0, Side::Far, 4);
        assert_eq!(state.newmaxuid, [4, 7]);
        let entry = &state.entries[0];
        assert_eq!(entry.uid, [4, 2]);
        assert_eq!(entry.flags, Flags::SEEN);
        assert_eq!(entry.status, Status::DUMMY_F);
        assert_eq!(entry.tuid, None);
        // Not contiguous: the mark stays.
        state.assign(0, Side::Near, 9);
        assert_eq!(state.newmaxuid, [4, 7]);
        // Orphaning keeps the flags.
        state.entries[0].pflags = Flags::EMPTY;
        state.assign(0, Side::Near, 0);
        assert_eq!(state.entries[0].uid, [4, 0]);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
    }

    #[test]
    fn assign_of_an_upgrade_applies_deltas() {
        let mut state = PairState::default();
        let mut entry = Entry {
            uid: [2, 0],
            flags: Flags::SEEN,
            pflags: Flags::SEEN,
            status: Status::PENDING.with(Status::UPGRADE),
            ..Entry::default()
        };
        entry.add[1] = Flags::FLAGGED;
        entry.del[1] = Flags::SEEN;
        state.entries.push(entry);
        state.assign(0, Side::Near, 1);
        let entry = &state.entries[0];
        assert_eq!(entry.flags, Flags::FLAGGED);
        assert_eq!(entry.add[1], Flags::EMPTY);
        assert_eq!(entry.del[1], Flags::EMPTY);
        assert_eq!(entry.status, Status::EMPTY);
        assert_eq!(state.newmaxuid, [0, 1]);
    }

    #[test]
    fn upgrade_split_inserts_placeholder_after_original() {
        let mut state = parse("\n1 1 S\n2 2 >S\n3 3 S\n").unwrap();
        state.entries[1].status.set(Status::DEL_N);
        let index = state.upgrade_split(1, Side::Near);
        assert_eq!(index, 2);
        let original = &state.entries[1];
        assert_eq!(original.uid, [2, 0]);
        assert_eq!(
            original.status,
            Status::PENDING.with(Status::UPGRADE).with(Status::DEL_N)
        );
        let placeholder = &state.entries[2];
        assert_eq!(placeholder.uid, [0, 2]);
        assert_eq!(placeholder.status, Status::PURGE.with(Status::DEL_N));
        assert_eq!(placeholder.add[1], Flags::TRASHED);
        assert_eq!(placeholder.flags, Flags::EMPTY);
        assert_eq!(state.entries[3].uid, [3, 3]);
    }
}
