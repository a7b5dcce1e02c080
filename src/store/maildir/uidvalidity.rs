//! The `.uidvalidity` file of a mailbox (spec config-cli-stores §4.5): UIDVALIDITY and the
//! highest UID assigned so far, read and rewritten under an exclusive fcntl record lock.
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

/// An open `.uidvalidity` file.
#[derive(Debug)]
pub struct UidFile {
    file: File,
    /// The mailbox directory (used in messages).
    box_dir: String,
    uid_validity: u32,
    highest: u32,
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
                uid_file.write()?;
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

    /// Allocates the next UID and writes it back; the lock must be held.
    pub fn allocate(&mut self) -> Result<u32, StoreError> {
        debug_assert!(self.locked, "UIDs are allocated under the lock");
        let Some(next) = self.highest.checked_add(1) else {
            return Err(StoreError::mailbox(format!(
                "Maildir error: UID space exhausted in {}.",
                self.box_dir
            )));
        };
        self.highest = next;
        self.write()?;
        Ok(next)
    }

    /// Releases the lock (if held).
    pub fn unlock(&mut self) {
        if self.locked {
            // Unlocking cannot meaningfully fail for a lock we hold; closing releases it anyway.
            let _ = set_lock(&self.file, libc::F_UNLCK as libc::c_short);
            self.locked = false;
        }
    }

    fn lock(&mut self) -> Result<(), StoreError> {
        loop {
            match set_lock(&self.file, libc::F_WRLCK as libc::c_short) {
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

    fn write(&mut self) -> Result<(), StoreError> {
        let text = format!("{}\n{}\n", self.uid_validity, self.highest);
        let result = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|_| self.file.set_len(text.len() as u64))
            .and_then(|_| {
                if self.fsync {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            });
        result.map_err(|_| {
            StoreError::mailbox(format!(
                "Maildir error: cannot write UIDVALIDITY in {}",
                self.box_dir
            ))
        })
    }
}

impl Drop for UidFile {
    fn drop(&mut self) {
        self.unlock();
    }
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
fn set_lock(file: &File, lock_type: libc::c_short) -> std::io::Result<()> {
    // SAFETY: `flock` is plain old data; all-zero is a valid value before the fields are set.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = lock_type;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request.l_start = 0;
    request.l_len = 0;
    #[cfg(target_os = "linux")]
    let command = libc::F_OFD_SETLKW;
    #[cfg(not(target_os = "linux"))]
    let command = libc::F_SETLKW;
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
        first.lock_and_refresh().unwrap();
        assert_eq!(first.allocate().unwrap(), 3);
    }
}
