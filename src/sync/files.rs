//! The files of a mailbox pair's sync state on disk (spec sync-semantics §1): their paths,
//! the state directory, the lock, loading state plus journal at start, committing the new
//! state at the end, and deleting it all.
//!
//! Nothing here cleans up on drop: an interrupted run (step limit, crash) leaves the lock,
//! journal and `.new` behind, as the reference does.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::io::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};

use super::entry::PairState;
use super::error::{SyncError, os_error_text};
use super::journal::replay;
use super::state::{StateError, format_state, parse_state};
use crate::config::Side;

/// The state file `P` and its companions `P.journal`, `P.new`, `P.lock` (spec §1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePaths {
    pub state: PathBuf,
    pub journal: PathBuf,
    pub new: PathBuf,
    pub lock: PathBuf,
}

impl StatePaths {
    pub fn new(state: impl Into<PathBuf>) -> StatePaths {
        let state = state.into();
        let with_suffix = |suffix: &str| {
            let mut name = OsString::from(state.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        };
        StatePaths {
            journal: with_suffix(".journal"),
            new: with_suffix(".new"),
            lock: with_suffix(".lock"),
            state,
        }
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Prepares the directory of a state path that is not in-box (`SyncState *`): the path must
/// contain a `/`, and every directory up to the last `/` is created with mode 0700 (spec
/// §1.1).
pub fn create_state_dir(state_path: &str) -> Result<(), SyncError> {
    let Some(slash) = state_path.rfind('/') else {
        return Err(SyncError::Pair(format!(
            "Error: invalid SyncState location '{state_path}'"
        )));
    };
    let dir = &state_path[..slash];
    if dir.is_empty() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| {
            SyncError::Pair(format!(
                "Error: cannot create SyncState directory '{dir}': {}",
                os_error_text(&err)
            ))
        })
}

/// The lock of a mailbox pair: an exclusive, non-blocking record lock on `P.lock` (spec
/// §1.3). It is released only by [`StateLock::release`]; dropping it just closes the file
/// (which ends the lock but leaves the file, like a terminated process).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock. `label` is `:<farstore>:<farbox>-:<nearstore>:<nearbox>` (configured
    /// box names), used in the "is locked" message.
    pub fn acquire(paths: &StatePaths, label: &str) -> Result<StateLock, SyncError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.lock)
            .map_err(|err| {
                SyncError::Pair(format!(
                    "Error: cannot create lock file {}: {}",
                    shown(&paths.lock),
                    os_error_text(&err)
                ))
            })?;
        if !try_write_lock(&file) {
            return Err(SyncError::Pair(format!("Error: channel {label} is locked")));
        }
        Ok(StateLock {
            file,
            path: paths.lock.clone(),
        })
    }

    /// Ends the pair's lock: deletes the lock file, then closes it.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }

    /// Closes the lock file without deleting it: for a pair whose state (lock file included)
    /// was already deleted by [`delete_state`], so that a lock file created meanwhile by
    /// another process is left alone.
    pub fn close(self) {
        drop(self.file);
    }
}

/// Takes the pair's lock into `lock` unless it is held already: the last moment of spec §1.3
/// (just before planning the load), when neither a state file nor a journal was read.
pub fn lock_pair(
    paths: &StatePaths,
    lock: &mut Option<StateLock>,
    label: &str,
) -> Result<(), SyncError> {
    if lock.is_none() {
        *lock = Some(StateLock::acquire(paths, label)?);
    }
    Ok(())
}

/// An exclusive whole-file write lock that does not wait. Open-file-description locks conflict
/// with the classic POSIX record locks other mbsync processes take, and also with a second
/// lock of this process.
fn try_write_lock(file: &File) -> bool {
    // SAFETY: `flock` is plain data; all-zero is a valid value that we then fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 0;
    lock.l_len = 0;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let command = libc::F_OFD_SETLK;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let command = libc::F_SETLK;
    // SAFETY: the descriptor is open for writing for the duration of the call and `lock`
    // is a valid, initialized `flock`.
    let result = unsafe { libc::fcntl(file.as_raw_fd(), command, &mut lock) };
    result == 0
}

/// Reads a file; `Ok(None)` if it does not exist.
fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Loads the pair's state without locking (dry run): spec §1.5.
pub fn load_state(paths: &StatePaths, expire_side: Side) -> Result<PairState, SyncError> {
    load(paths, expire_side, &mut |_| Ok(()))
}

/// Loads the pair's state (spec §1.5), taking the lock into `lock` before reading an existing
/// state file or journal (if it is not held yet). `label` is the channel label for the
/// "is locked" message.
pub fn load_state_locked(
    paths: &StatePaths,
    expire_side: Side,
    lock: &mut Option<StateLock>,
    label: &str,
) -> Result<PairState, SyncError> {
    load(paths, expire_side, &mut |paths| {
        lock_pair(paths, lock, label)
    })
}

fn load(
    paths: &StatePaths,
    expire_side: Side,
    take_lock: &mut dyn FnMut(&StatePaths) -> Result<(), SyncError>,
) -> Result<PairState, SyncError> {
    let state_name = shown(&paths.state);
    let read_state_error = |source| StateError::ReadState {
        path: shown(&paths.state),
        source,
    };
    let mut state = match read_locked(&paths.state, paths, take_lock, read_state_error)? {
        Some(data) => parse_state(&data, &state_name, expire_side)?,
        None => PairState::default(),
    };
    let journal_name = shown(&paths.journal);
    let read_journal_error = |source| StateError::ReadJournal {
        path: shown(&paths.journal),
        source,
    };
    if let Some(journal) = read_locked(&paths.journal, paths, take_lock, read_journal_error)?
        // A journal without `.new` was already folded into the state file.
        && !journal.is_empty()
        && paths.new.exists()
    {
        replay(&mut state, &journal, &journal_name, expire_side)?;
    }
    Ok(state)
}

/// Reads `path` if it exists, taking the pair's lock first: a file that another process
/// replaces before it lets go of the lock is read as that process left it.
fn read_locked(
    path: &Path,
    paths: &StatePaths,
    take_lock: &mut dyn FnMut(&StatePaths) -> Result<(), SyncError>,
    error: impl Fn(io::Error) -> StateError,
) -> Result<Option<Vec<u8>>, SyncError> {
    if !path.try_exists().map_err(&error)? {
        return Ok(None);
    }
    take_lock(paths)?;
    read_if_present(path).map_err(|source| error(source).into())
}

/// Commits the pair's state (spec §1.4): writes `P.new` (fdatasync with `fsync`), then —
/// unless `keep_journal` (`-Tj`) — renames it over `P` and deletes the journal. Rename and
/// delete failures are warnings. Call only when the pair must be saved (a record was written
/// or a journal replayed), after `Journal::end_pair`.
pub fn save_state(
    paths: &StatePaths,
    state: &PairState,
    expire_side: Side,
    fsync: bool,
    keep_journal: bool,
) -> Result<(), SyncError> {
    let bytes = format_state(state, expire_side);
    let mut file = File::create(&paths.new).map_err(|source| StateError::CreateNew {
        path: shown(&paths.new),
        source,
    })?;
    let write_error = |source| StateError::Write {
        path: shown(&paths.new),
        source,
    };
    file.write_all(&bytes).map_err(write_error)?;
    if fsync {
        file.sync_data().map_err(write_error)?;
    }
    close_checked(file).map_err(|source| StateError::Close {
        path: shown(&paths.new),
        source,
    })?;
    if keep_journal {
        return Ok(());
    }
    if fs::rename(&paths.new, &paths.state).is_err() {
        crate::output::warning(&format!(
            "Warning: cannot commit sync state {}",
            shown(&paths.state)
        ));
        return Ok(());
    }
    if fs::remove_file(&paths.journal).is_err() {
        crate::output::warning(&format!(
            "Warning: cannot delete journal {}",
            shown(&paths.journal)
        ));
    }
    Ok(())
}

/// Closes a file and reports the error `close(2)` gives (dropping a `File` ignores it).
fn close_checked(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `into_raw_fd` handed us sole ownership of the open descriptor; it is closed
    // exactly once here.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Deletes the pair's state (spec §1.6): `.new` and `.journal` (errors ignored), then `P`,
/// then the lock file. Returns the first error of the last two.
pub fn delete_state(paths: &StatePaths) -> io::Result<()> {
    let _ = fs::remove_file(&paths.new);
    let _ = fs::remove_file(&paths.journal);
    fs::remove_file(&paths.state)?;
    fs::remove_file(&paths.lock)
}

/// [`delete_state`] with the pair-failing message of spec §1.6 for channel `channel`.
pub fn delete_channel_state(paths: &StatePaths, channel: &str) -> Result<(), SyncError> {
    delete_state(paths).map_err(|err| {
        SyncError::Pair(format!(
            "Error: channel {channel}: sync state cannot be deleted: {}",
            os_error_text(&err)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Flags;
    use crate::sync::entry::{Entry, Record};
    use crate::sync::journal::{Journal, JournalOptions};

    const NEAR: Side = Side::Near;
    const EXAMPLE_2_STATE: &str = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n";

    fn temp_paths() -> (tempfile::TempDir, StatePaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path().join(".mbsyncstate"));
        (dir, paths)
    }

    fn message(err: SyncError) -> String {
        match err {
            SyncError::Pair(text) | SyncError::Fatal(text) => text,
            SyncError::Interrupted => "interrupted".to_string(),
        }
    }

    #[test]
    fn companion_paths() {
        let paths = StatePaths::new("/s/:far:INBOX_:near:INBOX");
        assert_eq!(
            paths.journal,
            PathBuf::from("/s/:far:INBOX_:near:INBOX.journal")
        );
        assert_eq!(paths.new, PathBuf::from("/s/:far:INBOX_:near:INBOX.new"));
        assert_eq!(paths.lock, PathBuf::from("/s/:far:INBOX_:near:INBOX.lock"));
    }

    #[test]
    fn state_dir_is_created_with_mode_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("a/b");
        let state = format!("{}/prefix-", base.display());
        create_state_dir(&state).unwrap();
        let mode = fs::metadata(&base).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o700, 0, "mode {mode:o}");
        assert!(base.is_dir());
        assert_eq!(
            message(create_state_dir("nodir").unwrap_err()),
            "Error: invalid SyncState location 'nodir'"
        );
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let inside = format!("{}/sub/state", blocker.display());
        assert_eq!(
            message(create_state_dir(&inside).unwrap_err()),
            format!(
                "Error: cannot create SyncState directory '{}/sub': Not a directory",
                blocker.display()
            )
        );
    }

    #[test]
    fn lock_contention_and_release() {
        let (_dir, paths) = temp_paths();
        let label = ":far:INBOX-:near:INBOX";
        let lock = StateLock::acquire(&paths, label).unwrap();
        assert!(paths.lock.exists());
        let second = StateLock::acquire(&paths, label).unwrap_err();
        assert_eq!(
            message(second),
            "Error: channel :far:INBOX-:near:INBOX is locked"
        );
        lock.release();
        assert!(!paths.lock.exists());
        // Free again.
        let lock = StateLock::acquire(&paths, label).unwrap();
        lock.release();
    }

    #[test]
    fn load_without_files_is_a_fresh_pair() {
        let (_dir, paths) = temp_paths();
        let mut lock = None;
        let state = load_state_locked(&paths, NEAR, &mut lock, "L").unwrap();
        assert_eq!(state, PairState::default());
        assert!(lock.is_none());
        assert!(!paths.lock.exists());
        // Taken later, before planning; a second call keeps the held lock.
        lock_pair(&paths, &mut lock, "L").unwrap();
        assert!(paths.lock.exists());
        lock_pair(&paths, &mut lock, "L").unwrap();
        if let Some(lock) = lock {
            lock.release();
        }
        assert!(!paths.lock.exists());
    }

    #[test]
    fn the_state_is_read_after_the_lock_is_taken() {
        // Another process commits (renames its new state over the file) and lets go of the
        // lock just as this one takes it: the committed state is the one loaded.
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        let committed = EXAMPLE_2_STATE.replace("MaxPulledUid 3", "MaxPulledUid 4") + "4 4 S\n";
        let state = load(&paths, NEAR, &mut |paths: &StatePaths| {
            if !paths.new.exists() {
                fs::write(&paths.new, &committed).unwrap();
                fs::rename(&paths.new, &paths.state).unwrap();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(state.entries.len(), 4);
    }

    #[test]
    fn a_journal_alone_takes_the_lock() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.journal, "5\n+ 1 0\n").unwrap();
        fs::write(&paths.new, "").unwrap();
        let mut lock = None;
        let state = load_state_locked(&paths, NEAR, &mut lock, "L").unwrap();
        assert!(lock.is_some());
        assert!(state.replayed && !state.existed);
        assert_eq!(state.entries.len(), 1);
        if let Some(lock) = lock {
            lock.release();
        }
    }

    #[test]
    fn load_reads_state_and_takes_the_lock() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        let mut lock = None;
        let state = load_state_locked(&paths, NEAR, &mut lock, "L").unwrap();
        assert!(state.existed && !state.replayed);
        assert_eq!(state.entries.len(), 3);
        assert!(lock.is_some());
        // A second process-level attempt fails while held.
        let mut other = None;
        assert_eq!(
            message(load_state_locked(&paths, NEAR, &mut other, ":f:b-:n:b").unwrap_err()),
            "Error: channel :f:b-:n:b is locked"
        );
        // Dry run does not lock.
        assert!(load_state(&paths, NEAR).is_ok());
        if let Some(lock) = lock {
            lock.release();
        }
    }

    #[test]
    fn load_replays_only_with_new_file_and_a_line() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        fs::write(&paths.journal, "5\n* 1 1 0\n").unwrap();
        // Example 12: no `.new` → ignored.
        let state = load_state(&paths, NEAR).unwrap();
        assert!(!state.replayed);
        assert_eq!(state.entries[0].flags, Flags::SEEN);
        // With `.new` → replayed.
        fs::write(&paths.new, "").unwrap();
        let state = load_state(&paths, NEAR).unwrap();
        assert!(state.replayed);
        assert_eq!(state.entries[0].flags, Flags::EMPTY);
        // An empty journal is not replayed.
        fs::write(&paths.journal, "").unwrap();
        let state = load_state(&paths, NEAR).unwrap();
        assert!(!state.replayed);
        // A broken journal fails the pair.
        fs::write(&paths.journal, "5\n* 9 9 0\n").unwrap();
        assert_eq!(
            message(load_state(&paths, NEAR).unwrap_err()),
            format!(
                "Error: journal entry at {}:2 refers to non-existing sync state entry",
                paths.journal.display()
            )
        );
    }

    #[test]
    fn load_reports_parse_and_read_errors() {
        let (dir, paths) = temp_paths();
        fs::write(&paths.state, "FarUidValidity 1\n").unwrap();
        assert_eq!(
            message(load_state(&paths, NEAR).unwrap_err()),
            format!(
                "Error: unterminated sync state header in {}",
                paths.state.display()
            )
        );
        // A directory where the state file should be cannot be read.
        let odd = StatePaths::new(dir.path());
        let text = message(load_state(&odd, NEAR).unwrap_err());
        assert_eq!(
            text,
            format!(
                "Error: cannot read sync state {}: Is a directory",
                dir.path().display()
            )
        );
    }

    #[test]
    fn save_commits_and_deletes_the_journal() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        fs::write(&paths.journal, "5\n* 1 1 0\n").unwrap();
        fs::write(&paths.new, "").unwrap();
        let state = load_state(&paths, NEAR).unwrap();
        save_state(&paths, &state, NEAR, true, false).unwrap();
        assert_eq!(
            fs::read_to_string(&paths.state).unwrap(),
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 \n2 2 S\n3 3 S\n"
        );
        assert!(!paths.new.exists());
        assert!(!paths.journal.exists());
    }

    #[test]
    fn save_with_keep_journal_leaves_state_and_journal() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        fs::write(&paths.journal, "5\n* 1 1 0\n").unwrap();
        fs::write(&paths.new, "").unwrap();
        let state = load_state(&paths, NEAR).unwrap();
        save_state(&paths, &state, NEAR, false, true).unwrap();
        assert_eq!(fs::read_to_string(&paths.state).unwrap(), EXAMPLE_2_STATE);
        assert_eq!(fs::read_to_string(&paths.journal).unwrap(), "5\n* 1 1 0\n");
        assert!(
            fs::read_to_string(&paths.new)
                .unwrap()
                .ends_with("\n\n1 1 \n2 2 S\n3 3 S\n")
        );
    }

    #[test]
    fn save_failing_to_create_new_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path().join("missing/state"));
        let err = save_state(&paths, &PairState::default(), NEAR, false, false).unwrap_err();
        assert!(matches!(err, SyncError::Fatal(_)));
        assert_eq!(
            message(err),
            format!(
                "Error: cannot create new sync state {}: No such file or directory",
                paths.new.display()
            )
        );
    }

    /// A failed rename is only a warning: `.new` and the journal stay for the next run.
    #[test]
    fn failed_commit_keeps_journal() {
        let (_dir, paths) = temp_paths();
        fs::create_dir(&paths.state).unwrap();
        fs::write(paths.state.join("occupied"), "").unwrap();
        fs::write(&paths.journal, "5\n+ 1 0\n").unwrap();
        save_state(&paths, &PairState::default(), NEAR, false, false).unwrap();
        assert!(paths.journal.exists());
        assert!(
            fs::read_to_string(&paths.new)
                .unwrap()
                .starts_with("FarUidValidity")
        );
    }

    #[test]
    fn write_errors_are_fatal() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let (_dir, paths) = temp_paths();
        std::os::unix::fs::symlink("/dev/full", &paths.new).unwrap();
        let err = save_state(&paths, &PairState::default(), NEAR, false, false).unwrap_err();
        assert!(matches!(err, SyncError::Fatal(_)));
        assert_eq!(
            message(err),
            format!(
                "Error: cannot write file {}: No space left on device",
                paths.new.display()
            )
        );
        // The journal writer: `.new` is fine to truncate, the journal cannot be written.
        fs::remove_file(&paths.new).unwrap();
        std::os::unix::fs::symlink("/dev/full", &paths.journal).unwrap();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), false);
        let err = journal.log(&Record::New { far: 1, near: 0 }).unwrap_err();
        assert_eq!(
            message(err),
            format!(
                "Error: cannot write file {}: No space left on device",
                paths.journal.display()
            )
        );
    }

    #[test]
    fn journal_creation_errors_are_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path().join("missing/state"));
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), false);
        let err = journal.log(&Record::New { far: 1, near: 0 }).unwrap_err();
        assert!(matches!(err, SyncError::Fatal(_)));
        assert_eq!(
            message(err),
            format!(
                "Error: cannot create new sync state {}: No such file or directory",
                paths.new.display()
            )
        );
        // `.new` can be created but the journal cannot (a directory is in the way).
        let (_dir, paths) = temp_paths();
        fs::create_dir(&paths.journal).unwrap();
        journal.begin_pair(paths.clone(), false);
        let err = journal.log(&Record::New { far: 1, near: 0 }).unwrap_err();
        assert_eq!(
            message(err),
            format!(
                "Error: cannot create journal {}: Is a directory",
                paths.journal.display()
            )
        );
    }

    /// A stale journal (no `.new`: already folded into the state) is emptied before `.new` is
    /// created, so that no moment exists where a kill leaves `.new` next to old records that
    /// the next run would replay a second time. Shown by making `.new` impossible to create.
    #[test]
    fn stale_journal_is_emptied_before_new_appears() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.journal, "5\n+ 1 0\n> 1 0 1\n").unwrap();
        fs::create_dir(&paths.new).unwrap();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), false);
        assert!(journal.log(&Record::New { far: 2, near: 0 }).is_err());
        assert_eq!(fs::read_to_string(&paths.journal).unwrap(), "");
    }

    #[test]
    fn delete_state_removes_everything() {
        let (_dir, paths) = temp_paths();
        for path in [&paths.state, &paths.journal, &paths.new, &paths.lock] {
            fs::write(path, "").unwrap();
        }
        let lock = StateLock::acquire(&paths, "L").unwrap();
        delete_channel_state(&paths, "ex").unwrap();
        // Someone else may lock the pair again (a new lock file); closing ours leaves it.
        let other = StateLock::acquire(&paths, "L").unwrap();
        lock.close();
        assert!(paths.lock.exists());
        other.release();
        for path in [&paths.state, &paths.journal, &paths.new, &paths.lock] {
            assert!(!path.exists(), "{}", path.display());
        }
        assert_eq!(
            message(delete_channel_state(&paths, "ex").unwrap_err()),
            "Error: channel ex: sync state cannot be deleted: No such file or directory"
        );
    }

    fn journal_options() -> JournalOptions {
        JournalOptions {
            fsync: true,
            ..JournalOptions::default()
        }
    }

    #[test]
    fn journal_is_created_lazily_with_version_line() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.new, "stale").unwrap();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), false);
        assert!(!paths.journal.exists());
        assert!(!journal.wrote_records());
        journal
            .log(&Record::UidValidity {
                far: 1000,
                near: 2000,
            })
            .unwrap();
        journal.log(&Record::New { far: 0, near: 1 }).unwrap();
        // Each record reaches the file at once.
        assert_eq!(
            fs::read_to_string(&paths.journal).unwrap(),
            "5\n| 1000 2000\n+ 0 1\n"
        );
        assert_eq!(fs::read(&paths.new).unwrap(), b"");
        journal.flush_to_disk().unwrap();
        assert!(journal.wrote_records());
        journal.end_pair();
        assert!(!journal.wrote_records());
        assert_eq!(journal.steps(), 2);
        assert_eq!(journal.records(), 2);
    }

    #[test]
    fn journal_appends_after_replay() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.journal, "5\n+ 1 0\n").unwrap();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), true);
        journal
            .log(&Record::Assign {
                side: Side::Near,
                far: 1,
                near: 0,
                uid: 1,
            })
            .unwrap();
        assert_eq!(
            fs::read_to_string(&paths.journal).unwrap(),
            "5\n+ 1 0\n> 1 0 1\n"
        );
    }

    #[test]
    fn dry_run_counts_but_writes_nothing() {
        let (_dir, paths) = temp_paths();
        let mut journal = Journal::new(JournalOptions {
            dry_run: true,
            ..JournalOptions::default()
        });
        journal.begin_pair(paths.clone(), false);
        journal.log(&Record::New { far: 1, near: 0 }).unwrap();
        journal.count_step().unwrap();
        assert!(journal.wrote_records());
        assert!(!paths.journal.exists() && !paths.new.exists());
        assert_eq!(journal.hash_line(), "### 2 steps, 1 entries ###");
    }

    /// Example 19: `-Ts6` stops after the sixth record has been written.
    #[test]
    fn step_limit_interrupts_after_writing() {
        let (_dir, paths) = temp_paths();
        let mut journal = Journal::new(JournalOptions {
            step_limit: 6,
            ..journal_options()
        });
        journal.begin_pair(paths.clone(), false);
        let records = [
            Record::UidValidity {
                far: 1000,
                near: 2000,
            },
            Record::New { far: 0, near: 1 },
            Record::New { far: 1, near: 0 },
            Record::New { far: 2, near: 0 },
            Record::FindThreshold {
                side: Side::Far,
                uid: 2,
            },
        ];
        for record in &records {
            journal.log(record).unwrap();
        }
        let last = journal.log(&Record::FindThreshold {
            side: Side::Near,
            uid: 1,
        });
        assert!(matches!(last, Err(SyncError::Interrupted)));
        assert_eq!(
            fs::read_to_string(&paths.journal).unwrap(),
            "5\n| 1000 2000\n+ 0 1\n+ 1 0\n+ 2 0\nF 0 2\nF 1 1\n"
        );
        assert_eq!(fs::read(&paths.new).unwrap(), b"");
    }

    /// Example 19 continued: the next run replays what the interrupted run left.
    #[test]
    fn interrupted_run_is_replayed_by_the_next() {
        let (_dir, paths) = temp_paths();
        fs::write(
            &paths.journal,
            "5\n| 1000 2000\n+ 0 1\n+ 1 0\n+ 2 0\nF 0 2\nF 1 1\n",
        )
        .unwrap();
        fs::write(&paths.new, "").unwrap();
        let mut lock = None;
        let state = load_state_locked(&paths, NEAR, &mut lock, "L").unwrap();
        assert!(state.replayed && !state.existed);
        assert_eq!(state.uid_validity, [Some(1000), Some(2000)]);
        assert_eq!(state.newmaxuid, [2, 1]);
        assert_eq!(state.maxuid, [0, 0]);
        assert_eq!(state.find_threshold, [Some(2), Some(1)]);
        let uids: Vec<[u32; 2]> = state.entries.iter().map(|e| e.uid).collect();
        assert_eq!(uids, [[0, 1], [1, 0], [2, 0]]);
        assert!(
            state
                .entries
                .iter()
                .all(|e| e.status == crate::sync::entry::Status::PENDING)
        );
        // The resumed run appends to the journal.
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), state.replayed);
        journal
            .log(&Record::Tuid {
                far: 0,
                near: 1,
                tuid: *b"AAAAAAAAAAAA",
            })
            .unwrap();
        assert!(
            fs::read_to_string(&paths.journal)
                .unwrap()
                .ends_with("F 1 1\n# 0 1 AAAAAAAAAAAA\n")
        );
        if let Some(lock) = lock {
            lock.release();
        }
    }

    #[test]
    fn proxy_steps_count_towards_limit_and_hash_line() {
        let mut journal = Journal::new(JournalOptions {
            dry_run: true,
            step_limit: 3,
            ..JournalOptions::default()
        });
        journal.count_step().unwrap();
        assert_eq!(journal.hash_line(), "### -2 steps, 0 entries ###");
        journal.count_step().unwrap();
        assert!(matches!(journal.count_step(), Err(SyncError::Interrupted)));
    }

    #[test]
    fn counters_are_kept_across_pairs() {
        let (dir, paths) = temp_paths();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), false);
        journal.log(&Record::New { far: 1, near: 0 }).unwrap();
        journal.end_pair();
        let other = StatePaths::new(dir.path().join("other"));
        journal.begin_pair(other.clone(), false);
        journal.log(&Record::New { far: 2, near: 0 }).unwrap();
        assert_eq!(journal.hash_line(), "### 2 steps, 2 entries ###");
        assert_eq!(fs::read_to_string(&other.journal).unwrap(), "5\n+ 2 0\n");
    }

    /// A full cycle: records written by the journal writer, replayed after an interruption,
    /// give the same state as the in-memory run.
    #[test]
    fn written_journal_replays_to_the_same_state() {
        let (_dir, paths) = temp_paths();
        fs::write(&paths.state, EXAMPLE_2_STATE).unwrap();
        let mut live = load_state(&paths, NEAR).unwrap();
        let mut journal = Journal::new(journal_options());
        journal.begin_pair(paths.clone(), live.replayed);
        journal
            .log(&Record::Flags {
                far: 2,
                near: 2,
                flags: Flags::DRAFT | Flags::SEEN,
            })
            .unwrap();
        live.entries[1].flags = Flags::DRAFT | Flags::SEEN;
        journal.log(&Record::New { far: 4, near: 0 }).unwrap();
        live.entries.push(Entry {
            uid: [4, 0],
            status: crate::sync::entry::Status::PENDING,
            ..Entry::default()
        });
        live.newmaxuid[0] = 4;
        journal.end_pair();
        let resumed = load_state(&paths, NEAR).unwrap();
        assert!(resumed.replayed);
        assert_eq!(resumed.entries, live.entries);
        assert_eq!(resumed.newmaxuid, live.newmaxuid);
    }
}
