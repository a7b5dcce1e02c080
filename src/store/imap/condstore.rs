//! Incremental mailbox listings with CONDSTORE / QRESYNC (RFC 7162).
//!
//! A [`MailboxSnapshot`] is what a run learnt about one server mailbox: at modification
//! sequence `highest_modseq` (with `uid_validity` and `uid_next`), the mailbox held exactly
//! these UIDs with these flags. It says nothing about the sync state, so it stays true
//! whatever another program does to the state files; only the server can make it stale,
//! and the server tells: a different UIDVALIDITY, a lower HIGHESTMODSEQ or NOMODSEQ make
//! the store fall back to the full `UID FETCH 1:* (FLAGS)` listing.
//!
//! A later run asks only for what changed since (`SELECT … (QRESYNC …)` or `UID FETCH …
//! (CHANGEDSINCE …)`), merges that into the snapshot and serves the load from the result,
//! checking that the merged listing has exactly as many messages as the server reports.
//! A `STATUS` answer whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ all equal the
//! snapshot's means the mailbox did not change at all, so it need not even be selected
//! until something is to be done in it.
//!
//! This module holds the snapshot, its text form (one section of the side file written next
//! to the mbsync state file, see `sync::listing_file`) and the merge.

use crate::store::Flags;
use std::collections::BTreeMap;

/// One server mailbox as a run saw it (see the module comment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxSnapshot {
    pub uid_validity: u32,
    pub highest_modseq: u64,
    /// UIDNEXT when the snapshot was taken.
    pub uid_next: u32,
    /// `$Forwarded` could be stored (PERMANENTFLAGS) when the mailbox was last selected.
    pub forwarded_ok: bool,
    /// Every message of the mailbox: UID → its flags.
    pub messages: BTreeMap<u32, Flags>,
}

/// What `STATUS (MESSAGES RECENT UIDNEXT UIDVALIDITY HIGHESTMODSEQ)` said about a mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoxStatus {
    pub messages: u32,
    pub recent: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    pub highest_modseq: u64,
}

/// Why a snapshot text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct SnapshotSyntaxError {
    pub line: usize,
    pub what: String,
}

impl MailboxSnapshot {
    /// True if `status` shows the mailbox exactly as the snapshot has it: nothing was added,
    /// removed or changed since (a change of flags raises HIGHESTMODSEQ, an expunge lowers
    /// MESSAGES or comes with an append that raises UIDNEXT).
    pub fn unchanged_per(&self, status: &BoxStatus) -> bool {
        status.highest_modseq != 0
            && status.uid_validity == self.uid_validity
            && status.highest_modseq == self.highest_modseq
            && status.uid_next == self.uid_next
            && status.messages as usize == self.messages.len()
    }

    /// The text form: a header line `<uidvalidity> <highestmodseq> <uidnext> <forwarded 0|1>
    /// <count>` and then runs of consecutive UIDs with equal flags, one per line, as
    /// `<first>[:<last>] <flag letters or ->`.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} {} {} {} {}\n",
            self.uid_validity,
            self.highest_modseq,
            self.uid_next,
            u8::from(self.forwarded_ok),
            self.messages.len()
        );
        let mut run: Option<(u32, u32, Flags)> = None;
        let emit = |out: &mut String, (first, last, flags): (u32, u32, Flags)| {
            let letters = if flags.is_empty() {
                "-".to_string()
            } else {
                flags.letters()
            };
            if first == last {
                out.push_str(&format!("{first} {letters}\n"));
            } else {
                out.push_str(&format!("{first}:{last} {letters}\n"));
            }
        };
        for (&uid, &flags) in &self.messages {
            run = match run {
                Some((first, last, f)) if f == flags && last.checked_add(1) == Some(uid) => {
                    Some((first, uid, f))
                }
                Some(done) => {
                    emit(&mut out, done);
                    Some((uid, uid, flags))
                }
                None => Some((uid, uid, flags)),
            };
        }
        if let Some(done) = run {
            emit(&mut out, done);
        }
        out
    }

    /// Reads the text form written by [`MailboxSnapshot::to_text`]; `first_line` numbers the
    /// lines in errors. Anything malformed, out of order or not adding up to the count is an
    /// error (the caller then lists the mailbox in full).
    pub fn parse(
        lines: &[&str],
        first_line: usize,
    ) -> Result<MailboxSnapshot, SnapshotSyntaxError> {
        let bad = |index: usize, what: &str| SnapshotSyntaxError {
            line: first_line + index,
            what: what.to_string(),
        };
        let Some(header) = lines.first() else {
            return Err(bad(0, "missing mailbox header"));
        };
        let fields: Vec<&str> = header.split(' ').collect();
        let [validity, modseq, uid_next, forwarded, count] = fields.as_slice() else {
            return Err(bad(0, "mailbox header needs five fields"));
        };
        let number = |text: &str| text.parse::<u64>().map_err(|_| bad(0, "not a number"));
        let uid_validity = u32::try_from(number(validity)?).map_err(|_| bad(0, "UIDVALIDITY"))?;
        let highest_modseq = number(modseq)?;
        let uid_next = u32::try_from(number(uid_next)?).map_err(|_| bad(0, "UIDNEXT"))?;
        let forwarded_ok = match *forwarded {
            "0" => false,
            "1" => true,
            _ => return Err(bad(0, "forwarded must be 0 or 1")),
        };
        let count = usize::try_from(number(count)?).map_err(|_| bad(0, "count"))?;
        if uid_validity == 0 || highest_modseq == 0 {
            return Err(bad(0, "zero UIDVALIDITY or HIGHESTMODSEQ"));
        }
        let mut messages = BTreeMap::new();
        let mut previous = 0u32;
        for (index, line) in lines.iter().enumerate().skip(1) {
            let Some((set, letters)) = line.split_once(' ') else {
                return Err(bad(index, "expected '<uids> <flags>'"));
            };
            let (first, last) = match set.split_once(':') {
                Some((a, b)) => (a, b),
                None => (set, set),
            };
            let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) else {
                return Err(bad(index, "bad UID"));
            };
            if first == 0 || last < first || first <= previous || last >= uid_next {
                return Err(bad(index, "UIDs out of order or not below UIDNEXT"));
            }
            let mut flags = Flags::EMPTY;
            if letters != "-" {
                for letter in letters.chars() {
                    let Some(flag) = Flags::from_letter(letter) else {
                        return Err(bad(index, "unknown flag letter"));
                    };
                    flags |= flag;
                }
            }
            if (last - first) as usize >= count.saturating_sub(messages.len()) {
                return Err(bad(index, "more messages than the header counts"));
            }
            for uid in first..=last {
                messages.insert(uid, flags);
            }
            previous = last;
        }
        if messages.len() != count {
            return Err(bad(0, "message count does not match"));
        }
        Ok(MailboxSnapshot {
            uid_validity,
            highest_modseq,
            uid_next,
            forwarded_ok,
            messages,
        })
    }
}

/// Changes reported since a snapshot: UIDs gone and messages (new or changed) with their
/// flags and whether they are `\Recent`.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub vanished: Vec<(u32, u32)>,
    pub changed: BTreeMap<u32, (Flags, bool)>,
}

/// The mailbox as it is now: the snapshot with the changes applied, plus the UIDs that are
/// `\Recent` for this session.
#[derive(Clone, Debug, Default)]
pub struct MergedListing {
    pub messages: BTreeMap<u32, Flags>,
    pub recent: std::collections::BTreeSet<u32>,
}

/// Applies `changes` to `snapshot`.
pub fn merge(snapshot: &MailboxSnapshot, changes: &Changes) -> MergedListing {
    let mut messages = snapshot.messages.clone();
    for &(first, last) in &changes.vanished {
        let gone: Vec<u32> = messages.range(first..=last).map(|(u, _)| *u).collect();
        for uid in gone {
            messages.remove(&uid);
        }
    }
    let mut recent = std::collections::BTreeSet::new();
    for (&uid, &(flags, is_recent)) in &changes.changed {
        messages.insert(uid, flags);
        if is_recent {
            recent.insert(uid);
        }
    }
    MergedListing { messages, recent }
}

/// The UID ranges of a sequence set (`*` read as the largest UID), each `(low, high)`.
pub fn uid_ranges(set: &imap_next::imap_types::sequence::SequenceSet) -> Vec<(u32, u32)> {
    use imap_next::imap_types::sequence::{SeqOrUid, Sequence};
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => u32::MAX,
    };
    set.0
        .as_ref()
        .iter()
        .map(|sequence| match sequence {
            Sequence::Single(s) => (value(s), value(s)),
            Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> MailboxSnapshot {
        let mut messages = BTreeMap::new();
        for uid in 1..=5 {
            messages.insert(uid, Flags::SEEN);
        }
        messages.insert(7, Flags::EMPTY);
        messages.insert(8, Flags::FLAGGED | Flags::SEEN);
        MailboxSnapshot {
            uid_validity: 42,
            highest_modseq: 900,
            uid_next: 9,
            forwarded_ok: true,
            messages,
        }
    }

    #[test]
    fn text_form_compresses_runs_and_reads_back() {
        let snap = snapshot();
        let text = snap.to_text();
        assert_eq!(text, "42 900 9 1 7\n1:5 S\n7 -\n8 FS\n");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(MailboxSnapshot::parse(&lines, 1), Ok(snap));
    }

    #[test]
    fn malformed_text_is_rejected() {
        for text in [
            "42 900 9 1 8\n1:5 S\n7 -\n8 FS\n", // count too high
            "42 900 9 1 7\n1:5 S\n8 FS\n7 -\n", // out of order
            "42 900 8 1 7\n1:5 S\n7 -\n8 FS\n", // UID at UIDNEXT
            "42 900 9 1 7\n1:5 S\n7 -\n8 FX\n", // unknown flag
            "42 0 9 1 0\n",                     // no modseq
            "42 900 9 1 3\n1:4294967295 S\n",   // run longer than the count
            "42 900 9\n",                       // short header
        ] {
            let lines: Vec<&str> = text.lines().collect();
            assert!(MailboxSnapshot::parse(&lines, 1).is_err(), "{text:?}");
        }
    }

    #[test]
    fn merge_applies_vanished_then_changes() {
        let mut changes = Changes::default();
        changes.vanished.push((2, 3));
        changes.vanished.push((100, 200));
        changes.changed.insert(8, (Flags::EMPTY, false));
        changes.changed.insert(9, (Flags::DRAFT, true));
        let merged = merge(&snapshot(), &changes);
        let uids: Vec<u32> = merged.messages.keys().copied().collect();
        assert_eq!(uids, vec![1, 4, 5, 7, 8, 9]);
        assert_eq!(merged.messages[&8], Flags::EMPTY);
        assert_eq!(merged.messages[&9], Flags::DRAFT);
        assert!(merged.recent.contains(&9) && merged.recent.len() == 1);
    }

    #[test]
    fn status_comparison_needs_every_field_equal() {
        let snap = snapshot();
        let status = BoxStatus {
            messages: 7,
            recent: 0,
            uid_next: 9,
            uid_validity: 42,
            highest_modseq: 900,
        };
        assert!(snap.unchanged_per(&status));
        for changed in [
            BoxStatus {
                messages: 6,
                ..status
            },
            BoxStatus {
                uid_next: 10,
                ..status
            },
            BoxStatus {
                uid_validity: 43,
                ..status
            },
            BoxStatus {
                highest_modseq: 901,
                ..status
            },
        ] {
            assert!(!snap.unchanged_per(&changed));
        }
    }
}
