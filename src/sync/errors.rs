//! Temporary home of the sync error type until the `state` branch provides it.

/// How a sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The `-Ts` step limit was reached: exit 100 at once.
    #[error("step limit reached")]
    Interrupted,
    /// A fatal error for the whole process (already worded for the user).
    #[error("{0}")]
    Fatal(String),
    /// The mailbox pair failed (already worded for the user).
    #[error("{0}")]
    Pair(String),
}
