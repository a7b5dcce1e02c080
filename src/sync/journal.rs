//! The journal: record lines (spec sync-semantics §3.1, §3.2), replaying a journal onto a
//! parsed state (§3.3), and the run's journal writer with its step counter and `-Ts` limit
//! (§1.4, §3.4).

use std::fs::{File, OpenOptions};
use std::io::Write;

use super::entry::{Entry, PairState, Record, Status};
use super::files::StatePaths;
use super::state::{LineReader, Scanner, StateError, uid_validity_from_file};
use crate::config::Side;
use crate::store::{Flags, Tuid};

pub use super::error::SyncError;

/// The journal format version, the first line of every journal.
pub const JOURNAL_VERSION: &str = "5";

fn flags_text(flags: Flags) -> String {
    flags.bits().to_string()
}

fn flags_from_value(value: u32) -> Flags {
    Flags::from_bits((value & u32::from(Flags::ALL.bits())) as u8)
}

fn side_letter(side: Side) -> char {
    match side {
        Side::Far => '<',
        Side::Near => '>',
    }
}

fn side_from_index(value: u32) -> Option<Side> {
    match value {
        0 => Some(Side::Far),
        1 => Some(Side::Near),
        _ => None,
    }
}

/// A journal line whose arguments do not fit its type.
struct Malformed;

/// A parsed line: a known record, or a well-formed line of an unknown type (which replay
/// reports only after looking up its entry, as the reference does).
enum ParsedLine {
    Known(Record),
    Unknown { far: u32, near: u32 },
}

impl Record {
    /// The record as a journal line, without the newline.
    pub fn to_line(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }

    /// The record as journal bytes, without the newline (a TUID is written as its raw bytes).
    fn to_bytes(&self) -> Vec<u8> {
        let text = match self {
            Record::UidValidity { far, near } => format!("| {far} {near}"),
            Record::New { far, near } => format!("+ {far} {near}"),
            Record::Dead { far, near } => format!("- {far} {near}"),
            Record::Tuid { far, near, tuid } => {
                let mut line = format!("# {far} {near} ").into_bytes();
                line.extend_from_slice(tuid);
                return line;
            }
            Record::TuidLost { far, near } => format!("& {far} {near}"),
            Record::Assign {
                side,
                far,
                near,
                uid,
            } => format!("{} {far} {near} {uid}", side_letter(*side)),
            Record::Flags { far, near, flags } => format!("* {far} {near} {}", flags_text(*flags)),
            Record::PFlags { far, near, flags } => format!("% {far} {near} {}", flags_text(*flags)),
            Record::Status { far, near, status } => format!("~ {far} {near} {status}"),
            Record::Dummy { far, near } => format!("_ {far} {near}"),
            Record::Upgrade { far, near, flags } => {
                format!("^ {far} {near} {}", flags_text(*flags))
            }
            Record::UpgradeDelta {
                far,
                near,
                add,
                del,
            } => format!("$ {far} {near} {} {}", flags_text(*add), flags_text(*del)),
            Record::Purged { far, near } => format!("P {far} {near}"),
            Record::FindThreshold { side, uid } => format!("F {} {uid}", side.index()),
            Record::Trashed { side, uid } => format!("T {} {uid}", side.index()),
            Record::MaxUid { side, uid } => format!("N {} {uid}", side.index()),
        };
        text.into_bytes()
    }

    /// Parses one journal line (without its newline). `path` and `line_no` name the place in
    /// error messages.
    pub fn parse_line(line: &str, path: &str, line_no: usize) -> Result<Record, StateError> {
        match parse_line_bytes(line.as_bytes()) {
            Ok(ParsedLine::Known(record)) => Ok(record),
            Ok(ParsedLine::Unknown { .. }) => Err(StateError::UnrecognizedJournalEntry {
                path: path.to_string(),
                line: line_no,
            }),
            Err(Malformed) => Err(StateError::MalformedJournalEntry {
                path: path.to_string(),
                line: line_no,
            }),
        }
    }

    /// The entry UIDs a record refers to, for records that locate an entry.
    fn entry_uids(&self) -> Option<(u32, u32)> {
        match *self {
            Record::Dead { far, near }
            | Record::Tuid { far, near, .. }
            | Record::TuidLost { far, near }
            | Record::Assign { far, near, .. }
            | Record::Flags { far, near, .. }
            | Record::PFlags { far, near, .. }
            | Record::Status { far, near, .. }
            | Record::Dummy { far, near }
            | Record::Upgrade { far, near, .. }
            | Record::UpgradeDelta { far, near, .. }
            | Record::Purged { far, near } => Some((far, near)),
            Record::UidValidity { .. }
            | Record::New { .. }
            | Record::FindThreshold { .. }
            | Record::Trashed { .. }
            | Record::MaxUid { .. } => None,
        }
    }
}

/// Reads `N` unsigned arguments.
fn arguments<const N: usize>(scanner: &mut Scanner) -> Result<[u32; N], Malformed> {
    let mut values = [0u32; N];
    for value in values.iter_mut() {
        *value = scanner.unsigned().ok_or(Malformed)?;
    }
    Ok(values)
}

/// Parses a journal line: the type byte, one separator byte, then the arguments (read like
/// `sscanf` `%u`; anything after the last argument is ignored, except for `#`, where exactly
/// the 12 TUID characters must follow the UIDs and their trailing space).
fn parse_line_bytes(line: &[u8]) -> Result<ParsedLine, Malformed> {
    let Some(&kind) = line.first() else {
        return Err(Malformed);
    };
    let mut scanner = Scanner::new(line.get(2..).unwrap_or(b""));
    let record = match kind {
        b'#' => {
            let [far, near] = arguments(&mut scanner)?;
            scanner.skip_space();
            let tuid: Tuid = scanner.rest().try_into().map_err(|_| Malformed)?;
            Record::Tuid { far, near, tuid }
        }
        b'|' | b'+' | b'-' | b'&' | b'_' | b'P' => {
            let [far, near] = arguments(&mut scanner)?;
            match kind {
                b'|' => Record::UidValidity { far, near },
                b'+' => Record::New { far, near },
                b'-' => Record::Dead { far, near },
                b'&' => Record::TuidLost { far, near },
                b'_' => Record::Dummy { far, near },
                _ => Record::Purged { far, near },
            }
        }
        b'F' | b'T' | b'N' => {
            let [side, uid] = arguments(&mut scanner)?;
            let side = side_from_index(side).ok_or(Malformed)?;
            match kind {
                b'F' => Record::FindThreshold { side, uid },
                b'T' => Record::Trashed { side, uid },
                _ => Record::MaxUid { side, uid },
            }
        }
        b'$' => {
            let [far, near, add, del] = arguments(&mut scanner)?;
            Record::UpgradeDelta {
                far,
                near,
                add: flags_from_value(add),
                del: flags_from_value(del),
            }
        }
        _ => {
            let [far, near, value] = arguments(&mut scanner)?;
            match kind {
                b'<' | b'>' => Record::Assign {
                    side: if kind == b'<' { Side::Far } else { Side::Near },
                    far,
                    near,
                    uid: value,
                },
                b'*' => Record::Flags {
                    far,
                    near,
                    flags: flags_from_value(value),
                },
                b'%' => Record::PFlags {
                    far,
                    near,
                    flags: flags_from_value(value),
                },
                b'~' => Record::Status {
                    far,
                    near,
                    status: value,
                },
                b'^' => Record::Upgrade {
                    far,
                    near,
                    flags: flags_from_value(value),
                },
                _ => return Ok(ParsedLine::Unknown { far, near }),
            }
        }
    };
    Ok(ParsedLine::Known(record))
}

/// Finds the entry with exactly these UIDs, searching from the cursor to the end and then
/// from the start up to the cursor (spec §3.3). DEAD entries count.
fn find_entry(entries: &[Entry], cursor: Option<usize>, far: u32, near: u32) -> Option<usize> {
    let start = cursor.unwrap_or(0).min(entries.len());
    (start..entries.len())
        .chain(0..start)
        .find(|&index| entries[index].uid == [far, near])
}

/// Replays a journal onto a freshly parsed state (spec §3.3). `path` names the journal in
/// error messages; `expire_side` decides which side's UID raises MaxExpired. On success the
/// trashed lists are sorted and `replayed` is set. On error the state is partly changed and
/// must be discarded (the pair fails).
pub fn replay(
    state: &mut PairState,
    journal: &[u8],
    path: &str,
    expire_side: Side,
) -> Result<(), StateError> {
    let mut lines = LineReader::new(journal);
    match lines.next() {
        Some((version, true)) => {
            if version != JOURNAL_VERSION.as_bytes() {
                return Err(StateError::JournalVersion {
                    got: String::from_utf8_lossy(version).into_owned(),
                });
            }
        }
        _ => {
            return Err(StateError::IncompleteJournalHeader {
                path: path.to_string(),
            });
        }
    }
    let keep = expire_side.other().index();
    let mut cursor: Option<usize> = None;
    for (index, (text, complete)) in lines.enumerate() {
        let line_no = index + 2;
        let path = path.to_string();
        if !complete {
            return Err(StateError::IncompleteJournalEntry {
                path,
                line: line_no,
            });
        }
        match replay_line(state, &mut cursor, text, keep) {
            Ok(()) => {}
            Err(LineFault::Malformed) => {
                return Err(StateError::MalformedJournalEntry {
                    path,
                    line: line_no,
                });
            }
            Err(LineFault::Unrecognized) => {
                return Err(StateError::UnrecognizedJournalEntry {
                    path,
                    line: line_no,
                });
            }
            Err(LineFault::NoSuchEntry) => {
                return Err(StateError::NoSuchEntry {
                    path,
                    line: line_no,
                });
            }
        }
    }
    state.trashed[0].sort_unstable();
    state.trashed[1].sort_unstable();
    state.replayed = true;
    Ok(())
}

/// Why a journal line could not be replayed.
enum LineFault {
    Malformed,
    Unrecognized,
    NoSuchEntry,
}

/// Replays one complete journal line (without its newline), moving the cursor.
fn replay_line(
    state: &mut PairState,
    cursor: &mut Option<usize>,
    text: &[u8],
    keep: usize,
) -> Result<(), LineFault> {
    let record = match parse_line_bytes(text) {
        Ok(ParsedLine::Known(record)) => record,
        // An unknown type is reported only once its entry has been found.
        Ok(ParsedLine::Unknown { far, near }) => {
            return Err(match find_entry(&state.entries, *cursor, far, near) {
                Some(_) => LineFault::Unrecognized,
                None => LineFault::NoSuchEntry,
            });
        }
        Err(Malformed) => return Err(LineFault::Malformed),
    };
    match record {
        Record::UidValidity { far, near } => {
            state.uid_validity = [uid_validity_from_file(far), uid_validity_from_file(near)];
        }
        Record::New { far, near } => {
            state.entries.push(Entry {
                uid: [far, near],
                status: Status::PENDING,
                ..Entry::default()
            });
            state.newmaxuid[0] = state.newmaxuid[0].max(far);
            state.newmaxuid[1] = state.newmaxuid[1].max(near);
            *cursor = Some(state.entries.len() - 1);
        }
        Record::FindThreshold { side, uid } => state.find_threshold[side.index()] = Some(uid),
        Record::Trashed { side, uid } => state.trashed[side.index()].push(uid),
        Record::MaxUid { side, uid } => {
            state.maxuid[side.index()] = uid;
            state.newmaxuid[side.index()] = uid;
        }
        other => {
            if let Some((far, near)) = other.entry_uids() {
                let found =
                    find_entry(&state.entries, *cursor, far, near).ok_or(LineFault::NoSuchEntry)?;
                *cursor = Some(apply_to_entry(state, found, other, keep));
            }
        }
    }
    Ok(())
}

/// Applies an entry-locating record to entry `index`; returns the new cursor.
fn apply_to_entry(state: &mut PairState, index: usize, record: Record, keep: usize) -> usize {
    let entry = &mut state.entries[index];
    match record {
        Record::Dead { .. } => entry.status = Status::DEAD,
        Record::Tuid { tuid, .. } => entry.tuid = Some(tuid),
        Record::TuidLost { .. } => entry.tuid = None,
        Record::Assign { side, uid, .. } => state.assign(index, side, uid),
        Record::Flags { flags, .. } => entry.flags = flags,
        Record::PFlags { flags, .. } => entry.pflags = flags,
        Record::Status { status, .. } => {
            entry.status = entry.status.without(Status::LOGGED).with(Status(status));
            if entry.status.has(Status::EXPIRED) && entry.uid[keep] > state.max_expired {
                state.max_expired = entry.uid[keep];
            }
        }
        Record::Dummy { .. } => {
            let side = if entry.uid[0] == 0 {
                Side::Far
            } else {
                Side::Near
            };
            entry.status = Status::PENDING.with(Status::dummy(side));
        }
        Record::Upgrade { flags, .. } => {
            entry.pflags = flags;
            let side = if entry.status.has(Status::DUMMY_F) {
                Side::Far
            } else {
                Side::Near
            };
            return state.upgrade_split(index, side);
        }
        Record::UpgradeDelta { add, del, .. } => {
            let t = if entry.uid[0] == 0 { 0 } else { 1 };
            entry.add[t] = add;
            entry.del[t] = del;
        }
        Record::Purged { .. } => {
            entry.add = [Flags::EMPTY; 2];
            entry.del = [Flags::EMPTY; 2];
            entry.status = entry.status.without(Status::PURGE).with(Status::PURGED);
        }
        Record::UidValidity { .. }
        | Record::New { .. }
        | Record::FindThreshold { .. }
        | Record::Trashed { .. }
        | Record::MaxUid { .. } => {}
    }
    index
}

/// Settings of the run's journal writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalOptions {
    /// `-y`: count records and steps, write nothing.
    pub dry_run: bool,
    /// `FSync`: fdatasync the journal after the TUIDs.
    pub fsync: bool,
    /// `-Ts<N>`: stop when step N is counted; 0 = no limit.
    pub step_limit: u64,
    /// `-Tj`: keep the journal, write `.new` only, print the `###` line.
    pub keep_journal: bool,
    /// `-TJ`: also journal the end-of-run records.
    pub journal_end: bool,
}

/// The journal of the mailbox pair being synchronized.
struct PairJournal {
    paths: StatePaths,
    /// A journal was replayed at start: append instead of starting a new journal.
    replayed: bool,
    /// Open once the first record of the pair was written.
    file: Option<File>,
    /// Records emitted for this pair.
    records: u64,
}

/// The run's journal writer and step counter, shared by all pairs of the process.
///
/// Use: `begin_pair` when the pair's state paths are known, `log` for every record (and
/// `count_step` for proxy steps), `flush_to_disk` after the TUIDs; at the end of the pair
/// check `wrote_records()` (save decision, spec §1.4), then `end_pair` (closes the journal)
/// before `files::save_state`.
pub struct Journal {
    options: JournalOptions,
    steps: u64,
    records: u64,
    pair: Option<PairJournal>,
}

impl Journal {
    pub fn new(options: JournalOptions) -> Journal {
        Journal {
            options,
            steps: 0,
            records: 0,
            pair: None,
        }
    }

    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Starts journalling for a mailbox pair; `replayed` says whether its journal was
    /// replayed at start (later records are then appended to it).
    pub fn begin_pair(&mut self, paths: StatePaths, replayed: bool) {
        self.pair = Some(PairJournal {
            paths,
            replayed,
            file: None,
            records: 0,
        });
    }

    /// Ends the pair: closes its journal file (which stays on disk).
    pub fn end_pair(&mut self) {
        self.pair = None;
    }

    /// Emits a record: counts a step and a record, writes the line (creating `.new` and the
    /// journal at the pair's first record, unless dry run). Returns `Interrupted` when this
    /// step reached the `-Ts` limit (the line has been written completely by then).
    pub fn log(&mut self, record: &Record) -> Result<(), SyncError> {
        self.records += 1;
        if let Some(pair) = self.pair.as_mut() {
            pair.records += 1;
            if !self.options.dry_run {
                let mut line = record.to_bytes();
                line.push(b'\n');
                let path = pair.paths.journal.display().to_string();
                let file = open_pair_journal(pair)?;
                file.write_all(&line)
                    .map_err(|source| SyncError::from(StateError::Write { path, source }))?;
            }
        } else if !self.options.dry_run {
            return Err(SyncError::Fatal(format!(
                "Error: journal record '{}' outside of a mailbox pair",
                record.to_line()
            )));
        }
        self.count_step()
    }

    /// Counts one step (spec §3.4); `Interrupted` when it is the `-Ts` limit.
    pub fn count_step(&mut self) -> Result<(), SyncError> {
        self.steps += 1;
        if self.options.step_limit != 0 && self.steps >= self.options.step_limit {
            return Err(SyncError::Interrupted);
        }
        Ok(())
    }

    /// Forces the journal to disk (fdatasync) when `FSync` is on and the journal is open.
    pub fn flush_to_disk(&mut self) -> Result<(), SyncError> {
        if !self.options.fsync {
            return Ok(());
        }
        if let Some(pair) = self.pair.as_mut()
            && let Some(file) = pair.file.as_mut()
        {
            file.sync_data().map_err(|source| {
                SyncError::from(StateError::Write {
                    path: pair.paths.journal.display().to_string(),
                    source,
                })
            })?;
        }
        Ok(())
    }

    /// At least one record was emitted for the current pair (also in dry run).
    pub fn wrote_records(&self) -> bool {
        self.pair.as_ref().is_some_and(|pair| pair.records > 0)
    }

    /// Steps counted so far in this process.
    pub fn steps(&self) -> i64 {
        i64::try_from(self.steps).unwrap_or(i64::MAX)
    }

    /// Records emitted so far in this process.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The `-Tj` line `### <steps> steps, <records> entries ###`, where steps is the count
    /// minus the `-Ts` limit (spec §3.4).
    pub fn hash_line(&self) -> String {
        let limit = i64::try_from(self.options.step_limit).unwrap_or(i64::MAX);
        format!(
            "### {} steps, {} entries ###",
            self.steps().saturating_sub(limit),
            self.records
        )
    }
}

/// The pair's open journal file, creating `.new` (empty) and opening the journal at the first
/// record (spec §1.4).
fn open_pair_journal(pair: &mut PairJournal) -> Result<&mut File, SyncError> {
    if pair.file.is_none() {
        if !pair.replayed {
            // A journal left without `.new` (a run killed between its commit's rename and
            // the journal's deletion) was folded into the state already. It is emptied
            // before `.new` appears: were the run killed between creating `.new` and
            // truncating the journal, the next run would replay those old records a second
            // time. (An empty journal is not replayed; errors show below.)
            let _ = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&pair.paths.journal);
        }
        File::create(&pair.paths.new).map_err(|source| StateError::CreateNew {
            path: pair.paths.new.display().to_string(),
            source,
        })?;
        let create_error = |source| StateError::CreateJournal {
            path: pair.paths.journal.display().to_string(),
            source,
        };
        let file = if pair.replayed {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(&pair.paths.journal)
                .map_err(create_error)?
        } else {
            let mut file = File::create(&pair.paths.journal).map_err(create_error)?;
            file.write_all(format!("{JOURNAL_VERSION}\n").as_bytes())
                .map_err(|source| StateError::Write {
                    path: pair.paths.journal.display().to_string(),
                    source,
                })?;
            file
        };
        pair.file = Some(file);
    }
    match pair.file.as_mut() {
        Some(file) => Ok(file),
        None => Err(SyncError::Fatal("Error: journal not open".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::state::{format_state, parse_state};

    const NEAR: Side = Side::Near;

    fn all_record_kinds() -> Vec<Record> {
        vec![
            Record::UidValidity {
                far: 1000,
                near: 2000,
            },
            Record::New { far: 0, near: 1 },
            Record::Dead { far: 4, near: 0 },
            Record::Tuid {
                far: 1,
                near: 0,
                tuid: *b"Ab3+/xyzQRS9",
            },
            Record::TuidLost { far: 3, near: 0 },
            Record::Assign {
                side: Side::Far,
                far: 0,
                near: 1,
                uid: 3,
            },
            Record::Assign {
                side: Side::Near,
                far: 1,
                near: 0,
                uid: 2,
            },
            Record::Flags {
                far: 1,
                near: 1,
                flags: Flags::SEEN | Flags::TRASHED,
            },
            Record::PFlags {
                far: 0,
                near: 1,
                flags: Flags::FLAGGED | Flags::REPLIED,
            },
            Record::Status {
                far: 5,
                near: 3,
                status: 1030,
            },
            Record::Dummy { far: 2, near: 0 },
            Record::Upgrade {
                far: 2,
                near: 2,
                flags: Flags::SEEN,
            },
            Record::UpgradeDelta {
                far: 2,
                near: 0,
                add: Flags::FLAGGED,
                del: Flags::EMPTY,
            },
            Record::Purged { far: 0, near: 2 },
            Record::FindThreshold {
                side: Side::Near,
                uid: 2,
            },
            Record::Trashed {
                side: Side::Far,
                uid: 4,
            },
            Record::MaxUid {
                side: Side::Near,
                uid: 3,
            },
        ]
    }

    #[test]
    fn record_lines() {
        let lines: Vec<String> = all_record_kinds().iter().map(Record::to_line).collect();
        assert_eq!(
            lines,
            [
                "| 1000 2000",
                "+ 0 1",
                "- 4 0",
                "# 1 0 Ab3+/xyzQRS9",
                "& 3 0",
                "< 0 1 3",
                "> 1 0 2",
                "* 1 1 48",
                "% 0 1 10",
                "~ 5 3 1030",
                "_ 2 0",
                "^ 2 2 16",
                "$ 2 0 2 0",
                "P 0 2",
                "F 1 2",
                "T 0 4",
                "N 1 3",
            ]
        );
    }

    #[test]
    fn record_lines_round_trip() {
        for (index, record) in all_record_kinds().into_iter().enumerate() {
            let line = record.to_line();
            let parsed = Record::parse_line(&line, "J", index + 2).unwrap();
            assert_eq!(parsed, record, "{line}");
        }
    }

    fn parse_error(line: &str) -> String {
        match Record::parse_line(line, "J", 7) {
            Ok(record) => panic!("{line:?} parsed as {record:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn record_parse_errors() {
        let malformed = "Error: malformed journal entry at J:7";
        let unrecognized = "Error: unrecognized journal entry at J:7";
        assert_eq!(parse_error("< 1 1"), malformed);
        assert_eq!(parse_error("+1 2"), malformed);
        assert_eq!(parse_error("$ 1 2 3"), malformed);
        assert_eq!(parse_error("# 1 0 SHORT"), malformed);
        assert_eq!(parse_error("# 1 0 AAAAAAAAAAAAA"), malformed);
        assert_eq!(parse_error("# 1 0"), malformed);
        assert_eq!(parse_error("F 2 5"), malformed);
        assert_eq!(parse_error(""), malformed);
        assert_eq!(parse_error("* a b c"), malformed);
        // Unknown types are read with three arguments first.
        assert_eq!(parse_error("Z 1 2"), malformed);
        assert_eq!(parse_error("Z 1 2 3"), unrecognized);
        // Type letters are case-sensitive.
        assert_eq!(parse_error("p 1 2 3"), unrecognized);
    }

    #[test]
    fn record_parse_is_lenient_like_scanf() {
        assert_eq!(
            Record::parse_line("+ 0 1 junk", "J", 2).unwrap(),
            Record::New { far: 0, near: 1 }
        );
        assert_eq!(
            Record::parse_line("-\t1\t 1", "J", 2).unwrap(),
            Record::Dead { far: 1, near: 1 }
        );
        assert_eq!(
            Record::parse_line("- -1 1", "J", 2).unwrap(),
            Record::Dead {
                far: u32::MAX,
                near: 1
            }
        );
        assert_eq!(
            Record::parse_line("#  1 0   AAAAAAAAAAAA", "J", 2).unwrap(),
            Record::Tuid {
                far: 1,
                near: 0,
                tuid: *b"AAAAAAAAAAAA"
            }
        );
    }

    fn state_of(text: &str) -> PairState {
        parse_state(text.as_bytes(), "P", NEAR).unwrap()
    }

    fn replayed(state_text: Option<&str>, journal: &str, expire_side: Side) -> PairState {
        let mut state = match state_text {
            Some(text) => parse_state(text.as_bytes(), "P", expire_side).unwrap(),
            None => PairState::default(),
        };
        replay(&mut state, journal.as_bytes(), "J", expire_side).unwrap();
        state
    }

    fn replay_error(state_text: &str, journal: &str) -> String {
        let mut state = state_of(state_text);
        match replay(&mut state, journal.as_bytes(), "J", NEAR) {
            Ok(()) => panic!("replay succeeded: {state:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn text(state: &PairState, expire_side: Side) -> String {
        String::from_utf8(format_state(state, expire_side)).unwrap()
    }

    /// Example 1: the complete journal of a first run, replayed onto no state, gives the state
    /// of the run except the high-water marks (committed only at the end).
    #[test]
    fn replay_example_1() {
        let journal = "5\n| 1000 2000\n+ 0 1\n+ 1 0\n+ 2 0\nF 0 2\nF 1 1\n\
                       # 0 1 AAAAAAAAAAAA\n# 1 0 BBBBBBBBBBBB\n# 2 0 CCCCCCCCCCCC\n\
                       % 0 1 10\n< 0 1 3\n% 1 0 16\n> 1 0 2\n> 2 0 3\n";
        let mut state = replayed(None, journal, NEAR);
        assert!(state.replayed);
        assert_eq!(state.newmaxuid, [3, 3]);
        assert_eq!(state.maxuid, [0, 0]);
        assert_eq!(state.find_threshold, [Some(2), Some(1)]);
        assert!(
            state
                .entries
                .iter()
                .all(|e| e.tuid.is_none() && !e.status.has(Status::PENDING))
        );
        state.maxuid = state.newmaxuid;
        assert_eq!(
            text(&state, NEAR),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 FR\n1 2 S\n2 3 \n"
        );
    }

    /// Example 2: flag records.
    #[test]
    fn replay_example_2() {
        let state = replayed(
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n",
            ),
            "5\n* 1 1 0\n* 1 1 2\n* 2 2 17\n* 3 3 24\n",
            NEAR,
        );
        assert_eq!(
            text(&state, NEAR),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 F\n2 2 DS\n3 3 RS\n"
        );
    }

    /// Example 4: doomed new entries, flags and trash records. The end-of-run purge and
    /// high-water marks are not in the journal.
    #[test]
    fn replay_example_4() {
        let mut state = replayed(
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n",
            ),
            "5\n+ 0 3\n- 0 3\n+ 4 0\n- 4 0\n* 1 1 48\nT 0 4\nT 0 1\nT 1 3\n",
            NEAR,
        );
        assert_eq!(state.newmaxuid, [4, 3]);
        assert_eq!(state.trashed, [vec![1, 4], vec![3]]);
        assert_eq!(state.entries[0].flags, Flags::SEEN | Flags::TRASHED);
        assert!(state.entries[2].is_dead() && state.entries[3].is_dead());
        state.maxuid = state.newmaxuid;
        assert_eq!(
            text(&state, NEAR),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 3\n\n1 1 ST\n2 2 S\n"
        );
    }

    /// Example 6: the upgrade split on replay, and the cursor moving to the placeholder.
    #[test]
    fn replay_example_6_upgrade() {
        let mut state = replayed(
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 >S\n",
            ),
            "5\n^ 2 2 16\nP 0 2\nF 1 2\n# 2 0 AAAAAAAAAAAA\n$ 2 0 2 0\n> 2 0 3\n",
            NEAR,
        );
        assert_eq!(state.entries.len(), 3);
        let placeholder = &state.entries[2];
        assert_eq!(placeholder.uid, [0, 2]);
        assert_eq!(placeholder.status, Status::PURGED);
        assert_eq!(placeholder.add, [Flags::EMPTY; 2]);
        let upgraded = &state.entries[1];
        assert_eq!(upgraded.uid, [2, 3]);
        assert_eq!(upgraded.flags, Flags::FLAGGED | Flags::SEEN);
        assert_eq!(upgraded.status, Status::EMPTY);
        assert_eq!(state.newmaxuid, [2, 3]);
        state.maxuid = state.newmaxuid;
        assert_eq!(
            text(&state, NEAR),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 3\n\n1 1 S\n2 3 FS\n0 2 \n"
        );
    }

    /// Example 11: an interrupted first run; the entry of m3 stays pending with its TUID.
    #[test]
    fn replay_example_11() {
        let journal = "5\n| 1000 2000\n+ 1 0\n+ 2 0\n+ 3 0\nF 1 0\n# 1 0 AAAAAAAAAAAA\n\
                       # 2 0 BBBBBBBBBBBB\n# 3 0 CCCCCCCCCCCC\n% 1 0 16\n> 1 0 1\n% 2 0 16\n";
        let state = replayed(None, journal, NEAR);
        assert_eq!(state.uid_validity, [Some(1000), Some(2000)]);
        assert_eq!(state.newmaxuid, [3, 1]);
        assert_eq!(state.find_threshold, [None, Some(0)]);
        assert_eq!(state.entries.len(), 3);
        assert_eq!(state.entries[0].uid, [1, 1]);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
        assert_eq!(state.entries[0].status, Status::EMPTY);
        assert_eq!(state.entries[1].uid, [2, 0]);
        assert_eq!(state.entries[1].status, Status::PENDING);
        assert_eq!(state.entries[1].pflags, Flags::SEEN);
        assert_eq!(state.entries[1].tuid, Some(*b"BBBBBBBBBBBB"));
        assert_eq!(state.entries[2].tuid, Some(*b"CCCCCCCCCCCC"));
        assert!(!state.existed);
    }

    /// Example 21: `N` sets the committed mark; the replayed state equals the `.new` of run 1.
    #[test]
    fn replay_example_21() {
        let state = replayed(
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 0\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n",
            ),
            "5\nN 1 3\n",
            Side::Far,
        );
        assert_eq!(state.newmaxuid, [3, 3]);
        assert_eq!(
            text(&state, Side::Far),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n"
        );
    }

    #[test]
    fn replay_status_raises_max_expired_on_keep_side() {
        let base = "MaxPulledUid 9\n\n5 3 S\n8 4 S\n";
        // ExpireSide Near: keep side is far.
        let state = replayed(Some(base), "5\n~ 5 3 6\n~ 8 4 2\n", NEAR);
        assert_eq!(state.max_expired, 5);
        assert_eq!(
            state.entries[0].status,
            Status::EXPIRE.with(Status::EXPIRED)
        );
        assert_eq!(state.entries[1].status, Status::EXPIRE);
        // ExpireSide Far: keep side is near.
        let state = replayed(Some(base), "5\n~ 5 3 6\n", Side::Far);
        assert_eq!(state.max_expired, 3);
        // Transient bits of a forced commit are OR-ed in; LOGGED bits are replaced.
        let state = replayed(Some("\n5 3 <S\n"), "5\n~ 5 3 1030\n", NEAR);
        assert_eq!(state.entries[0].status, Status(1030));
        // Never lowered.
        let state = replayed(Some("MaxExpiredFarUid 7\n\n5 3 S\n"), "5\n~ 5 3 6\n", NEAR);
        assert_eq!(state.max_expired, 7);
    }

    #[test]
    fn replay_dummy_tuid_lost_and_dead() {
        let state = replayed(
            Some("\n1 1 S\n"),
            "5\n+ 0 4\n_ 0 4\n# 0 4 AAAAAAAAAAAA\n& 0 4\n+ 7 0\n_ 7 0\n- 1 1\n",
            NEAR,
        );
        assert_eq!(state.entries[0].status, Status::DEAD);
        assert_eq!(
            state.entries[1].status,
            Status::PENDING.with(Status::DUMMY_F)
        );
        assert_eq!(state.entries[1].tuid, None);
        assert_eq!(
            state.entries[2].status,
            Status::PENDING.with(Status::DUMMY_N)
        );
        assert_eq!(state.newmaxuid, [7, 4]);
    }

    /// The search starts at the cursor and wraps: with two entries carrying the same UIDs, the
    /// one at or after the cursor is taken.
    #[test]
    fn replay_cursor_search_wraps() {
        let base = "\n1 1 \n2 2 \n1 1 \n3 3 \n";
        // No cursor yet: the first match.
        let state = replayed(Some(base), "5\n* 1 1 2\n", NEAR);
        assert_eq!(state.entries[0].flags, Flags::FLAGGED);
        assert_eq!(state.entries[2].flags, Flags::EMPTY);
        // Cursor at entry 2 (2 2): the next 1 1 is entry 3.
        let state = replayed(Some(base), "5\n* 2 2 4\n* 1 1 2\n", NEAR);
        assert_eq!(state.entries[0].flags, Flags::EMPTY);
        assert_eq!(state.entries[2].flags, Flags::FLAGGED);
        // Cursor at entry 4 (3 3): wraps to entry 1.
        let state = replayed(Some(base), "5\n* 3 3 4\n* 1 1 2\n", NEAR);
        assert_eq!(state.entries[0].flags, Flags::FLAGGED);
        // The cursor entry itself is found again; DEAD entries count.
        let state = replayed(Some(base), "5\n* 1 1 2\n- 1 1\n* 1 1 8\n", NEAR);
        assert_eq!(state.entries[0].flags, Flags::REPLIED);
        assert!(state.entries[0].is_dead());
        assert_eq!(state.entries[2].flags, Flags::EMPTY);
        // `+` moves the cursor to the new entry; a later lookup wraps from there.
        let state = replayed(Some(base), "5\n* 3 3 4\n+ 9 0\n* 1 1 16\n", NEAR);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
    }

    #[test]
    fn replay_errors() {
        let base = "MaxPulledUid 1\n\n1 1 S\n";
        assert_eq!(
            replay_error(base, ""),
            "Error: incomplete journal header in J"
        );
        assert_eq!(
            replay_error(base, "5"),
            "Error: incomplete journal header in J"
        );
        assert_eq!(
            replay_error(base, "4\n"),
            "Error: incompatible journal version (got 4, expected 5)"
        );
        assert_eq!(
            replay_error(base, "50\n"),
            "Error: incompatible journal version (got 50, expected 5)"
        );
        assert_eq!(
            replay_error(base, "5\n* 1 1 2\n* 1 1"),
            "Error: incomplete journal entry at J:3"
        );
        assert_eq!(
            replay_error(base, "5\n< 1 1\n"),
            "Error: malformed journal entry at J:2"
        );
        assert_eq!(
            replay_error(base, "5\n* 2 2 16\n"),
            "Error: journal entry at J:2 refers to non-existing sync state entry"
        );
        assert_eq!(
            replay_error(base, "5\nZ 1 2 3\n"),
            "Error: journal entry at J:2 refers to non-existing sync state entry"
        );
        assert_eq!(
            replay_error(base, "5\nZ 1 1 3\n"),
            "Error: unrecognized journal entry at J:2"
        );
        assert_eq!(
            replay_error(base, "5\nZ 1 1\n"),
            "Error: malformed journal entry at J:2"
        );
        assert_eq!(
            replay_error(base, "5\n\n"),
            "Error: malformed journal entry at J:2"
        );
    }

    #[test]
    fn replay_with_only_the_version_line_marks_replayed() {
        let state = replayed(Some("\n1 1 S\n"), "5\n", NEAR);
        assert!(state.replayed);
        assert_eq!(state.entries.len(), 1);
    }
}
