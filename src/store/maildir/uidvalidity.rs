//! The `.uidvalidity` file of a mailbox (spec config-cli-stores §4.5): UIDVALIDITY and the
//! highest UID assigned so far, read and rewritten under an exclusive fcntl record lock.
//!
//! UIDs are reserved in growing blocks (1, 2, 4, … up to [`MAX_RESERVATION`]): the file is
//! rewritten (and with FSync written through) once per block rather than once per message,
//! and [`UidFile::release`] gives the unused rest of a block back, so after a run without a
//! crash the file holds the highest UID used, as with one write per UID. A crash leaves the
//! counter at the block's end, which is never below a UID in a file name.
//!
//! The lock is an open-file-description lock on Linux (it conflicts with the classic POSIX
//! locks other mbsync processes take, and also between two store objects of one process);
//! elsewhere a classic POSIX record lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::store::{Reporter, StoreError};

/// The file name inside the mailbox directory.
pub const FILE_NAME: &str = ".uidvalidity";

/// The largest block of UIDs reserved by one rewrite of the file.
pub const MAX_RESERVATION: u32 = 1024;

/// An open `.uidvalidity` file.
#[derive(Debug)]
pub struct UidFile {
    file: File,
    /// The mailbox directory (used in messages).
    box_dir: String,
    uid_validity: u32,
    /// The counter as last read or written (includes our reservation).
    highest: u32,
    /// UIDs reserved by us and not yet handed out: `next..=end`, where `end` is the value
    /// we wrote; `None` when nothing is reserved.
    reserved: Option<(u32, u32)>,
    /// The size of the next block to reserve.
    next_block: u32,
    locked: bool,
    fsync: bool,
}

/// What opening found.
#[derive(Debug)]
pub struct OpenedUidFile {
    pub file: UidFile,
    /// The file was missing or empty and has just been initialised: UIDs in existing file
    /// names must be ignored.
    pub fresh: bool,
}

impl UidFile {
    /// Opens (creating it empty, mode 0600, if absent), locks and reads the file; an empty
    /// file is initialised with `now_secs` and 0. The lock stays held; call `unlock`.
    /// A file that cannot be opened for writing (read-only file system, …) is reported as
    /// mbsync 1.4.4 does: `Maildir error: cannot write <file>: <reason>`.
    pub fn open(
        box_dir: &str,
        now_secs: u64,
        fsync: bool,
        reporter: &dyn Reporter,
    ) -> Result<OpenedUidFile, StoreError> {
        let path = format!("{box_dir}/{FILE_NAME}");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|error| {
                StoreError::mailbox(format!(
                    "Maildir error: cannot write {path}: {}",
                    super::strerror(&error)
                ))
            })?;
        let mut uid_file = UidFile {
            file,
            box_dir: box_dir.to_string(),
            uid_validity: 0,
            highest: 0,
            reserved: None,
            next_block: 1,
            locked: false,
            fsync,
        };
        uid_file.lock()?;
        let fresh = match uid_file.read_contents()? {
            Some((uid_validity, highest)) => {
                uid_file.uid_validity = uid_validity;
                uid_file.highest = highest;
                false
            }
            None => {
                reporter.notice(&format!(
                    "Maildir notice: no UIDVALIDITY in {box_dir}, creating new."
                ));
                // UIDVALIDITY is a 32-bit value; the clock fits until 2106.
                uid_file.uid_validity = u32::try_from(now_secs).unwrap_or(u32::MAX);
                uid_file.highest = 0;
                uid_file.write(Durability::Synced)?;
                true
            }
        };
        Ok(OpenedUidFile {
            file: uid_file,
            fresh,
        })
    }

    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// The highest UID assigned so far, as last read or written.
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// Takes the lock (waiting for it) and re-reads the counter another process may have
    /// advanced. Does nothing if the lock is already held.
    pub fn lock_and_refresh(&mut self) -> Result<(), StoreError> {
        if self.locked {
            return Ok(());
        }
        self.lock()?;
        self.refresh()
    }

    /// Re-reads the counter under the lock just taken; an unreadable file or a changed
    /// UIDVALIDITY gives the lock back.
    fn refresh(&mut self) -> Result<(), StoreError> {
        match self.read_contents() {
            Ok(Some((uid_validity, highest))) if uid_validity == self.uid_validity => {
                self.highest = highest;
                Ok(())
            }
            Ok(Some(_)) => {
                self.unlock();
                Err(StoreError::mailbox(format!(
                    "Maildir error: UIDVALIDITY of {} changed.",
                    self.box_dir
                )))
            }
            Ok(None) | Err(_) => {
                self.unlock();
                Err(read_error(&self.box_dir))
            }
        }
    }

    /// Allocates the next UID: from the current reservation, or by reserving a new block
    /// and writing its end back; the lock must be held.
    pub fn allocate(&mut self) -> Result<u32, StoreError> {
        debug_assert!(self.locked, "UIDs are allocated under the lock");
        if let Some((next, end)) = self.reserved {
            self.reserved = (next < end).then(|| (next + 1, end));
            return Ok(next);
        }
        let exhausted = || {
            StoreError::mailbox(format!(
                "Maildir error: UID space exhausted in {}.",
                self.box_dir
            ))
        };
        let first = self.highest.checked_add(1).ok_or_else(exhausted)?;
        let end = self.highest.saturating_add(self.next_block).max(first);
        self.highest = end;
        self.write(Durability::WrittenThrough)?;
        self.reserved = (first < end).then(|| (first + 1, end));
        self.next_block = (self.next_block * 2).min(MAX_RESERVATION);
        Ok(first)
    }

    /// Gives back the reserved UIDs not handed out, if no other process has advanced the
    /// counter past our block since: the file then holds the highest UID used. Takes and
    /// releases the lock unless it is held. Lowering the counter to a used UID is always
    /// safe, so the rewrite is not written through (the next flush covers it).
    pub fn release(&mut self) -> Result<(), StoreError> {
        let Some((next, end)) = self.reserved.take() else {
            return Ok(());
        };
        let was_locked = self.locked;
        self.lock_and_refresh()?;
        let result = if self.highest == end {
            self.highest = next - 1;
            self.write(Durability::Cached)
        } else {
            Ok(())
        };
        if !was_locked {
            self.unlock();
        }
        result
    }

    /// Makes the file's contents durable (fdatasync) when FSync is on.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if !self.fsync {
            return Ok(());
        }
        self.file.sync_data().map_err(|_| self.write_error())
    }

    fn write_error(&self) -> StoreError {
        StoreError::mailbox(format!(
            "Maildir error: cannot write UIDVALIDITY in {}",
            self.box_dir
        ))
    }

    /// Releases the lock (if held).
    pub fn unlock(&mut self) {
        if self.locked {
            // Unlocking cannot meaningfully fail for a lock we hold; closing releases it anyway.
            let _ = set_lock(&self.file, libc::F_UNLCK as libc::c_short, true);
            self.locked = false;
        }
    }

    fn lock(&mut self) -> Result<(), StoreError> {
        loop {
            match set_lock(&self.file, libc::F_WRLCK as libc::c_short, true) {
                Ok(()) => {
                    self.locked = true;
                    return Ok(());
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    return Err(StoreError::mailbox(format!(
                        "Maildir error: cannot fcntl lock UIDVALIDITY in {}.",
                        self.box_dir
                    )));
                }
            }
        }
    }

    /// `Some((uidvalidity, highest))`, `None` for an empty file, or the read error.
    fn read_contents(&mut self) -> Result<Option<(u32, u32)>, StoreError> {
        let mut text = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut text))
            .map_err(|_| read_error(&self.box_dir))?;
        if text.is_empty() {
            return Ok(None);
        }
        parse_contents(&text)
            .map(Some)
            .ok_or_else(|| read_error(&self.box_dir))
    }

    /// Rewrites the file; with FSync, makes it durable or writes it through (see
    /// [`Durability`]).
    fn write(&mut self, durability: Durability) -> Result<(), StoreError> {
        let text = format!("{}\n{}\n", self.uid_validity, self.highest);
        let result = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|_| self.file.set_len(text.len() as u64))
            .and_then(|_| match (self.fsync, durability) {
                (false, _) | (_, Durability::Cached) => Ok(()),
                (true, Durability::Synced) => self.file.sync_data(),
                (true, Durability::WrittenThrough) => write_through(&self.file),
            });
        result.map_err(|_| self.write_error())
    }
}

impl Drop for UidFile {
    fn drop(&mut self) {
        // Best effort, and never waiting for another holder of the lock: a reservation that
        // is not given back only leaves a gap in the UIDs of this mailbox.
        if self.reserved.is_some() {
            if !self.locked && set_lock(&self.file, libc::F_WRLCK as libc::c_short, false).is_ok() {
                // Taken just now: the counter must be read again, or a stale copy equal to
                // our block's end would lower a counter another process has advanced since.
                self.locked = true;
                if self.refresh().is_err() {
                    self.reserved = None;
                }
            }
            if self.locked {
                let _ = self.release();
            }
        }
        self.unlock();
    }
}

/// How far a rewrite of the file goes towards the disk (with FSync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// fdatasync: durable on return.
    Synced,
    /// Handed to the device and waited for, without a cache flush (Linux
    /// `sync_file_range`). Every later commit of the filesystem journal flushes the device
    /// cache first, so no later rename of a message numbered with this UID can become
    /// durable before the counter does: after a crash the counter is never below a UID
    /// found in a file name. This costs a write, not a flush, per UID.
    WrittenThrough,
    /// Left in the page cache; the next flush makes it durable.
    Cached,
}

/// Writes the file's dirty pages to the device and waits for them (no cache flush).
#[cfg(target_os = "linux")]
fn write_through(file: &File) -> std::io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range only reads the descriptor, which stays open for the call.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the ordering needs a full fdatasync.
#[cfg(not(target_os = "linux"))]
fn write_through(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

/// Parses `<uidvalidity>\n<highest>\n` (surrounding white space tolerated).
fn parse_contents(text: &str) -> Option<(u32, u32)> {
    let mut numbers = text.split_whitespace();
    let uid_validity = numbers.next()?.parse().ok()?;
    let highest = numbers.next()?.parse().ok()?;
    if numbers.next().is_some() {
        return None;
    }
    Some((uid_validity, highest))
}

fn read_error(box_dir: &str) -> StoreError {
    StoreError::mailbox(format!(
        "Maildir error: cannot read UIDVALIDITY in {box_dir}."
    ))
}

/// Sets (blocking) or clears an exclusive lock on the whole file.
/// Sets or clears the lock; waits for a conflicting lock to go only when `wait`.
fn set_lock(file: &File, lock_type: libc::c_short, wait: bool) -> std::io::Result<()> {
    // SAFETY: `flock` is plain old data; all-zero is a valid value before the fields are set.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = lock_type;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request.l_start = 0;
    request.l_len = 0;
    #[cfg(target_os = "linux")]
    let command = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    #[cfg(not(target_os = "linux"))]
    let command = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    // SAFETY: the descriptor is open for the lifetime of `file`, and `request` is a valid
    // `flock` the kernel only reads.
    let result = unsafe { libc::fcntl(file.as_raw_fd(), command, &request) };
    if result == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SilentReporter;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Notes(RefCell<Vec<String>>);

    impl Reporter for Notes {
        fn notice(&self, text: &str) {
            self.0.borrow_mut().push(text.to_string());
        }
        fn warning(&self, text: &str) {
            self.0.borrow_mut().push(text.to_string());
        }
        fn debug(&self, _text: &str) {}
    }

    fn dir_string(dir: &tempfile::TempDir) -> String {
        dir.path().to_string_lossy().into_owned()
    }

    #[test]
    fn new_file_is_initialised_with_notice() {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        let notes = Notes::default();
        let opened = UidFile::open(&box_dir, 1795630145, false, &notes).unwrap();
        assert!(opened.fresh);
        assert_eq!(opened.file.uid_validity(), 1795630145);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "1795630145\n0\n"
        );
        assert_eq!(
            notes.0.borrow().as_slice(),
            [format!(
                "Maildir notice: no UIDVALIDITY in {box_dir}, creating new."
            )]
        );
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn allocation_rewrites_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        std::fs::write(dir.path().join(FILE_NAME), "1000\n9\n\n\n\n\n").unwrap();
        let mut opened = UidFile::open(&box_dir, 5, true, &SilentReporter).unwrap();
        assert!(!opened.fresh);
        assert_eq!(opened.file.highest(), 9);
        assert_eq!(opened.file.allocate().unwrap(), 10);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "1000\n10\n"
        );
    }

    #[test]
    fn blocks_are_reserved_and_the_rest_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "1000\n9\n").unwrap();
        let mut file = UidFile::open(&box_dir, 5, true, &SilentReporter)
            .unwrap()
            .file;
        let mut on_disk = Vec::new();
        for expected in 10..=20 {
            assert_eq!(file.allocate().unwrap(), expected);
            on_disk.push(std::fs::read_to_string(&path).unwrap());
        }
        // Blocks of 1, 2, 4 and 8 UIDs: the file is rewritten at 10, 11, 13 and 17 only,
        // and always holds at least the UID just handed out.
        assert_eq!(on_disk[0], "1000\n10\n");
        assert_eq!(on_disk[1], "1000\n12\n");
        assert_eq!(on_disk[2], "1000\n12\n");
        assert_eq!(on_disk[3], "1000\n16\n");
        assert_eq!(on_disk[7], "1000\n24\n");
        assert_eq!(on_disk[10], "1000\n24\n");
        file.release().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000\n20\n");
        // After a release the next UID follows the last one used.
        file.lock_and_refresh().unwrap();
        assert_eq!(file.allocate().unwrap(), 21);
        file.unlock();
        drop(file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000\n21\n");
    }

    /// A box whose counter file a first writer opened, used UID 1 and 2 of (holding the
    /// block 2..=3, unlocked), and a second writer opened after it.
    fn first_holds_a_block_when_second_opens() -> (tempfile::TempDir, UidFile, UidFile) {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        std::fs::write(dir.path().join(FILE_NAME), "1000\n0\n").unwrap();
        let mut first = UidFile::open(&box_dir, 5, false, &SilentReporter)
            .unwrap()
            .file;
        assert_eq!(first.allocate().unwrap(), 1);
        assert_eq!(first.allocate().unwrap(), 2); // block 2..=3
        first.unlock();
        let second = UidFile::open(&box_dir, 5, false, &SilentReporter)
            .unwrap()
            .file;
        (dir, first, second)
    }

    #[test]
    fn a_reservation_is_not_given_back_after_another_writer() {
        let (dir, mut first, mut second) = first_holds_a_block_when_second_opens();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(second.allocate().unwrap(), 4);
        drop(second);
        // UID 3 stays reserved: another process went past it.
        first.release().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000\n4\n");
        first.lock_and_refresh().unwrap();
        assert_eq!(first.allocate().unwrap(), 5);
    }

    #[test]
    fn a_reservation_dropped_after_another_writer_leaves_its_counter() {
        let (dir, first, mut second) = first_holds_a_block_when_second_opens();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(second.allocate().unwrap(), 4);
        assert_eq!(second.allocate().unwrap(), 5); // block 5..=6
        second.unlock();
        // The first closes without a release: the counter it last saw (3, the end of its
        // block) is stale, and the file must not go below UID 5, which is in use.
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000\n6\n");
        drop(second);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000\n5\n");
    }

    #[test]
    fn garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        std::fs::write(dir.path().join(FILE_NAME), "hello\n").unwrap();
        let error = UidFile::open(&box_dir, 5, false, &SilentReporter).unwrap_err();
        assert_eq!(
            error.message,
            format!("Maildir error: cannot read UIDVALIDITY in {box_dir}.")
        );
        // The file is not reset.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "hello\n"
        );
    }

    #[test]
    fn open_failure_names_the_file_and_the_reason() {
        // A read-only file system gives EROFS; a directory in the file's place gives EISDIR
        // even for root.
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        std::fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        let error = UidFile::open(&box_dir, 5, false, &SilentReporter).unwrap_err();
        assert_eq!(
            error.message,
            format!("Maildir error: cannot write {box_dir}/{FILE_NAME}: Is a directory")
        );
    }

    #[test]
    fn refresh_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let box_dir = dir_string(&dir);
        let mut first = UidFile::open(&box_dir, 7, false, &SilentReporter)
            .unwrap()
            .file;
        first.unlock();
        let mut second = UidFile::open(&box_dir, 8, false, &SilentReporter)
            .unwrap()
            .file;
        assert_eq!(second.allocate().unwrap(), 1);
        assert_eq!(second.allocate().unwrap(), 2);
        second.unlock();
        // UID 3 is still reserved by `second` …
        first.lock_and_refresh().unwrap();
        assert_eq!(first.allocate().unwrap(), 4);
        first.unlock();
        // … and given back only if nobody went past it.
        second.release().unwrap();
        first.lock_and_refresh().unwrap();
        assert_eq!(first.highest(), 4);
    }
}
