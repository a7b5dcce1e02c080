//! Reading mailbox directories ahead of their scan, on a thread of its own, while the other
//! side of the channel is still logging in over the network.
//!
//! A read-ahead lists the names in `cur/` and `new/` and notes each directory's stamp
//! (inode, modification and change times) before and after. The scan, later and under the
//! `.uidvalidity` lock, takes the names instead of reading the directory itself only when
//! both stamps it sees then are the ones the read-ahead saw: every entry added, removed or
//! renamed changes a directory's stamp. A directory modified less than two seconds before
//! the read-ahead is not read ahead, so that a coarse file system clock cannot give a later
//! change the stamp of an earlier one. Anything unusual (a name that is not UTF-8, an error)
//! leaves the directory to the scan, which reports it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Sub;

/// How long a directory must have been left alone to be read ahead, in seconds.
const QUIET_SECS: i64 = 2;

/// What identifies the contents of a directory without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DirStamp {
    device: u64,
    inode: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl DirStamp {
    pub(super) fn of(meta: &fs::Metadata) -> DirStamp {
        DirStamp {
            device: meta.dev(),
            inode: meta.ino(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The names a read-ahead found in a mailbox's `cur/` and `new/` (by [`Sub::index`]), and
/// the stamps the directories had meanwhile.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) stamps: [DirStamp; 2],
    pub(super) names: [Vec<String>; 2],
}

enum Slot {
    Queued,
    Reading,
    Done(Option<Listing>),
}

#[derive(Default)]
struct Shared {
    slots: Mutex<HashMap<String, Slot>>,
    done: Condvar,
}

/// Mailbox directories being read ahead; cloned into every Maildir store of a channel.
#[derive(Clone, Default)]
pub struct ReadAhead {
    shared: Arc<Shared>,
}

impl ReadAhead {
    /// Starts reading the mailbox directories `dirs` (as [`super::MaildirStore::box_dir`]
    /// gives them), in this order, on a new thread.
    pub fn start(dirs: Vec<String>) -> ReadAhead {
        ReadAhead::start_with_quiet(dirs, QUIET_SECS)
    }

    /// [`ReadAhead::start`], skipping directories modified less than `quiet_secs` ago.
    fn start_with_quiet(dirs: Vec<String>, quiet_secs: i64) -> ReadAhead {
        let read_ahead = ReadAhead::default();
        if dirs.is_empty() {
            return read_ahead;
        }
        lock(&read_ahead.shared.slots).extend(dirs.iter().map(|dir| (dir.clone(), Slot::Queued)));
        let shared = Arc::clone(&read_ahead.shared);
        let spawned = std::thread::Builder::new()
            .name("maildir-read-ahead".to_string())
            .spawn(move || {
                for dir in dirs {
                    if !claim(&shared, &dir) {
                        continue;
                    }
                    let listing = read_listing(&dir, quiet_secs);
                    lock(&shared.slots).insert(dir, Slot::Done(listing));
                    shared.done.notify_all();
                }
            });
        if spawned.is_err() {
            // No thread: every scan reads its directories itself.
            lock(&read_ahead.shared.slots).clear();
        }
        read_ahead
    }

    /// The listing read ahead for `dir`, waiting for it if it is being read right now. `None`
    /// if the directory was not to be read ahead, was not usable, or its turn has not come
    /// (the caller reads it itself then, and the read-ahead passes it by).
    pub(super) fn take(&self, dir: &str) -> Option<Listing> {
        let mut slots = lock(&self.shared.slots);
        while let Some(Slot::Reading) = slots.get(dir) {
            slots = self
                .shared
                .done
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        match slots.remove(dir)? {
            Slot::Done(listing) => listing,
            Slot::Queued | Slot::Reading => None,
        }
    }
}

#[cfg(test)]
impl ReadAhead {
    /// A read-ahead that has `listing` ready for `dir`.
    pub(super) fn ready(dir: &str, listing: Listing) -> ReadAhead {
        let read_ahead = ReadAhead::default();
        lock(&read_ahead.shared.slots).insert(dir.to_string(), Slot::Done(Some(listing)));
        read_ahead
    }

    /// Waits until every directory has been read ahead.
    pub(super) fn wait_until_read(&self) {
        let mut slots = lock(&self.shared.slots);
        while slots.values().any(|slot| !matches!(slot, Slot::Done(_))) {
            slots = self
                .shared
                .done
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Marks a queued directory as being read; false if a scan took it over already.
fn claim(shared: &Shared, dir: &str) -> bool {
    let mut slots = lock(&shared.slots);
    match slots.get_mut(dir) {
        Some(slot @ Slot::Queued) => {
            *slot = Slot::Reading;
            true
        }
        _ => false,
    }
}

/// Lists `dir/cur` and `dir/new` if they were left alone for [`QUIET_SECS`] and did not
/// change while being read.
fn read_listing(dir: &str, quiet_secs: i64) -> Option<Listing> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let now = i64::try_from(now).ok()?;
    let paths = Sub::BOTH.map(|sub| format!("{dir}/{}", sub.dir_name()));
    let mut stamps = Vec::with_capacity(2);
    for path in &paths {
        let meta = fs::metadata(path).ok()?;
        if meta.mtime() > now - quiet_secs || meta.ctime() > now - quiet_secs {
            return None;
        }
        stamps.push(DirStamp::of(&meta));
    }
    let mut names: [Vec<String>; 2] = Default::default();
    for (path, names) in paths.iter().zip(names.iter_mut()) {
        for entry in fs::read_dir(path).ok()? {
            let name = entry.ok()?.file_name().into_string().ok()?;
            if !name.starts_with('.') {
                names.push(name);
            }
        }
    }
    for (path, stamp) in paths.iter().zip(&stamps) {
        if DirStamp::of(&fs::metadata(path).ok()?) != *stamp {
            return None;
        }
    }
    Some(Listing {
        stamps: [stamps[0], stamps[1]],
        names,
    })
}

/// Locks the slots, also when a thread panicked holding them (each change is one insert).
fn lock(slots: &Mutex<HashMap<String, Slot>>) -> MutexGuard<'_, HashMap<String, Slot>> {
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A maildir with two messages in `cur/`, one in `new/` and a dot file.
    fn mailbox() -> (tempfile::TempDir, String) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("box");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for name in [
            "cur/1.a,U=1:2,S",
            "cur/2.a,U=2:2,S",
            "new/3.a,U=3:2,",
            "cur/.hidden",
        ] {
            fs::write(dir.join(name), "x\n").unwrap();
        }
        (root, dir.to_string_lossy().into_owned())
    }

    #[test]
    fn a_quiet_mailbox_is_listed_once() {
        let (_root, dir) = mailbox();
        // A negative quiet time lets the just-made directories count as quiet.
        let read_ahead = ReadAhead::start_with_quiet(vec![dir.clone()], -1);
        read_ahead.wait_until_read();
        let listing = read_ahead.take(&dir).expect("listed ahead");
        let mut names = listing.names.clone();
        names[0].sort();
        assert_eq!(
            names,
            [vec!["1.a,U=1:2,S", "2.a,U=2:2,S"], vec!["3.a,U=3:2,"]]
        );
        let stamp = DirStamp::of(&fs::metadata(format!("{dir}/cur")).unwrap());
        assert_eq!(listing.stamps[0], stamp);
        assert!(read_ahead.take(&dir).is_none(), "taken twice");
    }

    #[test]
    fn a_recently_modified_mailbox_is_left_to_its_scan() {
        let (_root, dir) = mailbox();
        let read_ahead = ReadAhead::start(vec![dir.clone(), format!("{dir}-missing")]);
        read_ahead.wait_until_read();
        assert!(read_ahead.take(&format!("{dir}-missing")).is_none());
        assert!(read_ahead.take(&dir).is_none());
        assert!(read_ahead.take("/elsewhere").is_none());
    }
}
