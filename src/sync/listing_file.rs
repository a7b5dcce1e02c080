//! The listing side file `<statefile>.mailsync`: per mailbox pair, what the last run learnt
//! about each IMAP side with CONDSTORE (a [`MailboxSnapshot`]: UIDVALIDITY, HIGHESTMODSEQ,
//! UIDNEXT and every UID with its flags), so the next run asks the server only for changes.
//!
//! The file is mailsync's own: mbsync neither reads nor writes it, and the state file stays
//! exactly mbsync's. It is a cache of server facts, so it cannot contradict the state: a
//! missing, unreadable, truncated or stale file (another UIDVALIDITY, a HIGHESTMODSEQ the
//! server went back on) only means that side is listed in full. It is replaced atomically
//! (a temporary file of the process renamed over it) after the pair's state was saved.
//!
//! Format (text):
//!
//! ```text
//! mailsync listing 1
//! side far
//! <uidvalidity> <highestmodseq> <uidnext> <forwarded 0|1> <count>
//! <uid>[:<uid>] <flag letters or ->
//! …
//! side near
//! …
//! end
//! ```

use crate::config::Side;
use crate::store::imap::condstore::MailboxSnapshot;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: &str = "mailsync listing 1";
const END: &str = "end";

/// Snapshots per side [far, near]; `None` where the side has none.
pub type Snapshots = [Option<MailboxSnapshot>; 2];

/// Why the side file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write listing file {path}: {source}")]
pub struct ListingFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The side file of a state file.
pub fn listing_path(state_file: &Path) -> PathBuf {
    let mut name = OsString::from(state_file.as_os_str());
    name.push(".mailsync");
    PathBuf::from(name)
}

/// Reads the side file; anything missing or malformed reads as no snapshot for that side
/// (for the whole file if its frame is damaged).
pub fn read(path: &Path) -> Snapshots {
    let Ok(text) = std::fs::read_to_string(path) else {
        return [None, None];
    };
    parse(&text).unwrap_or_default()
}

fn parse(text: &str) -> Option<Snapshots> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.first() != Some(&HEADER) || lines.last() != Some(&END) {
        return None;
    }
    let body = &lines[1..lines.len() - 1];
    let mut result: Snapshots = [None, None];
    let mut index = 0;
    while index < body.len() {
        let side = match body[index] {
            "side far" => Side::Far,
            "side near" => Side::Near,
            _ => return None,
        };
        let start = index + 1;
        let mut end = start;
        while end < body.len() && !body[end].starts_with("side ") {
            end += 1;
        }
        // Line numbers in errors count from 1 at the file's first line.
        let snapshot = MailboxSnapshot::parse(&body[start..end], start + 2).ok()?;
        result[side.index()] = Some(snapshot);
        index = end;
    }
    Some(result)
}

/// The text of a side file.
pub fn to_text(snapshots: &Snapshots) -> String {
    let mut text = format!("{HEADER}\n");
    for side in Side::BOTH {
        if let Some(snapshot) = &snapshots[side.index()] {
            text.push_str(match side {
                Side::Far => "side far\n",
                Side::Near => "side near\n",
            });
            text.push_str(&snapshot.to_text());
        }
    }
    text.push_str(END);
    text.push('\n');
    text
}

/// Replaces the side file atomically (written to `<path>.tmp<pid>`, synced if `fsync`,
/// renamed);
/// with no snapshot at all, removes it.
pub fn write(path: &Path, snapshots: &Snapshots, fsync: bool) -> Result<(), ListingFileError> {
    let fail = |source| ListingFileError {
        path: path.to_path_buf(),
        source,
    };
    if snapshots.iter().all(Option::is_none) {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
            _ => Ok(()),
        };
    }
    // A name of this process's own: two runs writing at once never mix their bytes.
    let mut temporary = OsString::from(path.as_os_str());
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary).map_err(fail)?;
    file.write_all(to_text(snapshots).as_bytes())
        .map_err(fail)?;
    if fsync {
        file.sync_all().map_err(fail)?;
    }
    drop(file);
    std::fs::rename(&temporary, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Flags;

    fn snapshot(modseq: u64) -> MailboxSnapshot {
        MailboxSnapshot {
            uid_validity: 7,
            highest_modseq: modseq,
            uid_next: 4,
            forwarded_ok: false,
            messages: [(1, Flags::SEEN), (3, Flags::EMPTY)].into_iter().collect(),
        }
    }

    #[test]
    fn written_file_reads_back_and_damage_reads_as_nothing() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = listing_path(&dir.path().join(".mbsyncstate"));
        assert!(path.ends_with(".mbsyncstate.mailsync"));
        assert_eq!(read(&path), [None, None]);
        let both = [Some(snapshot(10)), None];
        write(&path, &both, true).expect("write listing file");
        assert_eq!(read(&path), both);
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(
            text,
            "mailsync listing 1\nside far\n7 10 4 0 2\n1 S\n3 -\nend\n"
        );
        // Truncated: no end line.
        std::fs::write(&path, &text[..text.len() - 4]).expect("truncate");
        assert_eq!(read(&path), [None, None]);
        // A damaged section.
        std::fs::write(&path, text.replace("3 -", "3 Q")).expect("damage");
        assert_eq!(read(&path), [None, None]);
        let near = [None, Some(snapshot(11))];
        write(&path, &near, false).expect("rewrite");
        assert_eq!(read(&path), near);
        write(&path, &[None, None], false).expect("remove");
        assert!(!path.exists());
    }
}
