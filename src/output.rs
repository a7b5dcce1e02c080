//! Console output with mbsync's verbosity levels and streams: errors and warnings to stderr,
//! notices, progress and the summary to stdout (flushed after every line).
//!
//! Every function may be called from several threads at once (mailbox pairs synchronized
//! concurrently): each line is written whole, never into a shown progress line, and recorded
//! error lines are kept per thread so that each goes with the pair that printed it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::ThreadId;

/// Verbosity levels, from `-qq` to `-V`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verbosity {
    VeryQuiet = 0,
    Quiet = 1,
    Normal = 2,
    Verbose = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the process-wide verbosity.
pub fn set_verbosity(level: Verbosity) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The process-wide verbosity.
pub fn verbosity() -> Verbosity {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Verbosity::VeryQuiet,
        1 => Verbosity::Quiet,
        2 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// Error lines kept for a caller that reports them elsewhere (see [`record_errors`]), by
/// the thread that printed them.
static RECORDED_ERRORS: Mutex<Option<HashMap<ThreadId, Vec<String>>>> = Mutex::new(None);

/// Starts (or stops) keeping a copy of every error line, for [`take_recorded_errors`].
pub fn record_errors(enabled: bool) {
    if let Ok(mut recorded) = RECORDED_ERRORS.lock() {
        *recorded = enabled.then(HashMap::new);
    }
}

/// The error lines this thread printed since its last call (empty when not recording).
pub fn take_recorded_errors() -> Vec<String> {
    let thread = std::thread::current().id();
    match RECORDED_ERRORS.lock() {
        Ok(mut recorded) => recorded
            .as_mut()
            .and_then(|by_thread| by_thread.remove(&thread))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The sequence that erases the progress line on screen, if one is shown.
static PROGRESS_ERASE: Mutex<String> = Mutex::new(String::new());

/// Shows a progress line (it starts with `\r` and has no newline); `erase` is the sequence
/// that removes it again, written before any other output and by [`erase_progress`].
pub fn show_progress(line: &str, erase: &str) {
    let mut shown = PROGRESS_ERASE.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = std::io::stdout().lock();
    if erase.len() < shown.len() {
        // A shorter line would leave the end of the longer one on screen.
        let _ = out.write_all(shown.as_bytes());
    }
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    *shown = erase.to_string();
}

/// Erases the progress line, if one is shown.
pub fn erase_progress() {
    with_progress_erased(|| {});
}

/// Erases the progress line, if one is shown, and runs `write` before another thread can
/// show it again.
fn with_progress_erased(write: impl FnOnce()) {
    let mut shown = PROGRESS_ERASE.lock().unwrap_or_else(|e| e.into_inner());
    if !shown.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(shown.as_bytes());
        let _ = out.flush();
        shown.clear();
    }
    write();
}

/// A line on stderr, written with one call so that it stays whole.
fn stderr_line(text: &str) {
    with_progress_erased(|| {
        let _ = std::io::stderr()
            .lock()
            .write_all(format!("{text}\n").as_bytes());
    });
}

/// An error line (always shown, stderr).
pub fn error(text: &str) {
    stderr_line(text);
    if let Ok(mut recorded) = RECORDED_ERRORS.lock()
        && let Some(by_thread) = recorded.as_mut()
    {
        by_thread
            .entry(std::thread::current().id())
            .or_default()
            .push(text.to_string());
    }
}

/// A warning line (quiet and above, stderr).
pub fn warning(text: &str) {
    if verbosity() >= Verbosity::Quiet {
        stderr_line(text);
    }
}

/// A notice line (normal and above, stdout).
pub fn notice(text: &str) {
    if verbosity() >= Verbosity::Normal {
        stdout_line(text);
    }
}

/// An informational line (verbose only, stdout).
pub fn info(text: &str) {
    if verbosity() >= Verbosity::Verbose {
        stdout_line(text);
    }
}

/// A line on stdout regardless of verbosity, flushed at once.
pub fn stdout_line(text: &str) {
    with_progress_erased(|| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{text}\n").as_bytes());
        let _ = out.flush();
    });
}
