//! Errors of the sync core that decide how a run continues: a failed mailbox pair, a fatal
//! file error that ends the process, or the `-Ts` step limit that exits with code 100.

use std::io;

/// How an operation of the sync core failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The `-Ts<N>` step limit was reached: the process must exit with code 100 at once,
    /// leaving lock, journal and `.new` behind (no cleanup).
    #[error("step limit reached")]
    Interrupted,
    /// A file error that ends the whole process with exit code 1 (spec §1.4). The text is
    /// the complete message, e.g. `Error: cannot create journal <P>.journal: <strerror>`.
    #[error("{0}")]
    Fatal(String),
    /// The mailbox pair failed; the text is the complete message to print (may be empty
    /// when the message was already printed).
    #[error("{0}")]
    Pair(String),
}

/// The C library's description of an I/O error (`strerror`), without Rust's
/// ` (os error N)` suffix.
pub fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            match text.strip_suffix(&suffix) {
                Some(plain) => plain.to_string(),
                None => text,
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_text_is_plain_strerror() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_error_text(&err), "No such file or directory");
        let err = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(os_error_text(&err), "Permission denied");
    }

    #[test]
    fn os_error_text_keeps_custom_messages() {
        let err = io::Error::other("something odd");
        assert_eq!(os_error_text(&err), "something odd");
    }
}
